"""StreamResampler: fidelity, band-limiting, frame joins, drift and chunking invariance.

Alignment: soxr compensates its own filter delay, so output sample k already corresponds to input
time k / out_rate. The quality tests do not assume it: they measure the lag by cross-correlation
against the ideal reference (the same continuous signal sampled at the output rate), assert it is
0, and compute the SNR at that lag, ignoring the first and last 50 ms (where the signal starts and
stops abruptly, which no band-limited resampler can reproduce).
"""

from __future__ import annotations

import itertools

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from realtime_bridge.audio.formats import SUPPORTED_PCM_RATES
from realtime_bridge.audio.resample import RESAMPLE_QUALITY, StreamResampler

from ._helpers import best_lag, rms, snr_db, to_int16, tones

# The spec asks for 40 dB. HQ measures 80-90 dB (int16 rounding is most of the error), so 60 dB
# still has a wide margin while catching a switch to a poor preset or a misaligned stream.
MIN_SNR_DB = 60.0
MIN_STOPBAND_DB = 40.0
EDGE_S = 0.05
QUALITY_PAIRS = [(16000, 24000), (48000, 24000), (24000, 16000), (24000, 48000)]
ALL_PAIRS_WITH_24K = [(r, 24000) for r in SUPPORTED_PCM_RATES if r != 24000] + [
    (24000, r) for r in SUPPORTED_PCM_RATES if r != 24000
]


def one_shot(r: StreamResampler, x: npt.NDArray[np.int16]) -> npt.NDArray[np.int16]:
    return np.concatenate([r.process(x), r.flush()])


def in_frames(
    r: StreamResampler, x: npt.NDArray[np.int16], frame: int
) -> list[npt.NDArray[np.int16]]:
    outs = [r.process(x[i : i + frame]) for i in range(0, len(x), frame)]
    outs.append(r.flush())
    return outs


def trim(x: npt.NDArray[np.float64], rate: int) -> npt.NDArray[np.float64]:
    edge = int(EDGE_S * rate)
    return x[edge:-edge]


@pytest.mark.parametrize(("in_rate", "out_rate"), QUALITY_PAIRS)
def test_two_tone_snr_against_the_ideal_reference(in_rate: int, out_rate: int) -> None:
    freqs = (440.0, 3000.0)
    x = to_int16(tones(freqs, in_rate, 1.0))
    y = one_shot(StreamResampler(in_rate, out_rate), x).astype(np.float64)
    ideal = tones(freqs, out_rate, 1.0)
    assert len(y) == len(ideal)
    assert best_lag(y, ideal, max_lag=200) == 0  # soxr output is delay-compensated
    snr = snr_db(trim(y, out_rate), trim(ideal, out_rate))
    print(f"{in_rate}->{out_rate}: SNR {snr:.1f} dB")
    assert snr >= MIN_SNR_DB


@pytest.mark.parametrize(
    ("in_rate", "out_rate", "tone_hz"),
    [
        (48000, 24000, 14000.0),
        (24000, 16000, 10000.0),
        (24000, 8000, 5000.0),
        (44100, 24000, 16000.0),
    ],
)
def test_tone_above_the_target_nyquist_is_removed(
    in_rate: int, out_rate: int, tone_hz: float
) -> None:
    x = to_int16(tones((tone_hz,), in_rate, 1.0, amplitude=0.9))
    y = one_shot(StreamResampler(in_rate, out_rate), x)
    residual = rms(trim(y.astype(np.float64), out_rate))
    if residual == 0:  # rounded to digital silence: more than the 16-bit range (~96 dB) down
        print(f"{in_rate}->{out_rate} {tone_hz:.0f} Hz: output is silent")
        return
    attenuation = 20 * np.log10(rms(x) / residual)
    print(f"{in_rate}->{out_rate} {tone_hz:.0f} Hz: {attenuation:.1f} dB down")
    assert attenuation >= MIN_STOPBAND_DB


@pytest.mark.parametrize(("in_rate", "out_rate"), [(8000, 24000), (16000, 24000), (24000, 48000)])
def test_upsampling_adds_no_images(in_rate: int, out_rate: int) -> None:
    """The mirror image of a tone near the input Nyquist (at in_rate - f) must be suppressed."""
    f = 0.4 * in_rate
    x = to_int16(tones((f,), in_rate, 1.0, amplitude=0.9))
    y = trim(one_shot(StreamResampler(in_rate, out_rate), x).astype(np.float64), out_rate)
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    freqs = np.fft.rfftfreq(len(y), 1 / out_rate)
    tone = spectrum[np.abs(freqs - f) < 50].max()
    image = spectrum[np.abs(freqs - (in_rate - f)) < 50].max()
    assert 20 * np.log10(tone / image) >= MIN_STOPBAND_DB


