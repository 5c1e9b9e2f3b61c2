"""The HTTP API: ``/health``, ``/info``, JSON errors for unknown paths and wrong methods."""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from realtime_bridge import __version__
from realtime_bridge.config import Settings, public_url
from realtime_bridge.metrics import BridgeMetrics
from realtime_bridge.server.access import AccessControl
from realtime_bridge.server.cluster import Cluster, merge_expositions
from realtime_bridge.server.sessions import SessionRegistry
from realtime_bridge.server.shared import SharedRegistry
from realtime_bridge.tools.runner import ToolRunner
from realtime_bridge.upstream.base import Upstream

if TYPE_CHECKING:
    from realtime_bridge.server.webrtc_channel import WebRTCConnection

AUDIO_FORMATS = (
    "audio/pcm@24000",
    "audio/pcm@8000",
    "audio/pcm@16000",
    "audio/pcm@22050",
    "audio/pcm@32000",
    "audio/pcm@44100",
    "audio/pcm@48000",
    "audio/pcmu",
    "audio/pcma",
)


@dataclass(slots=True)
class ServerState:
    """What the HTTP handlers read: settings, registry, upstream, bound addresses, draining."""

    settings: Settings
    registry: SessionRegistry
    upstream: Upstream
    started_monotonic: float = field(default_factory=time.monotonic)
    ws_url: str = ""
    http_url: str = ""
    draining: bool = False
    metrics: BridgeMetrics | None = None
    access: AccessControl | None = None
    #: Runs the operator's tools (None: the policy declares none).
    tools: ToolRunner | None = None
    #: This worker's view of the others, when a supervisor runs several (``WORKERS``).
    cluster: Cluster | None = None
    #: The other instances, through the shared store (``REDIS_URL``; None: memory).
    shared: SharedRegistry | None = None
    #: This process's live WebRTC calls by call id (for hangups and sidebands).
    calls: dict[str, WebRTCConnection] = field(default_factory=dict)

    @property
    def uptime_s(self) -> float:
        return round(time.monotonic() - self.started_monotonic, 3)


STATE_KEY = web.AppKey("state", ServerState)


def error_document(code: str, message: str) -> dict[str, Any]:
    """Every HTTP error body has one shape: ``{"error":{"code","message"}}``."""
    return {"error": {"code": code, "message": message}}


def error_response(status: int, code: str, message: str, **headers: str) -> web.Response:
    return web.json_response(error_document(code, message), status=status, headers=headers or None)


async def health(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    if state.draining:
        return web.json_response({"status": "draining"}, status=503)
    body: dict[str, Any] = {
        "status": "ok",
        "sessions": len(state.registry),
        "uptime_s": state.uptime_s,
        **store_status(state),
    }
    if state.cluster is not None:  # the whole server: every worker
        workers = _workers(state)
        body["sessions"] = sum(worker["sessions"] for worker in workers)
        body["workers"] = workers
    return web.json_response(body)


def _workers(state: ServerState) -> list[dict[str, Any]]:
    """Each worker as the others see it: this one live, the rest from their snapshots."""
    assert state.cluster is not None
    me = {
        "index": state.cluster.me.index,
        "pid": os.getpid(),
        "sessions": len(state.registry),
        "draining": state.draining,
    }
    others = [
        {
            "index": other["index"],
            "pid": other["pid"],
            "sessions": other.get("session_count", 0),
            "draining": other.get("draining", False),
        }
        for other in state.cluster.others()
    ]
    return sorted([me, *others], key=lambda worker: int(worker["index"]))


async def info(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    settings = state.settings
    body: dict[str, Any] = {
        "name": "realtime-bridge",
        "version": __version__,
        "upstream": {
            "kind": state.upstream.kind,
            "url": public_url(state.upstream.url),
            "model": settings.openai_model,
        },
        "listeners": {"ws": state.ws_url, "http": state.http_url},
        "audio_formats": list(AUDIO_FORMATS),
        "sessions": {"active": len(state.registry), "max": settings.max_sessions},
        "workers": 1,
        "auth": {
            "client_token_required": bool(settings.bridge_api_keys),
            "client_secrets": bool(settings.bridge_api_keys),
            "demo_secrets": bool(settings.bridge_api_keys) and settings.demo_secrets,
        },
        "webrtc": webrtc_status(settings),
        "uptime_s": state.uptime_s,
        **store_status(state),
    }
    if state.cluster is not None:  # the whole server: every worker
        workers = _workers(state)
        body["sessions"]["active"] = sum(worker["sessions"] for worker in workers)
        body["workers"] = len(workers)
    return web.json_response(body)


def webrtc_status(settings: Settings) -> dict[str, Any]:
    """Whether calls are taken, and where their media can be reached (no credentials)."""
    if not settings.webrtc_enabled:
        return {"enabled": False}
    ports = settings.webrtc_udp_ports
    return {
        "enabled": True,
        "calls_url": "/v1/realtime/calls",
        "public_address": settings.webrtc_public_address,
        "udp_ports": f"{ports[0]}-{ports[1]}" if ports else None,
        "ice_servers": [url.split("?")[0] for url in settings.webrtc_ice_servers],
    }


def store_status(state: ServerState) -> dict[str, Any]:
    """Where limits and sessions are kept, and whether it answers (memory always does)."""
    if state.shared is None:
        return {"store": "memory", "store_ok": True}
    return state.shared.status()


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn aiohttp's HTML 404/405 pages into the bridge's JSON error shape."""
    try:
        return await handler(request)
    except web.HTTPNotFound:
        return error_response(404, "not_found", f"No such endpoint: {request.path}")
    except web.HTTPMethodNotAllowed as exc:
        return error_response(
            405,
            "method_not_allowed",
            f"{request.method} is not allowed on {request.path}",
            Allow=", ".join(sorted(exc.allowed_methods)),
        )


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text format, from prometheus-client's own exposition."""
    state = request.app[STATE_KEY]
    if state.metrics is None:
        return error_response(404, "not_found", "Metrics are disabled (METRICS_ENABLED=false).")
    body = state.metrics.exposition()
    if state.cluster is not None:  # the whole server: every worker's, summed
        texts = [body.decode(), *state.cluster.others_metrics()]
        texts.append(_supervisor_metrics(state.cluster.supervisor()))
        body = merge_expositions(texts)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def _supervisor_metrics(counts: dict[str, Any]) -> str:
    """What the supervisor counts, in the exposition format (server/supervisor.py)."""
    return (
        "# HELP realtime_bridge_worker_restarts_total Worker processes that died and were "
        "restarted.\n"
        "# TYPE realtime_bridge_worker_restarts_total counter\n"
        f"realtime_bridge_worker_restarts_total {float(counts.get('restarts', 0))}\n"
        "# HELP realtime_bridge_worker_lost_sessions_total Sessions a worker held when it "
        "died.\n"
        "# TYPE realtime_bridge_worker_lost_sessions_total counter\n"
        f"realtime_bridge_worker_lost_sessions_total {float(counts.get('lost_sessions', 0))}\n"
    )


def add_http_routes(app: web.Application) -> None:
    app.router.add_get("/health", health)
    app.router.add_get("/info", info)
    app.router.add_get("/metrics", metrics)
