"""The local upstream served over a real WebSocket, like the API: ``ws://HOST:PORT/v1/realtime``.

For tests of the network path and for ``realtime-bridge simulator --port P``. Speaks the GA
protocol only: like the API, a client that asks for the beta shape (``OpenAI-Beta: realtime=v1``
or the ``openai-beta.realtime-v1`` subprotocol) gets ``beta_api_shape_disabled`` and close 4000.
Selects the ``realtime`` subprotocol only when the client offers it; any credentials are
accepted and ignored.

Test tools on the same port, to make the upstream fail on demand (the simulator is a test
double, not the bridge: like its WebSocket, they take no credentials):

* ``POST /admin/drop`` ends open sessions as a failing upstream would. Query parameters, all
  optional: ``session``, a session id (``session.id`` of ``session.created``; default: every
  open session); ``code``, the close code sent (1000-1003, 1007-1014 or 3000-4999; default
  1011), or ``abrupt``: the TCP connection is aborted with no close frame, as by a crashed
  server or a network failure; ``reason``, the close reason (default ``session dropped by the
  simulator``, at most 123 bytes). Nothing the session had queued is sent after the drop. The
  answer, ``{"dropped": N}`` (0 when no such session is open), comes once the close frames are
  written (or the connections aborted); each handshake then completes when the client answers
  (within ``CLOSE_TIMEOUT_S``, else the connection is closed). A bad ``code`` or ``reason``
  gets 400 in the API's error shape.
* ``GET /admin/sessions`` lists the open sessions' ids, oldest first:
  ``{"sessions": ["sess_…", …]}`` (a session being dropped is no longer listed).

Every close the server starts (a drop, the session's own end, shutdown) is a full close
handshake: the handler sends the close frame and waits for the client's (at most
``CLOSE_TIMEOUT_S``) before the connection goes, so the client ends with the code sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import orjson
from aiohttp import WSMsgType, web

from realtime_bridge.errors import UpstreamError
from realtime_bridge.upstream.base import UpstreamClosed, UpstreamRequest

from .adapter import LocalConnection, LocalUpstream
from .core import DEFAULT_MODEL
from .events import error
from .ids import new_id

logger = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 32 * 1024 * 1024  # 15 MiB of audio per append, base64-encoded, plus JSON
PING_INTERVAL_S = 20.0
#: How long a close the server starts waits for the client's close frame.
CLOSE_TIMEOUT_S = 2.0
DROP_DEFAULT_CODE = 1011
DROP_REASON = "session dropped by the simulator"
#: Close codes an endpoint may send (RFC 6455 and the IANA registry; 1004-1006 and 1015 are
#: reserved, never sent), the ones clients such as aiohttp, websockets and picows accept.
SENDABLE_CLOSE_CODES = frozenset((1000, 1001, 1002, 1003, *range(1007, 1015), *range(3000, 5000)))


@dataclass(eq=False, slots=True)
class _Session:
    """One open session's socket, and how the server ends it.

    The handler reads the client in its own task: a close the server starts (:meth:`end`) stops
    that task and the handler closes the socket itself. aiohttp's ``close`` called while another
    task is in ``receive`` drops the connection right after the close frame, without waiting for
    the client's: a client that answers late would see a 1006 instead of the code sent.
    """

    ws: web.WebSocketResponse
    transport: asyncio.Transport | None
    reading: asyncio.Task[bool] | None = None
    close_code: int | None = None
    close_reason: bytes = b""
    aborted: bool = False
    #: The close frame is written (or the connection aborted, or the session over).
    signalled: asyncio.Event = field(default_factory=asyncio.Event)
    #: The handler is done: the close handshake is over and the connection gone.
    ended: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def ending(self) -> bool:
        return self.close_code is not None or self.aborted

    def end(self, code: int, reason: bytes) -> None:
        """End the session with a close frame (the first call decides the code)."""
        if self.ending:
            return
        self.close_code, self.close_reason = code, reason
        if self.reading is not None:
            self.reading.cancel()

    def abort(self) -> None:
        """End the session without a close frame: the TCP connection is aborted."""
        if self.ending:
            return
        self.aborted = True
        if self.transport is not None:
            self.transport.abort()
        self.signalled.set()


class _State:
    """What the app shares: one upstream, the open sockets (closed on shutdown) and the sessions
    by id (for the admin endpoints)."""

    def __init__(self, pace: float) -> None:
        self.upstream = LocalUpstream(pace)
        self.sockets: set[web.WebSocketResponse] = set()
        self.sessions: dict[str, _Session] = {}


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
    app.router.add_post("/admin/drop", _admin_drop)
    app.router.add_get("/admin/sessions", _admin_sessions)
    return app


async def _close_sockets(app: web.Application) -> None:
    """Tell every connected client the server is going away (close 1001)."""
    state = app[_STATE]
    sessions = list(state.sessions.values())
    for session in sessions:
        session.end(1001, b"server shutting down")
    owned = {session.ws for session in sessions}
    others = [ws for ws in state.sockets if ws not in owned]  # not yet (or never) a session
    await asyncio.gather(
        *(ws.close(code=1001, message=b"server shutting down") for ws in others),
        *(session.ended.wait() for session in sessions),
        return_exceptions=True,
    )


async def _admin_sessions(request: web.Request) -> web.Response:
    """``GET /admin/sessions``: the open sessions' ids."""
    sessions = request.app[_STATE].sessions
    return web.json_response({"sessions": [i for i, s in sessions.items() if not s.ending]})


