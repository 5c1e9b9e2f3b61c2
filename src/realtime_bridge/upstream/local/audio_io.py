"""The three GA audio formats as the core needs them: decode to float, encode from float, sizes.

G.711 is delegated to :mod:`realtime_bridge.audio.g711` (bit-exact tables, one implementation in
the project); PCM is 16-bit little-endian mono at 24 kHz, the only rate the API accepts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from realtime_bridge.audio import g711

FloatArray = npt.NDArray[np.float32]

PCM = "audio/pcm"
PCMU = "audio/pcmu"
PCMA = "audio/pcma"
FORMAT_TYPES = (PCM, PCMU, PCMA)


@dataclass(frozen=True, slots=True)
class AudioFormat:
    """A wire format: its GA ``type`` and sample rate."""

    type: str
    rate: int

    @property
    def bytes_per_sample(self) -> int:
        return 2 if self.type == PCM else 1

    @property
    def bytes_per_ms(self) -> float:
        return self.rate * self.bytes_per_sample / 1000.0

    def duration_ms(self, nbytes: int) -> float:
        """Milliseconds of audio in ``nbytes`` bytes of this format."""
        return nbytes / self.bytes_per_ms

    def offset_for_ms(self, ms: float) -> int:
        """Byte offset of the sample at ``ms`` (aligned to a whole sample)."""
        samples = max(0, round(ms * self.rate / 1000.0))
        return samples * self.bytes_per_sample

    def decode(self, data: bytes) -> FloatArray:
        """Samples in [-1, 1) at ``rate`` (an odd trailing PCM byte is ignored)."""
        if self.type == PCMU:
            data = g711.ulaw_to_pcm16(data)
        elif self.type == PCMA:
            data = g711.alaw_to_pcm16(data)
        usable = len(data) - len(data) % 2
        pcm = np.frombuffer(data[:usable], dtype="<i2")
        return (pcm.astype(np.float32) / 32768.0).astype(np.float32)

    def encode(self, samples: FloatArray) -> bytes:
        """Bytes of this format from float samples at ``rate`` (clipped to 16 bits)."""
        pcm = np.clip(np.round(samples * 32767.0), -32768, 32767).astype("<i2").tobytes()
        if self.type == PCMU:
            return g711.pcm16_to_ulaw(pcm)
        if self.type == PCMA:
            return g711.pcm16_to_alaw(pcm)
        return pcm

    def as_json(self) -> dict[str, Any]:
        """The GA format object, e.g. ``{"type":"audio/pcm","rate":24000}``."""
        if self.type == PCM:
            return {"type": PCM, "rate": self.rate}
        return {"type": self.type}


def format_from_json(value: dict[str, Any]) -> AudioFormat:
    """The format a validated GA format object names."""
    kind = value.get("type", PCM)
    if kind == PCM:
        return AudioFormat(PCM, int(value.get("rate", 24000)))
    return AudioFormat(str(kind), 8000)
