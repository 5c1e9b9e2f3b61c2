"""Shared fixtures: an in-process bridge on ephemeral ports, a recording fake upstream, a client."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import aiohttp
import pytest

from realtime_bridge.config import Settings, load_settings
from realtime_bridge.server.app import BridgeServer
from realtime_bridge.upstream.base import Upstream
from tests.fakes import FakeUpstream, running_fake_upstream

TEST_KEY = "sk-test-SECRET-0123456789abcdef"

BridgeFactory = Callable[..., contextlib.AbstractAsyncContextManager[BridgeServer]]


def bridge_settings(**env: Any) -> Settings:
    base = {"HOST": "127.0.0.1", "WS_PORT": "0", "HTTP_PORT": "0", "LOG_LEVEL": "debug"}
    base.update({k: str(v) for k, v in env.items()})
    return load_settings(base)


@contextlib.asynccontextmanager
async def running_bridge(
    upstream: Upstream | None = None, **env: Any
) -> AsyncIterator[BridgeServer]:
    server = BridgeServer(bridge_settings(**env), upstream=upstream)
    await server.start()
    try:
        yield server
    finally:
        await server.shutdown()


def ws_url(server: BridgeServer, path: str = "/v1/realtime", query: str = "") -> str:
    """The client WebSocket address of an in-process bridge."""
    return f"ws://127.0.0.1:{server.ws_port}{path}{query}"


async def wait_for_sessions(server: BridgeServer, count: int, within_s: float = 2.0) -> None:
    """Await (no polling) until the bridge has exactly ``count`` live sessions."""
    reached = await server.registry.wait_for_count(count, within_s)
    assert reached, f"{len(server.registry)} sessions, expected {count}"


@pytest.fixture
async def fake_upstream() -> AsyncIterator[FakeUpstream]:
    async with running_fake_upstream() as fake:
        yield fake


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def upstream_env(url: str) -> dict[str, str]:
    """Settings for a bridge whose ``openai`` upstream is at ``url``."""
    return {"UPSTREAM": "openai", "OPENAI_API_KEY": TEST_KEY, "OPENAI_REALTIME_URL": url}


@pytest.fixture
def openai_env(fake_upstream: FakeUpstream) -> dict[str, str]:
    """Settings for a bridge whose ``openai`` upstream is the fake."""
    return {
        **upstream_env(fake_upstream.url),
        "OPENAI_ORG_ID": "org-test",
        "OPENAI_PROJECT_ID": "proj-test",
    }


@pytest.fixture
async def bridge(openai_env: dict[str, str]) -> AsyncIterator[BridgeServer]:
    async with running_bridge(**openai_env) as server:
        yield server


@pytest.fixture
def captured_logs() -> Iterator[list[str]]:
    """Everything the package logs during the test, as rendered lines (with redaction on)."""
    from realtime_bridge.observability import setup_logging

    stream = _ListStream()
    handler = setup_logging("debug", "text", [TEST_KEY], stream=stream)
    yield stream.lines
    for name in ("realtime_bridge", "aiohttp"):
        logging.getLogger(name).removeHandler(handler)


class _ListStream:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def write(self, text: str) -> int:
        self.lines.append(text)
        return len(text)

    def flush(self) -> None:
        pass
