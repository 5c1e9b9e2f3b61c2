"""Server tools seen from real clients: the official Python SDK (GA, its typed events) and a
beta client. Each gets a normal answer stating the tool's output, and nothing of the call."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
from openai import AsyncOpenAI

from realtime_bridge.server.app import BridgeServer
from tests import server_tool_impls
from tests.conftest import running_bridge
from tests.test_beta_e2e import BetaEvents

ASK = {
    "type": "message",
    "role": "user",
    "content": [{"type": "input_text", "text": "What is the weather in Paris?"}],
}


@pytest.fixture
async def bridge(tmp_path: Path) -> AsyncIterator[BridgeServer]:
    path = tmp_path / "policy.toml"
    path.write_text(server_tool_impls.WEATHER_TOOL_TOML)
    server_tool_impls.CALLS.clear()
    async with running_bridge(
        UPSTREAM="local", LOCAL_AUDIO_PACE="0", BRIDGE_POLICY_FILE=str(path)
    ) as server:
        yield server


async def test_the_official_sdk_sees_a_normal_answer_and_no_tool_events(
    bridge: BridgeServer,
) -> None:
    client = AsyncOpenAI(api_key="x", websocket_base_url=f"ws://127.0.0.1:{bridge.ws_port}/v1")
    types: list[str] = []
    transcript = ""
    async with client.realtime.connect(model="gpt-realtime") as conn:
        created = await conn.recv()
        assert created.type == "session.created"
        assert not created.session.tools  # type: ignore[union-attr]
        await conn.conversation.item.create(item=ASK)  # type: ignore[arg-type]
        await conn.response.create()

        async def until_answer() -> None:
            nonlocal transcript
            async for event in conn:  # every event parsed by the SDK's own types
                types.append(event.type)
                if event.type == "response.output_audio_transcript.delta":
                    transcript += event.delta
                if event.type == "response.done" and event.response.output:
                    return

        await asyncio.wait_for(until_answer(), 15)
    await client.close()
    assert server_tool_impls.CALLS == [{"city": "Paris"}]
    assert "sunny in Paris" in transcript
    assert "error" not in types
    assert not [t for t in types if "function_call" in t]


async def test_a_beta_client_gets_the_answer_in_its_own_shape(bridge: BridgeServer) -> None:
    client = AsyncOpenAI(api_key="x", websocket_base_url=f"ws://127.0.0.1:{bridge.ws_port}/v1")
    async with client.beta.realtime.connect(model="gpt-4o-realtime-preview") as conn:
        events = BetaEvents(conn.recv_bytes, ga_session_created=True)
        created = await events.until("session.created")
        assert not created["session"].get("tools")
        await conn.session.update(session={"modalities": ["text"]})
        updated = await events.until("session.updated")
        assert not updated["session"].get("tools")
        await conn.conversation.item.create(item=ASK)  # type: ignore[arg-type]
        await conn.response.create()
        await events.until("response.done")  # the response that called the tool
        done = await events.until("response.done")  # the bridge's follow-up
    await client.close()
    assert server_tool_impls.CALLS == [{"city": "Paris"}]
    text = "".join(e["delta"] for e in events.seen if e["type"] == "response.text.delta")
    assert "sunny in Paris" in text
    assert done["response"]["status"] == "completed"
    assert "function_call" not in orjson.dumps(events.seen).decode()
    assert "error" not in events.types()
