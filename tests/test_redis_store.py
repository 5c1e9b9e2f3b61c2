"""Two bridge instances on one real Redis (issue 25): each sees the other's sessions, the global
``MAX_SESSIONS`` counts both, a ``DELETE`` on one ends a session on the other, and Redis going
away mid-test leaves live sessions alone and new ones admitted with local limits."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import orjson
import pytest

from realtime_bridge.server.app import BridgeServer
from tests.conftest import running_bridge, ws_url
from tests.redis_server import RedisServer
from tests.test_security import refused_upgrade

ADMIN = "admin-token-redis-0123456789"
PASSWORD = "redis-pw-5f1c0e9a"
SIGNING_KEY = "r" * 40
AUTH = {"Authorization": f"Bearer {ADMIN}"}
WITHIN_S = 5.0


@pytest.fixture
async def redis_server() -> AsyncIterator[RedisServer]:
    server = RedisServer(password=PASSWORD)
    await server.start()
    try:
        yield server
    finally:
        server.kill()


def instance_env(redis: RedisServer, **extra: Any) -> dict[str, Any]:
    return {
        "UPSTREAM": "local",
        "LOCAL_AUDIO_PACE": "0",
        "REDIS_URL": redis.url,
        "BRIDGE_ADMIN_TOKEN": ADMIN,
        "BRIDGE_SECRET_KEY": SIGNING_KEY,
        **extra,
    }


@contextlib.asynccontextmanager
async def two_instances(
    redis: RedisServer, **extra: Any
) -> AsyncIterator[tuple[BridgeServer, BridgeServer]]:
    async with (
        running_bridge(**instance_env(redis, **extra)) as a,
        running_bridge(**instance_env(redis, **extra)) as b,
    ):
        yield a, b


async def until(check: Callable[[], Any], what: str, within_s: float = WITHIN_S) -> None:
    """Poll ``check`` (sync or async) until true, bounded: a refresh elsewhere is awaited."""
    deadline = time.monotonic() + within_s
    while True:
        outcome = check()
        if asyncio.iscoroutine(outcome):
            outcome = await outcome
        if outcome:
            return
        assert time.monotonic() < deadline, f"not within {within_s} s: {what}"
        await asyncio.sleep(0.02)


async def json_of(http: aiohttp.ClientSession, url: str) -> Any:
    async with http.get(url, headers=AUTH) as response:
        return await response.json()


async def listed(http: aiohttp.ClientSession, server: BridgeServer) -> dict[str, str]:
    """Session id → instance, as ``GET /sessions`` on ``server`` shows them."""
    body = await json_of(http, f"http://127.0.0.1:{server.http_port}/sessions")
    return {s["id"]: s["instance"] for s in body["sessions"]}


async def open_session(
    http: aiohttp.ClientSession, server: BridgeServer
) -> tuple[aiohttp.ClientWebSocketResponse, str]:
    ws = await asyncio.wait_for(http.ws_connect(ws_url(server)), 10)
    await receive_until(ws, "session.created")
    return ws, ws._response.headers["X-Bridge-Session-Id"]  # type: ignore[union-attr]


async def receive_until(ws: aiohttp.ClientWebSocketResponse, kind: str) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    while True:
        msg = await asyncio.wait_for(ws.receive(), 10)
        assert msg.type is aiohttp.WSMsgType.TEXT, msg
        seen.append(orjson.loads(msg.data))
        if seen[-1]["type"] == kind:
            return seen


async def text_turn(ws: aiohttp.ClientWebSocketResponse) -> None:
    """One user message and its answer: the session is alive end to end."""
    for event in (
        {"type": "session.update", "session": {"type": "realtime", "output_modalities": ["text"]}},
        {
            "type": "conversation.item.create",
            "item": {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "Hi"}],
            },
        },
        {"type": "response.create"},
    ):
        await ws.send_str(orjson.dumps(event).decode())
    events = await receive_until(ws, "response.done")
    assert events[-1]["response"]["status"] == "completed"


async def expect_full(http: aiohttp.ClientSession, server: BridgeServer) -> None:
    status, body, _ = await refused_upgrade(http, ws_url(server))
    assert (status, body["error"]["code"]) == (503, "session_limit_reached")


async def health(http: aiohttp.ClientSession, server: BridgeServer) -> dict[str, Any]:
    body: dict[str, Any] = await json_of(http, f"http://127.0.0.1:{server.http_port}/health")
    return body


async def test_sessions_limit_and_delete_span_instances(
    redis_server: RedisServer, http: aiohttp.ClientSession
) -> None:
    async with two_instances(redis_server, MAX_SESSIONS="2") as (a, b):
        for server in (a, b):
            assert (await health(http, server))["store"] == "redis"
            info = await json_of(http, f"http://127.0.0.1:{server.http_port}/info")
            assert (info["store"], info["store_ok"]) == ("redis", True)
            assert PASSWORD not in str(info)
        ws_a, id_a = await open_session(http, a)
        ws_b, id_b = await open_session(http, b)
        expected = {id_a: a.state.shared.instance_id, id_b: b.state.shared.instance_id}  # type: ignore[union-attr]
        for server in (a, b):  # each lists both, marked with the instance that holds it
            await until(lambda s=server: _equals(listed(http, s), expected), "both listed")
        await until(lambda: a.registry.full and b.registry.full, "both see two sessions")
        await expect_full(http, a)
        await expect_full(http, b)

        # DELETE on A ends B's session: B's client gets the admin's error and close 1000.
        started = time.monotonic()
        async with http.delete(
            f"http://127.0.0.1:{a.http_port}/sessions/{id_b}", headers=AUTH
        ) as r:
            assert r.status == 200
            assert await r.json() == {"id": id_b, "status": "ending"}
        events = await receive_until(ws_b, "error")
        assert events[-1]["error"]["code"] == "session_expired"
        closing = await asyncio.wait_for(ws_b.receive(), 5)
        assert (closing.type, closing.data) == (aiohttp.WSMsgType.CLOSE, 1000)
        assert time.monotonic() - started < 1.0
        async with http.delete(
            f"http://127.0.0.1:{a.http_port}/sessions/sess_nope", headers=AUTH
        ) as r:
            assert r.status == 404
        # The place B's session held is free again, on either instance.
        await until(lambda: not a.registry.full, "A sees the place freed")
        ws_c, _ = await open_session(http, a)
        await text_turn(ws_a)
        for ws in (ws_a, ws_b, ws_c):
            await ws.close()


async def _equals(listing: Any, expected: dict[str, str]) -> bool:
    return bool(await listing == expected)


async def test_redis_down_keeps_sessions_and_admits_locally_then_shares_again(
    redis_server: RedisServer, http: aiohttp.ClientSession, captured_logs: list[str]
) -> None:
    async with two_instances(redis_server, MAX_SESSIONS="2") as (a, b):
        ws_a, _ = await open_session(http, a)
        ws_b, id_b = await open_session(http, b)
        await until(lambda: a.registry.full and b.registry.full, "both see two sessions")

        redis_server.kill()
        for server in (a, b):
            await until(
                lambda s=server: _store_ok(http, s, False), "store_ok false", within_s=WITHIN_S
            )
        async with http.get(f"http://127.0.0.1:{a.http_port}/metrics") as response:
            assert "realtime_bridge_store_up 0.0" in await response.text()
        await text_turn(ws_a)  # live sessions go on, on both
        await text_turn(ws_b)
        ws_a2, _ = await open_session(http, a)  # admitted with A's own view: 2 of its own now
        await expect_full(http, a)
        async with http.delete(
            f"http://127.0.0.1:{a.http_port}/sessions/{id_b}", headers=AUTH
        ) as r:
            assert r.status == 503
            assert (await r.json())["error"]["code"] == "store_unavailable"

        await redis_server.start()  # the same port
        for server in (a, b):
            await until(lambda s=server: _store_ok(http, s, True), "store_ok true", within_s=10)
        async with http.get(f"http://127.0.0.1:{a.http_port}/metrics") as response:
            assert "realtime_bridge_store_up 1.0" in await response.text()
        await until(lambda: _count(listed(http, b), 3), "B lists all three again")
        await until(lambda: b.registry.full, "B counts A's sessions again")
        await expect_full(http, b)
        await text_turn(ws_b)
        for ws in (ws_a, ws_a2, ws_b):
            await ws.close()
    text = "".join(captured_logs)
    assert text.count("the shared store does not answer") == 2  # once per instance
    assert text.count("the shared store answers again") == 2
    assert PASSWORD not in text


async def _store_ok(http: aiohttp.ClientSession, server: BridgeServer, ok: bool) -> bool:
    body = await health(http, server)
    return bool(body["store"] == "redis" and body["store_ok"] is ok)


async def _count(listing: Any, count: int) -> bool:
    return len(await listing) == count
