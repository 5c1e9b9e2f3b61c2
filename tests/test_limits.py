"""Limits and lifetimes (SPEC §6, §8, §9): the session cap, the message size cap, idle and
maximum lifetime, the admin endpoints, and the graceful drain with live sessions."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from realtime_bridge.server.app import BridgeServer
from tests.conftest import TEST_KEY, bridge_settings, running_bridge, wait_for_sessions, ws_url
from tests.fakes import FakeUpstream, UpstreamSession, echo, receive_json
from tests.test_security import refused_upgrade

ADMIN = "adm-limits-77aa11bb"


async def expect_close(ws: aiohttp.ClientWebSocketResponse, code: int) -> None:
    msg = await asyncio.wait_for(ws.receive(), 5)
    assert msg.type is aiohttp.WSMsgType.CLOSE, msg
    assert msg.data == code


async def round_trip(ws: aiohttp.ClientWebSocketResponse, tag: str) -> None:
    frame = f'{{"type":"probe","tag":"{tag}"}}'
    await ws.send_str(frame)
    assert (await asyncio.wait_for(ws.receive(), 5)).data == frame


# ---------------------------------------------------------------------------------------------
# MAX_SESSIONS


async def test_max_sessions_refuses_the_next_client_with_503_and_frees_on_close(
    openai_env: dict[str, str], fake_upstream: FakeUpstream, http: aiohttp.ClientSession
) -> None:
    fake_upstream.behaviour = echo
    async with running_bridge(**openai_env, MAX_SESSIONS="2") as server:
        first = await http.ws_connect(ws_url(server))
        second = await http.ws_connect(ws_url(server))
        await fake_upstream.next_session()
        await fake_upstream.next_session()
        for _ in range(3):
            status, body, _ = await refused_upgrade(http, ws_url(server))
            assert status == 503
            assert body["error"]["code"] == "session_limit_reached"
            assert "2" in body["error"]["message"]
        assert fake_upstream.connection_attempts == 2
        health = await (await http.get(f"http://127.0.0.1:{server.http_port}/health")).json()
        assert health["sessions"] == 2
        # The live sessions are unaffected by the refusals...
        await round_trip(first, "a")
        await round_trip(second, "b")
        # ...and a freed slot is usable again.
        await first.close()
        await wait_for_sessions(server, 1)
        async with http.ws_connect(ws_url(server)) as third:
            await fake_upstream.next_session()
            await round_trip(third, "c")
        await second.close()
        await wait_for_sessions(server, 0)
        assert server.registry.total == 3


# ---------------------------------------------------------------------------------------------
# MAX_MESSAGE_BYTES


@pytest.mark.parametrize("kind", ["text", "binary"])
async def test_oversized_message_closes_only_that_client_with_1009(
    openai_env: dict[str, str],
    fake_upstream: FakeUpstream,
    http: aiohttp.ClientSession,
    kind: str,
) -> None:
    fake_upstream.behaviour = echo
    async with running_bridge(**openai_env, MAX_MESSAGE_BYTES="4096") as server:
        async with http.ws_connect(ws_url(server)) as big, http.ws_connect(ws_url(server)) as ok:
            await fake_upstream.next_session()
            await fake_upstream.next_session()
            await round_trip(big, "before")
            # Just under the limit passes; just over it closes.
            under = '{"type":"probe","pad":"' + "a" * (4096 - 30) + '"}'
            assert len(under) <= 4096
            await big.send_str(under)
            assert (await asyncio.wait_for(big.receive(), 5)).data == under
            if kind == "text":
                await big.send_str('{"type":"x","pad":"' + "a" * 4096 + '"}')
            else:
                await big.send_bytes(b"\x00" * 4098)
            await expect_close(big, 1009)
            # The other session keeps working.
            for i in range(5):
                await round_trip(ok, f"still-{i}")
            await wait_for_sessions(server, 1)


# ---------------------------------------------------------------------------------------------
# Idle timeout and maximum lifetime


async def test_idle_timeout_ends_with_error_then_1000_and_activity_postpones_it(
    openai_env: dict[str, str], fake_upstream: FakeUpstream, http: aiohttp.ClientSession
) -> None:
    fake_upstream.behaviour = echo
    async with running_bridge(**openai_env, SESSION_IDLE_TIMEOUT_S="0.4") as server:
        async with http.ws_connect(ws_url(server)) as ws:
            started = time.monotonic()
            # Client messages every 0.1 s keep it alive well past the idle timeout.
            for i in range(8):
                await round_trip(ws, f"k{i}")
                await asyncio.sleep(0.1)  # pacing the client, not waiting for an event
            active_for = time.monotonic() - started
            assert active_for > 0.8
            quiet_from = time.monotonic()
            event = await receive_json(ws)
            idle_for = time.monotonic() - quiet_from
            assert event["type"] == "error"
            assert event["error"]["code"] == "session_idle_timeout"
            assert 0.25 <= idle_for < 1.5
            await expect_close(ws, 1000)
        await wait_for_sessions(server, 0)
        upstream = fake_upstream.sessions[0]
        await asyncio.wait_for(upstream.closed.wait(), 2)


async def test_upstream_traffic_alone_does_not_keep_an_idle_session(
    openai_env: dict[str, str], fake_upstream: FakeUpstream, http: aiohttp.ClientSession
) -> None:
    async def chatty(session: UpstreamSession) -> None:
        for i in range(1000):
            await session.ws.send_str(f'{{"type":"tick","n":{i}}}')
            await asyncio.sleep(0.05)  # the fake upstream's pace

    fake_upstream.behaviour = chatty
    async with running_bridge(**openai_env, SESSION_IDLE_TIMEOUT_S="0.3") as server:
        async with http.ws_connect(ws_url(server)) as ws:
            while True:
                event = await receive_json(ws)
                if event["type"] == "error":
                    break
            assert event["error"]["code"] == "session_idle_timeout"
            await expect_close(ws, 1000)
        await wait_for_sessions(server, 0)


async def test_max_duration_ends_even_an_active_session(
    openai_env: dict[str, str], fake_upstream: FakeUpstream, http: aiohttp.ClientSession
) -> None:
    fake_upstream.behaviour = echo
    async with running_bridge(
        **openai_env, SESSION_MAX_DURATION_S="0.5", SESSION_IDLE_TIMEOUT_S="0.3"
    ) as server:
        async with http.ws_connect(ws_url(server)) as ws:
            started = time.monotonic()
            event = None
            while event is None:
                await ws.send_str('{"type":"probe"}')
                msg = await asyncio.wait_for(ws.receive(), 5)
                if msg.json()["type"] == "error":
                    event = msg.json()
                else:
                    await asyncio.sleep(0.05)  # pacing the client
            lived = time.monotonic() - started
            assert event["error"]["code"] == "session_expired"
            assert "0.5" in event["error"]["message"]
            assert 0.45 <= lived < 1.5
            await expect_close(ws, 1000)
        await wait_for_sessions(server, 0)


# ---------------------------------------------------------------------------------------------
# Admin endpoints


async def test_admin_endpoints_are_404_without_the_variable_and_say_how_to_enable(
    openai_env: dict[str, str], fake_upstream: FakeUpstream, http: aiohttp.ClientSession
) -> None:
    async with running_bridge(**openai_env) as server, http.ws_connect(ws_url(server)) as ws:
        await fake_upstream.next_session()
        session_id = ws._response.headers["X-Bridge-Session-Id"]
        base = f"http://127.0.0.1:{server.http_port}"
        for method, path in (("GET", "/sessions"), ("DELETE", f"/sessions/{session_id}")):
            for headers in ({}, {"Authorization": "Bearer anything"}):
                async with http.request(method, base + path, headers=headers) as response:
                    assert response.status == 404
                    body = await response.json()
                    assert body["error"]["code"] == "admin_disabled"
                    assert "BRIDGE_ADMIN_TOKEN" in body["error"]["message"]
                    assert set(body["error"]) == {"code", "message"}
        assert len(server.registry) == 1


async def test_admin_endpoints_need_the_bearer_token(
    openai_env: dict[str, str], fake_upstream: FakeUpstream, http: aiohttp.ClientSession
) -> None:
    async with (
        running_bridge(**openai_env, BRIDGE_ADMIN_TOKEN=ADMIN) as server,
        http.ws_connect(ws_url(server)) as ws,
    ):
        await fake_upstream.next_session()
        session_id = ws._response.headers["X-Bridge-Session-Id"]
        base = f"http://127.0.0.1:{server.http_port}"
        bad_headers: list[dict[str, str]] = [
            {},
            {"Authorization": "Bearer wrong"},
            {"Authorization": f"Bearer {ADMIN}x"},
            {"Authorization": f"Basic {ADMIN}"},
            {"Authorization": ADMIN},
        ]
        for headers in bad_headers:
            for method, path in (("GET", "/sessions"), ("DELETE", f"/sessions/{session_id}")):
                async with http.request(method, base + path, headers=headers) as response:
                    assert response.status == 401, (method, headers)
                    body = await response.json()
                    assert body["error"]["code"] == "unauthorized"
                    assert ADMIN not in await response.text()
                    assert response.headers["WWW-Authenticate"].startswith("Bearer")
        async with http.post(base + "/sessions") as response:
            assert response.status == 405
            assert (await response.json())["error"]["code"] == "method_not_allowed"
        assert len(server.registry) == 1  # nothing was ended


async def test_admin_lists_and_ends_sessions(
    openai_env: dict[str, str],
    fake_upstream: FakeUpstream,
    http: aiohttp.ClientSession,
    captured_logs: list[str],
) -> None:
    fake_upstream.behaviour = echo
    auth = {"Authorization": f"Bearer {ADMIN}"}
    async with running_bridge(**openai_env, BRIDGE_ADMIN_TOKEN=ADMIN) as server:
        base = f"http://127.0.0.1:{server.http_port}"
        async with (
            http.ws_connect(ws_url(server, query="?model=gpt-realtime-mini")) as a,
            http.ws_connect(ws_url(server)) as b,
        ):
            upstream_a = await fake_upstream.next_session()
            await fake_upstream.next_session()
            id_a = a._response.headers["X-Bridge-Session-Id"]
            id_b = b._response.headers["X-Bridge-Session-Id"]
            await round_trip(a, "x")
            listing = await (await http.get(base + "/sessions", headers=auth)).json()
            by_id = {s["id"]: s for s in listing["sessions"]}
            assert set(by_id) == {id_a, id_b}
            first = by_id[id_a]
            for key in (
                "id",
                "started_at",
                "client",
                "model",
                "upstream",
                "protocol",
                "bytes",
                "events",
                "audio_seconds",
                "usage",
            ):
                assert key in first
            assert first["model"] == "gpt-realtime-mini"
            assert first["upstream"] == "openai"
            assert first["client"] == "127.0.0.1"
            assert first["events"]["client_to_upstream"] == 1
            assert first["events"]["upstream_to_client"] == 1
            assert first["bytes"]["client_to_upstream"] > 0
            assert TEST_KEY not in str(listing)

            async with http.delete(base + "/sessions/sess_doesnotexist", headers=auth) as r:
                assert r.status == 404
                assert set((await r.json())["error"]) == {"code", "message"}

            async with http.delete(base + f"/sessions/{id_a}", headers=auth) as r:
                assert r.status == 200
                assert (await r.json())["id"] == id_a
            event = await receive_json(a)
            assert event["type"] == "error"
            assert event["error"]["code"] == "session_expired"
            await expect_close(a, 1000)
            await asyncio.wait_for(upstream_a.closed.wait(), 2)
            await wait_for_sessions(server, 1)
            # The other session is untouched.
            await round_trip(b, "y")
            listing = await (await http.get(base + "/sessions", headers=auth)).json()
            assert [s["id"] for s in listing["sessions"]] == [id_b]
            # Deleting an ended session is a 404.
            async with http.delete(base + f"/sessions/{id_a}", headers=auth) as r:
                assert r.status == 404
    assert ADMIN not in "".join(captured_logs)


# ---------------------------------------------------------------------------------------------
# Graceful drain (SPEC §9)


async def test_drain_with_live_sessions(
    openai_env: dict[str, str], fake_upstream: FakeUpstream, http: aiohttp.ClientSession
) -> None:
    """Three live sessions; one finishes during the grace period, two are still there at the
    end and get ``server_shutting_down`` + 1001; /health says draining; new clients are refused."""
    fake_upstream.behaviour = echo
    grace = 0.6
    server = BridgeServer(bridge_settings(**openai_env, SHUTDOWN_GRACE_S=str(grace)))
    await server.start()
    base = f"http://127.0.0.1:{server.http_port}"
    clients = [await http.ws_connect(ws_url(server)) for _ in range(3)]
    upstreams = [await fake_upstream.next_session() for _ in clients]
    for i, ws in enumerate(clients):
        await round_trip(ws, f"live-{i}")
    started = time.monotonic()
    shutdown = asyncio.create_task(server.shutdown())
    await asyncio.sleep(0)  # let the drain begin
    async with http.get(base + "/health") as response:
        assert response.status == 503
        assert await response.json() == {"status": "draining"}
    status, body, _ = await refused_upgrade(http, ws_url(server))
    assert (status, body["error"]["code"]) == (503, "server_shutting_down")
    # Live sessions keep working during the grace period.
    await round_trip(clients[0], "during-grace")
    await clients[0].close()
    finished_early = time.monotonic() - started
    endings = []
    for ws in clients[1:]:
        event = await receive_json(ws)
        got_at = time.monotonic() - started
        assert event["error"]["code"] == "server_shutting_down"
        await expect_close(ws, 1001)
        endings.append(got_at)
    took = await asyncio.wait_for(shutdown, 10)
    for upstream in upstreams:
        await asyncio.wait_for(upstream.closed.wait(), 2)
    assert fake_upstream.connection_attempts == 3
    print(
        f"\ndrain: grace {grace} s, 1 session left by itself at {finished_early:.3f} s, "
        f"2 told to end at {', '.join(f'{t:.3f}' for t in endings)} s, "
        f"shutdown() returned after {took:.3f} s"
    )
    assert grace <= took < grace + 1.0
    assert all(grace * 0.9 <= t < grace + 1.0 for t in endings)


async def test_drain_ends_early_when_sessions_finish_within_the_grace(
    openai_env: dict[str, str], fake_upstream: FakeUpstream, http: aiohttp.ClientSession
) -> None:
    fake_upstream.behaviour = echo
    server = BridgeServer(bridge_settings(**openai_env, SHUTDOWN_GRACE_S="5"))
    await server.start()
    clients = [await http.ws_connect(ws_url(server)) for _ in range(3)]
    for _ in clients:
        await fake_upstream.next_session()
    started = time.monotonic()
    shutdown = asyncio.create_task(server.shutdown())
    for i, ws in enumerate(clients):
        await round_trip(ws, f"finishing-{i}")
        await ws.close()
    took = await asyncio.wait_for(shutdown, 5)
    elapsed = time.monotonic() - started
    print(f"\ndrain: grace 5 s, all 3 sessions finished by themselves; took {took:.3f} s")
    assert took < 1.0
    assert elapsed < 1.5


async def test_drain_with_no_sessions_is_immediate(openai_env: dict[str, str]) -> None:
    server = BridgeServer(bridge_settings(**openai_env, SHUTDOWN_GRACE_S="5"))
    await server.start()
    took = await server.shutdown()
    assert took < 0.5
