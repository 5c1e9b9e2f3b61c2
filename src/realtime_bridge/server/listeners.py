"""Opening the listeners: picows for client sessions, aiohttp for the HTTP API, or one port for
both (``HTTP_PORT == WS_PORT``).

On a shared port each connection starts with :class:`FirstRequestRouter`, which reads the head of
the first request and hands the connection, with the bytes read so far, to the WebSocket
protocol (an upgrade) or to aiohttp's HTTP protocol (anything else). Each keeps the connection
from then on, so routing costs nothing after the first request.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import resource
import time
from collections.abc import Callable

from aiohttp import web
from multidict import CIMultiDict
from picows import WSAutoPingStrategy, WSUpgradeRequest
from picows.picows import WSProtocol  # type: ignore[attr-defined]

from realtime_bridge.observability import DemotedErrors, get_logger
from realtime_bridge.server.endpoint import SessionEndpoint
from realtime_bridge.server.upgrade import is_websocket_upgrade

#: The largest request head read while routing; aiohttp answers anything bigger (431).
MAX_REQUEST_HEAD_BYTES = 16 * 1024
#: How long a new connection may take to send its upgrade request (or, on a shared port, the
#: head of its first request).
HANDSHAKE_TIMEOUT_S = 10.0
#: picows' read buffer starts this small and doubles when a message needs more: most client
#: events are a few KB, and memory per session is mostly these buffers (16 KB by default).
READ_BUFFER_BYTES = 4096


#: A client frame picows refuses is the client's fault: logged at INFO.
_LOGGER = DemotedErrors(logging.getLogger("picows.server"), logging.INFO)
log = get_logger("server")
#: Descriptors left below RLIMIT_NOFILE at which the server says it is running out.
DESCRIPTOR_MARGIN = 8
#: A warning about refused connections is logged at most this often (seconds).
REFUSAL_LOG_INTERVAL_S = 10.0


class ConnectionGate:
    """Connections open at once, across every listener, at most ``limit``: past it a new one is
    closed at once. Refusals, and running out of file descriptors, are counted and logged (at
    most one line per :data:`REFUSAL_LOG_INTERVAL_S`)."""

    def __init__(self, limit: int, on_refused: Callable[[str], None] | None = None) -> None:
        self.limit = limit
        self._open: set[asyncio.BaseTransport] = set()
        self._on_refused = on_refused
        self._last_log = -REFUSAL_LOG_INTERVAL_S
        self._unlogged = 0

    def admit(self, transport: asyncio.BaseTransport) -> bool:
        if len(self._open) >= self.limit:  # closed ones are dropped only when it matters
            self._open = {t for t in self._open if not t.is_closing()}
        if len(self._open) >= self.limit:
            self.refused("connection_limit", f"at its limit of {self.limit} connections")
            return False
        self._open.add(transport)
        return True

    def refused(self, reason: str, detail: str) -> None:
        if self._on_refused is not None:
            self._on_refused(reason)
        now = time.monotonic()
        self._unlogged += 1
        if now - self._last_log >= REFUSAL_LOG_INTERVAL_S:
            log.warning("refusing connections: %s (%d since the last line)", detail, self._unlogged)
            self._last_log = now
            self._unlogged = 0

    async def watch_descriptors(self, interval_s: float = 1.0) -> None:
        """uvloop (libuv) drops connections it cannot accept for want of descriptors without a
        word; this says so (rate-limited, counted) when the process is within a few of its
        limit. Linux only (it reads /proc/self/fd); elsewhere it returns at once."""
        while True:
            if not self.check_descriptors():
                return
            await asyncio.sleep(interval_s)

    def check_descriptors(self) -> bool:
        """One look at the descriptors in use; False where they cannot be counted."""
        fd_dir = "/proc/self/fd"
        if not os.path.isdir(fd_dir):
            return False
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        try:
            used = len(os.listdir(fd_dir))
        except OSError as exc:  # listing needs a descriptor too: none left is the answer
            if exc.errno not in (errno.EMFILE, errno.ENFILE):
                raise
            used = soft
        if soft != resource.RLIM_INFINITY and used >= soft - DESCRIPTOR_MARGIN:
            self.refused(
                "out_of_descriptors",
                f"out of file descriptors ({used} of RLIMIT_NOFILE {soft} in use)",
            )
        return True

    def loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, object]) -> None:
        """The event loop's exception handler: a failed accept for want of descriptors is
        said once per interval (with a count), not once per attempt; the rest as usual."""
        exc = context.get("exception")
        if isinstance(exc, OSError) and exc.errno in (errno.EMFILE, errno.ENFILE):
            self.refused("out_of_descriptors", "out of file descriptors (RLIMIT_NOFILE)")
            return
        loop.default_exception_handler(context)


async def listen_sessions(
    endpoint: SessionEndpoint,
    host: str,
    port: int,
    max_message_bytes: int,
    gate: ConnectionGate | None = None,
    *,
    reuse_port: bool = False,
) -> asyncio.Server:
    """The client listener on its own port: every connection goes to the WebSocket protocol,
    through the same head reader as a shared port (so the endpoint knows the client's address,
    and an unfinished head is closed after the handshake timeout). ``reuse_port``: several
    worker processes listen on the port (``SO_REUSEPORT``)."""
    websocket = websocket_for(endpoint, max_message_bytes)
    return await _listen(lambda: FirstRequestRouter(websocket, None, gate), host, port, reuse_port)


async def listen_http(
    runner: web.AppRunner,
    host: str,
    port: int,
    gate: ConnectionGate | None = None,
    *,
    reuse_port: bool = False,
) -> asyncio.Server:
    """The HTTP API on its own port, behind the head reader: a request head not finished within
    the handshake timeout closes the connection (aiohttp itself would wait for ever)."""
    http = runner.server
    assert http is not None, "the runner must be set up first"
    return await _listen(lambda: FirstRequestRouter(None, http, gate), host, port, reuse_port)


def websocket_for(
    endpoint: SessionEndpoint, max_message_bytes: int
) -> Callable[[str | None], asyncio.BaseProtocol]:
    """picows' protocol for one connection, its upgrade decided with the client's address."""

    def make(peer: str | None) -> asyncio.BaseProtocol:
        return session_protocol_factory(lambda r: endpoint(r, peer), max_message_bytes)()

    return make


def session_protocol_factory(
    endpoint: Callable[[WSUpgradeRequest], object], max_message_bytes: int
) -> Callable[[], asyncio.BaseProtocol]:
    """picows' server-side protocol, made the way ``ws_create_server`` makes it (picows 2.x)."""

    def factory() -> asyncio.BaseProtocol:
        protocol: asyncio.BaseProtocol = WSProtocol(
            None,  # host and port: client side only
            None,  # path: client side only
            False,  # server side
            endpoint,
            _LOGGER,
            True,  # disconnect when a listener callback raises
            HANDSHAKE_TIMEOUT_S,
            False,  # picows' auto-ping: off (the session's watchdog pings)
            20.0,
            20.0,
            WSAutoPingStrategy.PING_WHEN_IDLE,
            False,  # auto-pong: off, the channel answers pings itself (ClientConnection)
            max_message_bytes,
            None,  # extra headers: client side only
            READ_BUFFER_BYTES,
        )
        return protocol

    return factory