@pytest.mark.parametrize(("in_rate", "out_rate"), QUALITY_PAIRS)
def test_20ms_frames_join_without_discontinuity(in_rate: int, out_rate: int) -> None:
    x = to_int16(tones((440.0, 3000.0), in_rate, 1.0))
    frames = in_frames(StreamResampler(in_rate, out_rate), x, in_rate // 50)
    y = np.concatenate(frames)
    # The strongest statement: identical to resampling the whole signal at once.
    np.testing.assert_array_equal(y, one_shot(StreamResampler(in_rate, out_rate), x))
    # And, independently, no jump at a frame boundary larger than the signal's own max slope.
    step = np.abs(np.diff(y.astype(np.int64)))
    slope_limit = 2 * np.pi * (0.4 * 32767 * (440 + 3000)) / out_rate
    boundaries = np.cumsum([len(f) for f in frames[:-1]])
    boundaries = boundaries[(boundaries > 0) & (boundaries < len(y))]
    assert step[boundaries - 1].max() <= slope_limit * 1.05 + 2


@pytest.mark.parametrize(("in_rate", "out_rate"), ALL_PAIRS_WITH_24K)
def test_no_drift_over_a_60s_stream(in_rate: int, out_rate: int) -> None:
    """Over 60 s of 20 ms frames the output never lags by more than a bounded, constant delay,
    and after flush its length is the input's duration to within one output sample."""
    r = StreamResampler(in_rate, out_rate)
    frame = in_rate // 50
    x = to_int16(tones((300.0,), in_rate, 0.02, amplitude=0.3))
    assert len(x) == frame
    produced = 0
    lags = []
    for k in range(1, 3001):
        produced += len(r.process(x))
        expected = k * frame * out_rate / in_rate
        lags.append(expected - produced)
    produced += len(r.flush())
    assert abs(produced - 60 * out_rate) <= 1
    lag_ms = np.array(lags) * 1000 / out_rate
    assert lag_ms.min() >= 0
    assert lag_ms.max() <= 100  # HQ holds back ~37 ms (73 ms when 8 kHz is involved)
    assert lag_ms[-500:].max() <= lag_ms[:500].max() + 1000 / out_rate  # bounded, not growing


@pytest.mark.parametrize("rate", SUPPORTED_PCM_RATES)
def test_equal_rates_are_an_identity_without_copies(rate: int) -> None:
    r = StreamResampler(rate, rate)
    x = to_int16(tones((440.0,), rate, 0.02))
    assert r.is_identity
    assert r.process(x) is x
    assert len(r.flush()) == 0
    assert r.flush().dtype == np.int16
    assert r.pending_out_samples() == 0.0


def test_flush_resets_so_the_next_stream_starts_clean() -> None:
    x = to_int16(tones((440.0, 3000.0), 16000, 0.3))
    fresh = one_shot(StreamResampler(16000, 24000), x)
    r = StreamResampler(16000, 24000)
    one_shot(r, to_int16(tones((1234.0,), 16000, 0.17)))  # an unrelated earlier stream
    np.testing.assert_array_equal(one_shot(r, x), fresh)


def test_flush_without_input_and_empty_chunks() -> None:
    r = StreamResampler(16000, 24000)
    assert r.flush().size == 0
    assert r.process(np.empty(0, np.int16)).size == 0
    assert r.process(np.empty(0, np.int16)).dtype == np.int16
    assert r.flush().size == 0


def test_full_scale_overshoot_is_clipped_not_wrapped() -> None:
    """A full-scale square wave rings above full scale once band-limited; it must clip."""
    x = np.tile(np.array([32767] * 8 + [-32768] * 8, dtype=np.int16), 200)
    y = one_shot(StreamResampler(24000, 16000), x)
    assert y.dtype == np.int16
    assert y.max() == 32767
    assert y.min() == -32768
    # Wrapping would put large negative samples right after large positive ones.
    assert np.abs(np.diff(y.astype(np.int64))).max() < 65535


def test_output_is_held_back_by_a_bounded_pending_amount() -> None:
    r = StreamResampler(16000, 24000)
    r.process(to_int16(tones((440.0,), 16000, 0.2)))
    pending = r.pending_out_samples()
    assert 0 < pending <= 0.1 * 24000
    assert len(r.flush()) == round(pending)


def test_rejects_non_positive_rates() -> None:
    with pytest.raises(ValueError):
        StreamResampler(0, 24000)


def test_quality_is_documented() -> None:
    import realtime_bridge.audio.resample as module

    assert RESAMPLE_QUALITY == "HQ"
    assert module.__doc__ is not None
    assert RESAMPLE_QUALITY in module.__doc__


@settings(max_examples=60, deadline=None)
@given(
    pair=st.sampled_from(ALL_PAIRS_WITH_24K),
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(0, 6000),
    cuts=st.lists(st.integers(0, 6000), max_size=30),
)
def test_any_chunking_gives_bit_identical_output(
    pair: tuple[int, int], seed: int, n: int, cuts: list[int]
) -> None:
    """soxr in float32 is chunk-invariant, so the strongest statement holds: any split of a stream,
    flushed at the end, gives exactly the one-shot output (not merely close to it)."""
    in_rate, out_rate = pair
    x = np.random.default_rng(seed).integers(-20000, 20000, size=n).astype(np.int16)
    bounds = [0, *sorted(min(c, n) for c in cuts), n]
    r = StreamResampler(in_rate, out_rate)
    chunked = [r.process(x[a:b]) for a, b in itertools.pairwise(bounds)]
    chunked.append(r.flush())
    np.testing.assert_array_equal(
        np.concatenate(chunked), one_shot(StreamResampler(in_rate, out_rate), x)
    )
