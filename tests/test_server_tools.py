"""Tools the operator defines and the bridge runs: invisible to the client, answered as a
careful client would, through the local upstream and a real webhook server."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from tests import server_tool_impls
from tests.conftest import running_bridge, ws_url
from tests.test_twilio import bridge_on, phone, responses_done

WEBHOOK_KEY = "webhook-signing-key-0123456789"


@pytest.fixture
async def order_service() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """A real HTTP server on loopback playing the operator's private order system."""
    received: list[dict[str, Any]] = []

    async def tools(request: web.Request) -> web.Response:
        body = await request.read()
        stamp = request.headers["X-Bridge-Timestamp"]
        expected = hmac.new(WEBHOOK_KEY.encode(), f"{stamp}.".encode() + body, hashlib.sha256)
        assert request.headers["X-Bridge-Signature"] == f"sha256={expected.hexdigest()}"
        received.append(orjson.loads(body))
        return web.json_response({"status": "shipped", "eta": "Tuesday"})

    app = web.Application()
    app.router.add_post("/tools", tools)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/tools", received
    finally:
        await runner.cleanup()


def policy_with_tools(tmp_path: Path, webhook: str) -> str:
    path = tmp_path / "policy.toml"
    path.write_text(
        f"""
[[default.tools]]
name = "get_weather"
description = "The weather in a city."
parameters = {{ type = "object", properties = {{ city = {{ type = "string" }} }} }}
python = "tests.server_tool_impls:get_weather"

[[default.tools]]
name = "order_status"
description = "Where an order is."
parameters = {{ type = "object", properties = {{ order = {{ type = "string" }} }} }}
webhook = "{webhook}"
secret_env = "TEST_WEBHOOK_KEY"
timeout_s = 5
"""
    )
    return str(path)


async def turn(ws: aiohttp.ClientWebSocketResponse, text: str) -> list[dict[str, Any]]:
    """A typed user turn; every event the client gets until the answer's response.done."""
    item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
    await ws.send_str(orjson.dumps({"type": "conversation.item.create", "item": item}).decode())
    await ws.send_str('{"type":"response.create","response":{"output_modalities":["text"]}}')
    seen: list[dict[str, Any]] = []
    answers = 0
    while answers < 2:  # the response that called the tool, then the bridge's follow-up
        event = orjson.loads((await asyncio.wait_for(ws.receive(), 15)).data)
        seen.append(event)
        if event["type"] == "response.done":
            answers += 1
            if any(o.get("type") == "message" for o in event["response"]["output"]):
                break
    return seen


def said(events: list[dict[str, Any]]) -> str:
    kinds = ("response.output_text.delta", "response.output_audio_transcript.delta")
    return "".join(e["delta"] for e in events if e["type"] in kinds)


async def test_server_tools_run_by_the_bridge_and_invisible_to_the_client(
    tmp_path: Path,
    order_service: tuple[str, list[dict[str, Any]]],
    http: aiohttp.ClientSession,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    webhook, received = order_service
    monkeypatch.setenv("TEST_WEBHOOK_KEY", WEBHOOK_KEY)
    server_tool_impls.CALLS.clear()
    policy = policy_with_tools(tmp_path, webhook)
    async with (
        running_bridge(UPSTREAM="local", LOCAL_AUDIO_PACE="0", BRIDGE_POLICY_FILE=policy) as bridge,
        http.ws_connect(ws_url(bridge)) as ws,
    ):
        created = orjson.loads((await ws.receive()).data)
        assert created["type"] == "session.created"
        assert not created["session"].get("tools")  # the server's tools are never shown
        own = {
            "type": "function",
            "name": "open_door",
            "description": "Opens a door.",
            "parameters": {"type": "object", "properties": {}},
        }
        await ws.send_str(
            orjson.dumps(
                {"type": "session.update", "session": {"type": "realtime", "tools": [own]}}
            ).decode()
        )
        updated = orjson.loads((await asyncio.wait_for(ws.receive(), 10)).data)
        assert updated["type"] == "session.updated"
        assert [t["name"] for t in updated["session"]["tools"]] == ["open_door"]

        events = await turn(ws, "What is the weather in Paris?")
        assert server_tool_impls.CALLS == [{"city": "Paris"}]
        assert not [e for e in events if "function_call" in orjson.dumps(e).decode()]
        assert not [e for e in events if e["type"] == "error"]
        assert "sunny in Paris" in said(events)

        events = await turn(ws, "Please check order_status for order A-17")
        assert len(received) == 1
        assert received[0]["name"] == "order_status"
        assert set(received[0]) == {"name", "arguments", "call_id", "session_id"}
        assert not [e for e in events if "function_call" in orjson.dumps(e).decode()]
        assert "shipped" in said(events)

        # The client's own tool still reaches it, untouched.
        item = {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "open_door please"}],
        }
        await ws.send_str(orjson.dumps({"type": "conversation.item.create", "item": item}).decode())
        await ws.send_str('{"type":"response.create"}')
        while True:
            event = orjson.loads((await asyncio.wait_for(ws.receive(), 10)).data)
            if event["type"] == "response.done":
                break
        assert [o["name"] for o in event["response"]["output"]] == ["open_door"]
        async with http.get(f"http://127.0.0.1:{bridge.http_port}/metrics") as response:
            metrics = await response.text()
    for tool in ("get_weather", "order_status"):
        assert f'realtime_bridge_tool_calls_total{{outcome="ok",tool="{tool}"}} 1.0' in metrics
        assert f'realtime_bridge_tool_call_seconds_count{{tool="{tool}"}} 1.0' in metrics


