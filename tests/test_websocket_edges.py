"""The client WebSocket at the frame and HTTP level, written by hand over loopback sockets.

What aiohttp's client would never send: fragmented messages with control frames in between,
continuation frames without a start, invalid UTF-8 split across fragments, reserved bits, odd
close frames, upgrade requests with a ``keep-alive, Upgrade`` Connection header or a bad key,
HTTP/1.0 requests and request heads that arrive in pieces on the shared port. Most cases run
on both listener set-ups: one port for everything (``FirstRequestRouter``) and a separate
WebSocket port (picows' own server).

The raw helpers here (frames, upgrade requests, HTTP responses) are also used by
``test_upstream_socket.py``, whose hand-written upstream speaks the server side of them.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import os
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
import pytest

from realtime_bridge.server.app import BridgeServer
from realtime_bridge.wsframes import FRAGMENT_OVERHEAD_BYTES, MAX_FRAGMENTS, WriteCoalescer
from tests.conftest import running_bridge, wait_for_sessions
from tests.fakes import FakeUpstream, closed_port, echo

TIMEOUT_S = 5.0
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

# ---------------------------------------------------------------------------------------------
# Raw frames


def encode_frame(
    opcode: int, payload: bytes = b"", *, fin: bool = True, mask: bool = True, rsv: int = 0
) -> bytes:
    """One WebSocket frame; clients mask (``mask=True``), servers do not."""
    head = bytearray([(0x80 if fin else 0) | (rsv << 4) | opcode])
    mask_bit = 0x80 if mask else 0
    size = len(payload)
    if size < 126:
        head.append(mask_bit | size)
    elif size < 65536:
        head.append(mask_bit | 126)
        head += size.to_bytes(2, "big")
    else:
        head.append(mask_bit | 127)
        head += size.to_bytes(8, "big")
    if not mask:
        return bytes(head) + payload
    key = os.urandom(4)
    return bytes(head) + key + apply_mask(payload, key)


def apply_mask(payload: bytes, key: bytes) -> bytes:
    if not payload:
        return b""
    repeated = (key * (len(payload) // 4 + 1))[: len(payload)]
    masked = int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")
    return masked.to_bytes(len(payload), "big")


def close_payload(code: int, reason: bytes = b"") -> bytes:
    return code.to_bytes(2, "big") + reason


@dataclass(frozen=True)
class Frame:
    fin: bool
    opcode: int
    payload: bytes
    rsv: int = 0

    @property
    def close_code(self) -> int | None:
        """The code of a close frame (None: it carried none)."""
        assert self.opcode == OP_CLOSE, self
        return int.from_bytes(self.payload[:2], "big") if len(self.payload) >= 2 else None

    @property
    def close_reason(self) -> str:
        assert self.opcode == OP_CLOSE, self
        return self.payload[2:].decode()


async def read_frame(reader: asyncio.StreamReader, timeout: float = TIMEOUT_S) -> Frame:
    async def read() -> Frame:
        first, second = await reader.readexactly(2)
        size = second & 0x7F
        if size == 126:
            size = int.from_bytes(await reader.readexactly(2), "big")
        elif size == 127:
            size = int.from_bytes(await reader.readexactly(8), "big")
        key = await reader.readexactly(4) if second & 0x80 else None
        payload = await reader.readexactly(size)
        if key is not None:
            payload = apply_mask(payload, key)
        return Frame(bool(first & 0x80), first & 0x0F, payload, (first >> 4) & 0x7)

    return await asyncio.wait_for(read(), timeout)


@dataclass
class WsPeer:
    """One end of a WebSocket spoken by hand: a client (masks) or a server (does not)."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    mask: bool = True
    headers: dict[str, str] = field(default_factory=dict)

    async def send(
        self, opcode: int, payload: bytes = b"", *, fin: bool = True, rsv: int = 0
    ) -> None:
        self.writer.write(encode_frame(opcode, payload, fin=fin, mask=self.mask, rsv=rsv))
        await self.writer.drain()

    async def send_text(self, text: str) -> None:
        await self.send(OP_TEXT, text.encode())

    async def send_fragments(
        self, opcode: int, parts: Iterable[bytes], between: bytes | None = None
    ) -> None:
        """One message in fragments; ``between`` (if given) is raw bytes sent after each
        fragment but the last (a control frame, say)."""
        chunks = list(parts)
        for i, chunk in enumerate(chunks):
            last = i == len(chunks) - 1
            await self.send(opcode if i == 0 else OP_CONTINUATION, chunk, fin=last)
            if between is not None and not last:
                self.writer.write(between)
                await self.writer.drain()

    async def recv(self, timeout: float = TIMEOUT_S) -> Frame:
        return await read_frame(self.reader, timeout)

    async def recv_text(self, timeout: float = TIMEOUT_S) -> str:
        frame = await self.recv(timeout)
        assert (frame.opcode, frame.fin) == (OP_TEXT, True), frame
        return frame.payload.decode()

    async def frames_until_close(self, timeout: float = TIMEOUT_S) -> tuple[list[Frame], Frame]:
        """Every frame up to the close frame, and the close frame (answered, as a peer does)."""
        before: list[Frame] = []
        while True:
            frame = await self.recv(timeout)
            if frame.opcode == OP_CLOSE:
                await self.answer_close(frame)
                return before, frame
            before.append(frame)

    async def expect_close(self, timeout: float = TIMEOUT_S) -> Frame:
        """The next frame must be a close frame; it is answered."""
        before, close = await self.frames_until_close(timeout)
        assert before == [], before
        return close

    async def answer_close(self, frame: Frame) -> None:
        if not self.writer.is_closing():
            # (it may have hung up already, as it does after a protocol error)
            with contextlib.suppress(ConnectionError):
                await self.send(OP_CLOSE, frame.payload[:2])

    async def expect_eof(self, timeout: float = TIMEOUT_S) -> None:
        """The other side dropped the TCP connection (after its close frame)."""
        rest = await asyncio.wait_for(self.reader.read(), timeout)
        assert rest == b"", rest

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


