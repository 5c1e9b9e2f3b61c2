"""decode_audio_b64 and the per-direction Converter, including the real recordings."""

from __future__ import annotations

import audioop
import base64
import itertools

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from realtime_bridge.audio import g711
from realtime_bridge.audio.convert import Converter, decode_audio_b64
from realtime_bridge.audio.formats import (
    ALAW_8K,
    PCM16_24K,
    SUPPORTED_PCM_RATES,
    ULAW_8K,
    AudioFormat,
    Codec,
)
from realtime_bridge.errors import ClientError, ErrorCode

from ._helpers import AUDIO_DIR, best_lag, correlation, read_wav, snr_db, to_int16, tones

ALL_FORMATS = [AudioFormat(Codec.PCM16, r) for r in SUPPORTED_PCM_RATES] + [ULAW_8K, ALAW_8K]


def pcm(rate: int) -> AudioFormat:
    return AudioFormat(Codec.PCM16, rate)


def samples(data: bytes) -> npt.NDArray[np.int16]:
    return np.frombuffer(data, dtype="<i2")


def convert_all(conv: Converter, chunks: list[bytes]) -> bytes:
    return b"".join([conv.convert(c) for c in chunks] + [conv.flush()])


# --- decode_audio_b64 -----------------------------------------------------------------------


def test_decode_valid_audio() -> None:
    raw = bytes(range(256)) * 4
    text = base64.b64encode(raw).decode()
    assert decode_audio_b64(text, PCM16_24K) == raw
    assert decode_audio_b64(text, ULAW_8K) == raw
    assert decode_audio_b64(base64.b64encode(b"abc").decode(), ULAW_8K) == b"abc"  # odd is fine
    assert decode_audio_b64("", PCM16_24K) == b""


@pytest.mark.parametrize(
    ("text", "fmt", "fragment"),
    [
        (None, PCM16_24K, "base64 string"),
        (b"AAAA", PCM16_24K, "base64 string"),
        (1234, PCM16_24K, "base64 string"),
        (["AAAA"], PCM16_24K, "base64 string"),
        ("AAA", PCM16_24K, "not valid base64"),  # bad padding
        ("AAAA====", PCM16_24K, "not valid base64"),  # surplus padding
        ("AAAA=", PCM16_24K, "not valid base64"),
        ("AA==AA==", PCM16_24K, "not valid base64"),  # data after padding
        ("AA AA", PCM16_24K, "not valid base64"),  # whitespace
        ("AAAA\n", PCM16_24K, "not valid base64"),
        ("AA-_", PCM16_24K, "not valid base64"),  # url-safe alphabet
        ("AAé=", PCM16_24K, "not valid base64"),  # non-ASCII
        ("=", PCM16_24K, "not valid base64"),
        (base64.b64encode(b"abc").decode(), PCM16_24K, "even number of bytes"),
        (base64.b64encode(b"a").decode(), pcm(16000), "even number of bytes"),
    ],
)
def test_decode_rejects(text: object, fmt: AudioFormat, fragment: str) -> None:
    with pytest.raises(ClientError) as caught:
        decode_audio_b64(text, fmt, param="audio", event_id="evt_1")
    error = caught.value
    assert error.code is ErrorCode.INVALID_AUDIO
    assert error.param == "audio"
    assert error.event_id == "evt_1"
    assert fragment in error.message
    assert error.close_code is None


@given(raw=st.binary(max_size=500))
def test_decode_round_trips_any_standard_base64(raw: bytes) -> None:
    text = base64.b64encode(raw).decode()
    assert decode_audio_b64(text, ULAW_8K) == raw
    if len(raw) % 2 == 0:
        assert decode_audio_b64(text, PCM16_24K) == raw


def test_decode_error_defaults_and_message_never_quotes_the_audio() -> None:
    with pytest.raises(ClientError) as caught:
        decode_audio_b64("QUJD" * 1000 + "!", PCM16_24K)
    assert caught.value.param == "audio"
    assert caught.value.event_id is None
    assert "QUJD" not in caught.value.message


# --- Converter ------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ALL_FORMATS, ids=str)
def test_equal_formats_pass_through_the_same_object(fmt: AudioFormat) -> None:
    conv = Converter(fmt, fmt)
    data = bytes(range(255))  # even an odd length is passed untouched
    assert conv.is_passthrough
    assert conv.convert(data) is data
    assert conv.flush() == b""


