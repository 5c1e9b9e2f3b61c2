"""The relay over real loopback sockets: handshake, byte-exact pass-through, closes and errors."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import orjson
import pytest

from realtime_bridge.server.app import BridgeServer
from tests.conftest import TEST_KEY, running_bridge, upstream_env, wait_for_sessions, ws_url
from tests.fakes import (
    FakeUpstream,
    UpstreamSession,
    closed_port,
    echo,
    http_upstream,
    receive_json,
    silent,
    stalled_tcp_server,
)


async def test_handshake_seen_by_upstream(
    bridge: BridgeServer, fake_upstream: FakeUpstream, http: aiohttp.ClientSession
) -> None:
    async with http.ws_connect(
        ws_url(bridge, query="?model=gpt-realtime-mini"),
        headers={"Authorization": "Bearer client-token", "OpenAI-Beta": "realtime=v1"},
        protocols=("realtime", "openai-insecure-api-key.client-key"),
    ) as ws:
        upstream = await fake_upstream.next_session()
        hs = upstream.handshake
        assert hs.path == "/v1/realtime"
        assert hs.query == {"model": "gpt-realtime-mini"}
        assert hs.headers["Authorization"] == f"Bearer {TEST_KEY}"
        assert hs.headers["OpenAI-Organization"] == "org-test"
        assert hs.headers["OpenAI-Project"] == "proj-test"
        assert not any(name.lower() == "openai-beta" for name in hs.headers)
        assert "client-token" not in str(hs.headers)
        assert "client-key" not in str(hs.headers)
        assert ws.protocol == "realtime"
        assert ws._response.headers["X-Bridge-Session-Id"].startswith("sess_")


async def test_default_model_and_root_path(
    bridge: BridgeServer, fake_upstream: FakeUpstream, http: aiohttp.ClientSession
) -> None:
    async with http.ws_connect(ws_url(bridge, path="/")) as ws:
        upstream = await fake_upstream.next_session()
        assert upstream.handshake.query == {"model": "gpt-realtime"}
        assert ws.protocol is None  # nothing offered, nothing selected


async def test_key_subprotocol_is_never_echoed(
    bridge: BridgeServer, fake_upstream: FakeUpstream, http: aiohttp.ClientSession
) -> None:
    async with http.ws_connect(ws_url(bridge), protocols=("openai-insecure-api-key.abc",)) as ws:
        await fake_upstream.next_session()
        assert ws.protocol is None


ODD_FRAMES = [
    '{"type":"session.update","session":{"type":"realtime"}}',
    '  {  "type" : "session.update" ,\n\t"session" : { }  }  ',
    '{"session":{"instructions":"z"},"type":"session.update","event_id":"evt_1"}',
    '{"type":"conversation.item.create","item":{"content":[{"text":"héllo 🌍 \\u00e9 日本"}]}}',
    '{"type":"some.future.event","weird":[1.50,2e3,-0.0,null,true],"nested":{"a":{"b":{}}}}',
    '{"type":"x","dup":1,"dup":2}',
]


async def test_frames_pass_through_byte_for_byte_both_ways(
    bridge: BridgeServer, fake_upstream: FakeUpstream, http: aiohttp.ClientSession
) -> None:
    fake_upstream.behaviour = silent
    async with http.ws_connect(ws_url(bridge)) as ws:
        upstream = await fake_upstream.next_session()
        for frame in ODD_FRAMES:
            await ws.send_str(frame)
            received = await upstream.next_text()
            assert received.encode() == frame.encode()
        for frame in ODD_FRAMES:
            await upstream.ws.send_str(frame)
            msg = await asyncio.wait_for(ws.receive(), 5)
            assert msg.type is aiohttp.WSMsgType.TEXT
            assert msg.data.encode() == frame.encode()


async def test_order_is_kept_over_1000_events_each_way(
    bridge: BridgeServer, fake_upstream: FakeUpstream, http: aiohttp.ClientSession
) -> None:
    fake_upstream.behaviour = silent
    async with http.ws_connect(ws_url(bridge)) as ws:
        upstream = await fake_upstream.next_session()
        frames = [
            f'{{"type":"input_audio_buffer.append","seq":{i},"audio":""}}' for i in range(1000)
        ]

        async def send_up() -> None:
            for frame in frames:
                await ws.send_str(frame)

        async def send_down() -> None:
            for frame in frames:
                await upstream.ws.send_str(frame)

        await asyncio.gather(send_up(), send_down())
        got_up = [await upstream.next_text() for _ in frames]
        got_down = [(await asyncio.wait_for(ws.receive(), 5)).data for _ in frames]
        assert got_up == frames
        assert got_down == frames
        assert bridge.registry.get(next(iter(bridge.registry)).id).client_to_upstream.events == 1000  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("not json", "invalid_json"),
        ("{", "invalid_json"),
        ("[1,2]", "invalid_event"),
        ('"text"', "invalid_event"),
        ('{"no_type":1}', "invalid_event"),
        ('{"type":5,"event_id":"e1"}', "invalid_event"),
        ('{"type":""}', "invalid_event"),
    ],
)
async def test_bad_client_events_get_errors_and_session_goes_on(
    bridge: BridgeServer,
    fake_upstream: FakeUpstream,
    http: aiohttp.ClientSession,
    frame: str,
    code: str,
) -> None:
    async with http.ws_connect(ws_url(bridge)) as ws:
        upstream = await fake_upstream.next_session()
        await ws.send_str(frame)
        event = await receive_json(ws)
        assert event["type"] == "error"
        assert event["event_id"].startswith("event_")
        assert event["error"]["type"] == "invalid_request_error"
        assert event["error"]["code"] == code
        assert event["error"]["message"]
        if '"event_id":"e1"' in frame:
            assert event["error"]["event_id"] == "e1"
        await ws.send_str('{"type":"ping.test"}')
        assert await upstream.next_text() == '{"type":"ping.test"}'
        assert upstream.received.empty()


async def test_invalid_utf8_text_closes_1007(
    bridge: BridgeServer, fake_upstream: FakeUpstream, http: aiohttp.ClientSession
) -> None:
    async with http.ws_connect(ws_url(bridge)) as ws:
        await fake_upstream.next_session()
        # A text frame whose payload is not UTF-8, written below aiohttp's str API.
        await ws._writer.send_frame(b"\xff\xfe{", aiohttp.WSMsgType.TEXT)
        msg = await asyncio.wait_for(ws.receive(), 5)
        assert msg.type is aiohttp.WSMsgType.CLOSE
        assert msg.data == 1007
    await wait_for_sessions(bridge, 0)


async def test_message_too_large_closes_1009(
    fake_upstream: FakeUpstream, openai_env: dict[str, str], http: aiohttp.ClientSession
) -> None:
    async with running_bridge(**openai_env, MAX_MESSAGE_BYTES=2048) as server:
        async with http.ws_connect(ws_url(server)) as ws:
            upstream = await fake_upstream.next_session()
            await ws.send_str('{"type":"x","pad":"' + "a" * 4096 + '"}')
            msg = await asyncio.wait_for(ws.receive(), 5)
            assert msg.type is aiohttp.WSMsgType.CLOSE
            assert msg.data == 1009
            await asyncio.wait_for(upstream.closed.wait(), 2)
        await wait_for_sessions(server, 0)


async def test_unreachable_upstream_gives_upstream_unavailable_1014(
    http: aiohttp.ClientSession,
) -> None:
    env = {
        "UPSTREAM": "openai",
        "OPENAI_API_KEY": TEST_KEY,
        "OPENAI_REALTIME_URL": f"ws://127.0.0.1:{closed_port()}/v1/realtime",
    }
    async with running_bridge(**env) as server, http.ws_connect(ws_url(server)) as ws:
        event = await receive_json(ws)
        assert event["error"]["code"] == "upstream_unavailable"
        assert TEST_KEY not in orjson.dumps(event).decode()
        msg = await asyncio.wait_for(ws.receive(), 5)
        assert msg.type is aiohttp.WSMsgType.CLOSE
        assert msg.data == 1014
        await wait_for_sessions(server, 0)


async def test_upstream_that_never_finishes_handshake_times_out(
    http: aiohttp.ClientSession,
) -> None:
    async with stalled_tcp_server() as port:
        env = {
            "UPSTREAM": "openai",
            "OPENAI_API_KEY": TEST_KEY,
            "OPENAI_REALTIME_URL": f"ws://127.0.0.1:{port}/v1/realtime",
            "UPSTREAM_CONNECT_TIMEOUT_S": "0.3",
        }
        async with running_bridge(**env) as server, http.ws_connect(ws_url(server)) as ws:
            started = time.monotonic()
            event = await receive_json(ws)
            elapsed = time.monotonic() - started
            assert event["error"]["code"] == "upstream_unavailable"
            assert "0.3" in event["error"]["message"]
            assert elapsed < 2.0
            msg = await asyncio.wait_for(ws.receive(), 5)
            assert msg.data == 1014


async def test_connect_timeout_ends_the_client_connection_at_the_timeout() -> None:
    """A client library that waits for the server to close TCP after the close handshake (as
    ``websockets`` does, RFC 6455 §7.1.1) sees the end at the timeout, not a second later: the
    bridge reads the client's close answer although the session never started reading it."""
    import websockets

    timeout_s = 0.5
    async with stalled_tcp_server() as port:
        env = {
            "UPSTREAM": "openai",
            "OPENAI_API_KEY": TEST_KEY,
            "OPENAI_REALTIME_URL": f"ws://127.0.0.1:{port}/v1/realtime",
            "UPSTREAM_CONNECT_TIMEOUT_S": str(timeout_s),
        }
        async with running_bridge(**env) as server:
            async with websockets.connect(ws_url(server)) as ws:
                started = time.monotonic()
                first = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
                assert first["error"]["code"] == "upstream_unavailable"
                with pytest.raises(websockets.ConnectionClosed) as closed:
                    await asyncio.wait_for(ws.recv(), 5)
                ended = time.monotonic() - started
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 1014
            # The error came at the timeout; the TCP close follows it at once (it came a whole
            # close-handshake timeout, 1 s, later before).
            assert ended < timeout_s + 0.6, ended