# ---------------------------------------------------------------------------------------------
# Raw HTTP


def new_key() -> str:
    return base64.b64encode(os.urandom(16)).decode()


def accept_for(key: str) -> str:
    return base64.b64encode(hashlib.sha1(key.encode() + WS_GUID).digest()).decode()


def upgrade_headers(**overrides: str | None) -> dict[str, str]:
    """A browser-like upgrade's headers; ``Name_With_Underscores=None`` drops one."""
    headers: dict[str, str | None] = {
        "Host": "127.0.0.1",
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": new_key(),
    }
    headers.update({name.replace("_", "-"): value for name, value in overrides.items()})
    return {name: value for name, value in headers.items() if value is not None}


def http_request(
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    version: str = "HTTP/1.1",
    body: bytes = b"",
) -> bytes:
    lines = [f"{method} {path} {version}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


@dataclass
class HttpResponse:
    status: int
    version: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


async def read_head(reader: asyncio.StreamReader) -> tuple[str, int, dict[str, str]]:
    raw = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT_S)
    status_line, *lines = raw.decode("latin-1").split("\r\n")
    version, status, *_ = status_line.split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    return version, int(status), headers


async def read_response(reader: asyncio.StreamReader) -> HttpResponse:
    """A whole HTTP response: its body by Content-Length, or up to the end of the connection."""
    version, status, headers = await read_head(reader)
    if "content-length" in headers:
        body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), TIMEOUT_S)
    else:
        body = await asyncio.wait_for(reader.read(), TIMEOUT_S)
    return HttpResponse(status, version, headers, body)


#: Every raw connection a test opened, with its loop, closed before its bridge stops
#: (``serving``).
OPEN_WRITERS: list[tuple[asyncio.AbstractEventLoop, asyncio.StreamWriter]] = []


async def connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    OPEN_WRITERS.append((asyncio.get_running_loop(), writer))
    return reader, writer


async def close_raw_connections() -> None:
    """Close the raw connections opened on this loop. Those of a test that failed before its
    own cleanup belong to its loop, closed since (its sockets with it): dropped, not closed."""
    loop = asyncio.get_running_loop()
    writers = list(OPEN_WRITERS)
    OPEN_WRITERS.clear()
    for opened_on, writer in writers:
        if opened_on is not loop:
            continue
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


@contextlib.asynccontextmanager
async def serving(**env: Any) -> AsyncIterator[BridgeServer]:
    """``running_bridge`` that first hangs up the test's raw connections when it stops, so the
    drain does not wait for them."""
    async with running_bridge(**env) as server:
        try:
            yield server
        finally:
            await close_raw_connections()


async def exchange(port: int, request: bytes) -> tuple[HttpResponse, bytes]:
    """Send one raw request; return the response and what followed it before the server
    closed the connection (b"" when it closed right after the response)."""
    reader, writer = await connect(port)
    writer.write(request)
    await writer.drain()
    response = await read_response(reader)
    rest = await asyncio.wait_for(reader.read(), TIMEOUT_S)
    return response, rest


async def open_ws(
    port: int,
    path: str = "/v1/realtime",
    headers: dict[str, str] | None = None,
    then: bytes = b"",
    chunk: int | None = None,
) -> WsPeer:
    """A hand-made client WebSocket. ``then``: bytes written in the same write as the upgrade
    request (frames a client sends before the 101); ``chunk``: write the request in pieces."""
    headers = headers or upgrade_headers()
    reader, writer = await connect(port)
    request = http_request("GET", path, headers) + then
    if chunk is None:
        writer.write(request)
        await writer.drain()
    else:
        for at in range(0, len(request), chunk):
            writer.write(request[at : at + chunk])
            await writer.drain()
            await asyncio.sleep(0)  # let each piece go out on its own
    _, status, response_headers = await read_head(reader)
    assert status == 101, (status, response_headers)
    assert response_headers["sec-websocket-accept"] == accept_for(headers["Sec-WebSocket-Key"])
    return WsPeer(reader, writer, mask=True, headers=response_headers)


# ---------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(params=["shared", "separate"])
def ports_env(request: pytest.FixtureRequest) -> dict[str, str]:
    """Both listener set-ups: one port for WebSocket and HTTP, or a port each."""
    if request.param == "shared":
        return {"WS_PORT": "0", "HTTP_PORT": "0"}
    return {"WS_PORT": str(closed_port()), "HTTP_PORT": str(closed_port())}


