"""An upstream reached over a real WebSocket (the OpenAI API, Azure, or the simulator).

OpenAI and Azure differ only in URL and headers, which :mod:`openai` and :mod:`azure` build;
this module owns the connection: timeouts, error mapping, and the close bookkeeping the relay
needs to mirror the upstream's close code to the client.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from urllib.parse import urlencode, urlsplit, urlunsplit

import aiohttp

from realtime_bridge.errors import UpstreamError, UpstreamUnavailable
from realtime_bridge.upstream.base import UpstreamClosed, UpstreamConnection, UpstreamRequest

#: Largest upstream message accepted; a 15 MiB audio event is the API's own maximum.
MAX_UPSTREAM_MESSAGE_BYTES = 64 * 1024 * 1024


def with_query(url: str, **params: str) -> str:
    """``url`` with ``params`` set in its query (existing parameters of the same name replaced)."""
    parts = urlsplit(url)
    kept = [p for p in parts.query.split("&") if p and p.split("=", 1)[0] not in params]
    query = "&".join([*kept, urlencode(params)]) if params else "&".join(kept)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


class WebSocketConnection:
    """One upstream session over aiohttp's client WebSocket."""

    __slots__ = ("_closed", "_ws")

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._closed: UpstreamClosed | None = None

    async def send(self, text: str) -> None:
        if self._closed is not None:
            raise UpstreamError("the upstream connection is closed")
        try:
            await self._ws.send_str(text)
        except (aiohttp.ClientError, ConnectionError, RuntimeError) as exc:
            raise UpstreamError(f"sending to the upstream failed: {type(exc).__name__}") from None

    async def receive(self) -> str | UpstreamClosed:
        while self._closed is None:
            msg = await self._ws.receive()
            if msg.type is aiohttp.WSMsgType.TEXT:
                return msg.data  # type: ignore[no-any-return]
            if msg.type is aiohttp.WSMsgType.BINARY:
                # The API sends only text; a binary frame is passed on as text if it decodes.
                try:
                    return bytes(msg.data).decode()
                except UnicodeDecodeError:
                    continue
            if msg.type is aiohttp.WSMsgType.CLOSE:
                self._closed = UpstreamClosed(int(msg.data), str(msg.extra or ""))
            elif msg.type in (aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
                code = self._ws.close_code
                self._closed = UpstreamClosed(code if code not in (None, 1006) else None)
            elif msg.type is aiohttp.WSMsgType.ERROR:
                self._closed = UpstreamClosed(None, "connection error")
        return self._closed

    async def close(self, code: int = 1000, reason: str = "") -> None:
        if self._closed is None:
            self._closed = UpstreamClosed(code, reason)
        with contextlib.suppress(TimeoutError, aiohttp.ClientError, ConnectionError, RuntimeError):
            await asyncio.wait_for(self._ws.close(code=code, message=reason.encode()), 1.0)


class WebSocketUpstream:
    """A WebSocket endpoint plus the headers that authenticate to it."""

    def __init__(
        self,
        *,
        kind: str,
        url: str,
        headers: Mapping[str, str],
        connect_timeout_s: float,
        fixed_model: str | None = None,
    ) -> None:
        self._kind = kind
        self._url = url
        self._headers = dict(headers)
        self._connect_timeout_s = connect_timeout_s
        self._fixed_model = fixed_model
        self._http: aiohttp.ClientSession | None = None

    @property
    def kind(self) -> str:
        return self._kind

    @property
    def url(self) -> str:
        return self._url

    def url_for(self, model: str) -> str:
        """The URL one session connects to (Azure names a deployment, not the client's model)."""
        return with_query(self._url, model=self._fixed_model or model)

    async def connect(self, request: UpstreamRequest) -> UpstreamConnection:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300)
            )
        url = self.url_for(request.model)
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                ws = await self._http.ws_connect(
                    url,
                    headers=self._headers,
                    autoping=True,
                    heartbeat=None,
                    compress=0,
                    max_msg_size=MAX_UPSTREAM_MESSAGE_BYTES,
                )
        except TimeoutError:
            raise UpstreamUnavailable(
                f"the {self._kind} upstream did not answer within {self._connect_timeout_s:g} s"
            ) from None
        except aiohttp.WSServerHandshakeError as exc:
            raise UpstreamUnavailable(
                f"the {self._kind} upstream refused the connection (HTTP {exc.status})"
            ) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise UpstreamUnavailable(
                f"the {self._kind} upstream is unreachable ({type(exc).__name__})"
            ) from None
        return WebSocketConnection(ws)

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None
