"""The sans-I/O core driven by plain calls and a hand-moved clock (no loop, no socket)."""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np
import pytest

from realtime_bridge.upstream.local.core import RealtimeCore

TEXT_SEQUENCE = [
    "response.created",
    "response.output_item.added",
    "conversation.item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "conversation.item.done",
    "response.done",
    "rate_limits.updated",
]
AUDIO_SEQUENCE = [
    "response.created",
    "response.output_item.added",
    "conversation.item.added",
    "response.content_part.added",
    "response.output_audio_transcript.delta",
    "response.output_audio.delta",
    "response.output_audio.done",
    "response.output_audio_transcript.done",
    "response.content_part.done",
    "response.output_item.done",
    "conversation.item.done",
    "response.done",
    "rate_limits.updated",
]


def squash(types: list[str]) -> list[str]:
    """Event types with repeated deltas collapsed (deltas may interleave)."""
    out: list[str] = []
    for t in types:
        if t.endswith(".delta") and t in out[-2:]:
            continue
        out.append(t)
    return out


def user_text(text: str) -> dict[str, Any]:
    return {
        "type": "conversation.item.create",
        "item": {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": text}],
        },
    }


def one(events: list[dict[str, Any]], event_type: str) -> dict[str, Any]:
    (found,) = [e for e in events if e["type"] == event_type]
    return found


def error_of(events: list[dict[str, Any]]) -> dict[str, Any]:
    errors = [e for e in events if e["type"] == "error"]
    assert len(errors) == 1, events
    return errors[0]["error"]