@pytest.fixture
async def bridge(openai_env: dict[str, str]) -> AsyncIterator[BridgeServer]:
    """The shared-port bridge (conftest's), hanging up raw connections before it stops."""
    async with serving(**openai_env) as server:
        yield server


@pytest.fixture
async def edge_bridge(
    openai_env: dict[str, str], ports_env: dict[str, str]
) -> AsyncIterator[BridgeServer]:
    async with serving(**openai_env, **ports_env) as server:
        if ports_env["WS_PORT"] == "0":
            assert server.ws_port == server.http_port
        else:
            assert server.ws_port != server.http_port
        yield server


@pytest.fixture
def bridge_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """The bridge's log records from INFO up."""
    caplog.set_level(logging.INFO, logger="realtime_bridge")
    return caplog


def session_end_logged(caplog: pytest.LogCaptureFixture) -> tuple[str, int]:
    """The (reason, close code) of the one session's end line; and the bridge logged no
    error: a peer breaking the protocol is that peer's fault, not an internal error."""
    errors = [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("realtime_bridge") and r.levelno >= logging.ERROR
    ]
    assert errors == []
    ends = [r for r in caplog.records if r.getMessage() == "session end"]
    assert len(ends) == 1, [r.__dict__ for r in ends]
    return ends[0].__dict__["reason"], ends[0].__dict__["close_code"]


def assert_session_end_logged(
    caplog: pytest.LogCaptureFixture, reason: str, close_code: int
) -> None:
    assert session_end_logged(caplog) == (reason, close_code)


def the_record(server: BridgeServer) -> Any:
    records = list(server.registry)
    assert len(records) == 1, records
    return records[0]


async def assert_serves_a_new_session(server: BridgeServer, fake: FakeUpstream) -> None:
    """A fresh session on the same bridge relays both ways."""
    fake.behaviour = echo
    client = await open_ws(server.ws_port)
    try:
        await fake.next_session()
        await client.send_text('{"type":"probe","n":"fresh"}')
        assert await client.recv_text() == '{"type":"probe","n":"fresh"}'
    finally:
        await client.send(OP_CLOSE, close_payload(1000))
        await client.close()


#: A message whose 4-byte and 3-byte characters the fragments below cut in the middle.
MESSAGE = '{"type":"conversation.item.create","item":{"content":[{"text":"héllo 🌍 日本"}]}}'


def three_cuts(data: bytes) -> list[bytes]:
    """``data`` in three parts, cut inside multi-byte characters."""
    globe = data.index("🌍".encode())
    nihon = data.index("日".encode())
    return [data[: globe + 2], data[globe + 2 : nihon + 1], data[nihon + 1 :]]


# ---------------------------------------------------------------------------------------------
# Fragmented client messages


async def test_fragmented_text_with_a_ping_between_reaches_upstream_whole(
    edge_bridge: BridgeServer, fake_upstream: FakeUpstream
) -> None:
    client = await open_ws(edge_bridge.ws_port)
    upstream = await fake_upstream.next_session()
    parts = three_cuts(MESSAGE.encode())
    assert all(parts)
    assert b"".join(parts) == MESSAGE.encode()
    with pytest.raises(UnicodeDecodeError):
        parts[0].decode()  # each cut falls inside a character
    ping = encode_frame(OP_PING, b"between")
    await client.send_fragments(OP_TEXT, parts, between=ping)
    # Each ping is answered at once, in the middle of the message.
    for _ in range(2):
        pong = await client.recv()
        assert (pong.opcode, pong.payload) == (OP_PONG, b"between")
    received = await upstream.next_text()
    assert received.encode() == MESSAGE.encode()
    # Nothing else went upstream (no fragment on its own): the next message comes next.
    await client.send_text('{"type":"after"}')
    assert await upstream.next_text() == '{"type":"after"}'
    assert the_record(edge_bridge).client_to_upstream.events == 2


async def test_fragmented_binary_audio_is_one_append(
    bridge: BridgeServer, fake_upstream: FakeUpstream
) -> None:
    client = await open_ws(bridge.ws_port)
    upstream = await fake_upstream.next_session()
    audio = os.urandom(2400)
    # Odd-sized fragments: PCM16 audio delivered per fragment would be refused as invalid.
    await client.send_fragments(OP_BINARY, [audio[:999], audio[999:1800], audio[1800:]])
    event = orjson.loads(await upstream.next_text())
    assert event["type"] == "input_audio_buffer.append"
    assert base64.b64decode(event["audio"]) == audio
    await client.send_text('{"type":"after"}')
    assert await upstream.next_text() == '{"type":"after"}'


