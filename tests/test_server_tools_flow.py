"""Server tools against a scripted upstream that records what the bridge sends: several calls
in one response, timeouts, cancelled turns, barge-in, the upstream dropping mid-call."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from tests.conftest import running_bridge, ws_url
from tests.fakes import UpstreamSession, receive_json, running_fake_upstream

Handler = Callable[[dict[str, Any]], Any]


@asynccontextmanager
async def tool_service(handler: Handler) -> AsyncIterator[str]:
    """A real webhook server on loopback; ``handler`` gets each request's JSON body."""

    async def tools(request: web.Request) -> web.Response:
        answer = handler(await request.json())
        if asyncio.iscoroutine(answer):
            answer = await answer
        return web.json_response(answer)

    app = web.Application()
    app.router.add_post("/tools", tools)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/tools"
    finally:
        await runner.cleanup()


def policy(tmp_path: Path, webhook: str, timeout_s: float = 5.0) -> str:
    path = tmp_path / "policy.toml"
    path.write_text(
        "".join(
            f"""
[[default.tools]]
name = "{name}"
description = "The {name} service."
webhook = "{webhook}"
timeout_s = {timeout_s}
"""
            for name in ("lookup_a", "lookup_b")
        )
    )
    return str(path)


async def send(upstream: UpstreamSession, *events: dict[str, Any]) -> None:
    for event in events:
        await upstream.ws.send_str(orjson.dumps(event).decode())


async def next_event(upstream: UpstreamSession) -> dict[str, Any]:
    return orjson.loads(await upstream.next_text())  # type: ignore[no-any-return]


def call_events(response_id: str, calls: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """A response that calls the named tools: the API's sequence, then its response.done."""
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": {"id": response_id, "status": "in_progress"}}
    ]
    items = []
    for index, (name, call_id) in enumerate(calls):
        item = {
            "id": f"item_{call_id}",
            "type": "function_call",
            "status": "completed",
            "name": name,
            "call_id": call_id,
            "arguments": '{"q":"x"}',
        }
        items.append(item)
        events += [
            {
                "type": "response.output_item.added",
                "response_id": response_id,
                "output_index": index,
                "item": {**item, "status": "in_progress", "arguments": ""},
            },
            {
                "type": "response.function_call_arguments.delta",
                "response_id": response_id,
                "item_id": item["id"],
                "call_id": call_id,
                "delta": item["arguments"],
            },
            {
                "type": "response.function_call_arguments.done",
                "response_id": response_id,
                "item_id": item["id"],
                "call_id": call_id,
                "name": name,
                "arguments": item["arguments"],
            },
            {"type": "response.output_item.done", "response_id": response_id, "item": item},
        ]
    events.append(
        {
            "type": "response.done",
            "response": {"id": response_id, "status": "completed", "output": items},
        }
    )
    return events


@asynccontextmanager
async def session_with_tools(
    tmp_path: Path,
    webhook: str,
    http: aiohttp.ClientSession,
    timeout_s: float = 5.0,
    resume: bool = True,
) -> AsyncIterator[tuple[aiohttp.ClientWebSocketResponse, UpstreamSession]]:
    """A client connected through a bridge with the tools, to a scripted upstream that has
    taken the bridge's start-up update (which must carry the tools)."""
    async with (
        running_fake_upstream() as fake,
        running_bridge(
            UPSTREAM="openai",
            OPENAI_API_KEY="sk-test",
            OPENAI_REALTIME_URL=fake.url,
            BRIDGE_POLICY_FILE=policy(tmp_path, webhook, timeout_s),
            RESUME_ON_UPSTREAM_DROP=str(resume).lower(),
        ) as bridge,
        http.ws_connect(ws_url(bridge)) as ws,
    ):
        upstream = await fake.next_session()
        await send(upstream, {"type": "session.created", "session": {"type": "realtime"}})
        update = await next_event(upstream)
        assert update["type"] == "session.update"
        assert [t["name"] for t in update["session"]["tools"]] == ["lookup_a", "lookup_b"]
        await send(upstream, {"type": "session.updated", "session": update["session"]})
        created = await receive_json(ws)
        assert created["type"] == "session.created"
        assert not created["session"].get("tools")
        yield ws, upstream


async def client_events_until(ws: aiohttp.ClientWebSocketResponse, kind: str) -> list[Any]:
    seen = []
    while True:
        event = await receive_json(ws)
        seen.append(event)
        if event["type"] == kind:
            return seen