def test_session_created_is_complete(h: Any) -> None:
    d = h.CoreDriver(model="gpt-realtime-mini")
    created = d.created
    session = created["session"]
    assert created["type"] == "session.created"
    assert session["model"] == "gpt-realtime-mini"
    assert session["id"].startswith("sess_")
    assert session["object"] == "realtime.session"
    assert session["expires_at"] == 1_700_000_000 + 3600
    assert session["output_modalities"] == ["audio"]
    assert session["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert session["audio"]["input"]["turn_detection"]["type"] == "server_vad"
    assert session["audio"]["output"]["voice"] == "alloy"


def test_session_update_merges(h: Any) -> None:
    d = h.CoreDriver()
    d.poll()
    (updated,) = d.update(instructions="Be brief.", audio={"output": {"voice": "marin"}})
    assert updated["type"] == "session.updated"
    (again,) = d.update(audio={"input": {"format": {"type": "audio/pcmu"}}})
    session = again["session"]
    assert session["instructions"] == "Be brief."
    assert session["audio"]["output"]["voice"] == "marin"
    assert session["audio"]["input"]["format"] == {"type": "audio/pcmu"}
    assert session["audio"]["input"]["turn_detection"]["silence_duration_ms"] == 500


@pytest.mark.parametrize(
    ("session", "code", "param"),
    [
        ({"type": "realtime", "modalities": ["text"]}, "unknown_parameter", "session.modalities"),
        ({"type": "realtime", "voice": "alloy"}, "unknown_parameter", "session.voice"),
        (
            {"type": "realtime", "input_audio_format": "pcm16"},
            "unknown_parameter",
            "session.input_audio_format",
        ),
        ({"type": "realtime", "temperature": 0.8}, "unknown_parameter", "session.temperature"),
        ({"instructions": "x"}, "missing_required_parameter", "session.type"),
        (
            {"type": "realtime", "audio": {"input": {"format": {"type": "audio/opus"}}}},
            "invalid_value",
            "session.audio.input.format.type",
        ),
        (
            {
                "type": "realtime",
                "audio": {"input": {"format": {"type": "audio/pcm", "rate": 16000}}},
            },
            "invalid_value",
            "session.audio.input.format.rate",
        ),
        (
            {"type": "realtime", "audio": {"output": {"format": "pcm16"}}},
            "invalid_type",
            "session.audio.output.format",
        ),
        (
            {
                "type": "realtime",
                "audio": {"input": {"turn_detection": {"type": "server_vad", "threshold": 1.5}}},
            },
            "decimal_above_max_value",
            "session.audio.input.turn_detection.threshold",
        ),
        (
            {
                "type": "realtime",
                "audio": {"input": {"turn_detection": {"type": "semantic_vad", "threshold": 0.5}}},
            },
            "unknown_parameter",
            "session.audio.input.turn_detection.threshold",
        ),
        (
            {"type": "realtime", "output_modalities": ["audio", "text"]},
            "invalid_value",
            "session.output_modalities",
        ),
        (
            {"type": "realtime", "tools": [{"type": "function"}]},
            "missing_required_parameter",
            "session.tools[0].name",
        ),
        (
            {"type": "realtime", "max_output_tokens": 0},
            "integer_below_min_value",
            "session.max_output_tokens",
        ),
    ],
)
def test_session_update_errors_have_the_api_shape(
    h: Any, session: dict[str, Any], code: str, param: str
) -> None:
    d = h.CoreDriver()
    before = d.created["session"]
    err = error_of(
        d.send({"type": "session.update", "event_id": "evt_client_1", "session": session})
    )
    assert err == {
        "type": "invalid_request_error",
        "code": code,
        "message": err["message"],
        "param": param,
        "event_id": "evt_client_1",
    }
    assert param.split(".")[-1].split("[")[0] in err["message"] or code != "unknown_parameter"
    # the session went on, unchanged
    (updated,) = d.update()
    assert updated["session"] == before


def test_bad_events_get_errors_and_the_session_goes_on(h: Any) -> None:
    d = h.CoreDriver()
    d.poll()
    d.core.receive("not json", d.now)
    assert error_of(d.poll())["code"] == "invalid_json"
    err = error_of(d.send({"type": "response.audio.delta", "event_id": "e1"}))
    assert (err["code"], err["param"], err["event_id"]) == ("invalid_value", "type", "e1")
    assert "session.update" in err["message"]
    err = error_of(d.send({"type": "input_audio_buffer.append", "audio": "%%%"}))
    assert (err["code"], err["param"]) == ("invalid_value", "audio")
    err = error_of(d.send({"type": "input_audio_buffer.append"}))
    assert (err["code"], err["param"]) == ("missing_required_parameter", "audio")
    err = error_of(d.send({"type": "input_audio_buffer.commit", "bogus": 1}))
    assert (err["code"], err["param"]) == ("unknown_parameter", "bogus")
    err = error_of(d.send({"type": "response.create", "response": {"modalities": ["text"]}}))
    assert (err["code"], err["param"]) == ("unknown_parameter", "response.modalities")
    assert h.types_of(d.send(user_text("still here"))) == [
        "conversation.item.added",
        "conversation.item.done",
    ]


def test_commit_empty_or_short_buffer_errors_like_the_api(h: Any) -> None:
    d = h.CoreDriver()
    d.update(audio={"input": {"turn_detection": None}})
    err = error_of(d.send({"type": "input_audio_buffer.commit", "event_id": "c1"}))
    assert err["code"] == "input_audio_buffer_commit_empty"
    assert "0.00ms" in err["message"]
    assert err["event_id"] == "c1"
    d.append(h.pcm16(h.silence(60)))
    err = error_of(d.send({"type": "input_audio_buffer.commit"}))
    assert "60.00ms" in err["message"]
    d.append(h.pcm16(h.silence(60)))
    events = d.send({"type": "input_audio_buffer.commit"})
    assert h.types_of(events) == [
        "input_audio_buffer.committed",
        "conversation.item.added",
        "conversation.item.done",
    ]
    # a manual commit never creates a response
    assert d.run_until_idle() == []
    assert events[1]["item"]["content"] == [{"type": "input_audio", "transcript": None}]


def test_clear_empties_the_buffer(h: Any) -> None:
    d = h.CoreDriver()
    d.update(audio={"input": {"turn_detection": None}})
    d.append(h.pcm16(h.silence(300)))
    assert h.types_of(d.send({"type": "input_audio_buffer.clear"})) == [
        "input_audio_buffer.cleared"
    ]
    assert error_of(d.send({"type": "input_audio_buffer.commit"}))["code"] == (
        "input_audio_buffer_commit_empty"
    )


def test_text_response_sequence_and_usage(h: Any) -> None:
    d = h.CoreDriver()
    d.update(output_modalities=["text"])
    d.send(user_text("Hello, can you hear me?"))
    events = d.send({"type": "response.create"}) + d.run_until_idle()
    assert squash(h.types_of(events)) == TEXT_SEQUENCE
    text = one(events, "response.output_text.done")["text"]
    done = events[-2]["response"]
    assert done["status"] == "completed"
    (item,) = done["output"]
    answer = item["content"][0]["text"]
    assert text == answer
    assert "Hello, can you hear me?" in answer
    deltas = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert deltas == answer
    usage = done["usage"]
    assert usage["input_tokens"] > 0
    assert usage["output_tokens"] >= len(answer) // 4
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert usage["output_token_details"]["audio_tokens"] == 0
    assert events[-1]["rate_limits"][0]["remaining"] == 40_000 - usage["total_tokens"]


def test_audio_response_sequence_is_paced_at_real_time(h: Any) -> None:
    d = h.CoreDriver(pace=1.0)
    d.update(instructions="Reply with: One two three four five six seven eight.")
    d.send(user_text("Count please."))
    first = d.send({"type": "response.create"})
    assert h.types_of(first)[:4] == AUDIO_SEQUENCE[:4]
    assert "response.done" not in h.types_of(first)
    audio_ms = 0.0
    start = d.now
    events = list(first)
    while "response.done" not in h.types_of(events):
        deadline = d.core.next_deadline()
        assert deadline is not None
        d.now = deadline
        events += d.poll()
    elapsed = d.now - start
    for e in events:
        if e["type"] == "response.output_audio.delta":
            audio_ms += len(base64.b64decode(e["delta"])) / 48
    events += d.poll()
    assert squash(h.types_of(events)) == AUDIO_SEQUENCE
    # last chunk is sent one chunk before the audio would have finished playing
    assert audio_ms / 1000 - 0.15 <= elapsed <= audio_ms / 1000
    transcript = one(events, "response.content_part.done")["part"]["transcript"]
    assert transcript == "One two three four five six seven eight."
    deltas = "".join(
        e["delta"] for e in events if e["type"] == "response.output_audio_transcript.delta"
    )
    assert deltas == transcript
    usage = events[-2]["response"]["usage"]
    assert usage["output_token_details"]["audio_tokens"] == pytest.approx(audio_ms / 50, abs=1)


def test_pace_two_is_twice_as_fast(h: Any) -> None:
    durations = []
    for pace in (1.0, 2.0):
        d = h.CoreDriver(pace=pace)
        d.update(instructions="Reply with: A sentence of a certain length for pacing.")
        d.send({"type": "response.create"})
        start = d.now
        d.run_until_idle()
        durations.append(d.now - start)
    assert durations[1] == pytest.approx(durations[0] / 2, rel=0.01)


def test_cancel_acts_on_what_was_sent(h: Any) -> None:
    d = h.CoreDriver(pace=1.0)
    d.update(instructions="Reply with: " + "A long answer that keeps going. " * 6)
    d.send({"type": "response.create"})
    d.advance(0.95)  # chunks at 0.0 .. 0.9 s are out: 1000 ms of audio
    events = d.send({"type": "response.cancel", "event_id": "x"})
    assert squash(h.types_of(events)) == [
        "response.output_audio.done",
        "response.output_audio_transcript.done",
        "response.content_part.done",
        "response.output_item.done",
        "conversation.item.done",
        "response.done",
        "rate_limits.updated",
    ]
    done = events[-2]["response"]
    assert done["status"] == "cancelled"
    assert done["status_details"] == {"type": "cancelled", "reason": "client_cancelled"}
    assert done["output"][0]["status"] == "incomplete"
    assert done["usage"]["output_token_details"]["audio_tokens"] == 20
    item_id = done["output"][0]["id"]
    assert d.core.next_deadline() is None
    assert d.advance(10) == []
    # truncating beyond the audio actually sent is an error, within it is fine
    err = error_of(
        d.send(
            {
                "type": "conversation.item.truncate",
                "item_id": item_id,
                "content_index": 0,
                "audio_end_ms": 1500,
            }
        )
    )
    assert err["param"] == "audio_end_ms"
    assert "1000ms is already shorter than 1500ms" in err["message"]
    (truncated,) = d.send(
        {
            "type": "conversation.item.truncate",
            "item_id": item_id,
            "content_index": 0,
            "audio_end_ms": 400,
        }
    )
    assert truncated == {**truncated, "type": "conversation.item.truncated", "audio_end_ms": 400}
    (retrieved,) = d.send({"type": "conversation.item.retrieve", "item_id": item_id})
    part = retrieved["item"]["content"][0]
    assert len(base64.b64decode(part["audio"])) == 400 * 48
    err = error_of(d.send({"type": "response.cancel"}))
    assert err["code"] == "response_cancel_not_active"


def test_one_response_at_a_time_in_the_conversation(h: Any) -> None:
    d = h.CoreDriver(pace=1.0)
    d.send({"type": "response.create"})
    err = error_of(d.send({"type": "response.create"}))
    assert err["code"] == "conversation_already_has_active_response"
    # an out-of-band response may run alongside
    events = d.send({"type": "response.create", "response": {"conversation": "none"}})
    assert "error" not in h.types_of(events)


def test_out_of_band_response_with_overrides(h: Any) -> None:
    d = h.CoreDriver()
    d.send(user_text("Remember the milk."))
    events = d.send(
        {
            "type": "response.create",
            "response": {
                "conversation": "none",
                "output_modalities": ["text"],
                "instructions": "Reply with: SUMMARY-OK",
                "metadata": {"purpose": "summary"},
                "input": [
                    {
                        "type": "message",
                        "role": "user",
                        "content": [{"type": "input_text", "text": "hi"}],
                    }
                ],
            },
        }
    )
    events += d.run_until_idle()
    assert "conversation.item.added" not in h.types_of(events)
    done = events[-2]["response"]
    assert done["conversation_id"] is None
    assert done["metadata"] == {"purpose": "summary"}
    assert done["output"][0]["content"][0]["text"] == "SUMMARY-OK"
    assert done["output_modalities"] == ["text"]
    assert len(d.core.conversation.items) == 1


def test_response_audio_format_override_and_g711_output(h: Any) -> None:
    d = h.CoreDriver()
    d.update(audio={"output": {"format": {"type": "audio/pcmu"}}})
    events = d.send({"type": "response.create"}) + d.run_until_idle()
    audio = b"".join(
        base64.b64decode(e["delta"]) for e in events if e["type"] == "response.output_audio.delta"
    )
    transcript = one(events, "response.content_part.done")["part"]["transcript"]
    from realtime_bridge.upstream.local import synth

    assert len(audio) / 8 == pytest.approx(synth.duration_ms(transcript), abs=1)
    assert events[-2]["response"]["audio"]["output"]["format"] == {"type": "audio/pcmu"}
    events = (
        d.send(
            {
                "type": "response.create",
                "response": {"audio": {"output": {"format": {"type": "audio/pcm", "rate": 24000}}}},
            }
        )
        + d.run_until_idle()
    )
    audio = b"".join(
        base64.b64decode(e["delta"]) for e in events if e["type"] == "response.output_audio.delta"
    )
    assert len(audio) % 2 == 0
    assert len(audio) / 48 > 500


def test_max_output_tokens_makes_response_incomplete(h: Any) -> None:
    d = h.CoreDriver()
    d.update(output_modalities=["text"], instructions="Reply with: " + "word " * 100)
    events = d.send({"type": "response.create", "response": {"max_output_tokens": 10}})
    events += d.run_until_idle()
    done = events[-2]["response"]
    assert done["status"] == "incomplete"
    assert done["status_details"] == {"type": "incomplete", "reason": "max_output_tokens"}
    assert done["usage"]["output_tokens"] <= 10


def test_conversation_items_create_retrieve_delete(h: Any) -> None:
    d = h.CoreDriver()
    (added, done) = d.send(user_text("first"))
    first = added["item"]["id"]
    assert added["previous_item_id"] is None
    assert done["item"]["status"] == "completed"
    (added2, _) = d.send(
        {
            "type": "conversation.item.create",
            "item": {
                "id": "item_custom",
                "type": "message",
                "role": "system",
                "content": [{"type": "input_text", "text": "sys"}],
            },
        }
    )
    assert added2["previous_item_id"] == first
    assert added2["item"]["id"] == "item_custom"
    (added3, _) = d.send({**user_text("zeroth"), "previous_item_id": "root"})
    assert added3["previous_item_id"] is None
    assert [s.item["id"] for s in d.core.conversation.items][1:] == [first, "item_custom"]
    err = error_of(
        d.send({**user_text("dup"), "item": {**user_text("x")["item"], "id": "item_custom"}})
    )
    assert err["param"] == "item.id"
    err = error_of(
        d.send(
            {
                "type": "conversation.item.create",
                "item": {
                    "type": "message",
                    "role": "assistant",
                    "content": [{"type": "input_text", "text": "x"}],
                },
            }
        )
    )
    assert (err["code"], err["param"]) == ("invalid_value", "item.content[0].type")
    err = error_of(
        d.send({"type": "conversation.item.create", "item": {"type": "message", "role": "user"}})
    )
    assert (err["code"], err["param"]) == ("missing_required_parameter", "item.content")
    err = error_of(d.send({**user_text("x"), "previous_item_id": "nope"}))
    assert err["param"] == "previous_item_id"
    (retrieved,) = d.send({"type": "conversation.item.retrieve", "item_id": first})
    assert retrieved["item"]["content"][0]["text"] == "first"
    (deleted,) = d.send({"type": "conversation.item.delete", "item_id": first})
    assert deleted["item_id"] == first
    err = error_of(
        d.send({"type": "conversation.item.retrieve", "item_id": first, "event_id": "r"})
    )
    assert (err["code"], err["param"], err["event_id"]) == ("item_not_found", "item_id", "r")
    err = error_of(d.send({"type": "conversation.item.delete", "item_id": first}))
    assert err["code"] == "item_not_found"
    err = error_of(
        d.send(
            {
                "type": "conversation.item.truncate",
                "item_id": "item_custom",
                "content_index": 0,
                "audio_end_ms": 0,
            }
        )
    )
    assert "Only model output audio messages can be truncated" in err["message"]


def test_user_audio_item_and_its_audio_are_retrievable(h: Any) -> None:
    d = h.CoreDriver()
    audio = h.pcm16(h.speech("hello there"))
    (added, _) = d.send(
        {
            "type": "conversation.item.create",
            "item": {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_audio", "audio": h.b64(audio)}],
            },
        }
    )
    assert "audio" not in added["item"]["content"][0]
    (retrieved,) = d.send({"type": "conversation.item.retrieve", "item_id": added["item"]["id"]})
    assert base64.b64decode(retrieved["item"]["content"][0]["audio"]) == audio
    events = d.send({"type": "response.create", "response": {"output_modalities": ["text"]}})
    events += d.run_until_idle()
    done = events[-2]["response"]
    assert "seconds of audio" in done["output"][0]["content"][0]["text"]
    assert done["usage"]["input_token_details"]["audio_tokens"] > 0


def test_tool_call_round_trip(h: Any) -> None:
    d = h.CoreDriver()
    tool = {
        "type": "function",
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city", "unit"],
        },
    }
    d.update(tools=[tool], output_modalities=["text"])
    d.send(user_text("What is the weather in Lisbon today, in fahrenheit?"))
    events = d.send({"type": "response.create"}) + d.run_until_idle()
    assert squash(h.types_of(events)) == [
        "response.created",
        "response.output_item.added",
        "conversation.item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "conversation.item.done",
        "response.done",
        "rate_limits.updated",
    ]
    args_done = next(e for e in events if e["type"] == "response.function_call_arguments.done")
    assert json.loads(args_done["arguments"]) == {"city": "Lisbon", "unit": "fahrenheit"}
    assert args_done["name"] == "get_weather"
    item = events[-2]["response"]["output"][0]
    assert item["type"] == "function_call"
    assert item["call_id"] == args_done["call_id"]
    d.send(
        {
            "type": "conversation.item.create",
            "item": {
                "type": "function_call_output",
                "call_id": item["call_id"],
                "output": json.dumps({"temperature_f": 72, "sky": "clear"}),
            },
        }
    )
    events = d.send({"type": "response.create"}) + d.run_until_idle()
    answer = events[-2]["response"]["output"][0]["content"][0]["text"]
    assert "get_weather" in answer
    assert "72" in answer
    assert "clear" in answer
    # tool_choice none: no call even when named
    d.send(user_text("get_weather for Porto"))
    events = (
        d.send({"type": "response.create", "response": {"tool_choice": "none"}})
        + d.run_until_idle()
    )
    assert events[-2]["response"]["output"][0]["type"] == "message"


