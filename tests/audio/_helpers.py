"""Signals, measurements and WAV reading shared by the audio tests."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from tests.recordings import AUDIO_DIR, Wav, read_wav

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


__all__ = ["AUDIO_DIR", "Wav", "read_wav"]