class FirstRequestRouter(asyncio.Protocol):
    """Every connection's first protocol: reads the head of its first request, then hands the
    connection to the WebSocket protocol (an upgrade, or any request on a WebSocket-only port)
    or to aiohttp (anything else, or any request on an HTTP-only port)."""

    def __init__(
        self,
        websocket: Callable[[str | None], asyncio.BaseProtocol] | None,
        http: Callable[[], asyncio.BaseProtocol] | None,
        gate: ConnectionGate | None = None,
    ) -> None:
        self._websocket = websocket
        self._http = http
        self._gate = gate
        self._transport: asyncio.BaseTransport | None = None
        self._head = bytearray()
        self._timeout: asyncio.TimerHandle | None = None
        self._peer: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # uvloop's transports do not subclass asyncio.Transport
        if self._gate is not None and not self._gate.admit(transport):
            transport.close()
            return
        peer = transport.get_extra_info("peername")
        self._peer = str(peer[0]) if isinstance(peer, tuple) and peer else None
        # A connection that never finishes its first request head must not stay open forever.
        self._timeout = asyncio.get_running_loop().call_later(HANDSHAKE_TIMEOUT_S, transport.close)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timeout is not None:
            self._timeout.cancel()

    def data_received(self, data: bytes) -> None:
        self._head += data
        end = self._head.find(b"\r\n\r\n")
        if end < 0 and len(self._head) <= MAX_REQUEST_HEAD_BYTES:
            return
        if self._http is None:
            upgrade = True
        elif self._websocket is None:
            upgrade = False
        else:
            upgrade = end >= 0 and is_websocket_head(bytes(self._head[:end]))
        if upgrade:
            assert self._websocket is not None
            self._hand_over(self._websocket(self._peer))
        else:
            assert self._http is not None
            self._hand_over(self._http())

    def eof_received(self) -> bool | None:
        if self._transport is not None:
            self._transport.close()
        return None

    def _hand_over(self, protocol: asyncio.BaseProtocol) -> None:
        transport = self._transport
        assert transport is not None
        if self._timeout is not None:
            self._timeout.cancel()  # the new protocol has its own timeouts
        data = bytes(self._head)
        self._head.clear()
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        if isinstance(protocol, asyncio.BufferedProtocol):
            view = memoryview(data)
            while view:
                buffer = memoryview(protocol.get_buffer(len(view)))
                n = min(len(buffer), len(view))
                buffer[:n] = view[:n]
                protocol.buffer_updated(n)
                view = view[n:]
        elif isinstance(protocol, asyncio.Protocol):
            protocol.data_received(data)


def is_websocket_head(head: bytes) -> bool:
    """Whether a request head (without the blank line) asks for a WebSocket upgrade."""
    request_line, *lines = head.decode("latin-1").split("\r\n")
    headers: CIMultiDict[str] = CIMultiDict()
    for line in lines:
        name, _, value = line.partition(":")
        headers.add(name.strip(), value.strip())
    return request_line.startswith("GET ") and is_websocket_upgrade(headers)


async def listen_shared(
    endpoint: SessionEndpoint,
    runner: web.AppRunner,
    host: str,
    port: int,
    max_message_bytes: int,
    gate: ConnectionGate | None = None,
    *,
    reuse_port: bool = False,
) -> asyncio.Server:
    """One port for client sessions and the HTTP API."""
    websocket = websocket_for(endpoint, max_message_bytes)
    http = runner.server
    assert http is not None, "the runner must be set up first"
    return await _listen(lambda: FirstRequestRouter(websocket, http, gate), host, port, reuse_port)


async def _listen(
    router: Callable[[], FirstRequestRouter], host: str, port: int, reuse_port: bool
) -> asyncio.Server:
    """Every listener's socket: ``reuse_port`` when several worker processes share it."""
    return await asyncio.get_running_loop().create_server(
        router, host, port, reuse_address=True, reuse_port=reuse_port or None, backlog=1024
    )
