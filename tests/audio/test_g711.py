"""G.711 codecs: bit-exact with audioop for every input, and chunking-invariant."""

from __future__ import annotations

import audioop
import itertools
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from realtime_bridge.audio import g711

ALL_PCM16 = np.arange(-32768, 32768, dtype="<i2").tobytes()
ALL_CODES = bytes(range(256))

Codec = Callable[[bytes], bytes]
Reference = Callable[[bytes, int], bytes]
ENCODERS: list[tuple[Codec, Reference]] = [
    (g711.pcm16_to_ulaw, audioop.lin2ulaw),
    (g711.pcm16_to_alaw, audioop.lin2alaw),
]
DECODERS: list[tuple[Codec, Reference]] = [
    (g711.ulaw_to_pcm16, audioop.ulaw2lin),
    (g711.alaw_to_pcm16, audioop.alaw2lin),
]


@pytest.mark.parametrize(("ours", "reference"), ENCODERS, ids=["ulaw", "alaw"])
def test_encode_matches_audioop_for_all_65536_samples(ours: Codec, reference: Reference) -> None:
    assert ours(ALL_PCM16) == reference(ALL_PCM16, 2)


@pytest.mark.parametrize(("ours", "reference"), DECODERS, ids=["ulaw", "alaw"])
def test_decode_matches_audioop_for_all_256_codes(ours: Codec, reference: Reference) -> None:
    assert ours(ALL_CODES) == reference(ALL_CODES, 2)


@pytest.mark.parametrize(
    ("encode", "decode", "ref_encode", "ref_decode"),
    [
        (g711.pcm16_to_ulaw, g711.ulaw_to_pcm16, audioop.lin2ulaw, audioop.ulaw2lin),
        (g711.pcm16_to_alaw, g711.alaw_to_pcm16, audioop.lin2alaw, audioop.alaw2lin),
    ],
    ids=["ulaw", "alaw"],
)
def test_round_trips_match_audioop(
    encode: Codec, decode: Codec, ref_encode: Reference, ref_decode: Reference
) -> None:
    # PCM → code → PCM for every sample, and code → PCM → code for every code.
    assert decode(encode(ALL_PCM16)) == ref_decode(ref_encode(ALL_PCM16, 2), 2)
    assert encode(decode(ALL_CODES)) == ref_encode(ref_decode(ALL_CODES, 2), 2)
    # A decoded value is a fixed point: re-encoding it and decoding again changes nothing.
    decoded = decode(ALL_CODES)
    assert decode(encode(decoded)) == decoded


def test_quantisation_error_is_bounded_by_the_segment_step() -> None:
    """Sanity beyond bit-exactness: the round trip stays within half a step of the input."""
    x = np.frombuffer(ALL_PCM16, dtype="<i2").astype(np.int32)
    for encode, decode in [
        (g711.pcm16_to_ulaw, g711.ulaw_to_pcm16),
        (g711.pcm16_to_alaw, g711.alaw_to_pcm16),
    ]:
        y = np.frombuffer(decode(encode(ALL_PCM16)), dtype="<i2").astype(np.int32)
        inner = np.abs(x) < 30000  # above ~32k both laws clip to their largest step
        assert np.all(np.abs(y - x)[inner] <= 1024)
        assert np.all(np.sign(y[np.abs(x) > 16]) == np.sign(x[np.abs(x) > 16]))


@pytest.mark.parametrize(
    "func",
    [g711.pcm16_to_ulaw, g711.pcm16_to_alaw, g711.ulaw_to_pcm16, g711.alaw_to_pcm16],
)
def test_empty_input_gives_empty_output(func: Codec) -> None:
    assert func(b"") == b""


@pytest.mark.parametrize("func", [g711.pcm16_to_ulaw, g711.pcm16_to_alaw])
def test_encoders_reject_an_odd_byte_count(func: Codec) -> None:
    with pytest.raises(ValueError, match="even number of bytes"):
        func(b"\x00\x01\x02")


def test_outputs_are_bytes_of_the_right_length() -> None:
    frame = ALL_PCM16[: 160 * 2]
    for out in (g711.pcm16_to_ulaw(frame), g711.pcm16_to_alaw(frame)):
        assert type(out) is bytes
        assert len(out) == 160
    for out in (g711.ulaw_to_pcm16(frame[:160]), g711.alaw_to_pcm16(frame[:160])):
        assert type(out) is bytes
        assert len(out) == 320


def _split(data: bytes, cuts: list[int], unit: int) -> list[bytes]:
    points = sorted({min(c * unit, len(data)) for c in cuts})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


@given(
    samples=st.binary(max_size=2000).map(lambda b: b[: len(b) // 2 * 2]),
    cuts=st.lists(st.integers(0, 1000)),
)
def test_encoding_is_chunking_invariant(samples: bytes, cuts: list[int]) -> None:
    for encode in (g711.pcm16_to_ulaw, g711.pcm16_to_alaw):
        assert b"".join(encode(c) for c in _split(samples, cuts, 2)) == encode(samples)


@given(codes=st.binary(max_size=1000), cuts=st.lists(st.integers(0, 1000)))
def test_decoding_is_chunking_invariant(codes: bytes, cuts: list[int]) -> None:
    for decode in (g711.ulaw_to_pcm16, g711.alaw_to_pcm16):
        assert b"".join(decode(c) for c in _split(codes, cuts, 1)) == decode(codes)