async def test_upstream_http_refusal_is_upstream_unavailable(http: aiohttp.ClientSession) -> None:
    from aiohttp import web

    async def refuse(_request: web.Request) -> web.Response:
        return web.Response(status=401, text="no")

    async with (
        http_upstream(refuse) as url,
        running_bridge(**upstream_env(url)) as server,
        http.ws_connect(ws_url(server)) as ws,
    ):
        event = await receive_json(ws)
        assert event["error"]["code"] == "upstream_unavailable"
        assert "401" in event["error"]["message"]
        assert (await asyncio.wait_for(ws.receive(), 5)).data == 1014


@pytest.mark.parametrize(("code", "reason"), [(3000, "invalid_api_key"), (4000, "bad request")])
async def test_upstream_close_code_and_last_events_reach_client(
    openai_env: dict[str, str],
    fake_upstream: FakeUpstream,
    http: aiohttp.ClientSession,
    code: int,
    reason: str,
) -> None:
    last = '{"type":"error","error":{"type":"invalid_request_error","code":"x","message":"m"}}'

    async def fail(session: UpstreamSession) -> None:
        await session.ws.send_str('{"type":"session.created"}')
        await session.ws.send_str(last)
        await session.ws.close(code=code, message=reason.encode())

    fake_upstream.behaviour = fail
    async with running_bridge(**openai_env) as server, http.ws_connect(ws_url(server)) as ws:
        first = await asyncio.wait_for(ws.receive(), 5)
        second = await asyncio.wait_for(ws.receive(), 5)
        closing = await asyncio.wait_for(ws.receive(), 5)
        assert first.data == '{"type":"session.created"}'
        assert second.data == last
        assert closing.type is aiohttp.WSMsgType.CLOSE
        assert closing.data == code
        assert closing.extra == reason
        await wait_for_sessions(server, 0)


