"""What a client declares when it connects: formats, binary audio, protocol version, turn help.

Clients that cannot send ``session.update`` first (phones, simple pages) declare their audio
formats in the query (SPEC §5). What the upstream must be told of them is derived here, so the
session can tell it before the client's first event (see :mod:`.startup`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from realtime_bridge.audio.formats import PCM16_24K, AudioFormat, parse_query_format
from realtime_bridge.protocol.startup import declared_session_fields

#: Values of the ``silence_fill`` query parameter and the ``SILENCE_FILL`` setting.
SILENCE_FILL_MODES = ("auto", "off")


def parse_silence_fill(value: str | None) -> bool | None:
    """``auto`` → True, ``off`` → False, absent → None (the server's default).

    Raises ``ValueError`` for anything else."""
    if value is None:
        return None
    mode = value.strip().lower()
    if mode not in SILENCE_FILL_MODES:
        raise ValueError(f"silence_fill must be one of {', '.join(SILENCE_FILL_MODES)}")
    return mode == "auto"


@dataclass(frozen=True, slots=True)
class HandshakeOptions:
    """What the client declared when it connected (query parameters, headers, subprotocols)."""

    input_format: AudioFormat = PCM16_24K
    output_format: AudioFormat = PCM16_24K
    binary_audio: bool = False
    beta: bool = False
    #: The client's choice of silence fill (None: the server's default).
    silence_fill: bool | None = None
    #: ``transcription`` for a transcription session (the only intent the API defines).
    intent: str | None = None
    #: The client asked for the bridge's informational events (``?bridge_events=true``), such
    #: as ``bridge.session.resumed``; other clients never get an event type the API lacks.
    bridge_events: bool = False

    @classmethod
    def from_query(cls, query: Mapping[str, str], *, beta: bool = False) -> HandshakeOptions:
        """Parse ``input_audio_format``, ``output_audio_format``, ``audio=binary`` and
        ``silence_fill``.

        Raises ``ClientError(unsupported_audio_format)`` for a format the bridge cannot serve,
        ``ValueError`` for an unknown ``silence_fill``.
        """
        fmt_in = query.get("input_audio_format")
        fmt_out = query.get("output_audio_format")
        return cls(
            input_format=parse_query_format(fmt_in, param="input_audio_format")
            if fmt_in
            else PCM16_24K,
            output_format=parse_query_format(fmt_out, param="output_audio_format")
            if fmt_out
            else PCM16_24K,
            binary_audio=query.get("audio") == "binary",
            beta=beta,
            silence_fill=parse_silence_fill(query.get("silence_fill")),
            intent="transcription" if query.get("intent") == "transcription" else None,
            bridge_events=query.get("bridge_events", "").lower() in ("1", "true", "yes"),
        )

    def upstream_session_fields(self) -> dict[str, Any] | None:
        """The GA session fields the upstream must be told before the client's first event:
        the formats it would otherwise not know (its default is PCM16 at 24 kHz, and the bridge
        resamples any other PCM16 rate to that), or None when it needs telling nothing."""
        up_in = self.input_format.upstream_format()
        up_out = self.output_format.upstream_format()
        return declared_session_fields(
            up_in.to_ga() if up_in != PCM16_24K else None,
            # a transcription session has no output
            up_out.to_ga() if up_out != PCM16_24K and self.intent is None else None,
        )


__all__ = ["SILENCE_FILL_MODES", "HandshakeOptions", "parse_silence_fill"]
