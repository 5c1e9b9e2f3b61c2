"""Wires the listeners, the session registry, the upstream and graceful shutdown together."""

from __future__ import annotations

import asyncio
import gc
import ipaddress
import sys
import time
from types import TracebackType
from typing import TextIO

from aiohttp import web

from realtime_bridge.config import Settings
from realtime_bridge.errors import ClientError, ErrorCode
from realtime_bridge.metrics import BridgeMetrics, ToolMetrics
from realtime_bridge.observability import get_logger
from realtime_bridge.policy.rules import load_policy
from realtime_bridge.server.access import AccessControl
from realtime_bridge.server.admin import ENDED_BY_ADMIN, add_admin_routes
from realtime_bridge.server.admission import install_log_filters
from realtime_bridge.server.cluster import Cluster, WorkerIdentity
from realtime_bridge.server.endpoint import SessionEndpoint, quiet_picows_logs
from realtime_bridge.server.http import (
    STATE_KEY,
    Handler,
    ServerState,
    add_http_routes,
    error_response,
    json_errors,
)
from realtime_bridge.server.listeners import (
    ConnectionGate,
    listen_http,
    listen_sessions,
    listen_shared,
)
from realtime_bridge.server.page import add_page_routes
from realtime_bridge.server.secrets_api import add_secret_routes
from realtime_bridge.server.sessions import SessionRegistry
from realtime_bridge.server.shared import SharedRegistry
from realtime_bridge.server.signals import stop_on_signals
from realtime_bridge.server.twilio_calls import add_twilio_routes
from realtime_bridge.store.base import Store
from realtime_bridge.store.memory import MemoryStore
from realtime_bridge.store.redis import RedisStore
from realtime_bridge.tools.runner import ToolRunner
from realtime_bridge.upstream.base import Upstream
from realtime_bridge.upstream.factory import create_upstream

log = get_logger("server")
#: How long a failed worker waits for its sessions' closes before it exits.
FAILED_CLOSE_TIMEOUT_S = 2.0

#: After the grace period, how long sessions get to close once told to.
FORCED_CLOSE_TIMEOUT_S = 3.0


async def webrtc_disabled(request: web.Request) -> web.Response:
    """``POST /v1/realtime/calls`` on a bridge that takes no calls: said, so a page falls back."""
    return error_response(
        503, "webrtc_disabled", "WebRTC is off on this bridge (WEBRTC_ENABLED=false)."
    )


async def upgrade_required(request: web.Request) -> web.Response:
    """A plain GET of the session path on a shared port: it speaks WebSocket only."""
    return error_response(
        426,
        "upgrade_required",
        "This endpoint speaks the Realtime protocol over WebSocket.",
        Upgrade="websocket",
    )


@web.middleware
async def one_request_per_connection(request: web.Request, handler: Handler) -> web.StreamResponse:
    """On a shared port a connection is routed by its first request (listeners.py), so an HTTP
    connection must not be reused for a WebSocket upgrade: each response closes it."""
    response = await handler(request)
    response.force_close()
    return response


#: An idle keep-alive HTTP connection is closed after this long (aiohttp's default is 75 s).
HTTP_KEEPALIVE_TIMEOUT_S = 15.0


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


async def _no_server_version(_request: web.Request, response: web.StreamResponse) -> None:
    """Responses name the server without its version (aiohttp would add Python's and its own)."""
    response.headers["Server"] = "realtime-bridge"


def build_app(
    state: ServerState, endpoint: SessionEndpoint, *, shared: bool = False
) -> web.Application:
    """The HTTP API (on a shared port, WebSocket upgrades never reach it)."""
    middlewares = [one_request_per_connection, json_errors] if shared else [json_errors]
    app = web.Application(middlewares=middlewares, handler_args={"max_field_size": 16384})
    app[STATE_KEY] = state
    app.on_response_prepare.append(_no_server_version)
    add_http_routes(app)
    add_page_routes(app)
    add_admin_routes(app)
    add_secret_routes(app)
    add_twilio_routes(app)
    if state.settings.webrtc_enabled:
        # Imported here: WebRTC's libraries (aiortc, PyAV) cost each process ~35 MB, which a
        # bridge that takes no calls (and the supervisor) need not pay.
        from realtime_bridge.server.webrtc_calls import add_webrtc_routes

        add_webrtc_routes(app, endpoint)
    else:
        app.router.add_post("/v1/realtime/calls", webrtc_disabled)
    if shared:
        app.router.add_get("/v1/realtime", upgrade_required)
    return app


