"""``server/page.py`` in-process: what is served, with which headers, and what is a 404."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from realtime_bridge.server.http import json_errors
from realtime_bridge.server.page import STATIC_DIR, add_page_routes


@pytest.fixture
async def base_url() -> AsyncIterator[str]:
    app = web.Application(middlewares=[json_errors])
    add_page_routes(app)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/", "text/html; charset=utf-8"),
        ("/favicon.ico", "image/x-icon"),
        ("/static/app.js", "text/javascript; charset=utf-8"),
        ("/static/audio-worklet.js", "text/javascript; charset=utf-8"),
        ("/static/style.css", "text/css; charset=utf-8"),
    ],
)
async def test_files_are_served_with_types_and_revalidation(
    base_url: str, path: str, content_type: str
) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(base_url + path) as response:
            assert response.status == 200
            assert response.headers["Content-Type"] == content_type
            assert response.headers["Cache-Control"] == "no-cache"
            assert response.headers["X-Content-Type-Options"] == "nosniff"
            etag = response.headers["ETag"]
            await response.read()
        async with http.get(base_url + path, headers={"If-None-Match": etag}) as again:
            assert again.status == 304


async def test_page_has_a_content_security_policy(base_url: str) -> None:
    async with aiohttp.ClientSession() as http, http.get(base_url + "/") as response:
        policy = response.headers["Content-Security-Policy"]
        assert "default-src 'self'" in policy
        assert "script-src 'self'" in policy
        assert '<script type="module" src="/static/app.js">' in await response.text()


@pytest.mark.parametrize(
    "path",
    [
        "/static/nope.js",
        "/static/",
        "/static/..%2Fpage.py",
        "/static/%2e%2e%2fpage.py",
        "/static/.hidden.js",
        "/static/sub/app.js",
        "/index.html",
    ],
)
async def test_unknown_files_are_json_404s(base_url: str, path: str) -> None:
    async with aiohttp.ClientSession() as http, http.get(base_url + path) as response:
        assert response.status == 404
        body = await response.json()
        assert body["error"]["code"] == "not_found"


def test_static_folder_holds_only_servable_files() -> None:
    names = sorted(p.name for p in STATIC_DIR.iterdir())
    assert names == ["app.js", "audio-worklet.js", "favicon.ico", "index.html", "style.css"]


def test_an_existing_root_route_is_left_alone() -> None:
    """With one listener the WebSocket endpoint owns ``/`` (and serves the page for plain GETs)."""

    async def endpoint(request: web.Request) -> web.StreamResponse:
        return web.Response(text="ws")

    app = web.Application()
    app.router.add_get("/", endpoint)
    add_page_routes(app)
    handlers = {r.handler for r in app.router.routes() if r.resource.canonical == "/"}
    assert handlers == {endpoint}
    assert any(r.resource.canonical == "/static/{name}" for r in app.router.routes())