@pytest.mark.parametrize(("src", "dst"), list(itertools.permutations(ALL_FORMATS, 2)), ids=str)
def test_every_pair_preserves_duration_and_content(src: AudioFormat, dst: AudioFormat) -> None:
    """A two-tone signal in ``src`` arrives in ``dst`` with the same duration and content."""
    seconds = 0.5
    freqs = (300.0, 1500.0)  # inside every band, including 8 kHz telephony
    x = to_int16(tones(freqs, src.rate, seconds))
    data = x.astype("<i2").tobytes()
    if src.codec is Codec.ULAW:
        data = g711.pcm16_to_ulaw(data)
    elif src.codec is Codec.ALAW:
        data = g711.pcm16_to_alaw(data)
    conv = Converter(src, dst)
    assert not conv.is_passthrough
    frame = src.bytes_for_ms(20)
    out = convert_all(conv, [data[i : i + frame] for i in range(0, len(data), frame)])
    assert len(out) == dst.bytes_for_ms(seconds * 1000)  # duration exact after flush
    if dst.codec is Codec.ULAW:
        out = g711.ulaw_to_pcm16(out)
    elif dst.codec is Codec.ALAW:
        out = g711.alaw_to_pcm16(out)
    y = samples(out).astype(np.float64)
    ideal = tones(freqs, dst.rate, seconds)
    edge = dst.rate // 20
    assert best_lag(y, ideal, max_lag=50) == 0
    # G.711 on either side caps the SNR near its ~38 dB quantisation limit.
    min_snr = 30.0 if src.is_g711 or dst.is_g711 else 60.0
    assert snr_db(y[edge:-edge], ideal[edge:-edge]) >= min_snr


def test_g711_to_pcm_at_8k_is_exactly_the_codec() -> None:
    codes = bytes(range(256)) * 3
    assert Converter(ULAW_8K, pcm(8000)).convert(codes) == audioop.ulaw2lin(codes, 2)
    assert Converter(ALAW_8K, pcm(8000)).convert(codes) == audioop.alaw2lin(codes, 2)
    lin = audioop.ulaw2lin(codes, 2)
    assert Converter(pcm(8000), ULAW_8K).convert(lin) == audioop.lin2ulaw(lin, 2)
    assert Converter(pcm(8000), ALAW_8K).convert(lin) == audioop.lin2alaw(lin, 2)


def test_ulaw_alaw_transcoding_equals_decode_then_encode() -> None:
    codes = bytes(range(256))
    assert Converter(ULAW_8K, ALAW_8K).convert(codes) == audioop.lin2alaw(
        audioop.ulaw2lin(codes, 2), 2
    )
    assert Converter(ALAW_8K, ULAW_8K).convert(codes) == audioop.lin2ulaw(
        audioop.alaw2lin(codes, 2), 2
    )


def test_odd_pcm_chunks_are_carried_and_flush_drops_a_stray_byte() -> None:
    x = to_int16(tones((440.0,), 16000, 0.1)).tobytes()
    whole = convert_all(Converter(pcm(16000), PCM16_24K), [x])
    conv = Converter(pcm(16000), PCM16_24K)
    assert convert_all(conv, [x[:1], x[1:333], x[333:]]) == whole
    conv.convert(b"\x01")  # a stray byte, then the stream ends
    assert conv.flush() == b""
    assert convert_all(conv, [x]) == whole  # the next stream is unaffected

    conv8 = Converter(pcm(8000), ULAW_8K)
    assert conv8.convert(x[:3]) == g711.pcm16_to_ulaw(x[:2])
    assert conv8.convert(x[3:4]) == g711.pcm16_to_ulaw(x[2:4])


def test_flush_starts_a_new_stream() -> None:
    """After flush (commit / end of output audio), the next input is resampled as a fresh stream."""
    a = to_int16(tones((440.0,), 16000, 0.25)).tobytes()
    b = to_int16(tones((700.0,), 16000, 0.15)).tobytes()
    conv = Converter(pcm(16000), PCM16_24K)
    first = convert_all(conv, [a])
    second = convert_all(conv, [b])
    assert first == convert_all(Converter(pcm(16000), PCM16_24K), [a])
    assert second == convert_all(Converter(pcm(16000), PCM16_24K), [b])


def test_converter_without_resampling_has_nothing_to_flush() -> None:
    conv = Converter(ULAW_8K, pcm(8000))
    conv.convert(b"\xff" * 160)
    assert conv.flush() == b""


CHUNKING_PAIRS = [
    (PCM16_24K, PCM16_24K),
    (pcm(16000), PCM16_24K),
    (PCM16_24K, pcm(16000)),
    (pcm(44100), PCM16_24K),
    (PCM16_24K, pcm(22050)),
    (ULAW_8K, PCM16_24K),
    (PCM16_24K, ULAW_8K),
    (ALAW_8K, pcm(16000)),
    (pcm(48000), ALAW_8K),
    (ULAW_8K, ALAW_8K),
    (pcm(8000), ULAW_8K),
    (ULAW_8K, ULAW_8K),
]