class BridgeServer:
    """The whole server: start it, serve until told to stop, shut down gracefully."""

    def __init__(
        self,
        settings: Settings,
        upstream: Upstream | None = None,
        store: Store | None = None,
        worker: WorkerIdentity | None = None,
    ) -> None:
        self.settings = settings
        #: One of a supervisor's workers (``WORKERS`` > 1): shared ports, a shared view.
        self.worker = worker
        self.cluster: Cluster | None = None
        #: Set when this worker must stop (its sessions already told): ``serve`` exits with 1.
        self.failed = asyncio.Event()
        self.upstream = upstream or create_upstream(settings)
        self.registry = SessionRegistry(settings.max_sessions)
        policy = load_policy(settings.bridge_policy_file)
        if store is None and settings.redis_url is not None:
            store = RedisStore(settings.redis_url.get_secret_value())
        shared = (
            SharedRegistry(store, self.registry, self._end_by_id)
            if isinstance(store, RedisStore)
            else None
        )
        self.access = AccessControl(settings, policy, store or MemoryStore())
        metrics = BridgeMetrics() if settings.metrics_enabled else None
        if metrics is not None and shared is not None:
            metrics.store_up = lambda: shared.ok
        tools = policy.all_tools()
        self.state = ServerState(
            settings=settings,
            registry=self.registry,
            upstream=self.upstream,
            metrics=metrics,
            access=self.access,
            tools=(
                ToolRunner(tools, metrics=ToolMetrics(metrics.registry) if metrics else None)
                if tools
                else None
            ),
            shared=shared,
        )
        self._runners: list[web.AppRunner] = []
        self._servers: list[asyncio.Server] = []
        self.endpoint = SessionEndpoint(self.state)
        metrics = self.state.metrics
        self.gate = ConnectionGate(
            settings.max_connections, metrics.refused if metrics is not None else None
        )
        self.ws_port = 0
        self.http_port = 0
        self.internal_ws_port = 0
        self._descriptor_watch: asyncio.Task[None] | None = None

    async def start(self) -> None:
        s = self.settings
        install_log_filters()
        quiet_picows_logs()
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(self.gate.loop_exception)
        self._descriptor_watch = loop.create_task(self.gate.watch_descriptors())
        if s.webrtc_enabled:
            from realtime_bridge.server.webrtc_calls import ice_settings
            from realtime_bridge.webrtc import ice

            ice.install(ice_settings(self.state))
        if self.state.shared is not None:  # limits shared from the first session (bounded wait)
            await self.state.shared.start()
        shared = self.worker is not None
        if s.single_listener:
            runner = await self._http_runner(build_app(self.state, self.endpoint, shared=True))
            server = await listen_shared(
                self.endpoint,
                runner,
                s.host,
                s.ws_port,
                s.max_message_bytes,
                self.gate,
                reuse_port=shared,
            )
            self._servers.append(server)
            self.ws_port = self.http_port = _bound_port(server)
        else:
            server = await listen_sessions(
                self.endpoint, s.host, s.ws_port, s.max_message_bytes, self.gate, reuse_port=shared
            )
            self._servers.append(server)
            self.ws_port = _bound_port(server)
            runner = await self._http_runner(build_app(self.state, self.endpoint))
            http_server = await listen_http(
                runner, s.host, s.http_port, self.gate, reuse_port=shared
            )
            self._servers.append(http_server)
            self.http_port = _bound_port(http_server)
        self.state.ws_url = f"ws://{_url_host(s.host)}:{self.ws_port}"
        self.state.http_url = f"http://{_url_host(s.host)}:{self.http_port}"
        if self.worker is not None:
            # Its own loopback port, which the shared ports cannot give: a sideband that lands
            # on another worker is relayed here, to the worker holding the call.
            internal = await listen_sessions(
                self.endpoint, "127.0.0.1", 0, s.max_message_bytes, self.gate, reuse_port=False
            )
            self._servers.append(internal)
            self.internal_ws_port = _bound_port(internal)
            metrics = self.state.metrics
            self.cluster = Cluster(
                self.worker,
                self._cluster_snapshot,
                self._end_by_id,
                self._worker_failed,
                metrics.exposition if metrics is not None else None,
            )
            if self.state.shared is None:  # with Redis, each worker counts as an instance there
                self.registry.elsewhere.append(self.cluster.others_sessions)
            self.state.cluster = self.cluster
            self.cluster.start()

    def _cluster_snapshot(self) -> dict[str, object]:
        """What this worker tells the others, once a second (see server/cluster.py)."""
        return {
            "session_count": len(self.registry),
            "internal_ws_port": self.internal_ws_port,
            "sessions": [record.summary() for record in self.registry],
            "draining": self.state.draining,
            "uptime_s": self.state.uptime_s,
        }

    def _worker_failed(self, cause: BaseException) -> None:
        """This worker cannot go on (see :class:`Cluster`): its sessions end with 1011
        (``internal_error``) and the process exits, for the supervisor to start a new one."""
        log.error("worker %s failed: %s; ending its sessions", self.worker, cause)
        self.registry.end_all(
            ClientError(ErrorCode.INTERNAL_ERROR, "The bridge's worker process failed.")
        )
        self.failed.set()

    def _end_by_id(self, session_id: str) -> bool:
        """Another worker's ``DELETE /sessions/{id}`` for a session of this one."""
        record = self.registry.get(session_id)
        if record is None or record.request_end is None:
            return False
        record.request_end(ClientError(ErrorCode.SESSION_EXPIRED, ENDED_BY_ADMIN))
        return True

    async def _http_runner(self, app: web.Application) -> web.AppRunner:
        runner = web.AppRunner(
            app,
            handle_signals=False,
            access_log=None,
            shutdown_timeout=1.0,
            keepalive_timeout=HTTP_KEEPALIVE_TIMEOUT_S,
        )
        await runner.setup()
        self._runners.append(runner)
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
        if self._descriptor_watch is not None:
            self._descriptor_watch.cancel()
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
        for server in self._servers:
            server.close()
        self._servers.clear()
        if self.cluster is not None:
            await self.cluster.stop(keep_snapshot=self.failed.is_set())
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()
        if self.state.shared is not None:
            await self.state.shared.stop()
        await self.upstream.aclose()
        if self.state.tools is not None:
            await self.state.tools.close()
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


