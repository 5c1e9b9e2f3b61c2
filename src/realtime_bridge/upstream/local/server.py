"""The local upstream served over a real WebSocket, like the API: ``ws://HOST:PORT/v1/realtime``.

For tests of the network path and for ``realtime-bridge simulator --port P``. Speaks the GA
protocol only: like the API, a client that asks for the beta shape (``OpenAI-Beta: realtime=v1``
or the ``openai-beta.realtime-v1`` subprotocol) gets ``beta_api_shape_disabled`` and close 4000.
Selects the ``realtime`` subprotocol only when the client offers it; any credentials are
accepted and ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import orjson
from aiohttp import WSMsgType, web

from realtime_bridge.errors import UpstreamError
from realtime_bridge.upstream.base import UpstreamClosed, UpstreamRequest

from .adapter import LocalUpstream
from .core import DEFAULT_MODEL
from .events import error
from .ids import new_id

logger = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 32 * 1024 * 1024  # 15 MiB of audio per append, base64-encoded, plus JSON
PING_INTERVAL_S = 20.0


class _State:
    """What the app shares: one upstream and the open sockets (closed on shutdown)."""

    def __init__(self, pace: float) -> None:
        self.upstream = LocalUpstream(pace)
        self.sockets: set[web.WebSocketResponse] = set()


_STATE = web.AppKey("local_simulator_state", _State)


@web.middleware
async def _json_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """HTTP errors in the API's own shape, ``{"error": {"message", "type", "param", "code"}}``,
    not aiohttp's plain text: clients that parse the API's errors parse the simulator's."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        codes = {400: "invalid_request", 404: "not_found", 405: "method_not_allowed"}
        message = {
            404: f"Invalid URL ({request.method} {request.path})",
            405: f"Method {request.method} is not allowed on {request.path}",
        }.get(exc.status, exc.text or exc.reason)
        body = {
            "error": {
                "message": message,
                "type": "invalid_request_error",
                "param": None,
                "code": codes.get(exc.status, "invalid_request"),
            }
        }
        headers = {k: v for k, v in exc.headers.items() if k.lower() == "allow"}
        return web.json_response(body, status=exc.status, headers=headers)


def create_app(pace: float = 1.0) -> web.Application:
    """The aiohttp application: the WebSocket at ``/v1/realtime`` and ``/``."""
    app = web.Application(middlewares=[_json_errors])
    app[_STATE] = _State(pace)
    app.router.add_get("/v1/realtime", _handle)
    app.router.add_get("/", _handle)
    return app


async def _close_sockets(app: web.Application) -> None:
    """Tell every connected client the server is going away (close 1001)."""
    sockets = list(app[_STATE].sockets)
    await asyncio.gather(
        *(ws.close(code=1001, message=b"server shutting down") for ws in sockets),
        return_exceptions=True,
    )


def _wants_beta(request: web.Request) -> bool:
    offered = request.headers.get("Sec-WebSocket-Protocol", "")
    beta_header = request.headers.get("OpenAI-Beta", "").replace(" ", "")
    return "realtime=v1" in beta_header or "openai-beta.realtime-v1" in offered


async def _handle(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(
        protocols=("realtime",), heartbeat=PING_INTERVAL_S, max_msg_size=MAX_MESSAGE_BYTES
    )
    ws.headers["x-request-id"] = new_id("req")
    await ws.prepare(request)
    state = request.app[_STATE]
    state.sockets.add(ws)
    try:
        await _serve(request, ws, state)
    finally:
        state.sockets.discard(ws)
    return ws


async def _serve(request: web.Request, ws: web.WebSocketResponse, state: _State) -> None:
    if _wants_beta(request):
        await ws.send_str(
            orjson.dumps(
                error(
                    "beta_api_shape_disabled",
                    "The beta Realtime API shape is no longer supported; use the GA interface.",
                    None,
                    None,
                )
            ).decode()
        )
        await ws.close(code=4000, message=b"beta api shape disabled")
        return
    model = request.query.get("model") or DEFAULT_MODEL
    intent = "transcription" if request.query.get("intent") == "transcription" else None
    conn = await state.upstream.connect(UpstreamRequest(new_id("sess"), model, intent))
    outbox = _Outbox()
    conn.attach(outbox)
    writer = asyncio.create_task(outbox.write_to(ws), name="local-simulator-writer")
    try:
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                try:
                    conn.send(msg.data)
                except UpstreamError:  # the session failed: the writer closes the socket (1011)
                    await writer
                    return
            elif msg.type == WSMsgType.BINARY:
                outbox.upstream_text(
                    orjson.dumps(
                        error(
                            "invalid_type",
                            "Only text frames (JSON events) are supported.",
                            None,
                            None,
                        )
                    ).decode()
                )
    except ConnectionResetError:
        pass
    finally:
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionResetError):
            await writer
        await conn.close()


class _Outbox:
    """The session's sink: queues what the core emits; one writer sends it on, in order."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[str | UpstreamClosed] = asyncio.Queue()

    def upstream_text(self, text: str) -> None:
        self._queue.put_nowait(text)

    def upstream_passthrough(self, payload: bytes) -> bool:
        return False  # the in-process core delivers text only

    def upstream_burst(self) -> None:
        """The in-process core never reports bursts; nothing to do."""

    def upstream_closed(self, closed: UpstreamClosed) -> None:
        self._queue.put_nowait(closed)

    def upstream_writable(self, writable: bool) -> None:
        """The in-process upstream always takes data; nothing to do."""

    async def write_to(self, ws: web.WebSocketResponse) -> None:
        while True:
            item = await self._queue.get()
            if isinstance(item, UpstreamClosed):
                await ws.close(code=item.code or 1000, message=item.reason.encode()[:120])
                return
            await ws.send_str(item)


@asynccontextmanager
async def running_simulator(
    host: str = "127.0.0.1", port: int = 0, pace: float = 1.0
) -> AsyncIterator[int]:
    """Serve the simulator while the block runs; yields the bound port (use 0 for any)."""
    app = create_app(pace)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = int(runner.addresses[0][1])
        yield bound
    finally:
        await _close_sockets(app)  # before cleanup: by then the connections are being torn down
        await runner.cleanup()


async def serve_simulator(
    host: str = "127.0.0.1",
    port: int = 8090,
    pace: float = 1.0,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve until cancelled; ``on_ready`` gets the WebSocket URL once listening."""
    async with running_simulator(host, port, pace) as bound:
        url = f"ws://{host}:{bound}/v1/realtime"
        logger.info("local realtime simulator listening %s", url)
        if on_ready is not None:
            on_ready(url)
        await asyncio.Event().wait()
