"""The bridge's upstream socket (picows client) against an upstream written by hand.

The upstream here is a plain TCP server that answers the upgrade and then speaks raw frames, so
it can do what a library server never would: fragment a message around a ping, send binary
frames, close without a code, send invalid UTF-8, a continuation out of nowhere, or hang up in
the middle of a message. Its handshake can also be held back, to see what happens to client
frames that arrive while the upstream is still connecting.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest

from realtime_bridge.server.app import BridgeServer
from realtime_bridge.upstream import websocket as upstream_module
from tests.conftest import TEST_KEY, wait_for_sessions, ws_url
from tests.test_websocket_edges import (
    MESSAGE,
    OP_BINARY,
    OP_CLOSE,
    OP_CONTINUATION,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    TIMEOUT_S,
    WsPeer,
    accept_for,
    assert_session_end_logged,
    close_payload,
    encode_frame,
    open_ws,
    serving,
    the_record,
    three_cuts,
)
from tests.test_websocket_edges import bridge_logs as bridge_logs  # fixtures, used by name
from tests.test_websocket_edges import ports_env as ports_env


class RawUpstream:
    """A WebSocket server by hand: each accepted connection is a :class:`WsPeer` (no mask)."""

    def __init__(self) -> None:
        self.port = 0
        #: Upgrade request heads, as they arrive (before the 101).
        self.requested: asyncio.Queue[bytes] = asyncio.Queue()
        self.connections: asyncio.Queue[WsPeer] = asyncio.Queue()
        #: The 101 waits until this is set (it is, unless a test clears it).
        self.gate = asyncio.Event()
        self.gate.set()
        self._server: asyncio.Server | None = None
        self._stopping = asyncio.Event()
        self._handlers: set[asyncio.Task[Any]] = set()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/realtime"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        self._stopping.set()
        self.gate.set()
        if self._server is not None:
            self._server.close()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def next_connection(self, timeout: float = TIMEOUT_S) -> WsPeer:
        return await asyncio.wait_for(self.connections.get(), timeout)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            await self.requested.put(head)
            key = ""
            for line in head.decode("latin-1").split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "sec-websocket-key":
                    key = value.strip()
            await self.gate.wait()
            if self._stopping.is_set():
                return
            writer.write(
                (
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                    f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept_for(key)}\r\n\r\n"
                ).encode()
            )
            await writer.drain()
            await self.connections.put(WsPeer(reader, writer, mask=False))
            await self._stopping.wait()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


@pytest.fixture
async def raw_upstream() -> AsyncIterator[RawUpstream]:
    upstream = RawUpstream()
    await upstream.start()
    try:
        yield upstream
    finally:
        await upstream.stop()


def raw_env(upstream: RawUpstream) -> dict[str, str]:
    return {
        "UPSTREAM": "openai",
        "OPENAI_API_KEY": TEST_KEY,
        "OPENAI_REALTIME_URL": upstream.url,
        "SHUTDOWN_GRACE_S": "0",  # a test that failed half-way does not hold the teardown
    }


@pytest.fixture
async def raw_bridge(raw_upstream: RawUpstream) -> AsyncIterator[BridgeServer]:
    """Without resumption: these tests are about what an upstream's end means for the client
    when the session ends with it (tests/test_resume.py has the other case)."""
    async with serving(**raw_env(raw_upstream), RESUME_ON_UPSTREAM_DROP="false") as server:
        yield server


async def started(ws: aiohttp.ClientWebSocketResponse, upstream: RawUpstream) -> WsPeer:
    """The upstream end of ``ws``'s session, once the session is relaying: a client event has
    gone through, so what the upstream sends next meets the session itself (not the queue
    that holds events arriving before the session attached)."""
    up = await upstream.next_connection()
    await ws.send_str('{"type":"sync"}')
    assert await up.recv_text() == '{"type":"sync"}'
    return up


async def receive(ws: aiohttp.ClientWebSocketResponse) -> aiohttp.WSMessage:
    return await asyncio.wait_for(ws.receive(), TIMEOUT_S)


async def receive_text(ws: aiohttp.ClientWebSocketResponse) -> str:
    msg = await receive(ws)
    assert msg.type is aiohttp.WSMsgType.TEXT, msg
    assert isinstance(msg.data, str)
    return msg.data


async def expect_upstream_closed_1014(ws: aiohttp.ClientWebSocketResponse) -> None:
    """The session's ending when the upstream failed: the error event, then close 1014."""
    event = orjson.loads(await receive_text(ws))
    assert event["type"] == "error", event
    assert event["error"]["code"] == "upstream_closed"
    closing = await receive(ws)
    assert closing.type is aiohttp.WSMsgType.CLOSE, closing
    assert closing.data == 1014


