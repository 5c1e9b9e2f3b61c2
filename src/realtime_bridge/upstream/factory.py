"""Picks the upstream from the settings (``UPSTREAM=auto`` resolved as SPEC §3 says)."""

from __future__ import annotations

from realtime_bridge.config import Settings
from realtime_bridge.upstream.azure import azure_upstream
from realtime_bridge.upstream.base import Upstream
from realtime_bridge.upstream.openai import openai_upstream


def create_upstream(settings: Settings) -> Upstream:
    kind = settings.upstream_kind
    if kind == "openai":
        return openai_upstream(settings)
    if kind == "azure":
        return azure_upstream(settings)
    from realtime_bridge.upstream.local.adapter import LocalUpstream

    return LocalUpstream(pace=settings.local_audio_pace)