def test_responder_is_deterministic_and_quotes(h: Any) -> None:
    answers = []
    for _ in range(2):
        d = h.CoreDriver()
        d.update(output_modalities=["text"])
        d.send(user_text("The quick brown fox jumps."))
        events = d.send({"type": "response.create"}) + d.run_until_idle()
        answers.append(events[-2]["response"]["output"][0]["content"][0]["text"])
    assert answers[0] == answers[1]
    assert '"The quick brown fox jumps."' in answers[0]


def test_input_transcription_placeholder(h: Any) -> None:
    d = h.CoreDriver()
    d.update(
        audio={"input": {"turn_detection": None, "transcription": {"model": "gpt-4o-transcribe"}}},
        output_modalities=["text"],
    )
    d.append(h.pcm16(h.speech("one two three four")))
    events = d.send({"type": "input_audio_buffer.commit"})
    assert h.types_of(events) == [
        "input_audio_buffer.committed",
        "conversation.item.added",
        "conversation.item.done",
        "conversation.item.input_audio_transcription.delta",
        "conversation.item.input_audio_transcription.delta",
        "conversation.item.input_audio_transcription.delta",
        "conversation.item.input_audio_transcription.completed",
    ]
    completed = events[-1]
    transcript = completed["transcript"]
    assert transcript.startswith("[speech ")
    assert "dBFS" in transcript
    assert "".join(e["delta"] for e in events[3:6]) == transcript
    assert completed["usage"]["type"] == "tokens"
    # deterministic, and the responder quotes it
    events = d.send({"type": "response.create"}) + d.run_until_idle()
    assert transcript in events[-2]["response"]["output"][0]["content"][0]["text"]
    item_id = completed["item_id"]
    (retrieved,) = d.send({"type": "conversation.item.retrieve", "item_id": item_id})
    assert retrieved["item"]["content"][0]["transcript"] == transcript


