"""The client's WebSocket, as the bridge session sees it: frames in through callbacks, frames out
through plain calls.

picows parses frames in compiled code and calls :class:`ClientConnection` for each one; whole
messages go straight to the session (:class:`ClientSink`) in the same call, so relaying an event
costs no queue and no task switch. This module also owns the WebSocket details the session
should not see: reassembling fragmented messages, the message size limit (close 1009), UTF-8
checks (close 1007), answering the client's close, and the write-buffer signals that drive
backpressure.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Protocol

from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport

from realtime_bridge.errors import is_sendable_close_code

_TEXT, _BINARY, _CONTINUATION, _CLOSE = (
    WSMsgType.TEXT,
    WSMsgType.BINARY,
    WSMsgType.CONTINUATION,
    WSMsgType.CLOSE,
)
#: How long the client gets to answer our close frame before the socket is dropped.
CLOSE_HANDSHAKE_TIMEOUT_S = 1.0
_MAX_REASON_BYTES = 123


@dataclass(frozen=True, slots=True)
class ClientGone:
    """How the client's side ended: its close code and reason, or the protocol error we closed
    it for (``error`` set, ``code`` the code we sent)."""

    code: int
    reason: str = ""
    error: str | None = None


class ClientSink(Protocol):
    """What the client's frames are delivered to (the bridge session)."""

    def client_passthrough(self, payload: memoryview) -> bool:
        """A text message still in bytes: True if it was taken as it is (the hot path), False if
        it must come again, decoded, through :meth:`client_text`. Valid only during the call."""
        ...

    def client_text(self, text: str) -> None: ...

    def client_binary(self, data: bytes) -> None: ...

    def client_gone(self, gone: ClientGone) -> None:
        """The client closed, vanished, or broke the protocol (called once)."""
        ...

    def client_writable(self, writable: bool) -> None:
        """Backpressure: False when the client stopped taking data, True when it resumed."""
        ...


def truncate_utf8(text: str, limit: int) -> bytes:
    """``text`` encoded and cut to ``limit`` bytes without splitting a character."""
    return text.encode()[:limit].decode("utf-8", "ignore").encode()


