"""Fakes that are real things: a recording upstream that is a real WebSocket server on port 0."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

Behaviour = Callable[["UpstreamSession"], Awaitable[None]]


@dataclass
class Handshake:
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    protocols: str | None


@dataclass
class UpstreamSession:
    """One connection the fake upstream accepted: what it received, and its socket."""

    handshake: Handshake
    ws: web.WebSocketResponse
    received: asyncio.Queue[str] = field(default_factory=asyncio.Queue)
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    close_code: int | None = None

    async def next_text(self, timeout: float = 5.0) -> str:
        return await asyncio.wait_for(self.received.get(), timeout)


async def silent(session: UpstreamSession) -> None:
    """Accepts and records, never answers."""
    await session.closed.wait()


async def echo(session: UpstreamSession) -> None:
    """Sends every received frame straight back (and so consumes ``received``)."""
    while True:
        text = await session.received.get()
        await session.ws.send_str(text)


class FakeUpstream:
    """A recording Realtime-API stand-in; ``behaviour`` runs once per accepted connection."""

    def __init__(self, behaviour: Behaviour = silent) -> None:
        self.behaviour = behaviour
        self.sessions: list[UpstreamSession] = []
        self.connected: asyncio.Queue[UpstreamSession] = asyncio.Queue()
        self.connection_attempts = 0
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/realtime"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def next_session(self, timeout: float = 5.0) -> UpstreamSession:
        return await asyncio.wait_for(self.connected.get(), timeout)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.connection_attempts += 1
        ws = web.WebSocketResponse(protocols=("realtime",), max_msg_size=0)
        await ws.prepare(request)
        session = UpstreamSession(
            handshake=Handshake(
                path=request.path,
                query=dict(request.query),
                headers=dict(request.headers),
                protocols=request.headers.get("Sec-WebSocket-Protocol"),
            ),
            ws=ws,
        )
        self.sessions.append(session)
        await self.connected.put(session)
        behaviour = asyncio.create_task(self.behaviour(session))
        try:
            async for msg in ws:
                if msg.type is aiohttp.WSMsgType.TEXT:
                    await session.received.put(msg.data)
        finally:
            session.close_code = ws.close_code
            session.closed.set()
            behaviour.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await behaviour
        return ws


@contextlib.asynccontextmanager
async def running_fake_upstream(behaviour: Behaviour = silent) -> AsyncIterator[FakeUpstream]:
    fake = FakeUpstream(behaviour)
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


@contextlib.asynccontextmanager
async def stalled_tcp_server() -> AsyncIterator[int]:
    """A TCP server that accepts connections and never answers the WebSocket handshake."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


@contextlib.asynccontextmanager
async def http_upstream(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    *,
    shutdown_timeout: float = 60.0,
) -> AsyncIterator[str]:
    """A plain aiohttp app as the upstream, for ones that refuse the upgrade or never read;
    yields its realtime URL."""
    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    runner = web.AppRunner(app, shutdown_timeout=shutdown_timeout)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"ws://127.0.0.1:{runner.addresses[0][1]}/v1/realtime"
    finally:
        await runner.cleanup()


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def receive_json(ws: aiohttp.ClientWebSocketResponse, timeout: float = 5.0) -> Any:
    msg = await asyncio.wait_for(ws.receive(), timeout)
    assert msg.type is aiohttp.WSMsgType.TEXT, msg
    return msg.json()
