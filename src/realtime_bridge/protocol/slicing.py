"""Large appends converted a slice at a time, so no conversion holds the event loop.

A client may send minutes of audio in one append; resampling it whole costs about 0.9 ms per
second of audio, all of it while every other session waits. An append longer than
:data:`SLICE_MS` that must be converted becomes an :class:`AppendSlicer`: the caller converts one
slice per turn of the event loop (each its own upstream append, each well inside the API's
15 MiB per event) and holds the session's later client frames until the last slice went out,
so nothing is reordered. The converter is the session's own, so the stream is exactly what
converting the whole append at once would give.
"""

from __future__ import annotations

from collections import deque

from realtime_bridge.audio.convert import Converter
from realtime_bridge.protocol.audio_events import append_event

#: Audio per slice, and the longest append converted in one go.
SLICE_MS = 1000.0


class AppendSlicer:
    """One large append, converted and sent a slice at a time. The audio may come in pieces
    (as a large event's decoding gives it); slices never span two pieces, which changes
    nothing in the stream, since the converter carries its state across calls."""

    def __init__(
        self, converter: Converter, audio: bytes | list[bytes], event_id: str | None
    ) -> None:
        self._converter = converter
        self._pieces = deque(
            memoryview(piece) for piece in ([audio] if isinstance(audio, bytes) else audio)
        )
        self._pos = 0
        self._step = max(converter.src.bytes_for_ms(SLICE_MS), converter.src.bytes_per_sample)
        self._event_id = event_id  # on the first slice: errors about it refer to the client's

    @property
    def done(self) -> bool:
        return not self._pieces

    def next_frame(self) -> str | None:
        """The next slice as an ``input_audio_buffer.append`` (None once all are out)."""
        while self._pieces:
            piece = self._pieces[0]
            chunk = bytes(piece[self._pos : self._pos + self._step])
            self._pos += len(chunk)
            if self._pos >= len(piece):
                self._pieces.popleft()
                self._pos = 0
            converted = self._converter.convert(chunk) if chunk else b""
            if converted:
                event_id, self._event_id = self._event_id, None
                return append_event(converted, event_id)
        return None


def needs_slicing(converter: Converter, nbytes: int, *, encoded_here: bool = False) -> bool:
    """Whether an append of ``nbytes`` must be converted in slices. Audio the bridge encodes
    itself (binary frames) is sliced even unconverted: base64 of minutes costs milliseconds."""
    if converter.is_passthrough and not encoded_here:
        return False
    return converter.src.duration_ms(nbytes) > SLICE_MS


__all__ = ["SLICE_MS", "AppendSlicer", "needs_slicing"]
