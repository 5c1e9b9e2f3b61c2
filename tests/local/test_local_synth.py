"""The synthetic voice: speech-like (syllable rhythm, moving pitch, formants), sized by the text."""

from __future__ import annotations

import numpy as np
import pytest

from realtime_bridge.upstream.local import synth
from realtime_bridge.upstream.local.audio_io import (
    PCM,
    PCMA,
    PCMU,
    decode,
    encode,
    format_from_json,
)

TEXT = "Hello there, this is the local simulator speaking. How are you today?"


def frames(x: np.ndarray, rate: int, ms: int) -> np.ndarray:
    n = rate * ms // 1000
    return x[: x.size // n * n].reshape(-1, n)


def test_length_follows_the_text() -> None:
    short = synth.synthesize("Hi.", 24000)
    long = synth.synthesize(TEXT, 24000)
    assert long.size / 24000 == pytest.approx(synth.duration_ms(TEXT) / 1000, abs=0.01)
    assert 3.0 < long.size / 24000 < 8.0
    assert short.size < long.size / 5
    assert synth.duration_ms(TEXT, speed=1.5) == pytest.approx(synth.duration_ms(TEXT) / 1.5)


def test_not_silence_and_deterministic() -> None:
    x = synth.synthesize(TEXT, 24000)
    level = 10 * np.log10(np.mean(x.astype(np.float64) ** 2))
    assert -30 < level < -15
    assert np.max(np.abs(x)) < 1.0
    assert np.array_equal(x, synth.synthesize(TEXT, 24000))
    assert not np.array_equal(x, synth.synthesize(TEXT, 24000, voice="verse"))


def test_syllable_rate_amplitude_modulation() -> None:
    x = synth.synthesize(TEXT, 24000).astype(np.float64)
    envelope = np.sqrt(np.mean(frames(x, 24000, 10) ** 2, axis=1))  # 100 Hz envelope
    spectrum = np.abs(np.fft.rfft(envelope - envelope.mean()))
    freqs = np.fft.rfftfreq(envelope.size, d=0.01)
    peak = freqs[np.argmax(spectrum[1:]) + 1]
    assert 2.0 <= peak <= 8.0  # syllables, not a steady tone
    assert envelope.std() / envelope.mean() > 0.5


def test_harmonic_with_moving_pitch_and_formants() -> None:
    rate = 24000
    x = synth.synthesize(TEXT, rate).astype(np.float64)
    pitches = []
    for frame in frames(x, rate, 40):
        if np.sqrt(np.mean(frame**2)) < 0.03:
            continue
        ac = np.correlate(frame, frame, "full")[frame.size - 1 :]
        lo, hi = rate // 300, rate // 70
        pitches.append(rate / (lo + np.argmax(ac[lo:hi])))
    assert len(pitches) > 20
    assert np.ptp(pitches) > 20  # the pitch moves (a tone would not)
    spectrum = np.abs(np.fft.rfft(x))
    freqs = np.fft.rfftfreq(x.size, 1 / rate)
    band = lambda lo, hi: spectrum[(freqs >= lo) & (freqs < hi)].sum()  # noqa: E731
    # energy in several formant regions; above 4.5 kHz only the consonant noise
    assert band(200, 1000) > 0.1 * band(0, 12000)
    assert band(1000, 3500) > 0.05 * band(0, 12000)
    assert band(4500, 12000) < band(200, 1000)


@pytest.mark.parametrize("kind", [PCMU, PCMA, PCM])
def test_generated_in_the_output_format(kind: str) -> None:
    fmt = format_from_json({"type": kind})
    samples = synth.synthesize(TEXT, fmt.rate)
    data = encode(fmt, samples)
    assert fmt.duration_ms(len(data)) == pytest.approx(synth.duration_ms(TEXT), abs=1)
    decoded = decode(fmt, data)
    error = np.sqrt(np.mean((decoded - samples) ** 2))
    assert error < 0.01  # G.711 round trip keeps the signal