@settings(max_examples=80, deadline=None)
@given(
    pair=st.sampled_from(CHUNKING_PAIRS),
    data=st.binary(max_size=3000),
    cuts=st.lists(st.integers(0, 3000), max_size=20),
)
def test_any_chunking_gives_the_same_bytes(
    pair: tuple[AudioFormat, AudioFormat], data: bytes, cuts: list[int]
) -> None:
    """Exact for every path: G.711 and pass-through are stateless, the resampler is chunk-invariant,
    and a PCM16 chunk split inside a sample is rejoined by the carried byte."""
    src, dst = pair
    bounds = [0, *sorted(min(c, len(data)) for c in cuts), len(data)]
    chunks = [data[a:b] for a, b in itertools.pairwise(bounds)]
    assert convert_all(Converter(src, dst), chunks) == convert_all(Converter(src, dst), [data])


# --- real recordings ------------------------------------------------------------------------


def load_pcm(name: str) -> tuple[int, bytes]:
    wav = read_wav(AUDIO_DIR / name)
    assert (wav.format_tag, wav.channels, wav.bits) == (1, 1, 16)
    return wav.rate, wav.data


def in_20ms_frames(conv: Converter, data: bytes) -> bytes:
    frame = conv.src.bytes_for_ms(20)
    return convert_all(conv, [data[i : i + frame] for i in range(0, len(data), frame)])


def test_real_speech_16k_to_24k_and_back() -> None:
    rate, speech16 = load_pcm("speech-three-turns-16k.wav")
    assert rate == 16000
    up = in_20ms_frames(Converter(pcm(16000), PCM16_24K), speech16)
    assert len(up) == len(speech16) * 3 // 2
    # Against sox's own 24 kHz file (the 16 kHz one was made from it): same speech, same timing.
    _, speech24 = load_pcm("speech-three-turns-24k.wav")
    assert best_lag(samples(up).astype(np.float64), samples(speech24).astype(np.float64), 20) == 0
    assert correlation(samples(up), samples(speech24)) > 0.98
    back = in_20ms_frames(Converter(PCM16_24K, pcm(16000)), up)
    assert len(back) == len(speech16)
    assert correlation(samples(back), samples(speech16)) > 0.999


@pytest.mark.parametrize(
    ("name", "fmt"),
    [("speech-three-turns-8k-ulaw.wav", ULAW_8K), ("speech-three-turns-8k-alaw.wav", ALAW_8K)],
)
def test_real_telephony_speech_to_24k(name: str, fmt: AudioFormat) -> None:
    wav = read_wav(AUDIO_DIR / name)
    assert (wav.rate, wav.channels, wav.bits) == (8000, 1, 8)
    assert wav.format_tag == (7 if fmt is ULAW_8K else 6)
    # Decoding alone is exactly audioop's.
    reference = audioop.ulaw2lin(wav.data, 2) if fmt is ULAW_8K else audioop.alaw2lin(wav.data, 2)
    assert Converter(fmt, pcm(8000)).convert(wav.data) == reference
    up = in_20ms_frames(Converter(fmt, PCM16_24K), wav.data)
    assert len(up) == len(wav.data) * 3 * 2
    _, speech24 = load_pcm("speech-three-turns-24k.wav")
    # Telephony band (< 4 kHz) and G.711 noise lower the match, but it is the same speech.
    assert correlation(samples(up), samples(speech24)) > 0.9


def test_real_speech_48k_to_24k_matches_the_24k_recording() -> None:
    rate, speech48 = load_pcm("speech-three-turns-48k.wav")
    assert rate == 48000
    down = in_20ms_frames(Converter(pcm(48000), PCM16_24K), speech48)
    _, speech24 = load_pcm("speech-three-turns-24k.wav")
    assert len(down) == len(speech24)
    assert correlation(samples(down), samples(speech24)) > 0.999


@given(st.text(alphabet="AB+/=\n é-_", max_size=16))
def test_fast_base64_check_agrees_with_strict_decoding(text: str) -> None:
    """audio_b64_size (no decoding) accepts exactly what strict decoding with exact padding does."""
    import binascii

    from realtime_bridge.audio.convert import audio_b64_size
    from realtime_bridge.audio.formats import ULAW_8K
    from realtime_bridge.errors import ClientError

    try:
        data = binascii.a2b_base64(text, strict_mode=True)
        pad = len(text) - len(text.rstrip("="))
        strict_ok = len(text) % 4 == 0 and len(data) == len(text) // 4 * 3 - pad
    except (binascii.Error, ValueError):
        strict_ok = False
    try:
        size = audio_b64_size(text, ULAW_8K)
    except ClientError:
        assert not strict_ok
    else:
        assert strict_ok
        assert size == len(data)