async def test_several_calls_in_one_response_run_at_once_and_get_one_follow_up(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    both_arrived = asyncio.Event()
    arrived: list[str] = []

    async def handler(body: dict[str, Any]) -> dict[str, Any]:
        arrived.append(body["name"])
        if len(arrived) == 2:
            both_arrived.set()
        await asyncio.wait_for(both_arrived.wait(), 5)  # neither answers before both ran
        return {"answer": body["name"]}

    async with (
        tool_service(handler) as webhook,
        session_with_tools(tmp_path, webhook, http) as (ws, upstream),
    ):
        await send(upstream, *call_events("resp_1", [("lookup_a", "c1"), ("lookup_b", "c2")]))
        outputs = [await next_event(upstream), await next_event(upstream)]
        follow_up = await next_event(upstream)
        seen = await client_events_until(ws, "response.done")
    assert sorted(arrived) == ["lookup_a", "lookup_b"]
    assert {e["type"] for e in outputs} == {"conversation.item.create"}
    by_call = {e["item"]["call_id"]: e["item"] for e in outputs}
    assert by_call["c1"] == {
        "type": "function_call_output",
        "call_id": "c1",
        "output": '{"answer":"lookup_a"}',
    }
    assert orjson.loads(by_call["c2"]["output"]) == {"answer": "lookup_b"}
    assert follow_up["type"] == "response.create"
    # The client saw the response, without anything of the server's calls.
    assert [e["type"] for e in seen] == ["response.created", "response.done"]
    assert seen[-1]["response"]["output"] == []


async def test_a_slow_tool_gets_a_timeout_output_and_the_turn_goes_on(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    never = asyncio.Event()

    async def handler(_body: dict[str, Any]) -> dict[str, Any]:
        await never.wait()
        return {}

    async with (
        tool_service(handler) as webhook,
        session_with_tools(tmp_path, webhook, http, timeout_s=0.3) as (_ws, upstream),
    ):
        await send(upstream, *call_events("resp_1", [("lookup_a", "c1")]))
        output = await next_event(upstream)
        assert (await next_event(upstream))["type"] == "response.create"
        never.set()
    answer = orjson.loads(output["item"]["output"])
    assert answer["error"] == "timeout"
    assert "lookup_a" in answer["message"]


@pytest.mark.parametrize("interruption", ["response.cancel", "barge-in"])
async def test_a_cancelled_turn_records_the_output_but_asks_for_no_response(
    tmp_path: Path, http: aiohttp.ClientSession, interruption: str
) -> None:
    release = asyncio.Event()
    started = asyncio.Event()

    async def handler(_body: dict[str, Any]) -> dict[str, Any]:
        started.set()
        await asyncio.wait_for(release.wait(), 5)
        return {"late": True}

    async with (
        tool_service(handler) as webhook,
        session_with_tools(tmp_path, webhook, http) as (ws, upstream),
    ):
        await send(upstream, *call_events("resp_1", [("lookup_a", "c1")]))
        await asyncio.wait_for(started.wait(), 5)
        if interruption == "response.cancel":
            await ws.send_str('{"type":"response.cancel"}')
            assert (await next_event(upstream))["type"] == "response.cancel"
        else:
            await send(upstream, {"type": "input_audio_buffer.speech_started", "item_id": "i2"})
            assert (await receive_json(ws))["type"] == "response.created"
            assert (await receive_json(ws))["type"] == "response.done"
            assert (await receive_json(ws))["type"] == "input_audio_buffer.speech_started"
        release.set()
        output = await next_event(upstream)
        assert output["type"] == "conversation.item.create"
        assert output["item"]["call_id"] == "c1"
        # What the bridge sends next is the client's marker, not a response.create.
        await ws.send_str('{"type":"input_audio_buffer.clear"}')
        assert (await next_event(upstream))["type"] == "input_audio_buffer.clear"


async def test_without_resumption_the_upstream_dropping_mid_tool_ends_the_session_cleanly(
    tmp_path: Path, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    started = asyncio.Event()
    never = asyncio.Event()

    async def handler(_body: dict[str, Any]) -> dict[str, Any]:
        started.set()
        await never.wait()
        return {}

    async with (
        tool_service(handler) as webhook,
        session_with_tools(tmp_path, webhook, http, resume=False) as (ws, upstream),
    ):
        await send(upstream, *call_events("resp_1", [("lookup_a", "c1")]))
        await asyncio.wait_for(started.wait(), 5)
        await upstream.ws.close(code=1011)
        seen = []
        while (message := await asyncio.wait_for(ws.receive(), 5)).type is aiohttp.WSMsgType.TEXT:
            seen.append(orjson.loads(message.data))
        assert message.type is aiohttp.WSMsgType.CLOSE, message
        assert message.data == 1011  # the upstream's own close code, as for any session
        assert [e["type"] for e in seen] == ["response.created", "response.done"]
        never.set()
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]
