"""The HTTP API: ``/health``, ``/info``, JSON errors for unknown paths and wrong methods."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from realtime_bridge import __version__
from realtime_bridge.config import Settings, public_url
from realtime_bridge.metrics import BridgeMetrics
from realtime_bridge.server.access import AccessControl
from realtime_bridge.server.sessions import SessionRegistry
from realtime_bridge.tools.runner import ToolRunner
from realtime_bridge.upstream.base import Upstream

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
    return web.json_response(
        {"status": "ok", "sessions": len(state.registry), "uptime_s": state.uptime_s}
    )


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
        "auth": {
            "client_token_required": bool(settings.bridge_api_keys),
            "client_secrets": bool(settings.bridge_api_keys),
            "demo_secrets": bool(settings.bridge_api_keys) and settings.demo_secrets,
        },
        "uptime_s": state.uptime_s,
    }
    return web.json_response(body)


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
    return web.Response(
        body=state.metrics.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST}
    )


def add_http_routes(app: web.Application) -> None:
    app.router.add_get("/health", health)
    app.router.add_get("/info", info)
    app.router.add_get("/metrics", metrics)
