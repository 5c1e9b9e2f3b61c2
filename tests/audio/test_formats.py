"""AudioFormat and the three ways a client declares one."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from realtime_bridge.audio.formats import (
    ALAW_8K,
    PCM16_24K,
    SUPPORTED_PCM_RATES,
    ULAW_8K,
    AudioFormat,
    Codec,
    parse_beta_format,
    parse_ga_format,
    parse_query_format,
)
from realtime_bridge.errors import ClientError, ErrorCode

PARAM = "session.audio.input.format"


def pcm(rate: int) -> AudioFormat:
    return AudioFormat(Codec.PCM16, rate)


def assert_unsupported(parse: Callable[..., AudioFormat], value: object) -> ClientError:
    with pytest.raises(ClientError) as caught:
        parse(value, param=PARAM)
    error = caught.value
    assert error.code is ErrorCode.UNSUPPORTED_AUDIO_FORMAT
    assert error.param == PARAM
    assert error.message
    assert error.close_code is None  # the session goes on
    return error


# --- the value type -------------------------------------------------------------------------


def test_constants() -> None:
    assert SUPPORTED_PCM_RATES == (8000, 16000, 22050, 24000, 32000, 44100, 48000)
    assert AudioFormat(Codec.PCM16, 24000) == PCM16_24K
    assert AudioFormat(Codec.ULAW, 8000) == ULAW_8K
    assert AudioFormat(Codec.ALAW, 8000) == ALAW_8K
    assert [c.value for c in Codec] == ["pcm16", "ulaw", "alaw"]


def test_is_a_frozen_hashable_value() -> None:
    assert {pcm(24000), PCM16_24K} == {PCM16_24K}
    with pytest.raises(AttributeError):
        PCM16_24K.rate = 16000  # type: ignore[misc]


def test_codec_given_as_its_string_value_is_normalised() -> None:
    fmt = AudioFormat("ulaw", 8000)  # type: ignore[arg-type]
    assert fmt.codec is Codec.ULAW
    assert fmt == ULAW_8K


@pytest.mark.parametrize(
    ("codec", "rate"),
    [
        (Codec.PCM16, 12345),
        (Codec.PCM16, 0),
        (Codec.ULAW, 16000),
        (Codec.ALAW, 24000),
        ("mp3", 8000),
    ],
)
def test_construction_rejects_impossible_formats(codec: Codec, rate: int) -> None:
    with pytest.raises(ValueError):
        AudioFormat(codec, rate)


def test_sizes_and_durations() -> None:
    assert PCM16_24K.bytes_per_sample == 2
    assert ULAW_8K.bytes_per_sample == ALAW_8K.bytes_per_sample == 1
    assert PCM16_24K.duration_ms(960) == 20.0
    assert ULAW_8K.duration_ms(160) == 20.0
    assert pcm(16000).duration_ms(640) == 20.0
    assert PCM16_24K.duration_ms(0) == 0.0
    assert PCM16_24K.bytes_for_ms(20) == 960
    assert ULAW_8K.bytes_for_ms(20) == 160
    assert pcm(22050).bytes_for_ms(20) == 882  # 441 whole samples despite float arithmetic
    assert pcm(44100).bytes_for_ms(10) == 882
    assert pcm(22050).bytes_for_ms(0.01) == 0  # 0.22 samples → none
    assert pcm(48000).bytes_for_ms(0.03) == 2  # 1.44 samples → 1 (rounded down, whole samples)
    assert PCM16_24K.bytes_for_ms(1500.5) == 2 * 36012


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf")])
def test_bytes_for_ms_rejects_impossible_durations(bad: float) -> None:
    with pytest.raises(ValueError):
        PCM16_24K.bytes_for_ms(bad)


@pytest.mark.parametrize("rate", SUPPORTED_PCM_RATES)
def test_every_pcm_rate_goes_upstream_as_24k_and_round_trips(rate: int) -> None:
    fmt = pcm(rate)
    assert fmt.upstream_format() == PCM16_24K
    assert fmt.to_ga() == {"type": "audio/pcm", "rate": rate}
    assert fmt.to_beta() == "pcm16"
    assert parse_ga_format(fmt.to_ga(), param=PARAM) == fmt
    assert parse_query_format(f"pcm16@{rate}", param=PARAM) == fmt


@pytest.mark.parametrize(
    ("fmt", "ga", "beta"),
    [
        (ULAW_8K, {"type": "audio/pcmu"}, "g711_ulaw"),
        (ALAW_8K, {"type": "audio/pcma"}, "g711_alaw"),
        (PCM16_24K, {"type": "audio/pcm", "rate": 24000}, "pcm16"),
    ],
)
def test_g711_passes_through_and_serialises(
    fmt: AudioFormat, ga: dict[str, object], beta: str
) -> None:
    assert fmt.upstream_format() == (fmt if fmt.codec is not Codec.PCM16 else PCM16_24K)
    assert fmt.to_ga() == ga
    assert fmt.to_beta() == beta
    assert parse_ga_format(ga, param=PARAM) == fmt
    assert parse_beta_format(beta, param=PARAM) == fmt


def test_to_ga_returns_a_fresh_dict() -> None:
    first = PCM16_24K.to_ga()
    first["rate"] = 1
    assert PCM16_24K.to_ga()["rate"] == 24000


# --- GA -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"type": "audio/pcm"}, PCM16_24K),
        ({"type": "audio/pcm", "rate": None}, PCM16_24K),
        ({"type": "audio/pcm", "rate": 24000}, PCM16_24K),
        ({"type": "audio/pcm", "rate": 16000}, pcm(16000)),
        ({"type": "audio/pcm", "rate": 16000.0}, pcm(16000)),
        ({"type": "audio/pcm", "rate": 48000, "extra": True}, pcm(48000)),
        ({"type": "audio/pcmu"}, ULAW_8K),
        ({"type": "audio/pcmu", "rate": 8000}, ULAW_8K),
        ({"type": "audio/pcma"}, ALAW_8K),
        ({"type": "audio/pcma", "rate": 8000}, ALAW_8K),
    ],
)
def test_parse_ga_accepts(value: object, expected: AudioFormat) -> None:
    assert parse_ga_format(value, param=PARAM) == expected


@pytest.mark.parametrize(
    "value",
    [
        "pcm16",  # a beta name is not a GA object
        "audio/pcm",
        None,
        ["audio/pcm"],
        {},
        {"type": None},
        {"type": 1},
        {"type": "audio/PCM"},
        {"type": "audio/opus"},
        {"type": "audio/pcm", "rate": 12345},
        {"type": "audio/pcm", "rate": 96000},
        {"type": "audio/pcm", "rate": 0},
        {"type": "audio/pcm", "rate": -24000},
        {"type": "audio/pcm", "rate": "24000"},
        {"type": "audio/pcm", "rate": True},
        {"type": "audio/pcm", "rate": 24000.5},
        {"type": "audio/pcm", "rate": float("nan")},
        {"type": "audio/pcmu", "rate": 16000},
        {"type": "audio/pcma", "rate": 24000},
    ],
)
def test_parse_ga_rejects(value: object) -> None:
    assert_unsupported(parse_ga_format, value)


def test_ga_error_message_lists_the_supported_rates() -> None:
    error = assert_unsupported(parse_ga_format, {"type": "audio/pcm", "rate": 12345})
    assert "12345" in error.message
    assert "16000" in error.message


def test_error_message_truncates_huge_values() -> None:
    error = assert_unsupported(parse_beta_format, "x" * 10_000)
    assert len(error.message) < 200


# --- beta -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [("pcm16", PCM16_24K), ("g711_ulaw", ULAW_8K), ("g711_alaw", ALAW_8K)],
)
def test_parse_beta_accepts(value: str, expected: AudioFormat) -> None:
    assert parse_beta_format(value, param=PARAM) == expected


@pytest.mark.parametrize(
    "value",
    [
        "PCM16",
        "pcm",
        "pcm16@16000",
        "g711",
        "ulaw",
        "audio/pcm",
        "",
        " pcm16",
        None,
        16000,
        {"type": "audio/pcm"},
    ],
)
def test_parse_beta_rejects(value: object) -> None:
    assert_unsupported(parse_beta_format, value)


# --- query ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("pcm16", PCM16_24K),
        ("pcm16@24000", PCM16_24K),
        ("pcm16@16000", pcm(16000)),
        ("pcm16@8000", pcm(8000)),
        ("pcm16@22050", pcm(22050)),
        ("pcm16@48000", pcm(48000)),
        ("g711_ulaw", ULAW_8K),
        ("g711_alaw", ALAW_8K),
        ("g711_ulaw@8000", ULAW_8K),
        ("audio/pcm", PCM16_24K),
        ("audio/pcm@16000", pcm(16000)),
        ("audio/pcm@44100", pcm(44100)),
        ("audio/pcmu", ULAW_8K),
        ("audio/pcma", ALAW_8K),
        ("audio/pcma@8000", ALAW_8K),
    ],
)
def test_parse_query_accepts(value: str, expected: AudioFormat) -> None:
    assert parse_query_format(value, param="input_audio_format") == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        "pcm",
        "PCM16",
        "pcm16@",
        "pcm16@12345",
        "pcm16@016000",  # zero-padded: not a rate we list
        "pcm16@+16000",
        "pcm16@16_000",
        "pcm16@16000@16000",
        "pcm16@١٦٠٠٠",  # non-ASCII digits, which int() would accept
        "pcm16 ",
        " pcm16",
        "pcm16@16000\n",
        "g711_ulaw@16000",
        "g711_alaw@24000",
        "audio/pcmu@16000",
        "audio/opus",
        "mp3",
        "ulaw",
    ],
)
def test_parse_query_rejects(value: str) -> None:
    assert_unsupported(parse_query_format, value)


def test_parse_query_rejects_a_non_string() -> None:
    assert_unsupported(parse_query_format, None)
