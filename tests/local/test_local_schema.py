"""The validator is strict enough to catch mistakes, and every flow's events pass it."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

GOOD = {
    "type": "input_audio_buffer.speech_started",
    "event_id": "event_1",
    "audio_start_ms": 10,
    "item_id": "item_1",
}


def test_validator_accepts_a_good_event(validate_event: Any) -> None:
    assert type(validate_event(json.dumps(GOOD))).__name__ == "InputAudioBufferSpeechStartedEvent"


@pytest.mark.parametrize(
    "bad",
    [
        {**GOOD, "type": "input_audio_buffer.speech_begun"},  # unknown event type
        {**GOOD, "audio_start_ms": "10"},  # wrong field type (strict: no coercion)
        {**GOOD, "audio_start_ms": 10.5},
        {k: v for k, v in GOOD.items() if k != "item_id"},  # missing required field
        {**GOOD, "audio_start": 10},  # field the SDK does not know
        {
            "type": "response.content_part.added",
            "event_id": "e",
            "response_id": "r",
            "item_id": "i",
            "output_index": 0,
            "content_index": 0,
            "part": {"type": "output_audio", "transcript": ""},  # wrong part type for this event
        },
        {
            "type": "rate_limits.updated",
            "event_id": "e",
            "rate_limits": [{"name": "tokens", "limit": 1, "remainig": 1}],
        },
    ],
)
def test_validator_rejects_bad_events(validate_event: Any, bad: dict[str, Any]) -> None:
    with pytest.raises((ValueError, AssertionError)):
        validate_event(json.dumps(bad))


EXPECTED_TYPES = {
    "session.created",
    "session.updated",
    "error",
    "input_audio_buffer.speech_started",
    "input_audio_buffer.speech_stopped",
    "input_audio_buffer.committed",
    "input_audio_buffer.cleared",
    "conversation.item.added",
    "conversation.item.done",
    "conversation.item.retrieved",
    "conversation.item.deleted",
    "conversation.item.truncated",
    "conversation.item.input_audio_transcription.delta",
    "conversation.item.input_audio_transcription.completed",
    "response.created",
    "response.output_item.added",
    "response.output_item.done",
    "response.content_part.added",
    "response.content_part.done",
    "response.output_text.delta",
    "response.output_text.done",
    "response.output_audio.delta",
    "response.output_audio.done",
    "response.output_audio_transcript.delta",
    "response.output_audio_transcript.done",
    "response.function_call_arguments.delta",
    "response.function_call_arguments.done",
    "response.done",
    "rate_limits.updated",
}


@pytest.mark.parametrize(
    "out_format",
    [{"type": "audio/pcm", "rate": 24000}, {"type": "audio/pcmu"}, {"type": "audio/pcma"}],
)
def test_every_flow_emits_only_valid_events(h: Any, out_format: dict[str, Any]) -> None:
    """One session through every flow; CoreDriver validates each event as it comes out."""
    d = h.CoreDriver(pace=1.0)
    d.update(
        audio={
            "input": {
                "transcription": {"model": "whisper-1"},
                "turn_detection": {"type": "server_vad"},
            },
            "output": {"format": out_format},
        },
        tools=[
            {
                "type": "function",
                "name": "get_time",
                "parameters": {"type": "object", "properties": {}},
            }
        ],
    )
    d.send({"type": "session.update", "session": {"type": "realtime", "modalities": ["audio"]}})
    d.append(
        h.pcm16(np.concatenate([h.silence(300), h.speech("hello there"), h.silence(700)])),
        chunk=960,
    )
    d.advance(0.3)
    d.append(h.pcm16(np.concatenate([h.speech("wait"), h.silence(700)])), chunk=960)  # barge-in
    d.run_until_idle()
    assistant = [s.item for s in d.core.conversation.items if s.item.get("role") == "assistant"]
    d.send(
        {
            "type": "conversation.item.truncate",
            "item_id": assistant[0]["id"],
            "content_index": 0,
            "audio_end_ms": 100,
        }
    )
    d.send({"type": "conversation.item.retrieve", "item_id": assistant[0]["id"]})
    d.send({"type": "conversation.item.delete", "item_id": assistant[0]["id"]})
    d.send({"type": "input_audio_buffer.clear"})
    d.send(
        {
            "type": "conversation.item.create",
            "item": {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "get_time now"}],
            },
        }
    )
    d.send({"type": "response.create", "response": {"output_modalities": ["text"]}})
    d.run_until_idle()
    call = next(e for e in d.log if e["type"] == "response.function_call_arguments.done")
    d.send(
        {
            "type": "conversation.item.create",
            "item": {"type": "function_call_output", "call_id": call["call_id"], "output": "12:00"},
        }
    )
    d.send({"type": "response.create", "response": {"output_modalities": ["text"]}})
    d.run_until_idle()
    seen = {e["type"] for e in d.log} | {d.created["type"]}
    assert seen >= EXPECTED_TYPES, EXPECTED_TYPES - seen