async def bridge_close_to_upstream(up: WsPeer) -> int | None:
    """The code of the close frame the bridge sent the upstream (other frames are skipped)."""
    _, close = await up.frames_until_close()
    return close.close_code


# ---------------------------------------------------------------------------------------------
# Messages from the upstream


async def test_fragmented_upstream_message_with_a_ping_between_reaches_the_client_whole(
    raw_bridge: BridgeServer, raw_upstream: RawUpstream, http: aiohttp.ClientSession
) -> None:
    async with http.ws_connect(ws_url(raw_bridge)) as ws:
        up = await started(ws, raw_upstream)
        parts = three_cuts(MESSAGE.encode())
        ping = encode_frame(OP_PING, b"up", mask=False)
        await up.send_fragments(OP_TEXT, parts, between=ping)
        assert (await receive_text(ws)).encode() == MESSAGE.encode()
        # The bridge answered both pings (auto-pong), masked as a client must.
        for _ in range(2):
            pong = await up.recv()
            assert (pong.opcode, pong.payload) == (OP_PONG, b"up")
        # No fragment went on its own: the next message is the next thing the client gets.
        await up.send_text('{"type":"next"}')
        assert await receive_text(ws) == '{"type":"next"}'
        assert the_record(raw_bridge).upstream_to_client.events == 2


async def test_binary_upstream_frames_with_utf8_json_reach_the_client_as_text(
    raw_bridge: BridgeServer, raw_upstream: RawUpstream, http: aiohttp.ClientSession
) -> None:
    async with http.ws_connect(ws_url(raw_bridge)) as ws:
        up = await started(ws, raw_upstream)
        await up.send(OP_BINARY, b'{"type":"bin.one"}')
        await up.send_fragments(OP_BINARY, [b'{"type":"bin', b'.two","t":"\xc3', b'\xa9"}'])
        await up.send(OP_BINARY, b"\xff\xfe\x00")  # not UTF-8: the API sends text only
        await up.send_text('{"type":"last"}')
        received = [await receive(ws) for _ in range(3)]
        assert [m.type for m in received] == [aiohttp.WSMsgType.TEXT] * 3
        assert [m.data for m in received] == [
            '{"type":"bin.one"}',
            '{"type":"bin.two","t":"é"}',
            '{"type":"last"}',
        ]


# ---------------------------------------------------------------------------------------------
# The upstream's close


async def test_upstream_close_without_a_code_closes_the_client_with_1000(
    raw_bridge: BridgeServer, raw_upstream: RawUpstream, http: aiohttp.ClientSession
) -> None:
    async with http.ws_connect(ws_url(raw_bridge)) as ws:
        up = await started(ws, raw_upstream)
        await up.send_text('{"type":"last.words"}')
        await up.send(OP_CLOSE, b"")
        assert await receive_text(ws) == '{"type":"last.words"}'
        closing = await receive(ws)  # no error event: a close without a code is a clean close
        assert closing.type is aiohttp.WSMsgType.CLOSE, closing
        assert closing.data == 1000  # 1005 ("no code") can never be sent
    await wait_for_sessions(raw_bridge, 0)


async def test_close_reply_to_a_codeless_upstream_close_is_valid(
    raw_bridge: BridgeServer, raw_upstream: RawUpstream, http: aiohttp.ClientSession
) -> None:
    """The bridge answers the upstream's close frame; a reply to one without a code carries no
    code or 1000 (never 0: codes below 1000 are not used, RFC 6455 §7.4.2)."""
    async with http.ws_connect(ws_url(raw_bridge)) as ws:
        up = await started(ws, raw_upstream)
        await up.send(OP_CLOSE, b"")
        reply = await up.recv()
        assert reply.opcode == OP_CLOSE, reply
        assert reply.close_code in (None, 1000), reply


@pytest.mark.parametrize(
    ("code", "reason", "client_code"),
    [
        pytest.param(4000, "bad request", 4000, id="4000"),
        pytest.param(4999, "", 4999, id="4999-no-reason"),
        pytest.param(1011, "upstream failed", 1011, id="1011"),
        pytest.param(3001, "é" * 61 + "x", 3001, id="123-byte-utf8-reason"),
        # Codes no close frame may carry are not passed on (bridge.is_sendable_close_code).
        pytest.param(1006, "abnormal", 1000, id="1006-unsendable"),
        pytest.param(5000, "out of range", 1000, id="5000-unsendable"),
    ],
)
async def test_upstream_close_code_and_reason_reach_the_client(
    raw_bridge: BridgeServer,
    raw_upstream: RawUpstream,
    http: aiohttp.ClientSession,
    code: int,
    reason: str,
    client_code: int,
) -> None:
    assert len(reason.encode()) <= 123
    async with http.ws_connect(ws_url(raw_bridge)) as ws:
        up = await started(ws, raw_upstream)
        await up.send(OP_CLOSE, close_payload(code, reason.encode()))
        closing = await receive(ws)
        assert closing.type is aiohttp.WSMsgType.CLOSE, closing
        assert closing.data == client_code
        assert closing.extra == reason
    await wait_for_sessions(raw_bridge, 0)


