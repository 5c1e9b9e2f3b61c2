"""Wires the listeners, the session registry, the upstream and graceful shutdown together."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from types import TracebackType
from typing import TextIO

from aiohttp import hdrs, web

from realtime_bridge.config import Settings
from realtime_bridge.errors import ClientError, ErrorCode
from realtime_bridge.metrics import BridgeMetrics, SessionMetrics, SessionSource
from realtime_bridge.observability import get_logger, session_logger
from realtime_bridge.protocol.session import HandshakeOptions, SessionProtocol
from realtime_bridge.protocol.translate import is_beta_header_value, offers_beta_subprotocol
from realtime_bridge.server.admin import add_admin_routes
from realtime_bridge.server.admission import admit, install_log_filters, own_origins
from realtime_bridge.server.bridge import CLIENT_STALLED, BridgeSession
from realtime_bridge.server.http import (
    STATE_KEY,
    ServerState,
    add_http_routes,
    error_response,
    json_errors,
)
from realtime_bridge.server.page import add_page_routes, page_index
from realtime_bridge.server.sessions import SessionRecord, SessionRegistry, new_session_id
from realtime_bridge.upstream.base import Upstream
from realtime_bridge.upstream.factory import create_upstream

log = get_logger("server")

SERVES_PAGE_KEY = web.AppKey("serves_page", bool)

#: Subprotocols the bridge may select, and only when the client offered them.
SELECTABLE_SUBPROTOCOLS = ("realtime",)
#: After the grace period, how long sessions get to close once told to.
FORCED_CLOSE_TIMEOUT_S = 3.0


def is_websocket_upgrade(request: web.Request) -> bool:
    return (
        request.headers.get(hdrs.UPGRADE, "").lower() == "websocket"
        and "upgrade" in request.headers.get(hdrs.CONNECTION, "").lower()
    )


async def websocket_endpoint(request: web.Request) -> web.StreamResponse:
    """``/`` and ``/v1/realtime``: a client session (or, for plain GETs of ``/``, the page)."""
    state = request.app[STATE_KEY]
    if not is_websocket_upgrade(request):
        if request.path == "/" and request.app.get(SERVES_PAGE_KEY, False):
            return await page_index(request)  # one listener: the demo page shares "/"
        return error_response(
            426,
            "upgrade_required",
            "This endpoint speaks the Realtime protocol over WebSocket.",
            Upgrade="websocket",
        )
    settings = state.settings
    # SPEC §8: origin (403), then token (401) — before anything else, and in particular before
    # any upstream connection is opened. Load (draining, full) is not revealed to strangers.
    try:
        admitted = admit(
            headers=request.headers,
            query=request.query,
            api_keys=settings.bridge_api_keys,
            allowed_origins=settings.allowed_origins,
            own=own_origins(state.http_url, settings.host, request.host),
        )
    except ClientError as refusal:
        log.info(
            "client refused",
            extra={"code": refusal.code.value, "client": request.remote or "unknown"},
        )
        return _refuse(refusal.code, refusal.message, state)
    if state.draining:
        return _refuse(ErrorCode.SERVER_SHUTTING_DOWN, "The server is shutting down.", state)
    if state.registry.full:
        return _refuse(
            ErrorCode.SESSION_LIMIT_REACHED,
            f"The bridge is at its limit of {settings.max_sessions} concurrent sessions.",
            state,
        )
    try:
        options = handshake_options(request)
    except ClientError as exc:
        return error_response(exc.http_status, exc.code.value, exc.message)
    session_id = new_session_id()
    client = web.WebSocketResponse(
        protocols=SELECTABLE_SUBPROTOCOLS,
        max_msg_size=settings.max_message_bytes,
        heartbeat=None,  # keep-alive pings come from the session's watchdog (bridge.py)
        compress=False,
    )
    client.headers["X-Bridge-Session-Id"] = session_id
    await client.prepare(request)
    record = SessionRecord(
        id=session_id,
        client=request.remote or "unknown",
        model=request.query.get("model") or settings.openai_model,
        upstream=state.upstream.kind,
    )
    slog = session_logger(session_id)
    rules = SessionProtocol(options)
    session_metrics = SessionMetrics() if state.metrics is not None else None
    state.registry.add(record)
    if state.metrics is not None and session_metrics is not None:
        state.metrics.session_started(session_id, SessionSource(session_metrics, rules))
    start_fields = {"client": record.client, "model": record.model, "upstream": record.upstream}
    if admitted.token_id is not None:
        start_fields["client_token"] = admitted.token_id
    slog.info("session start", extra=start_fields)
    session = BridgeSession(
        record=record,
        client=client,
        upstream=state.upstream,
        idle_timeout_s=settings.session_idle_timeout_s,
        max_duration_s=settings.session_max_duration_s,
        log=slog,
        protocol=rules,
        metrics=session_metrics,
        on_connected=state.metrics.upstream_connected if state.metrics is not None else None,
    )
    try:
        ending = await session.run()
    finally:
        state.registry.remove(record)
        if state.metrics is not None:
            last = session.ending
            state.metrics.session_ended(
                session_id,
                last.reason if last else "internal_error",
                last.close_code if last else 1011,
                last.error.code.value if last and last.error else None,
            )
    _drop_unread_connection(request, stalled=ending.reason == CLIENT_STALLED)
    slog.info(
        "session end",
        extra={
            "reason": ending.reason,
            "close_code": ending.close_code,
            "protocol": record.protocol,
            "duration_s": round(record.duration_s, 3),
            "bytes_in": record.client_to_upstream.bytes,
            "bytes_out": record.upstream_to_client.bytes,
            "events_in": record.client_to_upstream.events,
            "events_out": record.upstream_to_client.events,
            "audio_in_s": record.audio_seconds["client_to_upstream"],
            "audio_out_s": record.audio_seconds["upstream_to_client"],
            "usage": record.usage,
        },
    )
    return client


def handshake_options(request: web.Request) -> HandshakeOptions:
    """Formats, binary audio and protocol version as the client declared them when connecting."""
    offered = (p.strip() for p in request.headers.get(hdrs.SEC_WEBSOCKET_PROTOCOL, "").split(","))
    beta = is_beta_header_value(request.headers.get("OpenAI-Beta")) or offers_beta_subprotocol(
        offered
    )
    return HandshakeOptions.from_query(request.query, beta=beta)


def _drop_unread_connection(request: web.Request, *, stalled: bool) -> None:
    """A client that stopped reading would keep its socket and unsent buffer forever (asyncio
    flushes before closing): a stalled one is dropped now; one whose last frames are still
    unsent gets ``FORCED_CLOSE_TIMEOUT_S`` to take them, then is dropped."""
    transport = request.transport
    if transport is None:
        return
    if stalled:
        transport.abort()
    elif transport.get_write_buffer_size():
        asyncio.get_running_loop().call_later(
            FORCED_CLOSE_TIMEOUT_S, _abort_if_unflushed, transport
        )


def _abort_if_unflushed(transport: asyncio.Transport) -> None:
    with contextlib.suppress(Exception):  # the transport may be long gone by now
        if transport.get_write_buffer_size():
            transport.abort()


def _refuse(code: ErrorCode, message: str, state: ServerState | None = None) -> web.Response:
    if state is not None and state.metrics is not None:
        state.metrics.refused(code.value)
    error = ClientError(code, message)
    headers = {"WWW-Authenticate": 'Bearer realm="realtime-bridge"'}
    if code is not ErrorCode.UNAUTHORIZED:
        headers = {}
    return error_response(error.http_status, code.value, message, **headers)


def build_app(state: ServerState, *, websocket: bool, http: bool) -> web.Application:
    install_log_filters()
    app = web.Application(middlewares=[json_errors], handler_args={"max_field_size": 16384})
    app[STATE_KEY] = state
    if websocket:
        app.router.add_get("/", websocket_endpoint)
        app.router.add_get("/v1/realtime", websocket_endpoint)
    if http:
        add_http_routes(app)
        add_page_routes(app)
        app[SERVES_PAGE_KEY] = True
        add_admin_routes(app)
    return app


class BridgeServer:
    """The whole server: start it, serve until told to stop, shut down gracefully."""

    def __init__(self, settings: Settings, upstream: Upstream | None = None) -> None:
        self.settings = settings
        self.upstream = upstream or create_upstream(settings)
        self.registry = SessionRegistry(settings.max_sessions)
        self.state = ServerState(
            settings=settings,
            registry=self.registry,
            upstream=self.upstream,
            metrics=BridgeMetrics() if settings.metrics_enabled else None,
        )
        self._runners: list[web.AppRunner] = []
        self.ws_port = 0
        self.http_port = 0

    async def start(self) -> None:
        s = self.settings
        if s.single_listener:
            ws_runner = await self._listen(
                build_app(self.state, websocket=True, http=True), s.ws_port
            )
            http_runner = ws_runner
        else:
            ws_runner = await self._listen(
                build_app(self.state, websocket=True, http=False), s.ws_port
            )
            http_runner = await self._listen(
                build_app(self.state, websocket=False, http=True), s.http_port
            )
        self.ws_port = _bound_port(ws_runner)
        self.http_port = _bound_port(http_runner)
        self.state.ws_url = f"ws://{_url_host(s.host)}:{self.ws_port}"
        self.state.http_url = f"http://{_url_host(s.host)}:{self.http_port}"

    async def _listen(self, app: web.Application, port: int) -> web.AppRunner:
        runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        self._runners.append(runner)
        site = web.TCPSite(runner, self.settings.host, port, reuse_address=True)
        await site.start()
        return runner

    @property
    def ready_line(self) -> str:
        return (
            f"realtime-bridge listening {self.state.ws_url} {self.state.http_url} "
            f"upstream={self.upstream.kind}"
        )

    async def shutdown(self) -> float:
        """Drain (SPEC §9): refuse new sessions, give live ones the grace period, then end
        them with ``server_shutting_down`` / 1001. Returns the seconds the drain took."""
        started = time.monotonic()
        self.state.draining = True
        if len(self.registry):
            log.info(
                "draining %d session(s) for up to %g s",
                len(self.registry),
                self.settings.shutdown_grace_s,
            )
            if not await self.registry.wait_empty(self.settings.shutdown_grace_s):
                self.registry.end_all(
                    ClientError(ErrorCode.SERVER_SHUTTING_DOWN, "The server is shutting down.")
                )
                await self.registry.wait_empty(FORCED_CLOSE_TIMEOUT_S)
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()
        await self.upstream.aclose()
        return time.monotonic() - started

    async def __aenter__(self) -> BridgeServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.shutdown()


def _bound_port(runner: web.AppRunner) -> int:
    address = runner.addresses[0]
    return int(address[1])


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


async def serve(settings: Settings, out: TextIO = sys.stdout) -> None:
    """Run until SIGINT/SIGTERM, printing the ready line once both listeners are bound."""
    server = BridgeServer(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    try:
        await server.start()
    except BaseException:
        await server.shutdown()
        raise
    print(server.ready_line, file=out, flush=True)
    log.info(server.ready_line)
    log.info("demo page: %s/  (health: %s/health)", server.state.http_url, server.state.http_url)
    await stop.wait()
    log.info("shutdown requested")
    took = await server.shutdown()
    log.info("shutdown complete in %.3f s", took)
