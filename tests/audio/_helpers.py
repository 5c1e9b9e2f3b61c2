"""Signals, measurements and WAV reading shared by the audio tests."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

# The repo is /work/main and the shared folder sits beside it (CI clones it as ../shared).
AUDIO_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "audio"

PCM16_MAX = 32767


def tones(
    freqs: tuple[float, ...], rate: int, seconds: float, amplitude: float = 0.4
) -> npt.NDArray[np.float64]:
    """Sum of sines, each at ``amplitude`` of full scale, sampled at ``rate`` (float, unquantised).

    The same call at another rate is the ideal resampled reference: the continuous signal sampled
    again, with t = 0 at sample 0.
    """
    t = np.arange(round(seconds * rate)) / rate
    return sum((amplitude * PCM16_MAX * np.sin(2 * np.pi * f * t) for f in freqs), np.zeros_like(t))


def to_int16(x: npt.NDArray[np.float64]) -> npt.NDArray[np.int16]:
    return np.clip(np.rint(x), -32768, 32767).astype(np.int16)


def snr_db(signal: npt.NDArray[np.float64], reference: npt.NDArray[np.float64]) -> float:
    noise = signal - reference
    return float(10 * np.log10(np.sum(reference**2) / max(np.sum(noise**2), 1e-12)))


def rms(x: npt.NDArray[np.generic]) -> float:
    return float(np.sqrt(np.mean(np.asarray(x, dtype=np.float64) ** 2)))


def best_lag(y: npt.NDArray[np.float64], ref: npt.NDArray[np.float64], max_lag: int) -> int:
    """The shift of ``y`` against ``ref`` (samples; positive = ``y`` late) that aligns them best."""
    n = min(len(y), len(ref)) - 2 * max_lag
    core = ref[max_lag : max_lag + n]
    scores = [
        float(np.dot(y[max_lag + k : max_lag + k + n], core)) for k in range(-max_lag, max_lag + 1)
    ]
    return int(np.argmax(scores)) - max_lag


def correlation(a: npt.NDArray[np.generic], b: npt.NDArray[np.generic]) -> float:
    n = min(len(a), len(b))
    return float(np.corrcoef(np.asarray(a[:n], np.float64), np.asarray(b[:n], np.float64))[0, 1])


@dataclass(frozen=True)
class Wav:
    format_tag: int  # 1 PCM, 6 A-law, 7 µ-law
    rate: int
    channels: int
    bits: int
    data: bytes


def read_wav(path: Path) -> Wav:
    """A minimal RIFF reader: the stdlib ``wave`` module refuses G.711 WAV files."""
    blob = path.read_bytes()
    assert blob[:4] == b"RIFF", path
    assert blob[8:12] == b"WAVE", path
    pos = 12
    fmt: tuple[int, int, int, int] | None = None
    while pos + 8 <= len(blob):
        chunk_id, size = blob[pos : pos + 4], struct.unpack_from("<I", blob, pos + 4)[0]
        body = blob[pos + 8 : pos + 8 + size]
        if chunk_id == b"fmt ":
            tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", body)
            fmt = (tag, channels, rate, bits)
        elif chunk_id == b"data":
            assert fmt is not None, path
            return Wav(fmt[0], fmt[2], fmt[1], fmt[3], body)
        pos += 8 + size + (size & 1)
    raise AssertionError(f"no data chunk in {path}")