async def test_abrupt_upstream_drop_gives_upstream_closed_1014(
    openai_env: dict[str, str], fake_upstream: FakeUpstream, http: aiohttp.ClientSession
) -> None:
    async def drop(session: UpstreamSession) -> None:
        await session.ws.send_str('{"type":"session.created"}')
        transport = session.ws._req.transport  # type: ignore[union-attr]
        transport.abort()

    fake_upstream.behaviour = drop
    async with running_bridge(**openai_env) as server, http.ws_connect(ws_url(server)) as ws:
        first = await receive_json(ws)
        assert first["type"] == "session.created"
        event = await receive_json(ws)
        assert event["error"]["code"] == "upstream_closed"
        closing = await asyncio.wait_for(ws.receive(), 5)
        assert closing.data == 1014
        await wait_for_sessions(server, 0)


async def test_client_drop_closes_upstream_within_a_second(
    bridge: BridgeServer, fake_upstream: FakeUpstream, http: aiohttp.ClientSession
) -> None:
    ws = await http.ws_connect(ws_url(bridge))
    upstream = await fake_upstream.next_session()
    await wait_for_sessions(bridge, 1)
    started = time.monotonic()
    ws._response.connection.transport.abort()  # type: ignore[union-attr]
    await asyncio.wait_for(upstream.closed.wait(), 1.0)
    assert time.monotonic() - started < 1.0
    await wait_for_sessions(bridge, 0)


