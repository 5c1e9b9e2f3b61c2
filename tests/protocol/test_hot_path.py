"""The relay's byte-level fast paths agree with the general paths they shortcut."""

from __future__ import annotations

import base64

import pytest

from realtime_bridge.audio.formats import ALAW_8K, PCM16_24K, AudioFormat, Codec
from realtime_bridge.metrics import DirectionMetrics
from realtime_bridge.protocol.session import HandshakeOptions, SessionProtocol


def delta_event(audio: bytes, *, trailing: str = "") -> str:
    return (
        '{"type":"response.output_audio.delta","event_id":"e","response_id":"r",'
        f'"item_id":"i","output_index":0,"content_index":0,'
        f'"delta":"{base64.b64encode(audio).decode()}"{trailing}}}'
    )


@pytest.mark.parametrize("size", [0, 1, 2, 3, 4, 5, 958, 959, 960, 961])
@pytest.mark.parametrize("trailing", ["", ',"obfuscation":"x=="'])
@pytest.mark.parametrize("fmt", [PCM16_24K, ALAW_8K])
def test_audio_delta_counted_the_same_from_bytes_and_from_str(
    size: int, trailing: str, fmt: AudioFormat
) -> None:
    """Sizes whose base64 ends in no, one and two '=' are all counted exactly, whether the
    event takes the bytes hot path or the decoded one, and fields after the delta do not
    count."""
    event = delta_event(bytes(size), trailing=trailing)
    from_bytes = SessionProtocol(HandshakeOptions(input_format=fmt, output_format=fmt))
    from_str = SessionProtocol(HandshakeOptions(input_format=fmt, output_format=fmt))

    assert from_bytes.passthrough_upstream(event.encode()) == "response.output_audio.delta"
    routed = from_str.from_upstream_text(event)

    assert routed.to_client == (event,)
    assert from_bytes.audio_ms_out == from_str.audio_ms_out == fmt.duration_ms(size)


def test_audio_delta_without_a_delta_field_counts_nothing() -> None:
    rules = SessionProtocol()
    event = b'{"type":"response.output_audio.delta","event_id":"e"}'

    assert rules.passthrough_upstream(event) == "response.output_audio.delta"
    assert rules.audio_ms_out == 0.0


def test_duration_follows_the_format() -> None:
    assert PCM16_24K.duration_ms(960) == 20.0
    assert AudioFormat(Codec.PCM16, 16000).duration_ms(640) == 20.0
    assert ALAW_8K.duration_ms(160) == 20.0
    # The cached rate is an implementation detail: not part of equality or repr.
    assert AudioFormat(Codec.PCM16, 24000) == PCM16_24K
    assert repr(PCM16_24K) == "AudioFormat(codec=<Codec.PCM16: 'pcm16'>, rate=24000)"


def test_direction_metrics_label_unknown_types_as_other_and_stay_bounded() -> None:
    metrics = DirectionMetrics()
    for i in range(100):
        metrics.relayed(f"made.up.{i}", 10, 0)
    metrics.relayed("input_audio_buffer.append", 1000, 0)
    metrics.relayed("input_audio_buffer.append", 1000, 0)
    metrics.relayed(None, 5, 0)

    assert metrics.counts == {
        "other": [100, 1000],
        "input_audio_buffer.append": [2, 2000],
        "invalid": [1, 5],
    }
    assert sum(metrics.latency_counts) == 103
    # Only known types get a cached entry: a client inventing types cannot grow it.
    assert set(metrics._by_type) <= {"input_audio_buffer.append", "other", "invalid"}


def test_only_the_exact_audio_delta_type_is_counted_as_audio() -> None:
    rules = SessionProtocol()
    lookalike = delta_event(bytes(960)).replace(
        '"response.output_audio.delta"', '"response.output_audio.delta_x"'
    )
    assert rules.passthrough_upstream(lookalike.encode()) == "response.output_audio.delta_x"
    assert rules.audio_ms_out == 0.0
    # The type not first: still an audio delta, counted on the decoded path.
    moved = '{"event_id":"e","type":"response.output_audio.delta","delta":"AAAA"}'
    assert rules.passthrough_upstream(moved.encode()) is None
    assert rules.from_upstream_text(moved).to_client == (moved,)
    assert rules.audio_ms_out == PCM16_24K.duration_ms(3)


def test_counted_frames_are_not_timed_and_totals_add_up() -> None:
    metrics = DirectionMetrics()
    metrics.counted("input_audio_buffer.append", 1000, 0)
    metrics.counted("made.up", 7, 0)
    metrics.relayed("input_audio_buffer.append", 1000, 0)

    assert metrics.counts == {"input_audio_buffer.append": [2, 2000], "other": [1, 7]}
    assert metrics.totals() == (3, 2007)
    assert sum(metrics.latency_counts) == 1  # only the relayed one was timed
