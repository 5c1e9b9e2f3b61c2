"""The audio format value type and its parsing from the three places a client declares it.

A client declares its formats in a GA ``session.update`` (``{"type": "audio/pcm", "rate": R}``),
in a beta one (``"pcm16"``, ``"g711_ulaw"``, ``"g711_alaw"``) or in the query string
(``pcm16@16000``). All three end up as one :class:`AudioFormat`, so the rest of the bridge never
cares which protocol shape the client spoke. Anything unsupported is a :class:`ClientError` with
code ``unsupported_audio_format`` and the ``param`` it came from, so the session can go on.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from enum import StrEnum

from realtime_bridge.errors import ClientError, ErrorCode

__all__ = [
    "ALAW_8K",
    "G711_RATE",
    "PCM16_24K",
    "SUPPORTED_PCM_RATES",
    "ULAW_8K",
    "UPSTREAM_PCM_RATE",
    "AudioFormat",
    "Codec",
    "parse_beta_format",
    "parse_ga_format",
    "parse_query_format",
]

#: PCM16 rates a client may use (an extension: the API itself accepts only 24 000 Hz).
SUPPORTED_PCM_RATES: tuple[int, ...] = (8000, 16000, 22050, 24000, 32000, 44100, 48000)
#: The only PCM16 rate the upstream accepts.
UPSTREAM_PCM_RATE = 24000
#: G.711 (µ-law and A-law) is always narrow-band telephony audio.
G711_RATE = 8000


class Codec(StrEnum):
    """Sample encoding; the values are the bridge's own short names."""

    PCM16 = "pcm16"
    ULAW = "ulaw"
    ALAW = "alaw"


_GA_TYPES: dict[Codec, str] = {
    Codec.PCM16: "audio/pcm",
    Codec.ULAW: "audio/pcmu",
    Codec.ALAW: "audio/pcma",
}
_BETA_NAMES: dict[Codec, str] = {
    Codec.PCM16: "pcm16",
    Codec.ULAW: "g711_ulaw",
    Codec.ALAW: "g711_alaw",
}
_CODEC_BY_GA_TYPE = {v: k for k, v in _GA_TYPES.items()}
_CODEC_BY_BETA_NAME = {v: k for k, v in _BETA_NAMES.items()}


@dataclass(frozen=True, slots=True)
class AudioFormat:
    """A codec at a sample rate; mono always (the protocol has no stereo).

    Construction validates the pair and raises ``ValueError``: an invalid format is a bug in the
    caller, while invalid *client input* is rejected earlier by the ``parse_*`` functions.
    """

    codec: Codec
    rate: int
    #: Bytes per second, kept because ``duration_ms`` runs for every relayed audio frame.
    _bytes_per_second: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        codec = Codec(self.codec)  # accept the plain string value too
        if codec is not self.codec:
            object.__setattr__(self, "codec", codec)
        if codec is Codec.PCM16:
            if self.rate not in SUPPORTED_PCM_RATES:
                raise ValueError(f"unsupported PCM16 rate {self.rate!r}")
        elif self.rate != G711_RATE:
            raise ValueError(f"{codec.value} is always {G711_RATE} Hz, not {self.rate!r}")
        object.__setattr__(self, "_bytes_per_second", self.bytes_per_sample * self.rate)

    @property
    def bytes_per_sample(self) -> int:
        """2 for PCM16, 1 for G.711."""
        return 2 if self.codec is Codec.PCM16 else 1

    @property
    def is_g711(self) -> bool:
        return self.codec is not Codec.PCM16

    def duration_ms(self, nbytes: int) -> float:
        """How long ``nbytes`` of audio in this format last, in milliseconds."""
        return nbytes * 1000.0 / self._bytes_per_second

    def bytes_for_ms(self, ms: float) -> int:
        """Bytes of ``ms`` milliseconds, rounded down to whole samples (never more than asked).

        A tiny tolerance absorbs float error, so ``bytes_for_ms(20)`` at 22 050 Hz is exactly
        441 samples. Negative durations are a caller bug (``ValueError``).
        """
        if ms < 0 or not math.isfinite(ms):
            raise ValueError(f"duration must be a finite non-negative number, not {ms!r}")
        samples = math.floor(ms * self.rate / 1000.0 + 1e-6)
        return samples * self.bytes_per_sample

    def upstream_format(self) -> AudioFormat:
        """The format the upstream is told: G.711 passes through, PCM16 is resampled to 24 kHz."""
        return self if self.is_g711 else PCM16_24K

    def to_ga(self) -> dict[str, object]:
        """The GA ``audio.*.format`` object (a fresh dict: callers may embed it in an event)."""
        if self.codec is Codec.PCM16:
            return {"type": "audio/pcm", "rate": self.rate}
        return {"type": _GA_TYPES[self.codec]}

    def to_beta(self) -> str:
        """The beta ``*_audio_format`` name; beta has no rate, so any PCM16 rate is ``pcm16``."""
        return _BETA_NAMES[self.codec]

    def __str__(self) -> str:
        return f"{self.codec.value}@{self.rate}"


