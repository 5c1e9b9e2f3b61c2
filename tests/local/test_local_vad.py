"""Server VAD on the decoded signal: turns, parameters that change behaviour, barge-in."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from realtime_bridge.upstream.local.vad import threshold_to_dbfs

GAP_MS = 800


def bursts(h: Any, count: int = 3, gap_ms: float = GAP_MS, gain: float = 1.0) -> bytes:
    parts = [h.silence(400)]
    for i in range(count):
        parts += [h.speech(f"burst number {i} is speaking now", gain=gain), h.silence(gap_ms)]
    parts.append(h.silence(1500))
    return h.pcm16(np.concatenate(parts))


def vad_driver(h: Any, **td: Any) -> Any:
    d = h.CoreDriver()
    d.update(audio=h.turn_detection(create_response=False, **td))
    return d


def stops(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == "input_audio_buffer.speech_stopped"]


def starts(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == "input_audio_buffer.speech_started"]


def test_bursts_separated_by_silence_make_turns(h: Any) -> None:
    d = vad_driver(h, silence_duration_ms=500)
    events = d.append(bursts(h), chunk=960)
    assert len(starts(events)) == len(stops(events)) == 3
    first = [e["type"] for e in events][:5]
    assert first == [
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "conversation.item.added",
        "conversation.item.done",
    ]
    for started, stopped in zip(starts(events), stops(events), strict=True):
        assert started["item_id"] == stopped["item_id"]
    committed = [e for e in events if e["type"] == "input_audio_buffer.committed"]
    assert [e["item_id"] for e in committed] == [e["item_id"] for e in stops(events)]
    assert committed[1]["previous_item_id"] == committed[0]["item_id"]
    assert d.run_until_idle() == []  # create_response false: no response


def test_longer_silence_duration_merges_turns(h: Any) -> None:
    d = vad_driver(h, silence_duration_ms=GAP_MS + 200)
    assert len(stops(d.append(bursts(h), chunk=960))) == 1
    d = vad_driver(h, silence_duration_ms=GAP_MS - 200)
    assert len(stops(d.append(bursts(h), chunk=960))) == 3


def test_audio_end_includes_the_silence_duration(h: Any) -> None:
    for silence_ms in (300, 600):
        d = vad_driver(h, silence_duration_ms=silence_ms)
        audio = h.pcm16(np.concatenate([h.silence(500), h.speech("hello there"), h.silence(1000)]))
        (stopped,) = stops(d.append(audio))
        speech_end = 500 + len(h.speech("hello there")) / 24
        assert stopped["audio_end_ms"] == pytest.approx(speech_end + silence_ms, abs=120)


def test_noise_below_threshold_makes_no_turn(h: Any) -> None:
    d = vad_driver(h)
    assert d.append(h.pcm16(h.noise(3000, dbfs=-50)), chunk=960) == []


def test_threshold_changes_behaviour_measurably(h: Any) -> None:
    loud_noise = h.pcm16(np.concatenate([h.noise(1000, dbfs=-30), h.silence(1000)]))
    # -30 dBFS is above the 0.5 level (-40 dBFS) and below the 0.8 level (-22 dBFS)
    assert threshold_to_dbfs(0.5) < -30 < threshold_to_dbfs(0.8)
    assert len(starts(vad_driver(h, threshold=0.5).append(loud_noise))) == 1
    assert starts(vad_driver(h, threshold=0.8).append(loud_noise)) == []
    quiet_speech = bursts(h, count=1, gain=0.05)  # about -46 dBFS while voiced
    assert starts(vad_driver(h, threshold=0.5).append(quiet_speech)) == []
    assert len(starts(vad_driver(h, threshold=0.2).append(quiet_speech))) == 1


def test_prefix_padding_moves_audio_start(h: Any) -> None:
    audio = h.pcm16(np.concatenate([h.silence(1000), h.speech("hello there"), h.silence(1000)]))
    found = {}
    for padding in (100, 300, 600):
        d = vad_driver(h, prefix_padding_ms=padding)
        (started,) = starts(d.append(audio, chunk=960))
        found[padding] = started["audio_start_ms"]
        item = next(s for s in d.core.conversation.items)
        stopped = stops(d.log)[0]
        # the committed item holds exactly [audio_start_ms, audio_end_ms)
        assert item.audio_ms == pytest.approx(
            stopped["audio_end_ms"] - started["audio_start_ms"], abs=2
        )
    assert found[100] - found[300] == 200
    assert found[300] - found[600] == 300
    assert 1000 - 100 <= found[100] + 100 <= 1000 + 40


def test_semantic_vad_is_accepted_and_detects_turns(h: Any) -> None:
    d = h.CoreDriver()
    (updated,) = d.update(
        audio={
            "input": {
                "turn_detection": {
                    "type": "semantic_vad",
                    "eagerness": "high",
                    "create_response": False,
                }
            }
        }
    )
    td = updated["session"]["audio"]["input"]["turn_detection"]
    assert td == {
        "type": "semantic_vad",
        "eagerness": "high",
        "create_response": False,
        "interrupt_response": True,
    }
    assert len(stops(d.append(bursts(h), chunk=960))) == 3


def test_turn_detection_null_means_no_vad(h: Any) -> None:
    d = h.CoreDriver()
    d.update(audio={"input": {"turn_detection": None}})
    assert d.append(bursts(h), chunk=960) == []


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("speech-three-turns-24k.wav", {"type": "audio/pcm", "rate": 24000}),
        ("speech-three-turns-8k-ulaw.wav", {"type": "audio/pcmu"}),
        ("speech-three-turns-8k-alaw.wav", {"type": "audio/pcma"}),
    ],
)
def test_real_recordings_give_three_turns(h: Any, name: str, fmt: dict[str, Any]) -> None:
    d = h.CoreDriver()
    d.update(audio={"input": {"format": fmt, **h.turn_detection(create_response=False)["input"]}})
    audio = h.read_wav_g711(name) if "law" in name else h.read_wav(name)[0]
    chunk = 960 if fmt["type"] == "audio/pcm" else 160  # 20 ms
    events = d.append(audio, chunk=chunk)
    assert len(stops(events)) == 3
    assert 800 <= starts(events)[0]["audio_start_ms"] <= 1200
    # shorter silence splits the utterances at their inner pauses
    d = h.CoreDriver()
    d.update(
        audio={
            "input": {
                "format": fmt,
                **h.turn_detection(create_response=False, silence_duration_ms=150)["input"],
            }
        }
    )
    assert len(stops(d.append(audio, chunk=chunk))) > 3


def test_vad_turn_creates_a_response(h: Any) -> None:
    d = h.CoreDriver()
    d.update(output_modalities=["text"])
    audio = h.pcm16(np.concatenate([h.silence(300), h.speech("hello there"), h.silence(800)]))
    events = d.append(audio, chunk=960) + d.run_until_idle()
    types = h.types_of(events)
    assert types.index("conversation.item.done") < types.index("response.created")
    assert events[-2]["response"]["status"] == "completed"
    assert events[-2]["response"]["usage"]["input_token_details"]["audio_tokens"] > 0


@pytest.mark.parametrize("interrupt", [True, False])
def test_speech_during_a_response_interrupts_it(h: Any, interrupt: bool) -> None:
    d = h.CoreDriver(pace=1.0)
    d.update(
        instructions="Reply with: " + "This answer is long enough to be interrupted. " * 4,
        audio=h.turn_detection(interrupt_response=interrupt),
    )
    d.send({"type": "response.create"})
    d.advance(0.5)
    events = d.append(h.pcm16(np.concatenate([h.speech("stop please"), h.silence(100)])), chunk=960)
    types = h.types_of(events)
    assert "input_audio_buffer.speech_started" in types
    if interrupt:
        done = next(e for e in events if e["type"] == "response.done")["response"]
        assert done["status"] == "cancelled"
        assert done["status_details"]["reason"] == "turn_detected"
        assert types.index("input_audio_buffer.speech_started") < types.index("response.done")
    else:
        assert "response.done" not in types
        assert d.run_until_idle()[-2]["response"]["status"] == "completed"


@pytest.mark.parametrize("typed_while_speaking", [False, True])
def test_a_turn_that_ends_while_a_reply_is_typed_is_answered_next(
    h: Any, typed_while_speaking: bool
) -> None:
    """The spoken turn's answer follows the text response that was streaming, as the API's."""
    d = h.CoreDriver(pace=1.0)
    d.update(
        output_modalities=["text"],
        instructions="Reply with: " + "a typed answer that streams for a while " * 8,
        audio=h.turn_detection(interrupt_response=False),
    )
    speech = h.pcm16(h.speech("what about my spoken question"))
    if typed_while_speaking:
        d.append(speech, chunk=960)  # speaking...
        d.send({"type": "response.create"})  # ...while a typed message is answered
    else:
        d.send({"type": "response.create"})
        d.append(speech, chunk=960)
    events = d.append(h.pcm16(h.silence(800)), chunk=960)  # the VAD ends the turn meanwhile
    assert "input_audio_buffer.committed" in h.types_of(events)
    events += d.run_until_idle()
    done = [e["response"] for e in d.log if e["type"] == "response.done"]
    assert [r["status"] for r in done] == ["completed", "completed"]
    created = [e for e in d.log if e["type"] == "response.created"]
    assert len(created) == 2
    types = h.types_of(d.log)
    first_done = types.index("response.done")
    assert types.index("response.created", first_done) > first_done  # the next one follows