class ClientConnection(WSListener):
    """One client WebSocket (server side). Created at the upgrade; ``attach`` starts delivery.

    Until the session attaches (while the upstream connects), reading is paused and what
    already arrived is kept in order, so a client that talks first loses nothing.
    """

    def __init__(self, max_message_bytes: int) -> None:
        self.transport: WSTransport | None = None
        self.peer = "unknown"
        self._max_message_bytes = max_message_bytes
        self._sink: ClientSink | None = None
        self._early: list[tuple[WSMsgType, bytes] | ClientGone] = []
        self._fragments: list[bytes] = []
        self._fragments_size = 0
        self._fragment_type = WSMsgType.TEXT
        self._fragments_open = False
        self._gone: ClientGone | None = None
        #: Set by the server when the connection is up; the session starts from it.
        self.on_connected: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    # -- picows callbacks ---------------------------------------------------------------------

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        underlying = transport.underlying_transport
        peer = underlying.get_extra_info("peername")
        if isinstance(peer, tuple) and peer:
            self.peer = str(peer[0])
        underlying.pause_reading()  # until the session attaches
        if not self.on_connected.done():
            self.on_connected.set_result(None)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if self._gone is not None:  # closing: what is still buffered is dropped
            return
        msg_type = frame.msg_type
        if frame.rsv1 or frame.rsv2 or frame.rsv3:  # no extension was negotiated
            self._refuse(WSCloseCode.PROTOCOL_ERROR, "reserved bits set")
        elif frame.payload_size > self._max_message_bytes:
            # picows refuses such a frame from its header (1009) but still parses it and hands
            # it over; it must not be passed on.
            self._refuse(WSCloseCode.MESSAGE_TOO_BIG, "message too big")
        elif msg_type is _TEXT and frame.fin and not self._fragments_open:
            sink = self._sink
            if sink is None:
                self._early.append((msg_type, frame.get_payload_as_bytes()))
            elif not sink.client_passthrough(frame.get_payload_as_memoryview()):
                try:
                    text = frame.get_payload_as_utf8_text()
                except UnicodeDecodeError:
                    self._refuse(WSCloseCode.INVALID_TEXT, "invalid UTF-8 in a text frame")
                    return
                sink.client_text(text)
        elif msg_type is _BINARY and frame.fin and not self._fragments_open:
            self._deliver(msg_type, frame.get_payload_as_bytes())
        elif msg_type is _CLOSE:
            self._on_close_frame(transport, frame)
        elif msg_type in (_TEXT, _BINARY, _CONTINUATION):
            self._on_fragment(frame)
        # PING is answered by picows (auto-pong); PONG needs nothing.

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        handshake = transport.close_handshake
        if handshake is not None and handshake.sent is not None and not handshake.recv_then_sent:
            # We closed first without having said why (that would have ended it already):
            # picows did, for a frame it could not accept (too big: 1009; malformed: 1002).
            sent = handshake.sent
            error = sent.reason or "protocol error"
            self._end(ClientGone(sent.code.value, sent.reason, error=error))
        else:
            self._end(ClientGone(1006, "connection lost"))

    def pause_writing(self) -> None:
        if self._sink is not None:
            self._sink.client_writable(False)

    def resume_writing(self) -> None:
        if self._sink is not None:
            self._sink.client_writable(True)

    # -- the session's side -------------------------------------------------------------------

    def attach(self, sink: ClientSink) -> None:
        """Deliver to ``sink`` from now on, starting with what arrived before."""
        self._sink = sink
        early, self._early = self._early, []
        for item in early:
            if isinstance(item, ClientGone):
                sink.client_gone(item)
                return
            self._deliver(*item)
        if self.transport is not None and not self.transport.is_disconnected:
            self.transport.underlying_transport.resume_reading()

    @property
    def closed(self) -> bool:
        """Whether no more frames can be sent (closing, closed or lost)."""
        t = self.transport
        return t is None or t.is_disconnected or t.is_close_frame_sent

    def send_text(self, text: str) -> None:
        if not self.closed:
            self.transport.send(WSMsgType.TEXT, text.encode())  # type: ignore[union-attr]

    def send_text_payload(self, payload: bytes | memoryview) -> None:
        """Send a text message already encoded as UTF-8."""
        if not self.closed:
            self.transport.send(WSMsgType.TEXT, payload)  # type: ignore[union-attr]

    def send_bytes(self, data: bytes) -> None:
        if not self.closed:
            self.transport.send(WSMsgType.BINARY, data)  # type: ignore[union-attr]

    def ping(self) -> None:
        if not self.closed:
            self.transport.send_ping()  # type: ignore[union-attr]

    def pause_reading(self) -> None:
        if self.transport is not None and not self.transport.is_disconnected:
            self.transport.underlying_transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and not self.transport.is_disconnected:
            self.transport.underlying_transport.resume_reading()

    @property
    def write_buffer_size(self) -> int:
        t = self.transport
        if t is None or t.is_disconnected:
            return 0
        return int(t.underlying_transport.get_write_buffer_size())

    async def close(self, code: int, reason: str = "") -> None:
        """Send a close frame and wait (briefly) for the client's answer, then disconnect.

        Frames already queued are flushed first: the client gets everything sent before."""
        self._sink = None
        t = self.transport
        if t is None:
            return
        if not t.is_disconnected and not t.is_close_frame_sent:
            t.send_close(WSCloseCode(code), truncate_utf8(reason, _MAX_REASON_BYTES))
        with contextlib.suppress(Exception):  # also collects an error picows stored
            await asyncio.wait_for(t.wait_disconnected(), CLOSE_HANDSHAKE_TIMEOUT_S)
        t.disconnect()

    def abort(self) -> None:
        """Drop the socket now, unsent data included (a client that stopped reading)."""
        self._sink = None
        if self.transport is not None:
            self.transport.disconnect(graceful=False)

    # -- internals ------------------------------------------------------------------------------

    def _deliver(self, msg_type: WSMsgType, data: bytes) -> None:
        sink = self._sink
        if sink is None:
            self._early.append((msg_type, data))
        elif msg_type is WSMsgType.BINARY:
            sink.client_binary(data)
        else:
            try:
                text = data.decode()
            except UnicodeDecodeError:
                self._refuse(WSCloseCode.INVALID_TEXT, "invalid UTF-8 in a text message")
                return
            sink.client_text(text)

    def _end(self, gone: ClientGone) -> None:
        if self._gone is not None:
            return
        self._gone = gone
        sink = self._sink
        if sink is None:
            self._early.append(gone)
        else:
            sink.client_gone(gone)

    def _on_close_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        code = frame.get_close_code().value  # 0: the frame carries no code
        if code and not is_sendable_close_code(code):
            self._refuse(WSCloseCode.PROTOCOL_ERROR, f"invalid close code {code}")
            return
        message = frame.get_close_message() or b""
        try:
            reason = message.decode()
        except UnicodeDecodeError:
            self._refuse(WSCloseCode.INVALID_TEXT, "invalid UTF-8 in a close reason")
            return
        if not transport.is_close_frame_sent:
            transport.send_close(WSCloseCode(code or 1000), message)
        transport.disconnect()
        self._end(ClientGone(code or 1005, reason))  # 1005: a close frame without a code

    def _on_fragment(self, frame: WSFrame) -> None:
        """One frame of a fragmented message (RFC 6455 §5.4): a TEXT or BINARY frame starts it,
        CONTINUATION frames carry the rest, the last one has ``fin``."""
        starts = frame.msg_type is not WSMsgType.CONTINUATION
        if starts == self._fragments_open:
            problem = (
                "a new message inside a fragmented one"
                if starts
                else "continuation frame without a start"
            )
            self._refuse(WSCloseCode.PROTOCOL_ERROR, problem)
            return
        if starts:
            self._fragments_open = True
            self._fragment_type = frame.msg_type
        self._fragments_size += frame.payload_size
        if self._fragments_size > self._max_message_bytes:
            self._refuse(WSCloseCode.MESSAGE_TOO_BIG, "message too big")
            return
        self._fragments.append(frame.get_payload_as_bytes())
        if frame.fin:
            data = b"".join(self._fragments)
            self._fragments.clear()
            self._fragments_size = 0
            self._fragments_open = False
            self._deliver(self._fragment_type, data)

    def _refuse(self, code: WSCloseCode, reason: str) -> None:
        """Close the client for breaking the protocol; the session learns it as ``client_gone``."""
        transport = self.transport
        if transport is not None and not transport.is_disconnected:
            if not transport.is_close_frame_sent:
                transport.send_close(code, reason.encode())
            transport.disconnect()
        self._end(ClientGone(code.value, reason, error=reason))
