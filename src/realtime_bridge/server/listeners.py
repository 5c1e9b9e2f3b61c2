"""Opening the listeners: picows for client sessions, aiohttp for the HTTP API, or one port for
both (``HTTP_PORT == WS_PORT``).

On a shared port each connection starts with :class:`FirstRequestRouter`, which reads the head of
the first request and hands the connection, with the bytes read so far, to the WebSocket
protocol (an upgrade) or to aiohttp's HTTP protocol (anything else). Each keeps the connection
from then on, so routing costs nothing after the first request.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiohttp import web
from multidict import CIMultiDict
from picows import WSAutoPingStrategy, WSUpgradeRequest, ws_create_server
from picows.picows import WSProtocol  # type: ignore[attr-defined]

from realtime_bridge.observability import DemotedErrors
from realtime_bridge.server.endpoint import SessionEndpoint, is_websocket_upgrade

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


async def listen_sessions(
    endpoint: SessionEndpoint, host: str, port: int, max_message_bytes: int
) -> asyncio.Server:
    """The client listener on its own port."""
    return await ws_create_server(
        endpoint,
        host,
        port,
        max_frame_size=max_message_bytes,
        websocket_handshake_timeout=HANDSHAKE_TIMEOUT_S,
        logger_name=_LOGGER,
        read_buffer_init_size=READ_BUFFER_BYTES,
        # uvloop's own transports: as cheap per message here as aiofastnet's, and about 13 KB
        # less per session (bench/relay.py).
        use_aiofastnet=False,
        reuse_address=True,
        backlog=1024,
    )


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
            True,  # auto-pong
            max_message_bytes,
            None,  # extra headers: client side only
            READ_BUFFER_BYTES,
        )
        return protocol

    return factory


class FirstRequestRouter(asyncio.Protocol):
    """A shared port's first protocol: routes the connection by its first request's head."""

    def __init__(
        self,
        websocket: Callable[[], asyncio.BaseProtocol],
        http: Callable[[], asyncio.BaseProtocol],
    ) -> None:
        self._websocket = websocket
        self._http = http
        self._transport: asyncio.BaseTransport | None = None
        self._head = bytearray()
        self._timeout: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # uvloop's transports do not subclass asyncio.Transport
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
        upgrade = end >= 0 and is_websocket_head(bytes(self._head[:end]))
        self._hand_over(self._websocket() if upgrade else self._http())

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
) -> asyncio.Server:
    """One port for client sessions and the HTTP API."""
    websocket = session_protocol_factory(endpoint, max_message_bytes)
    http = runner.server
    assert http is not None, "the runner must be set up first"
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: FirstRequestRouter(websocket, http),
        host,
        port,
        reuse_address=True,
        backlog=1024,
    )
