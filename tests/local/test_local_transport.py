"""The in-process adapter's channel semantics and the standalone server's WebSocket contract."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import orjson
import pytest
import websockets

from realtime_bridge.errors import UpstreamError
from realtime_bridge.upstream.base import UpstreamClosed, UpstreamRequest
from realtime_bridge.upstream.local import LocalUpstream
from realtime_bridge.upstream.local.server import running_simulator, serve_simulator

SPEAK = orjson.dumps(
    {
        "type": "session.update",
        "session": {"type": "realtime", "instructions": "Reply with: One two three four."},
    }
).decode()


async def test_local_upstream_identity_and_model(h: Any) -> None:
    upstream = LocalUpstream(pace=0)
    assert (upstream.kind, upstream.url) == ("local", "local://realtime")
    conn = await upstream.connect(UpstreamRequest("s1", "gpt-realtime-mini"))
    sink = h.QueueSink()
    conn.attach(sink)
    first = await sink.next_text(2)
    assert orjson.loads(first)["session"]["model"] == "gpt-realtime-mini"
    await conn.close()
    await upstream.aclose()
    with pytest.raises(ValueError, match="pace"):
        LocalUpstream(pace=-1)


async def test_close_is_clean_and_final(h: Any) -> None:
    conn, sink = await h.connect_local(pace=1.0)
    await sink.next_text(2)
    conn.send(SPEAK)
    conn.send('{"type":"response.create"}')
    await sink.next_text(2)  # the response is under way, paced over the next second or so
    assert conn.core.next_deadline() is not None
    delivered = len(sink.calls)
    await conn.close(1000, "bye")
    await conn.close()  # idempotent
    with pytest.raises(UpstreamError):
        conn.send('{"type":"response.create"}')
    conn.resume_reading()
    sink.drain()
    # the events still scheduled (one every 100 ms of audio) never reach the sink, nor a close
    with pytest.raises(TimeoutError):
        await sink.next(0.3)
    assert len(sink.calls) == delivered
    assert not any(isinstance(c, UpstreamClosed) for c in sink.calls)


async def test_idle_session_schedules_nothing(h: Any) -> None:
    conn, sink = await h.connect_local(pace=1.0)
    await sink.next_text(2)
    assert conn.core.next_deadline() is None
    with pytest.raises(TimeoutError):
        await sink.next(0.05)
    await conn.close()


async def test_paced_audio_arrives_over_time(h: Any) -> None:
    conn, sink = await h.connect_local(pace=2.0)
    await sink.next_text(2)
    start = time.monotonic()  # the core schedules from when it gets the event
    conn.send(SPEAK)
    conn.send('{"type":"response.create"}')
    audio_ms = 0.0
    while True:
        event = orjson.loads(await sink.next_text(5))
        if event["type"] == "response.output_audio.delta":
            audio_ms += len(event["delta"]) * 3 / 4 / 48
        if event["type"] == "response.done":
            break
    elapsed = time.monotonic() - start
    # at pace 2 the last chunk leaves after (audio - one chunk) / 2
    assert (audio_ms - 100) / 2000 - 0.05 <= elapsed <= audio_ms / 2000 + 0.5
    await conn.close()


async def test_server_subprotocol_model_and_paths() -> None:
    async with running_simulator("127.0.0.1", 0, 0.0) as port:
        async with websockets.connect(
            f"ws://127.0.0.1:{port}/v1/realtime?model=gpt-realtime-2", subprotocols=["realtime"]
        ) as ws:
            assert ws.subprotocol == "realtime"
            assert ws.response is not None
            assert ws.response.headers["x-request-id"].startswith("req_")
            created = orjson.loads(await asyncio.wait_for(ws.recv(), 2))
            assert created["session"]["model"] == "gpt-realtime-2"
        async with websockets.connect(f"ws://127.0.0.1:{port}/") as ws:
            assert ws.subprotocol is None
            created = orjson.loads(await asyncio.wait_for(ws.recv(), 2))
            assert created["type"] == "session.created"
            assert created["session"]["model"] == "gpt-realtime"


@pytest.mark.parametrize(
    "how",
    [
        {"additional_headers": {"OpenAI-Beta": "realtime=v1"}},
        {"subprotocols": ["realtime", "openai-beta.realtime-v1"]},
    ],
)
async def test_server_refuses_the_beta_shape(h: Any, how: dict[str, Any]) -> None:
    async with running_simulator("127.0.0.1", 0, 0.0) as port:
        ws = await websockets.connect(f"ws://127.0.0.1:{port}/v1/realtime", **how)
        try:
            text = await asyncio.wait_for(ws.recv(), 2)
            h.check_server_event(text)
            assert orjson.loads(text)["error"]["code"] == "beta_api_shape_disabled"
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 2)
        finally:
            await ws.close()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 4000


async def test_server_shutdown_closes_open_sessions() -> None:
    async with aiohttp.ClientSession() as http:
        async with running_simulator("127.0.0.1", 0, 1.0) as port:
            ws = await http.ws_connect(f"http://127.0.0.1:{port}/v1/realtime")
            await asyncio.wait_for(ws.receive(), 2)
            reader = asyncio.create_task(ws.receive())
        msg = await asyncio.wait_for(reader, 2)
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert ws.close_code == 1001


async def test_serve_simulator_reports_its_url() -> None:
    ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(serve_simulator("127.0.0.1", 0, 0.0, on_ready=ready.set_result))
    url = await asyncio.wait_for(ready, 5)
    assert url.startswith("ws://127.0.0.1:")
    assert url.endswith("/v1/realtime")
    async with websockets.connect(url) as ws:
        assert orjson.loads(await asyncio.wait_for(ws.recv(), 2))["type"] == "session.created"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_simulator_http_errors_are_json_in_the_apis_shape() -> None:
    from realtime_bridge.upstream.local.server import running_simulator

    async with running_simulator() as port, aiohttp.ClientSession() as http:
        base = f"http://127.0.0.1:{port}"
        for method, path, status in (
            ("GET", "/v1/realtime", 400),  # not an upgrade
            ("GET", "/nope", 404),
            ("POST", "/v1/realtime", 405),
        ):
            async with http.request(method, base + path) as response:
                assert response.status == status
                assert response.content_type == "application/json"
                error = (await response.json())["error"]
                assert set(error) == {"message", "type", "param", "code"}
                assert error["type"] == "invalid_request_error"
                assert error["message"]
