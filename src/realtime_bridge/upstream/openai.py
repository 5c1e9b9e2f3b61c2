"""The OpenAI Realtime API (GA): URL and headers; never an ``OpenAI-Beta`` header."""

from __future__ import annotations

from realtime_bridge import __version__
from realtime_bridge.config import Settings
from realtime_bridge.upstream.websocket import WebSocketUpstream


def openai_headers(settings: Settings) -> dict[str, str]:
    if settings.openai_api_key is None:
        raise ValueError("the openai upstream needs OPENAI_API_KEY")
    headers = {
        "Authorization": f"Bearer {settings.openai_api_key.get_secret_value()}",
        "User-Agent": f"realtime-bridge/{__version__}",
    }
    if settings.openai_org_id:
        headers["OpenAI-Organization"] = settings.openai_org_id
    if settings.openai_project_id:
        headers["OpenAI-Project"] = settings.openai_project_id
    return headers


def openai_upstream(settings: Settings) -> WebSocketUpstream:
    return WebSocketUpstream(
        kind="openai",
        url=settings.openai_realtime_url,
        headers=openai_headers(settings),
        connect_timeout_s=settings.upstream_connect_timeout_s,
    )
