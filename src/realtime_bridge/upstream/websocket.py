"""An upstream reached over a real WebSocket (the OpenAI API, Azure, or the simulator).

OpenAI and Azure differ only in URL and headers, which :mod:`openai` and :mod:`azure` build;
this module owns the connection: timeouts, error mapping, message reassembly and the close
bookkeeping the relay needs to mirror the upstream's close code to the client.

The socket is driven by picows' frame callbacks (the frame layer is compiled), and every event
goes straight to the session's :class:`UpstreamSink`: no queue and no task switch per event.
That is where most of the relay's CPU per message went with a queue-based client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Mapping
from urllib.parse import urlencode, urlsplit, urlunsplit

from picows import (
    WSCloseCode,
    WSError,
    WSFrame,
    WSInvalidStatusError,
    WSListener,
    WSMsgType,
    WSTransport,
    ws_connect,
)

from realtime_bridge.errors import UpstreamError, UpstreamUnavailable
from realtime_bridge.observability import DemotedErrors
from realtime_bridge.upstream.base import (
    UpstreamClosed,
    UpstreamConnection,
    UpstreamRequest,
    UpstreamSink,
)
from realtime_bridge.wsframes import (
    BINARY,
    CLOSE,
    CONTINUATION,
    TEXT,
    FrameError,
    MessageAssembler,
    WriteCoalescer,
    answer_close,
    closed_by_picows,
    invalid_text,
    read_close,
    refuse,
    truncate_utf8,
)

#: Largest upstream message accepted; a 15 MiB audio event is the API's own maximum.
MAX_UPSTREAM_MESSAGE_BYTES = 64 * 1024 * 1024
#: picows' read buffer starts this small and doubles when an event needs more (audio deltas
#: are a few KB; per-session memory is mostly these buffers, 16 KB each by default).
READ_BUFFER_BYTES = 4096
#: An upstream frame picows refuses is the upstream's fault: logged at WARNING.
_LOGGER = DemotedErrors(logging.getLogger("picows.upstream"), logging.WARNING)
#: How long a closing handshake may take before the socket is dropped.
CLOSE_TIMEOUT_S = 1.0


def with_query(url: str, **params: str) -> str:
    """``url`` with ``params`` set in its query (existing parameters of the same name replaced)."""
    parts = urlsplit(url)
    kept = [p for p in parts.query.split("&") if p and p.split("=", 1)[0] not in params]
    query = "&".join([*kept, urlencode(params)]) if params else "&".join(kept)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def connect_failure(exc: BaseException) -> str:
    """A short, credential-free name for why a connection could not be opened."""
    if isinstance(exc, socket.gaierror):
        return "dns"
    if isinstance(exc, ssl.SSLError):
        return "tls"
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, ConnectionResetError):
        return "reset"
    return type(exc).__name__


#: An upstream quiet this long is pinged; one that does not answer within the timeout is taken
#: for dead (its connection is dropped, and the session resumes on a fresh one).
UPSTREAM_PING_IDLE_S = 20.0
UPSTREAM_PING_TIMEOUT_S = 10.0


class WebSocketConnection(WSListener):
    """One upstream session: picows calls ``on_ws_*``; the bridge calls the channel methods."""

    def __init__(self) -> None:
        self._transport: WSTransport | None = None
        self._sink: UpstreamSink | None = None
        #: Events and the ending that arrived before ``attach`` (session.created comes at once).
        self._early: list[str | UpstreamClosed] = []
        self._assembler = MessageAssembler(MAX_UPSTREAM_MESSAGE_BYTES)
        self._closed: UpstreamClosed | None = None
        self._closing_ourselves = False
        self._coalescer: WriteCoalescer | None = None

    # -- picows callbacks ---------------------------------------------------------------------

    def on_ws_connected(self, transport: WSTransport) -> None:
        self._transport = transport
        self._coalescer = WriteCoalescer(transport)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if self._closed is not None:  # ended or closing: what is still buffered is dropped
            return
        msg_type = frame.msg_type
        if frame.rsv1 or frame.rsv2 or frame.rsv3:  # no extension was negotiated
            self._fail(FrameError(WSCloseCode.PROTOCOL_ERROR, "reserved bits set"))
        elif msg_type is TEXT and frame.fin and not self._assembler.open:
            if frame.payload_size > MAX_UPSTREAM_MESSAGE_BYTES:
                # picows flags it too, but still hands the frame over before disconnecting
                self._fail(FrameError(WSCloseCode.MESSAGE_TOO_BIG, "message too big"))
                return
            payload = frame.get_payload_as_bytes()
            sink = self._sink
            if sink is not None and not frame.last_in_buffer:  # more came in the same read
                sink.upstream_burst()
            if sink is not None and sink.upstream_passthrough(payload):
                return
            self._deliver(TEXT, payload)
        elif msg_type is CLOSE:
            self._on_close_frame(transport, frame)
        elif msg_type in (TEXT, BINARY, CONTINUATION):
            try:
                message = self._assembler.add(frame)
            except FrameError as error:
                self._fail(error)
                return
            if message is not None:
                self._deliver(*message)
        # PING is answered by picows (auto-pong); PONG needs nothing.

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if self._closed is not None:
            return
        refused = closed_by_picows(transport)
        if refused is not None and refused.code == WSCloseCode.GOING_AWAY:
            # picows' auto-ping got no answer (UPSTREAM_PING_TIMEOUT_S): a dead connection
            self._end(UpstreamClosed(None, "no answer to a ping"))
        elif refused is not None:
            self._end(UpstreamClosed(None, refused.reason, protocol_error=True))
        else:
            self._end(UpstreamClosed(None, "connection lost"))

    def pause_writing(self) -> None:
        if self._sink is not None:
            self._sink.upstream_writable(False)

    def resume_writing(self) -> None:
        if self._sink is not None:
            self._sink.upstream_writable(True)

    # -- the channel (UpstreamConnection) ------------------------------------------------------

    def attach(self, sink: UpstreamSink) -> None:
        self._sink = sink
        early, self._early = self._early, []
        for item in early:
            if isinstance(item, UpstreamClosed):
                sink.upstream_closed(item)
            else:
                sink.upstream_text(item)

    def send(self, text: str) -> None:
        self.send_payload(text.encode())

    def send_payload(self, payload: bytes | memoryview) -> None:
        # On every relayed client event, so only our own state is checked: picows itself
        # drops what is sent after a close or a disconnect, which then ends the session.
        transport = self._transport
        if self._closed is not None or transport is None:
            raise UpstreamError("the upstream connection is closed")
        transport.send(TEXT, payload)

    def hold_writes(self) -> None:
        if self._coalescer is not None:
            self._coalescer.hold()

    def pause_reading(self) -> None:
        if self._transport is not None:
            self._transport.underlying_transport.pause_reading()

    def resume_reading(self) -> None:
        if self._transport is not None and not self._transport.is_disconnected:
            self._transport.underlying_transport.resume_reading()

    async def close(self, code: int = 1000, reason: str = "") -> None:
        transport = self._transport
        if self._closed is None:
            self._closed = UpstreamClosed(code, reason)
        self._sink = None  # the bridge asked: nothing more is delivered
        if transport is None or self._closing_ourselves:
            return
        self._closing_ourselves = True
        if not transport.is_disconnected:
            # Read again (what arrives is dropped), so the upstream's close frame is seen.
            transport.underlying_transport.resume_reading()
            with contextlib.suppress(Exception):
                transport.send_close(WSCloseCode(code), truncate_utf8(reason))
        # Awaiting the end also collects a protocol error picows stored for the upstream (it
        # would otherwise be logged as never retrieved): it is over either way.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(transport.wait_disconnected(), CLOSE_TIMEOUT_S)
        transport.disconnect(graceful=False)

    # -- internals ------------------------------------------------------------------------------

    def _deliver(self, msg_type: WSMsgType, data: bytes) -> None:
        """A whole message: text goes on decoded; the API sends only text, so a binary one
        passes on only if it is UTF-8, and is dropped otherwise."""
        try:
            text = data.decode()
        except UnicodeDecodeError:
            if msg_type is TEXT:
                self._fail(invalid_text())
            return
        if self._closed is not None:
            return
        sink = self._sink
        if sink is None:
            self._early.append(text)
        else:
            sink.upstream_text(text)

    def _end(self, closed: UpstreamClosed) -> None:
        if self._closed is not None:
            return
        self._closed = closed
        sink = self._sink
        if sink is None:
            self._early.append(closed)
        else:
            sink.upstream_closed(closed)

    def _on_close_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        try:
            code, reason, message = read_close(frame)
        except FrameError as error:
            self._fail(error)
            return
        answer_close(transport, code, message)
        self._end(UpstreamClosed(code or 1005, reason))  # 1005: a close frame without a code

    def _fail(self, error: FrameError) -> None:
        """Drop an upstream that broke the protocol; the session learns it as a protocol error."""
        refuse(self._transport, error)
        self._end(UpstreamClosed(None, error.reason, protocol_error=True))


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
        self._ssl: ssl.SSLContext | None = None

    @property
    def kind(self) -> str:
        return self._kind

    @property
    def url(self) -> str:
        return self._url

    def url_for(self, model: str, intent: str | None = None) -> str:
        """The URL one session connects to (Azure names a deployment, not the client's model;
        a transcription session names its intent and no model)."""
        if intent is not None and self._fixed_model is None:
            return with_query(self._url, intent=intent)
        if intent is not None:
            return with_query(self._url, model=self._fixed_model or model, intent=intent)
        return with_query(self._url, model=self._fixed_model or model)

    async def connect(self, request: UpstreamRequest) -> UpstreamConnection:
        url = self.url_for(request.model, request.intent)
        host = urlsplit(url).hostname or ""
        if url.startswith("wss:") and self._ssl is None:
            self._ssl = ssl.create_default_context()  # once: loading CA certificates is slow
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                _, listener = await ws_connect(
                    WebSocketConnection,
                    url,
                    ssl_context=self._ssl,
                    extra_headers=self._headers,
                    websocket_handshake_timeout=None,  # our own timeout covers it all
                    max_frame_size=MAX_UPSTREAM_MESSAGE_BYTES,
                    max_redirects=0,
                    enable_auto_ping=True,
                    auto_ping_idle_timeout=UPSTREAM_PING_IDLE_S,
                    auto_ping_reply_timeout=UPSTREAM_PING_TIMEOUT_S,
                    read_buffer_init_size=READ_BUFFER_BYTES,
                    use_aiofastnet=False,  # uvloop's transports: as fast, less memory
                    logger_name=_LOGGER,
                )
        except TimeoutError:
            raise UpstreamUnavailable(
                f"the {self._kind} upstream did not answer within {self._connect_timeout_s:g} s",
                cause="timeout",
                host=host,
            ) from None
        except WSInvalidStatusError as exc:
            status = exc.response.status if exc.response is not None else None
            raise UpstreamUnavailable(
                f"the {self._kind} upstream refused the connection (HTTP {int(status)})"
                if isinstance(status, int)
                else f"the {self._kind} upstream refused the connection",
                cause=f"http_{int(status)}" if isinstance(status, int) else "http_refused",
                host=host,
            ) from None
        except (WSError, OSError, ValueError) as exc:
            raise UpstreamUnavailable(
                f"the {self._kind} upstream is unreachable ({type(exc).__name__})",
                cause=connect_failure(exc),
                host=host,
            ) from None
        assert isinstance(listener, WebSocketConnection)
        return listener

    async def aclose(self) -> None:
        """Nothing shared to release (each session owns its socket)."""
