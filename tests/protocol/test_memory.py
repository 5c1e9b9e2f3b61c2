"""What a session remembers for a resumption, and how it is replayed."""

from __future__ import annotations

from typing import Any

import orjson

from realtime_bridge.protocol.memory import NO_TRANSCRIPT, ConversationMemory, MemoryLimits


def done(item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "conversation.item.done", "item": {"status": "completed", **item}}


def user(item_id: str, text: str) -> dict[str, Any]:
    content = [{"type": "input_text", "text": text}]
    return done({"id": item_id, "type": "message", "role": "user", "content": content})


def replayed(memory: ConversationMemory) -> list[dict[str, Any]]:
    frames, ids = memory.replay()
    items = [orjson.loads(frame)["item"] for frame in frames]
    assert ids == {item["id"] for item in items}
    return items


def test_items_are_replayed_as_text_with_their_ids() -> None:
    memory = ConversationMemory()
    audio = {"type": "input_audio", "transcript": None}
    memory.upstream_event(
        "conversation.item.added",
        {"item": {"id": "u1", "type": "message", "role": "user", "content": [audio]}},
    )
    memory.upstream_event(
        "conversation.item.input_audio_transcription.completed",
        {"item_id": "u1", "content_index": 0, "transcript": "hello there"},
    )
    spoken = [{"type": "output_audio", "transcript": "Hi! How can I help?"}]
    memory.upstream_event(
        "conversation.item.done",
        {
            "item": {
                "id": "a1",
                "type": "message",
                "role": "assistant",
                "status": "completed",
                "content": spoken,
            }
        },
    )
    call = {
        "id": "f1",
        "type": "function_call",
        "call_id": "c1",
        "name": "lookup",
        "arguments": '{"q":1}',
        "status": "completed",
    }
    memory.upstream_event("conversation.item.done", {"item": call})
    memory.upstream_event(
        "conversation.item.done",
        {"item": {"id": "o1", "type": "function_call_output", "call_id": "c1", "output": "{}"}},
    )
    assert replayed(memory) == [
        {
            "id": "u1",
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "hello there"}],
        },
        {
            "id": "a1",
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Hi! How can I help?"}],
        },
        {
            "id": "f1",
            "type": "function_call",
            "call_id": "c1",
            "name": "lookup",
            "arguments": '{"q":1}',
        },
        {"id": "o1", "type": "function_call_output", "call_id": "c1", "output": "{}"},
    ]


def test_items_cut_off_or_without_words_are_handled() -> None:
    memory = ConversationMemory()
    in_progress = {
        "id": "a1",
        "type": "message",
        "role": "assistant",
        "status": "in_progress",
        "content": [],
    }
    memory.upstream_event("conversation.item.added", {"item": in_progress})
    silent = {"type": "input_audio", "transcript": None}
    spoken = {"id": "u1", "type": "message", "role": "user", "content": [silent]}
    memory.upstream_event("conversation.item.done", done(spoken))
    assert replayed(memory) == [
        {
            "id": "u1",
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": NO_TRANSCRIPT}],
        }
    ]


def test_the_oldest_items_go_first_and_an_output_goes_with_its_call() -> None:
    memory = ConversationMemory(MemoryLimits(max_items=3))
    call = {"id": "f1", "type": "function_call", "call_id": "c1", "name": "n", "arguments": "{}"}
    memory.upstream_event("conversation.item.done", done(call))
    output = {"id": "o1", "type": "function_call_output", "call_id": "c1", "output": "1"}
    memory.upstream_event("conversation.item.done", done(output))
    for index in range(3):
        memory.upstream_event("conversation.item.done", user(f"u{index}", f"text {index}"))
    assert [item["id"] for item in replayed(memory)] == ["u0", "u1", "u2"]
    assert memory.forgotten == 1  # the call; its output went with it
    memory = ConversationMemory(MemoryLimits(max_bytes=1024))
    for index in range(20):
        memory.upstream_event("conversation.item.done", user(f"u{index}", "x" * 200))
    assert memory.bytes <= 1024
    assert [item["id"] for item in replayed(memory)][-1] == "u19"
    memory.upstream_event("conversation.item.deleted", {"item_id": "u19"})
    assert "u19" not in {item["id"] for item in replayed(memory)}


def test_the_confirmed_session_is_re_applied_without_what_the_upstream_sets() -> None:
    memory = ConversationMemory()
    assert memory.session_update("evt") is None
    session = {
        "type": "realtime",
        "id": "sess_1",
        "object": "realtime.session",
        "model": "gpt-realtime",
        "expires_at": 1,
        "instructions": "Be brief.",
    }
    memory.upstream_event("session.updated", {"session": session})
    update = orjson.loads(memory.session_update("evt_1") or "")
    assert update == {
        "type": "session.update",
        "event_id": "evt_1",
        "session": {"type": "realtime", "instructions": "Be brief."},
    }


def test_quiet_follows_responses_and_speech() -> None:
    memory = ConversationMemory()
    assert memory.quiet
    memory.upstream_event("response.created", {"response": {"id": "r1"}})
    assert not memory.quiet
    assert memory.lost() == {"id": "r1"}
    assert memory.quiet
    memory.upstream_event("input_audio_buffer.speech_started", {})
    assert not memory.quiet
    memory.upstream_event("input_audio_buffer.speech_stopped", {})
    assert memory.quiet
