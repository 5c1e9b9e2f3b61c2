"""The three GA audio formats as the core needs them: decode to float, encode from float, offsets.

Formats are the project's :class:`~realtime_bridge.audio.formats.AudioFormat` and G.711 is
:mod:`realtime_bridge.audio.g711` (one implementation of each); PCM is 16-bit little-endian mono
at 24 kHz, the only rate the API accepts (the session validation enforces that).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from realtime_bridge.audio import g711
from realtime_bridge.audio.formats import AudioFormat, Codec, parse_ga_format

FloatArray = npt.NDArray[np.float32]

PCM = "audio/pcm"
PCMU = "audio/pcmu"
PCMA = "audio/pcma"
FORMAT_TYPES = (PCM, PCMU, PCMA)


def format_from_json(value: dict[str, Any]) -> AudioFormat:
    """The format a validated GA format object names (the project's one ``AudioFormat``)."""
    return parse_ga_format(value, param="format")


def offset_for_ms(fmt: AudioFormat, ms: float) -> int:
    """Byte offset of the sample nearest to ``ms`` (aligned to a whole sample)."""
    samples = max(0, round(ms * fmt.rate / 1000.0))
    return samples * fmt.bytes_per_sample


def decode(fmt: AudioFormat, data: bytes) -> FloatArray:
    """Samples in [-1, 1) at the format's rate (an odd trailing PCM byte is ignored)."""
    if fmt.codec is Codec.ULAW:
        data = g711.ulaw_to_pcm16(data)
    elif fmt.codec is Codec.ALAW:
        data = g711.alaw_to_pcm16(data)
    usable = len(data) - len(data) % 2
    pcm = np.frombuffer(data[:usable], dtype="<i2")
    return (pcm.astype(np.float32) / 32768.0).astype(np.float32)


def encode(fmt: AudioFormat, samples: FloatArray) -> bytes:
    """Bytes of the format from float samples at its rate (clipped to 16 bits)."""
    pcm = np.clip(np.round(samples * 32767.0), -32768, 32767).astype("<i2").tobytes()
    if fmt.codec is Codec.ULAW:
        return g711.pcm16_to_ulaw(pcm)
    if fmt.codec is Codec.ALAW:
        return g711.pcm16_to_alaw(pcm)
    return pcm
