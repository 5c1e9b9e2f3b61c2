"""The demo page (SPEC §6): ``GET /``, ``/favicon.ico`` and ``/static/<file>``.

Plain files from ``server/static/`` (no build step). Only files directly in that folder with a
known extension are served; anything else is a 404 that the ``json_errors`` middleware renders
in the bridge's JSON error shape. Assets are served with ``Cache-Control: no-cache`` plus
``ETag``/``Last-Modified`` (aiohttp's ``FileResponse``), so a browser revalidates cheaply and
never runs a stale mix of old and new modules after an upgrade (the names carry no hash).
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import hdrs, web

STATIC_DIR = Path(__file__).resolve().parent / "static"

#: Extension → Content-Type; anything else in the folder is not served.
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".ico": "image/x-icon",
    ".png": "image/png",
}

#: The page loads nothing from outside the bridge; the WebSocket may live on another port.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self' ws: wss:",
        "media-src 'self' blob:",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)


def _headers(suffix: str) -> dict[str, str]:
    headers = {
        hdrs.CONTENT_TYPE: CONTENT_TYPES[suffix],
        hdrs.CACHE_CONTROL: "no-cache",
        "X-Content-Type-Options": "nosniff",
    }
    if suffix == ".html":
        headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        headers["Referrer-Policy"] = "no-referrer"
    return headers


def _static_file(name: str) -> web.FileResponse:
    """A file directly inside ``STATIC_DIR`` with a known extension, or 404."""
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise web.HTTPNotFound()
    path = STATIC_DIR / name
    suffix = path.suffix.lower()
    if suffix not in CONTENT_TYPES or not path.is_file():
        raise web.HTTPNotFound()
    return web.FileResponse(path, headers=_headers(suffix))


async def page_index(request: web.Request) -> web.StreamResponse:
    """``GET /``: the demo page. Also usable by a ``/`` handler that serves WebSockets too."""
    return _static_file("index.html")


async def favicon(request: web.Request) -> web.StreamResponse:
    return _static_file("favicon.ico")


async def static_file(request: web.Request) -> web.StreamResponse:
    return _static_file(request.match_info["name"])


def _has_get_route(app: web.Application, path: str) -> bool:
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        if info.get("path") == path and route.method in (hdrs.METH_GET, hdrs.METH_ANY):
            return True
    return False


def add_page_routes(app: web.Application) -> None:
    """Register the page (``GET /``), its favicon and its static files. ``GET /`` is skipped
    when ``/`` already has a GET handler."""
    if not _has_get_route(app, "/"):
        app.router.add_get("/", page_index)
    app.router.add_get("/favicon.ico", favicon)
    app.router.add_get("/static/{name}", static_file)