def test_core_rejects_negative_pace() -> None:
    with pytest.raises(ValueError, match="pace"):
        RealtimeCore(pace=-1)


def test_limits_like_the_apis(h: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """One event, the input buffer and the conversation are bounded, with the API's error
    shape; the session goes on."""
    from realtime_bridge.upstream.local import core

    monkeypatch.setattr(core, "MAX_EVENT_BYTES", 4000)
    monkeypatch.setattr(core, "MAX_INPUT_BUFFER_BYTES", 2400)
    monkeypatch.setattr(core, "MAX_CONVERSATION_BYTES", 3000)
    d = h.CoreDriver()
    d.update(audio={"input": {"turn_detection": None}})
    (too_big,) = d.send({"type": "input_audio_buffer.append", "audio": "A" * 5000})
    assert too_big["error"]["code"] == "invalid_request_error"
    chunk = {"type": "input_audio_buffer.append", "audio": h.b64(bytes(960))}
    assert d.send(chunk) == []
    assert d.send(chunk) == []
    (full,) = d.send({**chunk, "event_id": "evt_3"})
    assert full["error"]["code"] == "input_audio_buffer_full"
    assert full["error"]["event_id"] == "evt_3"
    assert [e["type"] for e in d.send({"type": "input_audio_buffer.clear"})] == [
        "input_audio_buffer.cleared"
    ]
    assert d.send(chunk) == []  # room again
    text = {"type": "input_text", "text": "x" * 1200}
    item = {
        "type": "conversation.item.create",
        "item": {"type": "message", "role": "user", "content": [text]},
    }
    added = d.send(item)
    assert added[0]["type"] == "conversation.item.added"
    d.send(item)
    (refused,) = d.send(item)
    assert refused["error"]["code"] == "conversation_too_large"
    d.send({"type": "conversation.item.delete", "item_id": added[0]["item"]["id"]})
    assert d.send(item)[0]["type"] == "conversation.item.added"  # deleting made room


def test_nulls_that_mean_not_set_are_accepted_like_the_api(h: Any) -> None:
    """What LiveKit Agents sends (PROTOCOL §10): response.create with "instructions": null, and
    a session.update with nulls for fields it leaves alone and noise_reduction: null (off)."""
    d = h.CoreDriver()
    updated = d.send(
        {
            "type": "session.update",
            "session": {
                "type": "realtime",
                "instructions": None,
                "tools": None,
                "max_output_tokens": None,
                "output_modalities": ["text"],
                "audio": {
                    "input": {"noise_reduction": None, "format": None},
                    "output": {"voice": None, "speed": None},
                },
            },
        }
    )
    (session_updated,) = updated
    assert session_updated["type"] == "session.updated"
    session = session_updated["session"]
    assert session["instructions"] == d.created["session"]["instructions"]  # unchanged
    assert session["audio"]["input"]["noise_reduction"] is None
    assert session["audio"]["output"]["voice"] == d.created["session"]["audio"]["output"]["voice"]
    events = (
        d.send(
            {
                "type": "response.create",
                "response": {
                    "instructions": None,
                    "metadata": {"client_event_id": "x"},
                    "tools": None,
                },
            }
        )
        + d.run_until_idle()
    )
    assert "error" not in h.types_of(events)
    assert events[-2]["type"] == "response.done"
    assert events[-2]["response"]["status"] == "completed"
    # A wrong type is still refused with the API's error shape.
    (error,) = d.send({"type": "response.create", "response": {"instructions": 5}})
    assert error["error"]["param"] == "response.instructions"


def test_a_transcription_session_validates_and_answers_no_response(h: Any) -> None:
    """Every event of a transcription session validates against the SDK's GA types."""
    d = h.CoreDriver(transcription=True)
    assert d.created["session"]["type"] == "transcription"
    d.send(
        {
            "type": "session.update",
            "session": {
                "type": "transcription",
                "audio": {"input": {"transcription": {"model": "whisper-1", "language": "en"}}},
            },
        }
    )
    audio = h.pcm16(np.concatenate([h.silence(300), h.speech("hello there"), h.silence(900)]))
    events = d.append(audio, chunk=960) + d.run_until_idle()
    types = h.types_of(events)
    assert "input_audio_buffer.committed" in types
    assert types[-1] == "conversation.item.input_audio_transcription.completed"
    assert not any(t.startswith(("response.", "conversation.item.added")) for t in types)
    (error,) = d.send({"type": "session.update", "session": {"type": "realtime"}})
    assert error["error"]["param"] == "session.type"