async def test_fragmented_message_over_the_limit_closes_1009_and_the_server_goes_on(
    openai_env: dict[str, str],
    ports_env: dict[str, str],
    fake_upstream: FakeUpstream,
    bridge_logs: pytest.LogCaptureFixture,
) -> None:
    limit = 2048
    async with serving(**openai_env, **ports_env, MAX_MESSAGE_BYTES=limit) as server:
        client = await open_ws(server.ws_port)
        upstream = await fake_upstream.next_session()
        # Every fragment is well under the limit (so only reassembly can catch it); the first
        # two together are too, the third takes the message over.
        await client.send(OP_TEXT, b"a" * 1000, fin=False)
        await client.send(OP_CONTINUATION, b"b" * 1000, fin=False)
        await client.send(OP_CONTINUATION, b"c" * 100, fin=True)
        close = await client.expect_close()
        assert close.close_code == 1009
        await client.expect_eof()
        await asyncio.wait_for(upstream.closed.wait(), TIMEOUT_S)
        assert upstream.received.empty()  # no part of it went upstream
        await wait_for_sessions(server, 0)
        assert_session_end_logged(bridge_logs, "client_protocol_error", 1009)

        # A message of exactly the limit, counting each fragment's overhead, still passes on a
        # new session.
        client = await open_ws(server.ws_port)
        upstream = await fake_upstream.next_session()
        size = limit - 3 * FRAGMENT_OVERHEAD_BYTES
        exact = ('{"type":"probe","pad":"' + "x" * limit)[: size - 2] + '"}'
        data = exact.encode()
        await client.send_fragments(OP_TEXT, [data[:700], data[700:1400], data[1400:]])
        assert await upstream.next_text() == exact
        await client.send(OP_CLOSE, close_payload(1000))
        await client.expect_close()
        await assert_serves_a_new_session(server, fake_upstream)


async def test_one_frame_over_the_limit_closes_1009_and_is_never_forwarded(
    openai_env: dict[str, str],
    ports_env: dict[str, str],
    fake_upstream: FakeUpstream,
    bridge_logs: pytest.LogCaptureFixture,
) -> None:
    """picows flags the frame from its header but still parses its payload: the bridge must
    not pass it on in the moment before the socket closes."""
    limit = 2048
    async with serving(**openai_env, **ports_env, MAX_MESSAGE_BYTES=limit) as server:
        client = await open_ws(server.ws_port)
        upstream = await fake_upstream.next_session()
        big = ('{"type":"conversation.item.create","pad":"' + "x" * limit + '"}').encode()
        await client.send(OP_TEXT, big)
        close = await client.expect_close()
        assert close.close_code == 1009
        await asyncio.wait_for(upstream.closed.wait(), TIMEOUT_S)
        assert upstream.received.empty()
        await wait_for_sessions(server, 0)
        assert_session_end_logged(bridge_logs, "client_protocol_error", 1009)


# ---------------------------------------------------------------------------------------------
# Protocol errors: 1007 and 1002


@pytest.mark.parametrize(
    "parts",
    [
        pytest.param([b'{"type":"x","t":"\xc3', b'(x"}'], id="bad-sequence-across-fragments"),
        pytest.param([b'{"type":"x",', b'"t":"\xe2\x82'], id="truncated-at-the-end"),
        pytest.param([b'{"type":"x"', b"\xff", b"}"], id="invalid-byte-in-the-middle"),
        pytest.param([b'{"type":"\xed\xa0', b'\x80"}'], id="surrogate-across-fragments"),
    ],
)
async def test_invalid_utf8_in_a_fragmented_text_message_closes_1007(
    bridge: BridgeServer,
    fake_upstream: FakeUpstream,
    bridge_logs: pytest.LogCaptureFixture,
    parts: list[bytes],
) -> None:
    client = await open_ws(bridge.ws_port)
    upstream = await fake_upstream.next_session()
    await client.send_fragments(OP_TEXT, parts)
    close = await client.expect_close()
    assert close.close_code == 1007
    await client.expect_eof()
    await asyncio.wait_for(upstream.closed.wait(), TIMEOUT_S)
    assert upstream.received.empty()
    await wait_for_sessions(bridge, 0)
    assert_session_end_logged(bridge_logs, "client_protocol_error", 1007)


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b'{"type":"\xc0\xaf"}', id="overlong"),
        # A valid audio append but for one byte: the relay's fast path for appends must not
        # let it through.
        pytest.param(
            b'{"type":"input_audio_buffer.append","audio":"AAAA","event_id":"e\xff"}',
            id="append",
        ),
    ],
)
async def test_invalid_utf8_text_frame_closes_1007_on_both_listeners(
    edge_bridge: BridgeServer, fake_upstream: FakeUpstream, payload: bytes
) -> None:
    client = await open_ws(edge_bridge.ws_port)
    upstream = await fake_upstream.next_session()
    await client.send_text('{"type":"before"}')
    assert await upstream.next_text() == '{"type":"before"}'
    await client.send(OP_TEXT, payload)
    close = await client.expect_close()
    assert close.close_code == 1007
    await asyncio.wait_for(upstream.closed.wait(), TIMEOUT_S)
    assert upstream.received.empty()
    await wait_for_sessions(edge_bridge, 0)
    await assert_serves_a_new_session(edge_bridge, fake_upstream)


