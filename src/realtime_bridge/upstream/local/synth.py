"""Speech-like audio for a transcript: not speech, but not silence or a tone either.

Each syllable of the text becomes a voiced segment: a harmonic series on a moving pitch contour,
shaped by two or three formant resonances chosen from the syllable's vowel, with a syllable-rate
amplitude envelope and a short noise burst for the leading consonant; words and punctuation become
pauses. Durations follow the text (about 5 syllables per second at speed 1.0), so the audio's
length matches its transcript. Deterministic: the generator is seeded from the text and voice.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

import numpy as np
import numpy.random  # imported now, not on the first reply (that took 7 ms)

from .audio_io import FloatArray

SYLLABLE_MS = 170.0
WORD_GAP_MS = 50.0
COMMA_PAUSE_MS = 200.0
STOP_PAUSE_MS = 350.0
TARGET_RMS = 0.1  # about -20 dBFS while voiced
FORMANTS = {
    "a": (730.0, 1090.0, 2440.0),
    "e": (530.0, 1840.0, 2480.0),
    "i": (270.0, 2290.0, 3010.0),
    "o": (570.0, 840.0, 2410.0),
    "u": (300.0, 870.0, 2240.0),
    "y": (400.0, 1900.0, 2600.0),
}
BANDWIDTHS = (90.0, 110.0, 170.0)
_TOKEN = re.compile(r"[A-Za-z0-9'\u00C0-\u024F]+|[,;:]|[.!?]")
_VOWELS = re.compile(r"[aeiouy]+", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Segment:
    """A syllable (``vowel`` set) or a pause, with its length in milliseconds."""

    ms: float
    vowel: str | None = None


def plan(text: str, speed: float = 1.0) -> list[Segment]:
    """The syllables and pauses of ``text``."""
    segments: list[Segment] = []
    for word in _TOKEN.findall(text):
        if word in ",;:":
            segments.append(Segment(COMMA_PAUSE_MS / speed))
        elif word in ".!?":
            segments.append(Segment(STOP_PAUSE_MS / speed))
        else:
            vowels = _VOWELS.findall(word) or (["a"] * max(1, len(word) // 2))
            segments.extend(Segment(SYLLABLE_MS / speed, v[0].lower()) for v in vowels)
            segments.append(Segment(WORD_GAP_MS / speed))
    if not segments:
        segments.append(Segment(SYLLABLE_MS / speed, "a"))
    return segments


def duration_ms(text: str, speed: float = 1.0) -> float:
    return sum(seg.ms for seg in plan(text, speed))


def synthesize(text: str, rate: int, *, voice: str = "alloy", speed: float = 1.0) -> FloatArray:
    """Samples in [-1, 1) at ``rate`` for ``text``, all at once."""
    stream = SynthStream(text, rate, voice=voice, speed=speed)
    return stream.take(stream.total)


class SynthStream:
    """The samples of ``text``, made a syllable at a time as they are taken.

    A whole reply takes tens of milliseconds to synthesise; made lazily, each ``take`` of a
    100 ms chunk costs at most a syllable or two (well under a millisecond), so the local
    upstream never holds the event loop. The samples are the same as :func:`synthesize`'s.
    """

    def __init__(self, text: str, rate: int, *, voice: str = "alloy", speed: float = 1.0) -> None:
        self._rate = rate
        self._rng = np.random.default_rng(zlib.crc32(f"{voice}\x00{text}".encode()))
        self._base_f0 = 95.0 + (zlib.crc32(voice.encode()) % 120)
        self._segments = plan(text, speed)
        self._lengths = [max(1, round(seg.ms * rate / 1000.0)) for seg in self._segments]
        self._voiced = sum(1 for seg in self._segments if seg.vowel)
        self._next = 0  # the next segment to synthesise
        self._index = 0  # voiced segments synthesised so far
        self._buffer: FloatArray = np.zeros(0, np.float32)
        #: Samples in the whole text.
        self.total = sum(self._lengths)

    def take(self, n: int) -> FloatArray:
        """The next ``n`` samples (fewer at the end)."""
        pieces = [self._buffer]
        have = self._buffer.size
        while have < n and self._next < len(self._segments):
            piece = self._segment(self._segments[self._next], self._lengths[self._next])
            self._next += 1
            pieces.append(piece)
            have += piece.size
        joined = np.concatenate(pieces) if len(pieces) > 1 else self._buffer
        out, self._buffer = joined[:n], joined[n:]
        return out.astype(np.float32, copy=False)

    def _segment(self, seg: Segment, n: int) -> FloatArray:
        rng = self._rng
        if seg.vowel is None:
            return (rng.standard_normal(n) * 3e-4).astype(np.float32)
        declination = 1.0 - 0.15 * self._index / max(1, self._voiced)
        f0_start = self._base_f0 * declination * (1.0 + 0.12 * rng.uniform(-1, 1))
        f0_end = f0_start * (1.0 + 0.15 * rng.uniform(-1, 1))
        self._index += 1
        return _syllable(n, self._rate, f0_start, f0_end, seg.vowel, rng)


def _syllable(
    n: int, rate: int, f0_start: float, f0_end: float, vowel: str, rng: np.random.Generator
) -> FloatArray:
    f0 = np.linspace(f0_start, f0_end, n)
    phase = 2.0 * np.pi * np.cumsum(f0) / rate
    nyquist = min(0.45 * rate, 4000.0)  # formants live below 4 kHz
    harmonics = np.arange(1, int(nyquist / max(f0_start, f0_end)) + 1)
    centre = 0.5 * (f0_start + f0_end)
    formants = FORMANTS.get(vowel, FORMANTS["a"])
    freqs = harmonics * centre
    weights = np.zeros(harmonics.size)
    for formant, bandwidth in zip(formants, BANDWIDTHS, strict=True):
        weights += 1.0 / (1.0 + ((freqs - formant) / bandwidth) ** 2)
    weights /= harmonics  # spectral tilt of a glottal source
    # sum_k w_k sin(k phase) = Im(sum_k w_k z^k), z = e^(i phase): one complex multiplication
    # per harmonic instead of a sine per harmonic and sample.
    z = np.exp(1j * phase)
    power = np.ones(n, dtype=np.complex128)
    total = np.zeros(n, dtype=np.complex128)
    for weight in weights:
        power *= z
        total += weight * power
    voiced = total.imag
    # consonant: a short high-passed noise burst at the onset
    burst_n = min(n // 4, round(0.025 * rate))
    noise = np.zeros(n)
    if burst_n > 0:
        burst = np.diff(rng.standard_normal(burst_n + 1))
        noise[:burst_n] = burst * np.hanning(burst_n) * 0.35
    envelope = _envelope(n)
    signal = voiced * envelope
    rms = float(np.sqrt(np.mean(signal**2))) or 1.0
    gain = TARGET_RMS * float(rng.uniform(0.7, 1.0)) / rms
    result: FloatArray = (signal * gain + noise * TARGET_RMS).astype(np.float32)
    return result


def _envelope(n: int) -> np.ndarray[tuple[int], np.dtype[np.float64]]:
    """Syllable-rate amplitude modulation: quick rise, sustain, slower fall."""
    rise = max(1, n // 5)
    fall = max(1, n // 3)
    env = np.ones(n)
    env[:rise] = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, rise))
    env[n - fall :] = 0.5 + 0.5 * np.cos(np.linspace(0, np.pi, fall))
    return env
