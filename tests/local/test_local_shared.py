"""One suite, two transports: the in-process adapter and the standalone simulator over a socket.

Every event received is validated against the SDK's GA server events (see conftest).
"""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np

TOOL = {
    "type": "function",
    "name": "get_weather",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


def user_text(text: str) -> dict[str, Any]:
    return {
        "type": "conversation.item.create",
        "item": {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": text}],
        },
    }


async def test_connect_and_session_update(h: Any, open_client: Any) -> None:
    client = await open_client(model="gpt-realtime-mini")
    created = await h.wait_for(client, "session.created")
    assert created["session"]["model"] == "gpt-realtime-mini"
    await client.send(
        {"type": "session.update", "session": {"type": "realtime", "instructions": "X"}}
    )
    updated = await h.wait_for(client, "session.updated")
    assert updated["session"]["instructions"] == "X"
    await client.send(
        {"type": "session.update", "event_id": "e9", "session": {"type": "realtime", "voice": "x"}}
    )
    error = (await h.wait_for(client, "error"))["error"]
    assert (error["code"], error["param"], error["event_id"]) == (
        "unknown_parameter",
        "session.voice",
        "e9",
    )


async def test_text_turn(h: Any, open_client: Any) -> None:
    client = await open_client()
    await client.send(
        {"type": "session.update", "session": {"type": "realtime", "output_modalities": ["text"]}}
    )
    await client.send(user_text("What time is it?"))
    await client.send({"type": "response.create"})
    done = await h.wait_for(client, "response.done")
    await h.wait_for(client, "rate_limits.updated")
    answer = done["response"]["output"][0]["content"][0]["text"]
    assert '"What time is it?"' in answer
    return


async def test_audio_turn_with_server_vad(h: Any, open_client: Any) -> None:
    client = await open_client(pace=0.0)
    audio, _ = h.read_wav("speech-hello-24k.wav")
    audio += h.pcm16(h.silence(1000))
    for part in h.chunks(audio, 960):
        await client.send({"type": "input_audio_buffer.append", "audio": h.b64(part)})
    started = await h.wait_for(client, "input_audio_buffer.speech_started")
    stopped = await h.wait_for(client, "input_audio_buffer.speech_stopped")
    assert started["item_id"] == stopped["item_id"]
    assert stopped["audio_end_ms"] > started["audio_start_ms"] + 3000
    await h.wait_for(client, "input_audio_buffer.committed")
    await h.wait_for(client, "response.created")
    done = await h.wait_for(client, "response.done")
    deltas = [e for e in client.seen if e["type"] == "response.output_audio.delta"]
    audio_out = b"".join(base64.b64decode(e["delta"]) for e in deltas)
    assert len(audio_out) > 24000  # more than half a second of speech-like audio
    assert done["response"]["status"] == "completed"
    assert done["response"]["usage"]["output_token_details"]["audio_tokens"] > 0


async def test_barge_in_cancels_and_truncates(h: Any, open_client: Any) -> None:
    client = await open_client(pace=1.0)
    await client.send(
        {
            "type": "session.update",
            "session": {
                "type": "realtime",
                "instructions": "Reply with: " + "A long story about the sea. " * 5,
            },
        }
    )
    await client.send({"type": "response.create"})
    first = await h.wait_for(client, "response.output_audio.delta")
    item_id = first["item_id"]
    speech = h.pcm16(np.concatenate([h.speech("wait stop"), h.silence(700)]))
    for part in h.chunks(speech, 4800):
        await client.send({"type": "input_audio_buffer.append", "audio": h.b64(part)})
    await h.wait_for(client, "input_audio_buffer.speech_started")
    done = await h.wait_for(client, "response.done")
    assert done["response"]["status"] == "cancelled"
    assert done["response"]["status_details"]["reason"] == "turn_detected"
    received = sum(
        len(base64.b64decode(e["delta"]))
        for e in client.seen
        if e["type"] == "response.output_audio.delta"
    )
    heard_ms = received // 48
    await client.send(
        {
            "type": "conversation.item.truncate",
            "item_id": item_id,
            "content_index": 0,
            "audio_end_ms": heard_ms,
        }
    )
    truncated = await h.wait_for(client, "conversation.item.truncated")
    assert truncated["audio_end_ms"] == heard_ms
    await client.send(
        {
            "type": "conversation.item.truncate",
            "item_id": item_id,
            "content_index": 0,
            "audio_end_ms": heard_ms + 500,
        }
    )
    error = (await h.wait_for(client, "error"))["error"]
    assert error["param"] == "audio_end_ms"


async def test_tool_call_round_trip(h: Any, open_client: Any) -> None:
    client = await open_client()
    await client.send({"type": "session.update", "session": {"type": "realtime", "tools": [TOOL]}})
    await client.send(user_text("Call get_weather for Porto please."))
    await client.send({"type": "response.create"})
    args = await h.wait_for(client, "response.function_call_arguments.done")
    assert json.loads(args["arguments"]) == {"city": "Porto"}
    await h.wait_for(client, "response.done")
    await client.send(
        {
            "type": "conversation.item.create",
            "item": {
                "type": "function_call_output",
                "call_id": args["call_id"],
                "output": '{"forecast": "rain"}',
            },
        }
    )
    await client.send({"type": "response.create"})
    transcript = await h.wait_for(client, "response.output_audio_transcript.done")
    assert "forecast is rain" in transcript["transcript"]


async def test_errors_keep_the_session_open(h: Any, open_client: Any) -> None:
    client = await open_client()
    await client.send({"type": "input_audio_buffer.commit", "event_id": "c"})
    error = (await h.wait_for(client, "error"))["error"]
    assert (error["code"], error["event_id"]) == ("input_audio_buffer_commit_empty", "c")
    await client.send({"type": "response.cancel"})
    assert (await h.wait_for(client, "error"))["error"]["code"] == "response_cancel_not_active"
    await client.send({"type": "input_audio_buffer.clear"})
    await h.wait_for(client, "input_audio_buffer.cleared")