@pytest.mark.parametrize(
    "prelude",
    [
        pytest.param([], id="first-frame"),
        pytest.param(
            [(OP_TEXT, b'{"type":', False), (OP_CONTINUATION, b'"done"}', True)],
            id="after-a-fragmented-message",
        ),
        pytest.param([(OP_TEXT, b'{"type":"done"}', True)], id="after-a-whole-message"),
    ],
)
@pytest.mark.parametrize("fin", [True, False], ids=["fin", "not-fin"])
async def test_continuation_without_a_start_closes_1002(
    bridge: BridgeServer,
    fake_upstream: FakeUpstream,
    bridge_logs: pytest.LogCaptureFixture,
    prelude: list[tuple[int, bytes, bool]],
    fin: bool,
) -> None:
    client = await open_ws(bridge.ws_port)
    upstream = await fake_upstream.next_session()
    for opcode, payload, last in prelude:
        await client.send(opcode, payload, fin=last)
    if prelude:
        assert await upstream.next_text() == '{"type":"done"}'
    await client.send(OP_CONTINUATION, b'{"type":"orphan"}', fin=fin)
    close = await client.expect_close()
    assert close.close_code == 1002
    await client.expect_eof()
    await asyncio.wait_for(upstream.closed.wait(), TIMEOUT_S)
    assert upstream.received.empty()  # the orphan never went upstream
    await wait_for_sessions(bridge, 0)
    assert_session_end_logged(bridge_logs, "client_protocol_error", 1002)


@pytest.mark.parametrize("second_fin", [True, False], ids=["whole", "fragment"])
async def test_a_new_message_inside_a_fragmented_one_closes_1002(
    bridge: BridgeServer, fake_upstream: FakeUpstream, second_fin: bool
) -> None:
    """RFC 6455 §5.4: the fragments of one message are never interleaved with another data
    frame; a TEXT frame where a continuation is due is a protocol error."""
    client = await open_ws(bridge.ws_port)
    upstream = await fake_upstream.next_session()
    await client.send(OP_TEXT, b'{"type":"first",', fin=False)
    await client.send(OP_TEXT, b'{"type":"second"}', fin=second_fin)
    await client.send(OP_CONTINUATION, b'"x":1}', fin=True)
    close = await client.expect_close()
    assert close.close_code == 1002
    await asyncio.wait_for(upstream.closed.wait(), TIMEOUT_S)
    assert upstream.received.empty()  # neither message went upstream
    await wait_for_sessions(bridge, 0)


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        pytest.param(encode_frame(0x3, b"x"), 1002, id="reserved-opcode"),
        pytest.param(encode_frame(OP_TEXT, b'{"type":"x"}', mask=False), 1002, id="unmasked"),
        pytest.param(encode_frame(OP_PING, b"p", fin=False), 1002, id="fragmented-ping"),
        pytest.param(encode_frame(OP_PING, b"p" * 126), 1002, id="ping-over-125-bytes"),
        pytest.param(encode_frame(OP_CLOSE, b"\x03"), 1002, id="close-with-1-byte"),
        pytest.param(encode_frame(OP_CLOSE, close_payload(999)), 1002, id="close-code-999"),
        pytest.param(encode_frame(OP_CLOSE, close_payload(1005)), 1002, id="close-code-1005"),
        # 1006 and codes over 4999 may never be sent (RFC 6455 §7.4), so never echoed either.
        pytest.param(encode_frame(OP_CLOSE, close_payload(1006)), 1002, id="close-code-1006"),
        pytest.param(encode_frame(OP_CLOSE, close_payload(1015)), 1002, id="close-code-1015"),
        pytest.param(encode_frame(OP_CLOSE, close_payload(5000)), 1002, id="close-code-5000"),
        pytest.param(
            encode_frame(OP_CLOSE, close_payload(1000, b"\xff\xfe")), 1007, id="close-reason-utf8"
        ),
        pytest.param(encode_frame(OP_TEXT, b'{"type":"x"}', rsv=4), 1002, id="rsv1-text"),
        pytest.param(encode_frame(OP_BINARY, b"\x00\x00", rsv=1), 1002, id="rsv3-binary"),
    ],
)
async def test_malformed_frames_end_the_session_with_the_right_code(
    bridge: BridgeServer,
    fake_upstream: FakeUpstream,
    bridge_logs: pytest.LogCaptureFixture,
    frame: bytes,
    code: int,
) -> None:
    client = await open_ws(bridge.ws_port)
    upstream = await fake_upstream.next_session()
    client.writer.write(frame)
    await client.writer.drain()
    close = await client.expect_close()
    assert close.close_code == code
    await asyncio.wait_for(upstream.closed.wait(), TIMEOUT_S)
    assert upstream.received.empty()
    await wait_for_sessions(bridge, 0)
    session_end_logged(bridge_logs)


# ---------------------------------------------------------------------------------------------
# Closing, pings


@pytest.mark.parametrize(
    ("payload", "echoed"),
    [
        pytest.param(b"", 1000, id="no-code"),  # 1005 means "no code" and cannot be sent
        pytest.param(close_payload(1000), 1000, id="1000"),
        pytest.param(close_payload(1001, b"tab closed"), 1001, id="1001-reason"),
        pytest.param(close_payload(4001, "ünï ✓".encode()), 4001, id="4001-utf8-reason"),
    ],
)
async def test_client_close_is_answered_and_the_upstream_closed(
    edge_bridge: BridgeServer, fake_upstream: FakeUpstream, payload: bytes, echoed: int
) -> None:
    client = await open_ws(edge_bridge.ws_port)
    upstream = await fake_upstream.next_session()
    await client.send_text('{"type":"bye"}')
    assert await upstream.next_text() == '{"type":"bye"}'
    await client.send(OP_CLOSE, payload)
    answer = await client.recv()
    assert answer.opcode == OP_CLOSE
    assert answer.close_code == echoed
    await client.expect_eof()
    await asyncio.wait_for(upstream.closed.wait(), TIMEOUT_S)
    assert upstream.close_code == 1000
    await wait_for_sessions(edge_bridge, 0)