# ---------------------------------------------------------------------------------------------
# An upstream that breaks the protocol or vanishes


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(encode_frame(OP_TEXT, b'{"type":"\xc3("}', mask=False), id="text-frame"),
        # An event the relay would pass on untouched but for its bad byte.
        pytest.param(
            encode_frame(
                OP_TEXT, b'{"type":"response.output_text.delta","delta":"caf\xc3("}', mask=False
            ),
            id="text-delta",
        ),
        pytest.param(
            encode_frame(OP_TEXT, b'{"type":"\xe2', fin=False, mask=False)
            + encode_frame(OP_CONTINUATION, b'\x82("}', mask=False),
            id="fragmented",
        ),
        pytest.param(
            encode_frame(OP_CLOSE, close_payload(4000, b"\xff\xfe"), mask=False),
            id="close-reason",
        ),
    ],
)
@pytest.mark.parametrize("when", ["at-once", "relaying"])
async def test_invalid_utf8_from_the_upstream_ends_with_upstream_closed_1014(
    raw_bridge: BridgeServer,
    raw_upstream: RawUpstream,
    http: aiohttp.ClientSession,
    bridge_logs: pytest.LogCaptureFixture,
    bad: bytes,
    when: str,
) -> None:
    """Sent right after the handshake (likely queued until the session attaches) or once
    the session relays: either way the client is told, and never gets the bad bytes."""
    async with http.ws_connect(ws_url(raw_bridge)) as ws:
        if when == "at-once":
            up = await raw_upstream.next_connection()
        else:
            up = await started(ws, raw_upstream)
        await up.send_text('{"type":"before"}')
        up.writer.write(bad)
        await up.writer.drain()
        assert await receive_text(ws) == '{"type":"before"}'
        await expect_upstream_closed_1014(ws)
        assert await bridge_close_to_upstream(up) == 1007
    await wait_for_sessions(raw_bridge, 0)
    assert_session_end_logged(bridge_logs, "upstream_protocol_error", 1014)


async def test_upstream_continuation_without_a_start_ends_the_session(
    raw_bridge: BridgeServer,
    raw_upstream: RawUpstream,
    http: aiohttp.ClientSession,
    bridge_logs: pytest.LogCaptureFixture,
) -> None:
    """The upstream's side of the check the client's side has (channel.py: close 1002)."""
    async with http.ws_connect(ws_url(raw_bridge)) as ws:
        up = await started(ws, raw_upstream)
        await up.send_text('{"type":"whole"}')
        await up.send(OP_CONTINUATION, b'{"type":"orphan"}', fin=True)
        assert await receive_text(ws) == '{"type":"whole"}'
        await expect_upstream_closed_1014(ws)  # and the orphan never reached the client
        assert await bridge_close_to_upstream(up) == 1002
    await wait_for_sessions(raw_bridge, 0)
    assert_session_end_logged(bridge_logs, "upstream_protocol_error", 1014)


async def test_upstream_lost_in_the_middle_of_a_message(
    raw_bridge: BridgeServer,
    raw_upstream: RawUpstream,
    http: aiohttp.ClientSession,
    bridge_logs: pytest.LogCaptureFixture,
) -> None:
    async with http.ws_connect(ws_url(raw_bridge)) as ws:
        up = await started(ws, raw_upstream)
        await up.send_text('{"type":"whole"}')
        await up.send(OP_TEXT, b'{"type":"half', fin=False)
        transport = up.writer.transport
        assert isinstance(transport, asyncio.WriteTransport)
        transport.abort()
        assert await receive_text(ws) == '{"type":"whole"}'
        await expect_upstream_closed_1014(ws)  # the half message is not delivered
    await wait_for_sessions(raw_bridge, 0)
    assert_session_end_logged(bridge_logs, "upstream_lost", 1014)


