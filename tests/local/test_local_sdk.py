"""The official Python SDK drives the local upstream as it would drive the real API: the
standalone simulator directly, the bridge on its in-process local upstream, and the bridge relaying
to the simulator over a real socket (``OPENAI_REALTIME_URL``)."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
import pytest
from openai import AsyncOpenAI
from openai.resources.realtime.realtime import AsyncRealtimeConnection

TIMEOUT = 10.0
ENDPOINTS = ("simulator", "bridge-local", "bridge-to-simulator")


@asynccontextmanager
async def endpoint(kind: str, pace: float) -> AsyncIterator[int]:
    """The port an SDK client connects to, for each way of reaching the local upstream."""
    from realtime_bridge.upstream.local.adapter import LocalUpstream
    from realtime_bridge.upstream.local.server import running_simulator
    from tests.conftest import running_bridge

    if kind == "bridge-local":
        async with running_bridge(LocalUpstream(pace=pace), UPSTREAM="local") as bridge:
            yield bridge.ws_port
        return
    async with running_simulator("127.0.0.1", 0, pace) as port:
        if kind == "simulator":
            yield port
            return
        url = f"ws://127.0.0.1:{port}/v1/realtime"
        async with running_bridge(
            UPSTREAM="openai", OPENAI_API_KEY="sk-test", OPENAI_REALTIME_URL=url
        ) as bridge:
            yield bridge.ws_port


@pytest.fixture(params=ENDPOINTS)
async def simulator_port(request: pytest.FixtureRequest) -> AsyncIterator[int]:
    async with endpoint(request.param, 0.0) as port:
        yield port


@pytest.fixture(params=ENDPOINTS)
async def realtime_simulator_port(request: pytest.FixtureRequest) -> AsyncIterator[int]:
    async with endpoint(request.param, 1.0) as port:
        yield port


@asynccontextmanager
async def sdk(port: int, model: str = "gpt-realtime") -> AsyncIterator[AsyncRealtimeConnection]:
    client = AsyncOpenAI(api_key="x", websocket_base_url=f"ws://127.0.0.1:{port}/v1")
    async with client.realtime.connect(model=model) as conn:
        yield conn
    await client.close()


async def until(
    conn: AsyncRealtimeConnection, event_type: str, seen: list[Any] | None = None
) -> Any:
    async def loop() -> Any:
        while True:
            event = await conn.recv()
            if seen is not None:
                seen.append(event)
            if event.type == event_type:
                return event

    return await asyncio.wait_for(loop(), TIMEOUT)


async def test_sdk_text_turn(simulator_port: int) -> None:
    async with sdk(simulator_port, "gpt-realtime-mini") as conn:
        created = await until(conn, "session.created")
        assert created.session.model == "gpt-realtime-mini"
        await conn.session.update(session={"type": "realtime", "output_modalities": ["text"]})
        await until(conn, "session.updated")
        await conn.conversation.item.create(
            item={
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "Hi, who are you?"}],
            }
        )
        await conn.response.create()
        text = await until(conn, "response.output_text.done")
        assert "Hi, who are you?" in text.text
        done = await until(conn, "response.done")
        assert done.response.status == "completed"
        assert done.response.usage is not None
        assert done.response.usage.total_tokens
        await until(conn, "rate_limits.updated")


async def test_sdk_audio_turn_with_server_vad(h: Any, simulator_port: int) -> None:
    audio, rate = h.read_wav("speech-three-turns-24k.wav")
    assert rate == 24000
    async with sdk(simulator_port) as conn:
        await until(conn, "session.created")
        await conn.session.update(
            session={
                "type": "realtime",
                "audio": {
                    "input": {
                        "transcription": {"model": "gpt-4o-mini-transcribe"},
                        "turn_detection": {
                            "type": "server_vad",
                            "silence_duration_ms": 500,
                            "interrupt_response": False,
                        },
                    }
                },
            }
        )
        await until(conn, "session.updated")
        for part in h.chunks(audio, 960):
            await conn.input_audio_buffer.append(audio=h.b64(part))
        seen: list[Any] = []
        for _ in range(3):
            await until(conn, "input_audio_buffer.speech_stopped", seen)
        transcripts = [
            e for e in seen if e.type == "conversation.item.input_audio_transcription.completed"
        ]
        assert len(transcripts) >= 2
        assert transcripts[0].transcript.startswith("[speech")
        done = await until(conn, "response.done", seen)
        assert done.response.output[0].content[0].transcript
        deltas = [e for e in seen if e.type == "response.output_audio.delta"]
        assert deltas
        assert all(base64.b64decode(e.delta) for e in deltas)


async def test_sdk_barge_in(h: Any, realtime_simulator_port: int) -> None:
    async with sdk(realtime_simulator_port) as conn:
        await until(conn, "session.created")
        await conn.session.update(
            session={
                "type": "realtime",
                "instructions": "Reply with: " + "Once upon a time there was a bridge. " * 5,
            }
        )
        await conn.response.create()
        seen: list[Any] = []
        first = await until(conn, "response.output_audio.delta", seen)
        await until(conn, "response.output_audio.delta", seen)
        speech = h.pcm16(np.concatenate([h.speech("no wait"), h.silence(600)]))
        for part in h.chunks(speech, 960):
            await conn.input_audio_buffer.append(audio=h.b64(part))
        await until(conn, "input_audio_buffer.speech_started", seen)
        done = await until(conn, "response.done", seen)
        assert done.response.status == "cancelled"
        played_ms = (
            sum(
                len(base64.b64decode(e.delta))
                for e in seen
                if e.type == "response.output_audio.delta"
            )
            // 48
        )
        await conn.conversation.item.truncate(
            item_id=first.item_id, content_index=0, audio_end_ms=played_ms
        )
        truncated = await until(conn, "conversation.item.truncated", seen)
        assert truncated.audio_end_ms == played_ms
        # the user's turn then gets its own answer
        if not any(e.type == "input_audio_buffer.committed" for e in seen):
            await until(conn, "input_audio_buffer.committed", seen)
        created = [e for e in seen if e.type == "response.created"]
        if len(created) < 2:
            created.append(await until(conn, "response.created", seen))
        assert created[-1].response.id != done.response.id


async def test_sdk_tool_call_round_trip(simulator_port: int) -> None:
    tool = {
        "type": "function",
        "name": "lookup_order",
        "description": "Find an order",
        "parameters": {
            "type": "object",
            "properties": {"order_id": {"type": "integer"}},
            "required": ["order_id"],
        },
    }
    async with sdk(simulator_port) as conn:
        await until(conn, "session.created")
        await conn.session.update(
            session={"type": "realtime", "output_modalities": ["text"], "tools": [tool]}
        )
        await conn.conversation.item.create(
            item={
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "Please lookup order 4711."}],
            }
        )
        await conn.response.create()
        call = await until(conn, "response.function_call_arguments.done")
        assert call.name == "lookup_order"
        assert json.loads(call.arguments) == {"order_id": 4711}
        await until(conn, "response.done")
        await conn.conversation.item.create(
            item={
                "type": "function_call_output",
                "call_id": call.call_id,
                "output": json.dumps({"status": "shipped"}),
            }
        )
        await conn.response.create()
        text = await until(conn, "response.output_text.done")
        assert "status is shipped" in text.text