async def test_client_ping_gets_a_pong_and_the_session_goes_on(
    edge_bridge: BridgeServer, fake_upstream: FakeUpstream
) -> None:
    client = await open_ws(edge_bridge.ws_port)
    upstream = await fake_upstream.next_session()
    for payload in (b"hello", b"", os.urandom(125)):
        await client.send(OP_PING, payload)
        pong = await client.recv()
        assert (pong.opcode, pong.fin, pong.payload) == (OP_PONG, True, payload)
    await client.send(OP_PONG, b"unsolicited")  # allowed, and ignored
    await client.send_text('{"type":"still.here"}')
    # Pings and pongs are not events: the first thing upstream is the text.
    assert await upstream.next_text() == '{"type":"still.here"}'
    await upstream.ws.send_str('{"type":"and.back"}')
    assert await client.recv_text() == '{"type":"and.back"}'
    assert the_record(edge_bridge).client_to_upstream.events == 1


# ---------------------------------------------------------------------------------------------
# The upgrade


async def test_keep_alive_upgrade_connection_header_is_accepted(
    edge_bridge: BridgeServer, fake_upstream: FakeUpstream
) -> None:
    """Firefox sends ``Connection: keep-alive, Upgrade``."""
    fake_upstream.behaviour = echo
    headers = upgrade_headers(Connection="keep-alive, Upgrade", Sec_WebSocket_Protocol="realtime")
    client = await open_ws(edge_bridge.ws_port, headers=headers)
    await fake_upstream.next_session()
    assert client.headers["x-bridge-session-id"].startswith("sess_")
    assert client.headers["sec-websocket-protocol"] == "realtime"
    await client.send_text('{"type":"firefox"}')
    assert await client.recv_text() == '{"type":"firefox"}'


@pytest.mark.parametrize(
    ("overrides", "mentions"),
    [
        pytest.param({"Sec_WebSocket_Key": None}, "Sec-WebSocket-Key", id="no-key"),
        pytest.param({"Sec_WebSocket_Key": "c2hvcnQ="}, "Sec-WebSocket-Key", id="short-key"),
        pytest.param(
            {"Sec_WebSocket_Key": "not base64 at all!!!!!=="}, "Sec-WebSocket-Key", id="not-b64"
        ),
        pytest.param(
            {"Sec_WebSocket_Key": base64.b64encode(b"k" * 17).decode()},
            "Sec-WebSocket-Key",
            id="17-byte-key",
        ),
        pytest.param({"Sec_WebSocket_Version": "8"}, "Sec-WebSocket-Version", id="version-8"),
        pytest.param({"Sec_WebSocket_Version": None}, "Sec-WebSocket-Version", id="no-version"),
    ],
)
async def test_bad_upgrade_headers_get_400_with_a_json_error(
    edge_bridge: BridgeServer,
    fake_upstream: FakeUpstream,
    overrides: dict[str, str | None],
    mentions: str,
) -> None:
    request = http_request("GET", "/v1/realtime", upgrade_headers(**overrides))
    response, rest = await exchange(edge_bridge.ws_port, request)
    assert response.status == 400
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == "bad_request"
    assert mentions in body["error"]["message"]
    assert rest == b""  # and the connection is closed
    assert fake_upstream.connection_attempts == 0
    assert len(edge_bridge.registry) == 0


async def test_plain_get_of_the_session_path_is_426(
    edge_bridge: BridgeServer, fake_upstream: FakeUpstream
) -> None:
    request = http_request("GET", "/v1/realtime", {"Host": "127.0.0.1"})
    response, _ = await exchange(edge_bridge.ws_port, request)
    assert response.status == 426
    assert response.headers["upgrade"].lower() == "websocket"
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["error"]["code"] == "upgrade_required"
    assert fake_upstream.connection_attempts == 0


@pytest.mark.parametrize("path", ["/v2/realtime", "/v1/realtime/", "/health/x"])
async def test_upgrade_on_an_unknown_path_is_404_json(
    edge_bridge: BridgeServer, fake_upstream: FakeUpstream, path: str
) -> None:
    response, rest = await exchange(
        edge_bridge.ws_port, http_request("GET", path, upgrade_headers())
    )
    assert response.status == 404
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["error"]["code"] == "not_found"
    assert path in body["error"]["message"]
    assert rest == b""
    assert fake_upstream.connection_attempts == 0


