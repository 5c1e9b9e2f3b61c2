"""The turn keeper as plain function calls: silence fill, the answer after a commit, and the
errors the bridge owns (SPEC §12). Clock values are made up; nothing sleeps."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest

from realtime_bridge.audio import g711
from realtime_bridge.audio.formats import ALAW_8K, PCM16_24K, ULAW_8K
from realtime_bridge.protocol.turns import TurnKeeper, TurnSettings, silence

SERVER_VAD = {
    "audio": {"input": {"turn_detection": {"type": "server_vad", "silence_duration_ms": 700}}}
}


def keeper(**settings: Any) -> TurnKeeper:
    k = TurnKeeper(TurnSettings(**settings))
    k.configure(SERVER_VAD)
    return k


def committed(item_id: str = "item_1") -> dict[str, Any]:
    return {
        "type": "input_audio_buffer.committed",
        "event_id": "event_x",
        "previous_item_id": None,
        "item_id": item_id,
    }


def appended_ms(frames: list[str]) -> float:
    total = 0
    for frame in frames:
        event = orjson.loads(frame)
        assert event["type"] == "input_audio_buffer.append"
        total += len(base64.b64decode(event["audio"]))
    return PCM16_24K.duration_ms(total)


def run_until(k: TurnKeeper, end: float) -> list[str]:
    """Drive the keeper's clock as a timer would, up to ``end``."""
    sent: list[str] = []
    while (due := k.deadline()) is not None and due <= end:
        sent += k.poll(due).to_upstream
    return sent


def test_silence_is_each_codecs_code_for_zero() -> None:
    assert silence(ULAW_8K, 4) == g711.pcm16_to_ulaw(bytes(8))
    assert silence(ALAW_8K, 4) == g711.pcm16_to_alaw(bytes(8))
    assert silence(PCM16_24K, 6) == bytes(6)


def test_fill_starts_after_the_gap_and_is_real_time() -> None:
    k = keeper()
    k.client_audio(10.0, 170.0)  # a loud chunk, then nothing: audio lasts until 10.17
    k.upstream_event("input_audio_buffer.speech_started", {}, 10.1)
    assert k.deadline() == pytest.approx(10.37)
    assert k.poll(10.36).to_upstream == []
    first = k.poll(10.37)
    assert first.fill_started
    assert appended_ms(first.to_upstream) == pytest.approx(200.0, abs=0.1)
    # Then chunks of real-time silence, never ahead of the clock.
    later = run_until(k, 10.77)
    assert appended_ms(first.to_upstream + later) == pytest.approx(600.0, abs=0.1)


def test_fill_stops_at_the_vad_end_and_when_the_client_speaks() -> None:
    k = keeper()
    k.client_audio(0.0, 100.0)
    k.upstream_event("input_audio_buffer.speech_started", {}, 0.05)
    assert k.poll(0.4).to_upstream
    k.upstream_event("input_audio_buffer.speech_stopped", {}, 0.45)
    assert k.deadline() is None
    # A new turn; the client speaks again while being filled: the fill stops at once.
    k.upstream_event("input_audio_buffer.speech_started", {}, 1.0)
    k.client_audio(1.0, 100.0)
    assert k.poll(1.4).to_upstream
    k.client_audio(1.41, 20.0)
    assert k.poll(1.42).to_upstream == []


def test_fill_is_capped_by_the_sessions_silence_plus_margin() -> None:
    k = keeper(fill_margin_ms=300.0)
    k.client_audio(0.0, 100.0)
    k.upstream_event("input_audio_buffer.speech_started", {}, 0.0)
    sent = run_until(k, 60.0)
    assert appended_ms(sent) == pytest.approx(1000.0, abs=0.1)  # 700 + 300
    assert k.deadline() is None
    assert k.stats.fill_ms == pytest.approx(1000.0, abs=0.1)


def test_a_continuously_streaming_client_gets_no_fill() -> None:
    k = keeper()
    k.upstream_event("input_audio_buffer.speech_started", {}, 0.0)
    t = 0.0
    for _ in range(500):  # 10 s of 20 ms chunks, arriving up to 150 ms late
        jitter = 0.15 if _ % 37 == 0 else 0.0
        k.client_audio(t + jitter, 20.0)
        due = k.deadline()
        assert due is not None
        assert due > t + jitter
        assert k.poll(t + jitter).to_upstream == []
        t += 0.02
    assert k.stats.fill_bytes == 0


def test_a_client_sending_large_chunks_is_not_filled_between_them() -> None:
    k = keeper()
    k.upstream_event("input_audio_buffer.speech_started", {}, 0.0)
    for i in range(10):  # one 500 ms chunk every 500 ms
        k.client_audio(i * 0.5, 500.0)
        assert k.poll(i * 0.5 + 0.49).to_upstream == []
    assert k.stats.fill_bytes == 0


