"""The input audio buffer, positioned on the session's audio timeline.

The API reports VAD positions in milliseconds "from the start of all audio written to the buffer
during the session", so the buffer remembers where its first byte sits on that timeline and can
cut out exactly the ``[audio_start_ms, audio_end_ms)`` span of a turn.
"""

from __future__ import annotations

from realtime_bridge.audio.formats import AudioFormat, Codec

from .audio_io import offset_for_ms


class InputAudioBuffer:
    """Raw bytes in the session's input format, plus their place on the timeline."""

    def __init__(self, fmt: AudioFormat) -> None:
        self.fmt = fmt
        self._data = bytearray()
        self._odd = b""
        self.start_ms = 0.0
        self.total_ms = 0.0

    @property
    def size(self) -> int:
        """Bytes buffered (not yet committed)."""
        return len(self._data)

    @property
    def duration_ms(self) -> float:
        return self.fmt.duration_ms(len(self._data))

    def append(self, raw: bytes) -> bytes:
        """Add bytes; returns the whole-sample bytes actually added (a split PCM sample waits)."""
        if self.fmt.codec is Codec.PCM16:
            raw = self._odd + raw
            keep = len(raw) - len(raw) % 2
            self._odd = raw[keep:]
            raw = raw[:keep]
        self._data += raw
        self.total_ms += self.fmt.duration_ms(len(raw))
        return raw

    def drop_before(self, ms: float) -> None:
        """Discard audio earlier than ``ms`` (what lies before a turn's prefix padding)."""
        cut = min(len(self._data), offset_for_ms(self.fmt, ms - self.start_ms))
        if cut > 0:
            del self._data[:cut]
            self.start_ms += self.fmt.duration_ms(cut)

    def take_until(self, ms: float) -> bytes:
        """Remove and return the audio up to ``ms``; what follows stays buffered."""
        cut = min(len(self._data), offset_for_ms(self.fmt, ms - self.start_ms))
        taken = bytes(self._data[:cut])
        del self._data[:cut]
        self.start_ms += self.fmt.duration_ms(cut)
        return taken

    def take_all(self) -> bytes:
        return self.take_until(self.total_ms + 1.0)

    def clear(self) -> None:
        self._data.clear()
        self._odd = b""
        self.start_ms = self.total_ms

    def reformat(self, fmt: AudioFormat) -> None:
        """A new input format: buffered audio in the old format is dropped."""
        if fmt != self.fmt:
            self.clear()
            self.fmt = fmt