async def test_upgrade_request_in_small_pieces(
    edge_bridge: BridgeServer, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.behaviour = echo
    client = await open_ws(edge_bridge.ws_port, chunk=7)
    await fake_upstream.next_session()
    await client.send_text('{"type":"pieces"}')
    assert await client.recv_text() == '{"type":"pieces"}'


async def test_frames_in_the_same_write_as_the_upgrade_are_not_lost(
    edge_bridge: BridgeServer, fake_upstream: FakeUpstream
) -> None:
    """A client that sends its first events right behind the request (before the 101)."""
    first = '{"type":"session.update","session":{"type":"realtime"}}'
    parts = three_cuts(MESSAGE.encode())
    early = (
        encode_frame(OP_TEXT, first.encode())
        + encode_frame(OP_TEXT, parts[0], fin=False)
        + encode_frame(OP_PING, b"early")
        + encode_frame(OP_CONTINUATION, parts[1], fin=False)
        + encode_frame(OP_CONTINUATION, parts[2], fin=True)
    )
    client = await open_ws(edge_bridge.ws_port, then=early)
    upstream = await fake_upstream.next_session()
    assert await upstream.next_text() == first
    assert (await upstream.next_text()).encode() == MESSAGE.encode()
    pong = await client.recv()
    assert (pong.opcode, pong.payload) == (OP_PONG, b"early")


# ---------------------------------------------------------------------------------------------
# The shared port: HTTP and WebSocket on one listener


async def test_keep_alive_http_then_upgrade_from_one_client_session(
    openai_env: dict[str, str], fake_upstream: FakeUpstream, http: aiohttp.ClientSession
) -> None:
    fake_upstream.behaviour = echo
    connector = aiohttp.TCPConnector(limit=1)  # one connection, reused if it can be
    async with (
        serving(**openai_env) as server,
        aiohttp.ClientSession(connector=connector) as browser,
    ):
        base = f"http://127.0.0.1:{server.http_port}"
        for path in ("/health", "/info", "/health"):
            async with browser.get(base + path) as response:
                assert response.status == 200
                await response.read()
                # Routed by its first request, the connection is never offered for reuse.
                assert response.headers["Connection"].lower() == "close"
        async with browser.ws_connect(f"ws://127.0.0.1:{server.ws_port}/v1/realtime") as ws:
            await fake_upstream.next_session()
            await ws.send_str('{"type":"same.client"}')
            msg = await asyncio.wait_for(ws.receive(), TIMEOUT_S)
            assert msg.data == '{"type":"same.client"}'
            # (the one connection of ``browser`` is the WebSocket now)
            async with http.get(base + "/health") as response:
                assert (await response.json())["sessions"] == 1
        await wait_for_sessions(server, 0)
        async with browser.get(base + "/health") as response:
            assert (await response.json())["sessions"] == 0


@pytest.mark.parametrize(
    "headers", [{}, {"Host": "127.0.0.1"}, {"Connection": "keep-alive"}], ids=str
)
async def test_http_1_0_health_on_the_shared_port(
    bridge: BridgeServer, headers: dict[str, str]
) -> None:
    request = http_request("GET", "/health", headers, version="HTTP/1.0")
    response, rest = await exchange(bridge.http_port, request)
    assert response.status == 200
    assert response.json()["status"] == "ok"
    assert rest == b""


async def test_http_request_in_small_pieces_on_the_shared_port(bridge: BridgeServer) -> None:
    reader, writer = await connect(bridge.http_port)
    request = http_request("GET", "/health", {"Host": "127.0.0.1"})
    for at in range(0, len(request), 5):
        writer.write(request[at : at + 5])
        await writer.drain()
        await asyncio.sleep(0)  # let each piece go out on its own
    response = await read_response(reader)
    writer.close()
    assert response.status == 200
    assert response.json()["status"] == "ok"


@pytest.mark.parametrize("admin_token", [None, "adm-edges-4411"])
async def test_other_methods_on_the_shared_port_reach_the_http_api(
    openai_env: dict[str, str], admin_token: str | None
) -> None:
    env = dict(openai_env)
    if admin_token is not None:
        env["BRIDGE_ADMIN_TOKEN"] = admin_token
    async with serving(**env) as server:
        port = server.http_port
        host = {"Host": "127.0.0.1"}
        response, _ = await exchange(port, http_request("DELETE", "/sessions/x", host))
        if admin_token is None:
            assert response.status == 404
            assert response.json()["error"]["code"] == "admin_disabled"
        else:
            assert response.status == 401
            assert response.json()["error"]["code"] == "unauthorized"
            auth = {**host, "Authorization": f"Bearer {admin_token}"}
            response, _ = await exchange(port, http_request("DELETE", "/sessions/x", auth))
            assert response.status == 404
            assert response.json()["error"]["code"] == "session_not_found"
        # Upgrade headers on anything but a GET do not make it a WebSocket request.
        with_upgrade = {**host, **upgrade_headers(), "Content-Length": "0"}
        response, _ = await exchange(port, http_request("POST", "/v1/realtime", with_upgrade))
        assert response.status == 405
        assert response.json()["error"]["code"] == "method_not_allowed"


async def test_junk_and_truncated_heads_do_not_hurt_the_shared_port(
    bridge: BridgeServer,
    fake_upstream: FakeUpstream,
    http: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A head that never ends, longer than the router reads: answered by the HTTP side.
    reader, writer = await connect(bridge.http_port)
    writer.write(b"GET /health HTTP/1.1\r\nX-Long: " + b"a" * 20_000)
    await writer.drain()
    response = await read_response(reader)
    assert 400 <= response.status < 500
    writer.close()
    # A connection that hangs up half-way through its head, and one that sends garbage.
    for data in (b"GET /hea", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n"):
        reader, writer = await connect(bridge.http_port)
        writer.write(data)
        await writer.drain()
        writer.write_eof()
        await asyncio.wait_for(reader.read(), TIMEOUT_S)
        writer.close()
    async with http.get(f"http://127.0.0.1:{bridge.http_port}/health") as health:
        assert health.status == 200
    await assert_serves_a_new_session(bridge, fake_upstream)
    # A stranger's bad request is theirs, not the server's: nothing at ERROR, no traceback.
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any(r.getMessage().startswith("bad HTTP request") for r in caplog.records)


@pytest.mark.parametrize("sent", [b"", b"GET /health HTTP/1.1\r\nHost: x"], ids=["silent", "half"])
async def test_a_connection_that_never_finishes_its_request_is_closed(
    openai_env: dict[str, str],
    ports_env: dict[str, str],
    fake_upstream: FakeUpstream,
    monkeypatch: pytest.MonkeyPatch,
    sent: bytes,
) -> None:
    """A slow or silent connection cannot hold a socket forever (on the shared port it waits in
    the router, on the session port in picows' handshake)."""
    from realtime_bridge.server import listeners

    monkeypatch.setattr(listeners, "HANDSHAKE_TIMEOUT_S", 0.3)
    async with serving(**openai_env, **ports_env) as server:
        reader, writer = await connect(server.ws_port)
        writer.write(sent)
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), TIMEOUT_S) is not None  # EOF: it was closed
        assert reader.at_eof()
        await assert_serves_a_new_session(server, fake_upstream)


# ---------------------------------------------------------------------------------------------
# Bursts: frames that arrive in one read are relayed together (WriteCoalescer)


@pytest.fixture
def holds(monkeypatch: pytest.MonkeyPatch) -> list[WriteCoalescer]:
    """Every ``WriteCoalescer.hold`` call, in order (the real one still runs)."""
    calls: list[WriteCoalescer] = []
    real = WriteCoalescer.hold

    def spy(self: WriteCoalescer) -> None:
        calls.append(self)
        real(self)

    monkeypatch.setattr(WriteCoalescer, "hold", spy)
    return calls


def numbered_append(i: int) -> str:
    audio = base64.b64encode(i.to_bytes(2, "little") * 480).decode()
    return f'{{"type":"input_audio_buffer.append","event_id":"evt_{i}","audio":"{audio}"}}'


async def test_a_burst_of_client_frames_in_one_write_goes_upstream_whole_and_in_order(
    bridge: BridgeServer, fake_upstream: FakeUpstream, holds: list[WriteCoalescer]
) -> None:
    client = await open_ws(bridge.ws_port)
    upstream = await fake_upstream.next_session()
    events = [numbered_append(i) for i in range(40)]
    client.writer.write(b"".join(encode_frame(OP_TEXT, e.encode()) for e in events))
    await client.writer.drain()

    assert [await upstream.next_text() for _ in events] == events
    assert holds, "a burst read at once should have been sent upstream together"
    # A frame on its own afterwards is not held back (nor hold-ed).
    before = len(holds)
    await client.send_text(numbered_append(99))
    assert await upstream.next_text() == numbered_append(99)
    assert len(holds) == before


async def test_a_burst_of_upstream_events_reaches_the_client_whole_and_in_order(
    bridge: BridgeServer, fake_upstream: FakeUpstream, holds: list[WriteCoalescer]
) -> None:
    client = await open_ws(bridge.ws_port)
    upstream = await fake_upstream.next_session()
    deltas = [
        orjson.dumps(
            {"type": "response.output_audio.delta", "event_id": f"e{i}", "delta": "AAAA" * 100}
        ).decode()
        for i in range(40)
    ]
    for delta in deltas:  # written in one go: the bridge reads them together
        await upstream.ws.send_str(delta)

    assert [await client.recv_text() for _ in deltas] == deltas
    assert holds, "a burst read at once should have been sent to the client together"
    assert the_record(bridge).upstream_to_client.events == len(deltas)


async def test_empty_fragments_are_not_free(
    openai_env: dict[str, str], ports_env: dict[str, str], fake_upstream: FakeUpstream
) -> None:
    """Each fragment is charged against the limit, and a message has at most MAX_FRAGMENTS:
    a flood of empty continuation frames closes the connection with 1009, not memory."""
    async with serving(**openai_env, **ports_env, MAX_MESSAGE_BYTES=1024 * 1024) as server:
        client = await open_ws(server.ws_port)
        upstream = await fake_upstream.next_session()
        await client.send(OP_TEXT, b"{", fin=False)
        for _ in range(MAX_FRAGMENTS):
            await client.send(OP_CONTINUATION, b"", fin=False)
        close = await client.expect_close()
        assert close.close_code == 1009
        await asyncio.wait_for(upstream.closed.wait(), TIMEOUT_S)
        assert upstream.received.empty()