@pytest.mark.parametrize("fragmented", [True, False], ids=["fragments", "one-frame"])
async def test_upstream_message_over_the_limit_ends_with_upstream_closed_1014(
    raw_upstream: RawUpstream,
    http: aiohttp.ClientSession,
    monkeypatch: pytest.MonkeyPatch,
    bridge_logs: pytest.LogCaptureFixture,
    fragmented: bool,
) -> None:
    monkeypatch.setattr(upstream_module, "MAX_UPSTREAM_MESSAGE_BYTES", 4096)
    async with (
        serving(**raw_env(raw_upstream)) as server,
        http.ws_connect(ws_url(server), max_msg_size=0) as ws,
    ):
        up = await started(ws, raw_upstream)
        await up.send_text('{"type":"under","pad":"' + "u" * 4000 + '"}')
        big = b'{"type":"over","pad":"' + b"o" * 4100 + b'"}'
        if fragmented:  # every fragment under the limit, the message over it
            await up.send_fragments(OP_TEXT, [big[:2000], big[2000:4000], big[4000:]])
        else:
            await up.send(OP_TEXT, big)
        assert (await receive_text(ws)).startswith('{"type":"under"')
        await expect_upstream_closed_1014(ws)
        assert await bridge_close_to_upstream(up) == 1009
        await wait_for_sessions(server, 0)
    assert_session_end_logged(bridge_logs, "upstream_protocol_error", 1014)


# ---------------------------------------------------------------------------------------------
# Client frames that arrive while the upstream is still connecting


async def test_client_frames_sent_before_the_upstream_answers_arrive_in_order(
    raw_upstream: RawUpstream, ports_env: dict[str, str]
) -> None:
    raw_upstream.gate.clear()
    async with serving(**raw_env(raw_upstream), **ports_env) as server:
        parts = three_cuts(MESSAGE.encode())
        early = encode_frame(OP_TEXT, b'{"type":"first"}') + encode_frame(
            OP_TEXT, parts[0], fin=False
        )
        client = await open_ws(server.ws_port, then=early)  # frames right behind the request
        await asyncio.wait_for(raw_upstream.requested.get(), TIMEOUT_S)  # now connecting
        await client.send(OP_CONTINUATION, parts[1], fin=False)
        await client.send(OP_CONTINUATION, parts[2], fin=True)
        await client.send(OP_PING, b"waiting")
        await client.send_text('{"type":"third"}')
        raw_upstream.gate.set()
        up = await raw_upstream.next_connection()
        assert await up.recv_text() == '{"type":"first"}'
        assert (await up.recv_text()).encode() == MESSAGE.encode()
        assert await up.recv_text() == '{"type":"third"}'
        pong = await client.recv()  # (the client is read once the session starts)
        assert (pong.opcode, pong.payload) == (OP_PONG, b"waiting")
        await up.send_text('{"type":"session.created"}')
        assert await client.recv_text() == '{"type":"session.created"}'


@pytest.mark.parametrize(
    ("early", "client_code"),
    [
        pytest.param(encode_frame(OP_TEXT, b'{"type":"\xff"}'), 1007, id="invalid-utf8"),
        pytest.param(encode_frame(OP_CONTINUATION, b"{}"), 1002, id="orphan-continuation"),
        pytest.param(encode_frame(OP_CLOSE, close_payload(1000)), 1000, id="client-close"),
    ],
)
async def test_a_client_ending_before_the_upstream_answers_closes_the_upstream(
    raw_upstream: RawUpstream,
    raw_bridge: BridgeServer,
    early: bytes,
    client_code: int,
) -> None:
    raw_upstream.gate.clear()
    client = await open_ws(raw_bridge.ws_port, then=encode_frame(OP_TEXT, b'{"type":"ok"}'))
    await asyncio.wait_for(raw_upstream.requested.get(), TIMEOUT_S)
    client.writer.write(early)
    await client.writer.drain()
    raw_upstream.gate.set()
    up = await raw_upstream.next_connection()
    close = await client.expect_close()
    assert close.close_code == client_code
    # What came before the ending still went upstream; then the upstream was closed.
    before, closing = await up.frames_until_close()
    assert [(f.opcode, f.payload) for f in before] == [(OP_TEXT, b'{"type":"ok"}')]
    assert closing.close_code == 1000
    await wait_for_sessions(raw_bridge, 0)


async def test_upstream_breaking_the_protocol_while_being_closed_is_no_internal_error(
    raw_bridge: BridgeServer,
    raw_upstream: RawUpstream,
    http: aiohttp.ClientSession,
    bridge_logs: pytest.LogCaptureFixture,
) -> None:
    """The client left; the bridge closes the upstream, which answers with a malformed frame
    instead of its close. The session still ends as the client's close, logged as such."""
    async with http.ws_connect(ws_url(raw_bridge)) as ws:
        up = await started(ws, raw_upstream)
        await up.send_text('{"type":"session.created"}')
        assert await receive_text(ws) == '{"type":"session.created"}'
    frame = await up.recv()
    assert frame.opcode == OP_CLOSE, frame
    up.writer.write(encode_frame(0x3, b"?", mask=False))  # a reserved opcode
    await up.writer.drain()
    await wait_for_sessions(raw_bridge, 0)
    assert_session_end_logged(bridge_logs, "client_closed", 1000)