PCM16_24K = AudioFormat(Codec.PCM16, UPSTREAM_PCM_RATE)
ULAW_8K = AudioFormat(Codec.ULAW, G711_RATE)
ALAW_8K = AudioFormat(Codec.ALAW, G711_RATE)

_RATES_TEXT = ", ".join(str(r) for r in SUPPORTED_PCM_RATES)


def _unsupported(message: str, param: str) -> ClientError:
    return ClientError(ErrorCode.UNSUPPORTED_AUDIO_FORMAT, message, param=param)


def _describe(value: object) -> str:
    """A short, safe rendering of a rejected value for an error message."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _make(codec: Codec, rate: int, param: str) -> AudioFormat:
    if codec is Codec.PCM16:
        if rate not in SUPPORTED_PCM_RATES:
            raise _unsupported(
                f"PCM16 rate {rate} Hz is not supported; use one of {_RATES_TEXT}", param
            )
    elif rate != G711_RATE:
        raise _unsupported(
            f"{_GA_TYPES[codec]} is always {G711_RATE} Hz; rate {rate} is not supported", param
        )
    return AudioFormat(codec, rate)


def _rate_from_json(value: object, param: str) -> int:
    # bool is an int subclass: true must not read as 1 Hz. An integral float (16000.0, as some
    # JSON encoders write it) is accepted; anything else is not a rate.
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise _unsupported(f"audio format rate must be an integer, not {_describe(value)}", param)


def parse_ga_format(value: object, *, param: str) -> AudioFormat:
    """Parse a GA format object: ``{"type": "audio/pcm", "rate": R}``, audio/pcmu, audio/pcma.

    ``rate`` is optional (24 000 for ``audio/pcm``, 8 000 for G.711; ``null`` means absent).
    Unknown extra keys are ignored, as the API itself may add some.
    """
    if not isinstance(value, dict):
        raise _unsupported(
            f'audio format must be an object like {{"type": "audio/pcm", "rate": 24000}}, '
            f"not {_describe(value)}",
            param,
        )
    kind = value.get("type")
    codec = _CODEC_BY_GA_TYPE.get(kind) if isinstance(kind, str) else None
    if codec is None:
        raise _unsupported(
            f"audio format type {_describe(kind)} is not supported; "
            "use audio/pcm, audio/pcmu or audio/pcma",
            param,
        )
    raw_rate = value.get("rate")
    if raw_rate is None:
        rate = UPSTREAM_PCM_RATE if codec is Codec.PCM16 else G711_RATE
    else:
        rate = _rate_from_json(raw_rate, param)
    return _make(codec, rate, param)


def parse_beta_format(value: object, *, param: str) -> AudioFormat:
    """Parse a beta format name: ``pcm16`` (24 kHz), ``g711_ulaw``, ``g711_alaw``."""
    codec = _CODEC_BY_BETA_NAME.get(value) if isinstance(value, str) else None
    if codec is None:
        raise _unsupported(
            f"audio format {_describe(value)} is not supported; use pcm16, g711_ulaw or g711_alaw",
            param,
        )
    return PCM16_24K if codec is Codec.PCM16 else AudioFormat(codec, G711_RATE)


_QUERY_RE = re.compile(r"(?P<name>[a-z0-9_/]+)(?:@(?P<rate>[1-9][0-9]{0,5}))?")


def parse_query_format(value: str, *, param: str) -> AudioFormat:
    """Parse a query-string format: a beta or GA name with an optional ``@rate``.

    Accepted: ``pcm16``, ``pcm16@R``, ``audio/pcm``, ``audio/pcm@R`` (R in the supported rates),
    ``g711_ulaw``, ``g711_alaw``, ``audio/pcmu``, ``audio/pcma`` (optionally ``@8000``). Names are
    exact and lower-case: a query string is machine-written, and a near miss is better reported
    than guessed.
    """
    match = _QUERY_RE.fullmatch(value) if isinstance(value, str) else None
    if match is not None:
        name = match["name"]
        codec = _CODEC_BY_BETA_NAME.get(name) or _CODEC_BY_GA_TYPE.get(name)
        if codec is not None:
            if match["rate"] is None:
                rate = UPSTREAM_PCM_RATE if codec is Codec.PCM16 else G711_RATE
            else:
                rate = int(match["rate"])
            return _make(codec, rate, param)
    raise _unsupported(
        f"audio format {_describe(value)} is not supported; use pcm16, pcm16@<rate> "
        f"(rate one of {_RATES_TEXT}), g711_ulaw or g711_alaw",
        param,
    )