async def test_client_close_is_clean_and_sessions_do_not_leak(
    bridge: BridgeServer, fake_upstream: FakeUpstream, http: aiohttp.ClientSession
) -> None:
    fake_upstream.behaviour = echo
    for _ in range(20):
        async with http.ws_connect(ws_url(bridge)) as ws:
            upstream = await fake_upstream.next_session()
            await ws.send_str('{"type":"a"}')
            assert (await asyncio.wait_for(ws.receive(), 5)).data == '{"type":"a"}'
        await asyncio.wait_for(upstream.closed.wait(), 1.0)
        assert upstream.close_code == 1000
    await wait_for_sessions(bridge, 0)
    health = await (await http.get(f"http://127.0.0.1:{bridge.http_port}/health")).json()
    assert health["sessions"] == 0


async def test_sessions_are_isolated(
    openai_env: dict[str, str], fake_upstream: FakeUpstream, http: aiohttp.ClientSession
) -> None:
    """Without resumption (tests/test_resume.py has it), a drop ends that session alone."""
    fake_upstream.behaviour = echo
    async with running_bridge(**openai_env, RESUME_ON_UPSTREAM_DROP="false") as bridge:
        async with http.ws_connect(ws_url(bridge)) as a, http.ws_connect(ws_url(bridge)) as b:
            await fake_upstream.next_session()
            second = await fake_upstream.next_session()
            second.ws._req.transport.abort()  # type: ignore[union-attr]
            # The session whose upstream dropped gets an error and 1014; the other one goes on.
            await a.send_str('{"type":"still.here"}')
            await b.send_str('{"type":"still.here"}')
            first = [await asyncio.wait_for(x.receive(), 5) for x in (a, b)]
            kinds = sorted(m.json().get("type") for m in first)
            assert kinds == ["error", "still.here"]
        async with http.ws_connect(ws_url(bridge)) as c:
            await fake_upstream.next_session()
            await c.send_str('{"type":"still.working"}')
            assert (await asyncio.wait_for(c.receive(), 5)).data == '{"type":"still.working"}'


async def test_idle_timeout_and_max_duration(
    openai_env: dict[str, str], fake_upstream: FakeUpstream, http: aiohttp.ClientSession
) -> None:
    async with running_bridge(**openai_env, SESSION_IDLE_TIMEOUT_S="0.3") as server:
        async with http.ws_connect(ws_url(server)) as ws:
            event = await receive_json(ws)
            assert event["error"]["code"] == "session_idle_timeout"
            assert (await asyncio.wait_for(ws.receive(), 5)).data == 1000
    fake_upstream.behaviour = echo
    async with running_bridge(**openai_env, SESSION_MAX_DURATION_S="0.4") as server:
        async with http.ws_connect(ws_url(server)) as ws:
            for _ in range(3):
                await ws.send_str('{"type":"keepalive"}')
                await asyncio.wait_for(ws.receive(), 5)
            event = await receive_json(ws)
            assert event["error"]["code"] == "session_expired"
            assert (await asyncio.wait_for(ws.receive(), 5)).data == 1000


async def test_session_limit_refuses_at_the_upgrade(
    openai_env: dict[str, str], fake_upstream: FakeUpstream, http: aiohttp.ClientSession
) -> None:
    async with running_bridge(**openai_env, MAX_SESSIONS="1") as server:
        async with http.ws_connect(ws_url(server)):
            await fake_upstream.next_session()
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await http.ws_connect(ws_url(server))
            assert refused.value.status == 503
            assert fake_upstream.connection_attempts == 1


async def test_graceful_shutdown_ends_live_sessions_with_1001(
    openai_env: dict[str, str], fake_upstream: FakeUpstream, http: aiohttp.ClientSession
) -> None:
    server = BridgeServer(
        __import__("tests.conftest", fromlist=["x"]).bridge_settings(
            **openai_env, SHUTDOWN_GRACE_S="0.2"
        )
    )
    await server.start()
    ws = await http.ws_connect(ws_url(server))
    upstream = await fake_upstream.next_session()
    shutdown = asyncio.create_task(server.shutdown())
    event = await receive_json(ws)
    assert event["error"]["code"] == "server_shutting_down"
    closing = await asyncio.wait_for(ws.receive(), 5)
    assert closing.data == 1001
    took = await asyncio.wait_for(shutdown, 5)
    assert 0.2 <= took < 3
    await asyncio.wait_for(upstream.closed.wait(), 2)


