"""G.711 µ-law and A-law codecs, bit-exact with the stdlib ``audioop`` (16-bit samples).

``audioop`` is deprecated and gone in Python 3.13, so the codecs are rebuilt here as lookup
tables: a 65 536-entry table per encoder (indexed by the sample's 16-bit pattern) and a 256-entry
table per decoder. A table lookup with ``numpy.take`` is one vectorised pass with no branches, so
a 20 ms frame costs a few microseconds. The tables are computed once at import, from the classic
Sun/CCITT reference algorithm (the one ``audioop`` uses), written with numpy; the tests check them
against ``audioop`` for every input.

PCM16 here is always little-endian signed 16-bit, the protocol's wire format.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = [
    "PCM16_DTYPE",
    "alaw_to_pcm16",
    "alaw_to_samples",
    "pcm16_to_alaw",
    "pcm16_to_ulaw",
    "samples_to_alaw",
    "samples_to_ulaw",
    "ulaw_to_pcm16",
    "ulaw_to_samples",
]

#: The wire dtype of PCM16 audio (explicitly little-endian, whatever the host).
PCM16_DTYPE = np.dtype("<i2")

_U16 = np.dtype("<u2")


def _segment(magnitude: npt.NDArray[np.int32], seg_end: tuple[int, ...]) -> npt.NDArray[np.int32]:
    """Index of the first segment whose end is >= magnitude (8 when above all): C ``search()``."""
    return np.searchsorted(np.asarray(seg_end, dtype=np.int32), magnitude, side="left").astype(
        np.int32
    )


def _build_ulaw_encoder() -> npt.NDArray[np.uint8]:
    # audioop.lin2ulaw feeds the top 14 bits of each sample to st_14linear2ulaw.
    pcm = np.arange(-32768, 32768, dtype=np.int32) >> 2
    mask = np.where(pcm < 0, 0x7F, 0xFF)
    mag = np.minimum(np.abs(pcm), 8159) + 0x21  # clip, then add the bias (0x84 >> 2)
    seg = _segment(mag, (0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF))
    code = np.where(seg >= 8, 0x7F, (seg << 4) | ((mag >> (np.minimum(seg, 7) + 1)) & 0x0F))
    encoded = (code ^ mask).astype(np.uint8)
    # Reorder so the table is indexed by the sample's unsigned 16-bit pattern.
    return np.roll(encoded, -32768)


def _build_alaw_encoder() -> npt.NDArray[np.uint8]:
    # audioop.lin2alaw feeds the top 13 bits of each sample to st_linear2alaw.
    pcm = np.arange(-32768, 32768, dtype=np.int32) >> 3
    mask = np.where(pcm >= 0, 0xD5, 0x55)
    mag = np.where(pcm >= 0, pcm, -pcm - 1)
    seg = _segment(mag, (0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF))
    shift = np.where(seg < 2, 1, np.minimum(seg, 7))
    code = np.where(seg >= 8, 0x7F, (seg << 4) | ((mag >> shift) & 0x0F))
    encoded = (code ^ mask).astype(np.uint8)
    return np.roll(encoded, -32768)


def _build_ulaw_decoder() -> npt.NDArray[np.int16]:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    t = (((u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4)
    return np.where(u & 0x80, 0x84 - t, t - 0x84).astype(PCM16_DTYPE)


def _build_alaw_decoder() -> npt.NDArray[np.int16]:
    a = np.arange(256, dtype=np.int32) ^ 0x55
    t = (a & 0x0F) << 4
    seg = (a & 0x70) >> 4
    t = np.where(seg == 0, t + 8, (t + 0x108) << np.maximum(seg - 1, 0))
    return np.where(a & 0x80, t, -t).astype(PCM16_DTYPE)


_ULAW_ENCODE = _build_ulaw_encoder()
_ALAW_ENCODE = _build_alaw_encoder()
_ULAW_DECODE = _build_ulaw_decoder()
_ALAW_DECODE = _build_alaw_decoder()
for _table in (_ULAW_ENCODE, _ALAW_ENCODE, _ULAW_DECODE, _ALAW_DECODE):
    _table.flags.writeable = False


# Array-level API, for the converter: it already holds samples and must not round-trip via bytes.


def samples_to_ulaw(samples: npt.NDArray[np.int16]) -> bytes:
    """Encode int16 samples to µ-law bytes."""
    return np.take(_ULAW_ENCODE, samples.astype(PCM16_DTYPE, copy=False).view(_U16)).tobytes()


def samples_to_alaw(samples: npt.NDArray[np.int16]) -> bytes:
    """Encode int16 samples to A-law bytes."""
    return np.take(_ALAW_ENCODE, samples.astype(PCM16_DTYPE, copy=False).view(_U16)).tobytes()


def ulaw_to_samples(data: bytes) -> npt.NDArray[np.int16]:
    """Decode µ-law bytes to int16 samples (a new array)."""
    return np.take(_ULAW_DECODE, np.frombuffer(data, dtype=np.uint8))


def alaw_to_samples(data: bytes) -> npt.NDArray[np.int16]:
    """Decode A-law bytes to int16 samples (a new array)."""
    return np.take(_ALAW_DECODE, np.frombuffer(data, dtype=np.uint8))


# Bytes-level API: the same as audioop's lin2ulaw/ulaw2lin/lin2alaw/alaw2lin with width 2.


def _pcm16_samples(data: bytes) -> npt.NDArray[np.int16]:
    if len(data) % 2:
        raise ValueError(f"PCM16 audio must have an even number of bytes, got {len(data)}")
    return np.frombuffer(data, dtype=PCM16_DTYPE)


def pcm16_to_ulaw(data: bytes) -> bytes:
    """PCM16 little-endian bytes → µ-law bytes (``ValueError`` on an odd byte count)."""
    return samples_to_ulaw(_pcm16_samples(data))


def pcm16_to_alaw(data: bytes) -> bytes:
    """PCM16 little-endian bytes → A-law bytes (``ValueError`` on an odd byte count)."""
    return samples_to_alaw(_pcm16_samples(data))


def ulaw_to_pcm16(data: bytes) -> bytes:
    """µ-law bytes → PCM16 little-endian bytes."""
    return ulaw_to_samples(data).tobytes()


def alaw_to_pcm16(data: bytes) -> bytes:
    """A-law bytes → PCM16 little-endian bytes."""
    return alaw_to_samples(data).tobytes()