def _bound_port(server: asyncio.Server) -> int:
    return int(server.sockets[0].getsockname()[1])


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def settle_heap() -> None:
    """Collect start-up's garbage once, then freeze what is left (modules, the app, the
    listeners: about 100,000 objects) out of the cyclic collector's sight. Otherwise every full
    collection walks all of them: measured at 40-70 ms, during which no session of the process
    moves a frame, every few seconds under load."""
    gc.collect()
    gc.freeze()


async def serve(
    settings: Settings, out: TextIO = sys.stdout, worker: WorkerIdentity | None = None
) -> None:
    """Run until SIGINT/SIGTERM, printing the ready line once both listeners are bound."""
    server = BridgeServer(settings, worker=worker)
    stop = stop_on_signals()
    try:
        await server.start()
    except BaseException:
        await server.shutdown()
        raise
    settle_heap()
    # The ready line goes to stdout once (SPEC §2); the log says what else a newcomer needs,
    # without repeating it in a terminal where both streams show.
    print(server.ready_line, file=out, flush=True)
    if not settings.bridge_api_keys and not is_loopback(settings.host):
        log.warning(
            "listening on %s beyond loopback with no BRIDGE_API_KEYS: anyone who reaches this "
            "address can open sessions on the %s upstream",
            settings.host,
            server.upstream.kind,
        )
    log.info(
        "demo page: %s/  (health: %s/health, upstream %s)",
        server.state.http_url,
        server.state.http_url,
        server.upstream.kind,
    )
    stopping = asyncio.ensure_future(stop.wait())
    failing = asyncio.ensure_future(server.failed.wait())
    await asyncio.wait({stopping, failing}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    failing.cancel()
    if server.failed.is_set():
        await server.registry.wait_empty(FAILED_CLOSE_TIMEOUT_S)  # the 1011s go out first
        await server.shutdown()
        raise SystemExit(1)
    log.info("shutdown requested")
    took = await server.shutdown()
    log.info("shutdown complete in %.3f s", took)