def test_no_fill_without_vad_or_when_off() -> None:
    off = keeper(silence_fill=False)
    manual = TurnKeeper()
    manual.configure({"audio": {"input": {"turn_detection": None}}})
    for k in (off, manual):
        k.client_audio(0.0, 100.0)
        k.upstream_event("input_audio_buffer.speech_started", {}, 0.0)
        assert run_until(k, 5.0) == []


def test_manual_commit_gets_an_answer_after_the_window() -> None:
    k = keeper()
    k.client_audio(0.0, 500.0)
    assert not k.client_commit().swallow
    k.upstream_event("input_audio_buffer.committed", committed(), 0.6)
    assert k.deadline() == pytest.approx(0.9)
    assert k.poll(0.89).to_upstream == []
    (create,) = k.poll(0.9).to_upstream
    assert orjson.loads(create)["type"] == "response.create"
    assert k.deadline() is None


def test_no_second_response_for_a_client_that_asks_itself() -> None:
    k = keeper()
    k.client_audio(0.0, 500.0)
    k.client_commit()
    k.client_response_create()
    k.upstream_event("input_audio_buffer.committed", committed(), 0.6)
    assert run_until(k, 5.0) == []
    # Also when its response.create comes after the upstream's committed, within the window.
    k.client_audio(1.0, 500.0)
    k.client_commit()
    k.upstream_event("input_audio_buffer.committed", committed("item_2"), 1.6)
    k.client_response_create()
    assert run_until(k, 5.0) == []


def test_no_answer_without_create_response_or_vad() -> None:
    k = TurnKeeper()
    k.configure(
        {"audio": {"input": {"turn_detection": {"type": "server_vad", "create_response": False}}}}
    )
    k.client_audio(0.0, 500.0)
    k.client_commit()
    k.upstream_event("input_audio_buffer.committed", committed(), 0.6)
    assert run_until(k, 5.0) == []


def test_an_answer_waits_for_a_running_response() -> None:
    k = keeper()
    k.upstream_event("response.created", {}, 0.0)  # an earlier turn's answer still running
    k.client_audio(0.0, 500.0)
    k.client_commit()
    k.upstream_event("input_audio_buffer.committed", committed(), 0.6)
    assert run_until(k, 5.0) == []
    k.upstream_event("response.done", {}, 5.0)
    assert [orjson.loads(f)["type"] for f in k.poll(5.0).to_upstream] == ["response.create"]


def test_commit_after_the_vad_took_the_turn_is_answered_here() -> None:
    k = keeper()
    k.client_audio(0.0, 500.0)
    k.upstream_event("input_audio_buffer.speech_started", {}, 0.1)
    k.upstream_event("input_audio_buffer.speech_stopped", {}, 1.3)
    k.upstream_event("input_audio_buffer.committed", committed("item_vad"), 1.3)
    answer = k.client_commit()
    assert answer.swallow
    (event,) = answer.to_client
    assert event["type"] == "input_audio_buffer.committed"
    assert event["item_id"] == "item_vad"
    assert run_until(k, 5.0) == []  # the VAD's own response answers the turn
    # A second commit of nothing is the client's own doing: forwarded.
    assert not k.client_commit().swallow


def test_commit_empty_caused_by_a_racing_vad_commit_is_hidden() -> None:
    k = keeper()
    k.client_audio(0.0, 500.0)
    k.upstream_event("input_audio_buffer.speech_started", {}, 0.1)
    assert not k.client_commit().swallow  # sent while the VAD is about to end the turn
    k.upstream_event("input_audio_buffer.speech_stopped", {}, 1.3)
    k.upstream_event("input_audio_buffer.committed", committed("item_vad"), 1.3)
    error = {
        "type": "error",
        "error": {"code": "input_audio_buffer_commit_empty", "event_id": "client_1"},
    }
    out = k.upstream_event("error", error, 1.31)
    assert out.swallow
    assert out.to_client[0]["item_id"] == "item_vad"


def test_the_clients_own_commit_errors_reach_it() -> None:
    k = keeper()
    k.client_commit()  # nothing was ever sent
    error = {"type": "error", "error": {"code": "input_audio_buffer_commit_empty"}}
    assert not k.upstream_event("error", error, 0.1).swallow


def test_errors_about_the_bridges_own_events_are_hidden() -> None:
    k = keeper()
    own = k.new_event_id()
    error = {"type": "error", "error": {"code": "x", "event_id": own}}
    assert k.upstream_event("error", error, 0.0).swallow
    other = {"type": "error", "error": {"code": "x", "event_id": "evt_client"}}
    assert not k.upstream_event("error", other, 0.0).swallow


def test_semantic_vad_caps_by_eagerness() -> None:
    k = TurnKeeper(TurnSettings(fill_margin_ms=0.0))
    k.configure(
        {"audio": {"input": {"turn_detection": {"type": "semantic_vad", "eagerness": "high"}}}}
    )
    k.client_audio(0.0, 100.0)
    k.upstream_event("input_audio_buffer.speech_started", {}, 0.0)
    assert appended_ms(run_until(k, 60.0)) == pytest.approx(2000.0, abs=0.1)