async def test_azure_upstream_handshake(
    fake_upstream: FakeUpstream, http: aiohttp.ClientSession
) -> None:
    env = {
        "UPSTREAM": "azure",
        "AZURE_OPENAI_ENDPOINT": f"http://127.0.0.1:{fake_upstream.port}/some/ignored/path",
        "AZURE_OPENAI_API_KEY": "azure-SECRET-key-123",
        "AZURE_OPENAI_DEPLOYMENT": "my-realtime-deployment",
    }
    async with running_bridge(**env) as server:
        async with http.get(f"http://127.0.0.1:{server.http_port}/info") as response:
            info = await response.json()
        assert info["upstream"]["kind"] == "azure"
        assert info["upstream"]["url"] == f"ws://127.0.0.1:{fake_upstream.port}/openai/v1/realtime"
        async with http.ws_connect(ws_url(server, query="?model=gpt-realtime")):
            upstream = await fake_upstream.next_session()
    hs = upstream.handshake
    assert hs.path == "/openai/v1/realtime"
    assert hs.query == {"model": "my-realtime-deployment"}  # the deployment picks the model
    assert hs.headers["api-key"] == "azure-SECRET-key-123"
    assert "Authorization" not in hs.headers
    assert not any(name.lower() == "openai-beta" for name in hs.headers)


def test_upstream_url_keeps_other_query_parameters() -> None:
    from realtime_bridge.upstream.websocket import with_query

    assert (
        with_query("wss://h/v1/realtime?model=a&x=1", model="b")
        == "wss://h/v1/realtime?x=1&model=b"
    )
    assert (
        with_query("wss://h/v1/realtime", model="gpt realtime")
        == "wss://h/v1/realtime?model=gpt+realtime"
    )


async def test_quiet_clients_get_keepalive_pings(
    bridge: BridgeServer,
    fake_upstream: FakeUpstream,
    http: aiohttp.ClientSession,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from realtime_bridge.server import lifetime as lifetime_module

    monkeypatch.setattr(lifetime_module, "CLIENT_PING_INTERVAL_S", 0.2)
    async with http.ws_connect(ws_url(bridge), autoping=False) as ws:
        await fake_upstream.next_session()
        msg = await asyncio.wait_for(ws.receive(), 3)
        assert msg.type is aiohttp.WSMsgType.PING
        await ws.pong(msg.data)
        # A pong is not a client message: the session's idle clock is not reset by it.
        assert next(iter(bridge.registry)).client_to_upstream.events == 0


@pytest.mark.parametrize("status", [401, 403, 404])
async def test_upstream_refusal_cause_is_logged_for_the_operator(
    http: aiohttp.ClientSession, captured_logs: list[str], status: int
) -> None:
    """The client gets upstream_unavailable; the server log says why (HTTP status), where
    (host) and for which session, at WARNING, and never the key."""
    from aiohttp import web

    async def refuse(_request: web.Request) -> web.Response:
        return web.Response(status=status, text="no")

    async with (
        http_upstream(refuse) as url,
        running_bridge(**upstream_env(url)) as server,
        http.ws_connect(ws_url(server)) as ws,
    ):
        session_id = ws._response.headers["X-Bridge-Session-Id"]
        await receive_json(ws)
        await asyncio.wait_for(ws.receive(), 5)
    (line,) = [line for line in captured_logs if "upstream unavailable" in line]
    assert "WARNING" in line
    assert f"cause=http_{status}" in line
    assert "upstream_host=127.0.0.1" in line
    assert session_id in line
    assert TEST_KEY not in "".join(captured_logs)


async def test_unreachable_and_slow_upstreams_are_logged_with_their_cause(
    http: aiohttp.ClientSession, captured_logs: list[str]
) -> None:
    async with stalled_tcp_server() as stalled:
        for url, cause in (
            (f"ws://127.0.0.1:{closed_port()}/v1/realtime", "cause=refused"),
            (f"ws://127.0.0.1:{stalled}/v1/realtime", "cause=timeout"),
        ):
            env = {**upstream_env(url), "UPSTREAM_CONNECT_TIMEOUT_S": "0.3"}
            async with running_bridge(**env) as server, http.ws_connect(ws_url(server)) as ws:
                assert (await receive_json(ws))["error"]["code"] == "upstream_unavailable"
            assert any("upstream unavailable" in x and cause in x for x in captured_logs), cause


def test_connect_failures_are_named_without_details() -> None:
    import socket
    import ssl

    from realtime_bridge.upstream.websocket import connect_failure

    assert connect_failure(socket.gaierror(-2, "Name or service not known")) == "dns"
    assert connect_failure(ssl.SSLCertVerificationError("bad cert")) == "tls"
    assert connect_failure(ConnectionRefusedError()) == "refused"
    assert connect_failure(ValueError("sk-secret in a message")) == "ValueError"