async def test_a_failing_tool_gets_an_error_output_the_model_speaks_about(
    tmp_path: Path, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(
        """
[[default.tools]]
name = "failing_lookup"
description = "Looks something up, and fails."
python = "tests.server_tool_impls:failing_lookup"
"""
    )
    server_tool_impls.CALLS.clear()
    caplog.set_level("INFO")
    async with (
        running_bridge(
            UPSTREAM="local", LOCAL_AUDIO_PACE="0", BRIDGE_POLICY_FILE=str(path)
        ) as bridge,
        http.ws_connect(ws_url(bridge)) as ws,
    ):
        await ws.receive()
        events = await turn(ws, "use failing_lookup for the secret code 4242")
        assert len(server_tool_impls.CALLS) == 1
        assert not [e for e in events if e["type"] == "error"]
        assert "failing_lookup" in said(events)  # the model states the tool's error output
    tool_lines = [r for r in caplog.records if r.name.startswith("realtime_bridge.tools")]
    assert tool_lines
    assert "4242" not in caplog.text
    assert "private detail" not in caplog.text


async def test_a_phone_call_uses_a_server_tool(tmp_path: Path) -> None:
    """A Twilio call, where the operator's policy makes the first answer call a tool: the
    bridge runs it and the caller hears the answer stating its output."""
    path = tmp_path / "policy.toml"
    path.write_text(
        '[default.session]\ntool_choice = "required"\n' + server_tool_impls.WEATHER_TOOL_TOML
    )
    server_tool_impls.CALLS.clear()
    async with (
        bridge_on("local", TWILIO_GREETING="Hello", BRIDGE_POLICY_FILE=str(path)) as bridge,
        phone(bridge, realtime=False) as caller,
    ):
        for _ in range(200):  # until the answer after the tool is done (bounded)
            if responses_done(bridge) >= 2 and len(caller.audio) > 8000:
                break
            await asyncio.sleep(0.05)
        done = responses_done(bridge)
    assert len(server_tool_impls.CALLS) == 1
    assert done == 2  # the greeting's response called the tool; the follow-up spoke
    assert len(caller.audio) / 8000 > 1.0  # seconds of answer the caller heard


async def test_a_blocked_sync_tool_holds_no_other_session(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    """A sync tool runs in a thread: while it is blocked, another session is answered."""
    path = tmp_path / "policy.toml"
    path.write_text(
        """
[[default.tools]]
name = "blocking_tool"
description = "Holds its thread."
python = "tests.server_tool_impls:blocking_tool"
"""
    )
    server_tool_impls.STARTED.clear()
    server_tool_impls.RELEASE.clear()
    async with (
        running_bridge(
            UPSTREAM="local", LOCAL_AUDIO_PACE="0", BRIDGE_POLICY_FILE=str(path)
        ) as bridge,
        http.ws_connect(ws_url(bridge)) as caller,
        http.ws_connect(ws_url(bridge)) as other,
    ):
        await caller.receive()
        await other.receive()
        answer = asyncio.create_task(turn(caller, "use blocking_tool now"))
        assert await asyncio.to_thread(server_tool_impls.STARTED.wait, 10)
        await other.send_str('{"type":"conversation.item.retrieve","item_id":"none"}')
        reply = orjson.loads((await asyncio.wait_for(other.receive(), 10)).data)
        assert reply["type"] == "error"
        assert not server_tool_impls.RELEASE.is_set()  # answered while the tool was blocked
        server_tool_impls.RELEASE.set()
        events = await answer
    assert "released" in said(events)