async def _admin_drop(request: web.Request) -> web.Response:
    """``POST /admin/drop?session=&code=&reason=``: end sessions as a failing upstream would."""
    state = request.app[_STATE]
    code = _drop_code(request.query.get("code"))
    reason = request.query.get("reason", DROP_REASON).encode()
    if len(reason) > 123:
        raise web.HTTPBadRequest(text="Invalid 'reason': at most 123 bytes (UTF-8) are sent.")
    wanted = request.query.get("session")
    ids = list(state.sessions) if wanted is None else [wanted]
    dropped = [s for i in ids if (s := state.sessions.get(i)) is not None and not s.ending]
    for session in dropped:
        if code is None:
            session.abort()
        else:
            session.end(code, reason)
    waits = [asyncio.ensure_future(s.signalled.wait()) for s in dropped]
    if waits:
        _, late = await asyncio.wait(waits, timeout=CLOSE_TIMEOUT_S)  # a bound, never reached
        for wait in late:
            wait.cancel()
    logger.info("simulator: dropped %d session(s), code %s", len(dropped), code or "abrupt")
    return web.json_response({"dropped": len(dropped)})


def _drop_code(raw: str | None) -> int | None:
    """The close code a drop sends (None: abrupt, no close frame)."""
    if raw is None:
        return DROP_DEFAULT_CODE
    if raw == "abrupt":
        return None
    try:
        code = int(raw)
    except ValueError:
        code = 0
    if code not in SENDABLE_CLOSE_CODES:
        raise web.HTTPBadRequest(
            text=f"Invalid 'code': {raw!r}. Expected 'abrupt' or a close code that may be sent "
            "(1000-1003, 1007-1014, 3000-4999)."
        )
    return code


def _wants_beta(request: web.Request) -> bool:
    offered = request.headers.get("Sec-WebSocket-Protocol", "")
    beta_header = request.headers.get("OpenAI-Beta", "").replace(" ", "")
    return "realtime=v1" in beta_header or "openai-beta.realtime-v1" in offered


async def _handle(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(
        protocols=("realtime",),
        heartbeat=PING_INTERVAL_S,
        max_msg_size=MAX_MESSAGE_BYTES,
        timeout=CLOSE_TIMEOUT_S,
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
    session_id = str(conn.core.session["id"])
    session = _Session(ws, request.transport)
    outbox = _Outbox()
    conn.attach(outbox)
    writer = asyncio.create_task(outbox.write_to(ws, session.end), name="local-simulator-writer")
    session.reading = reading = asyncio.create_task(
        _read(ws, conn, outbox), name="local-simulator-reader"
    )
    state.sessions[session_id] = session
    try:
        await asyncio.wait([reading])  # the client closed or vanished, the core failed, or end()
        if not reading.cancelled() and reading.result():
            # the core failed: the writer sends what came before its close, then ends (1011)
            with contextlib.suppress(ConnectionResetError):
                await writer
    finally:
        state.sessions.pop(session_id, None)
        reading.cancel()
        writer.cancel()  # nothing queued goes out after the close frame
        with contextlib.suppress(asyncio.CancelledError, ConnectionResetError):
            await writer
        await conn.close()
        try:
            if session.close_code is not None and not session.aborted:
                # The frame is written before close() first waits (for the client's close
                # frame: no receive is pending, so aiohttp waits for it), so whoever waits for
                # ``signalled`` runs once the frame is out.
                session.signalled.set()
                await ws.close(code=session.close_code, message=session.close_reason)
        finally:
            session.signalled.set()
            session.ended.set()


async def _read(ws: web.WebSocketResponse, conn: LocalConnection, outbox: _Outbox) -> bool:
    """Feed the client's events to the session until the client goes; True if the core failed."""
    try:
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                try:
                    conn.send(msg.data)
                except UpstreamError:  # the session failed: its close (1011) is queued
                    return True
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
    return False


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

    async def write_to(self, ws: web.WebSocketResponse, end: Callable[[int, bytes], None]) -> None:
        """Send what is queued, in order; at the session's end, have the handler close."""
        while True:
            item = await self._queue.get()
            if isinstance(item, UpstreamClosed):
                end(item.code or 1000, item.reason.encode()[:120])
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
