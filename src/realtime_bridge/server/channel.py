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
from realtime_bridge.wsframes import (
    BINARY,
    CLOSE,
    CONTINUATION,
    PING,
    PONG,
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

#: How long the client gets to answer our close frame before the socket is dropped.
CLOSE_HANDSHAKE_TIMEOUT_S = 1.0
#: How long a 101 may take to turn into a connection.
CONNECTED_TIMEOUT_S = 5.0


#: A client dropped for the unsent bytes it let pile up (``client_stalled``: for the time it
#: took no frame).
CLIENT_TOO_SLOW = "client_too_slow"


@dataclass(frozen=True, slots=True)
class ClientGone:
    """How the client's side ended: its close code and reason, or the protocol error we closed
    it for (``error`` set, ``code`` the code we sent)."""

    code: int
    reason: str = ""
    error: str | None = None
    #: The session's ending reason when it is not the usual one (logs and metrics).
    ending: str | None = None


class ClientSink(Protocol):
    """What the client's frames are delivered to (the bridge session)."""

    def client_passthrough(self, payload: memoryview) -> bool:
        """A text message still in bytes: True if it was taken as it is (the hot path), False if
        it must come again, decoded, through :meth:`client_text`. Valid only during the call."""
        ...

    def client_text(self, text: str) -> None: ...

    def client_binary(self, data: bytes) -> None: ...

    def own_text(self, text: str) -> None:
        """An event the bridge sends itself (a call's greeting), not subject to the client's
        locks."""
        ...

    def client_gone(self, gone: ClientGone) -> None:
        """The client closed, vanished, or broke the protocol (called once)."""
        ...

    def client_burst(self) -> None:
        """More frames follow at once (they came in one read): what the session sends
        upstream meanwhile can go out together."""
        ...

    def client_writable(self, writable: bool) -> None:
        """Backpressure: False when the client stopped taking data, True when it resumed."""
        ...


#: Unsent bytes a client may have queued once it stopped taking data (past the high-water
#: mark it is not read any more and the upstream is held back; what was already on its way
#: still arrives; past this, the client is dropped). CLIENT_MAX_UNSENT_BYTES sets it.
MAX_UNSENT_BYTES = 16 * 1024 * 1024


class ClientConnection(WSListener):
    """One client WebSocket (server side). Created at the upgrade; ``attach`` starts delivery.

    Until the session attaches (while the upstream connects), reading is paused and what
    already arrived is kept in order, so a client that talks first loses nothing.
    """

    def __init__(self, max_message_bytes: int, max_unsent_bytes: int = MAX_UNSENT_BYTES) -> None:
        self._max_unsent_bytes = max_unsent_bytes
        self.transport: WSTransport | None = None
        self.peer = "unknown"
        self._max_message_bytes = max_message_bytes
        self._sink: ClientSink | None = None
        self._early: list[tuple[WSMsgType, bytes] | ClientGone] = []
        self._assembler = MessageAssembler(max_message_bytes)
        self._gone: ClientGone | None = None
        #: The bridge sent its close: only the client's close answer still matters.
        self._closing = False
        #: Why the client is not being read (reading resumes when this is empty).
        self._read_blocks: set[str] = set()
        self._writes_paused = False
        self._pending_pong: bytes | None = None
        self._coalescer: WriteCoalescer | None = None
        #: Set by the server when the connection is up; the session starts from it.
        self.on_connected: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    # -- picows callbacks ---------------------------------------------------------------------

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        self._coalescer = WriteCoalescer(transport)
        underlying = transport.underlying_transport
        peer = underlying.get_extra_info("peername")
        if isinstance(peer, tuple) and peer and self.peer == "unknown":  # else set at the upgrade
            self.peer = str(peer[0])
        self.pause_reading("attach")  # until the session attaches
        if not self.on_connected.done():
            self.on_connected.set_result(None)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if self._gone is not None:  # closing: what is still buffered is dropped
            return
        msg_type = frame.msg_type
        if frame.rsv1 or frame.rsv2 or frame.rsv3:  # no extension was negotiated
            self._refuse(FrameError(WSCloseCode.PROTOCOL_ERROR, "reserved bits set"))
        elif frame.payload_size > self._max_message_bytes:
            # picows refuses such a frame from its header (1009) but still parses it and hands
            # it over; it must not be passed on.
            self._refuse(FrameError(WSCloseCode.MESSAGE_TOO_BIG, "message too big"))
        elif msg_type is TEXT and frame.fin and not self._assembler.open:
            sink = self._sink
            if sink is None:
                if not self._closing:
                    self._early.append((msg_type, frame.get_payload_as_bytes()))
                return
            if not frame.last_in_buffer:  # more frames came in the same read
                sink.client_burst()
            if not sink.client_passthrough(frame.get_payload_as_memoryview()):
                self._deliver(msg_type, frame.get_payload_as_bytes())
        elif msg_type is BINARY and frame.fin and not self._assembler.open:
            self._deliver(msg_type, frame.get_payload_as_bytes())
        elif msg_type is CLOSE:
            self._on_close_frame(transport, frame)
        elif msg_type in (TEXT, BINARY, CONTINUATION):
            try:
                message = self._assembler.add(frame)
            except FrameError as error:
                self._refuse(error)
                return
            if message is not None:
                self._deliver(*message)
        elif msg_type is PING:
            self._answer_ping(transport, frame.get_payload_as_bytes())
        # PONG needs nothing.

    def _answer_ping(self, transport: WSTransport, payload: bytes) -> None:
        """Pong at once, or, while the client is not taking data, only the latest ping when it
        does again (RFC 6455 §5.5.3 allows that): a flood of pings from a client that does not
        read cannot queue a pong each."""
        if self._writes_paused:
            self._pending_pong = payload
        else:
            transport.send(PONG, payload)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        refused = closed_by_picows(transport)
        if refused is not None:
            self._end(ClientGone(refused.code.value, refused.reason, error=refused.reason))
        else:
            self._end(ClientGone(1006, "connection lost"))

    def pause_writing(self) -> None:
        """The client is not taking what is sent: stop reading it too (every ping it sends
        would queue a pong, every bad frame an error event) and hold the upstream back."""
        self._writes_paused = True
        self.pause_reading("own_writes")
        if self._sink is not None:
            self._sink.client_writable(False)

    def resume_writing(self) -> None:
        self._writes_paused = False
        pong, self._pending_pong = self._pending_pong, None
        if pong is not None and self.transport is not None:
            self.transport.send(PONG, pong)
        self.resume_reading("own_writes")
        if self._sink is not None:
            self._sink.client_writable(True)

    # -- the session's side -------------------------------------------------------------------

    async def connected(self) -> bool:
        """Wait (at most :data:`CONNECTED_TIMEOUT_S`) for the upgrade to become a connection;
        False if it never did."""
        try:
            await asyncio.wait_for(asyncio.shield(self.on_connected), CONNECTED_TIMEOUT_S)
        except TimeoutError:
            return False
        return True

    def summary(self) -> dict[str, object]:
        """What this kind of client adds to the session's end line and listing (a call's ids
        and counts); nothing for a plain WebSocket."""
        return {}

    def attach(self, sink: ClientSink) -> None:
        """Deliver to ``sink`` from now on, starting with what arrived before."""
        self._sink = sink
        early, self._early = self._early, []
        for item in early:
            if isinstance(item, ClientGone):
                sink.client_gone(item)
                return
            self._deliver(*item)
        self.resume_reading("attach")

    @property
    def closed(self) -> bool:
        """Whether no more frames can be sent (closing, closed or lost)."""
        t = self.transport
        return t is None or t.is_disconnected or t.is_close_frame_sent

    def send_text(self, text: str) -> None:
        self.send_text_payload(text.encode())

    def send_text_payload(self, payload: bytes | memoryview) -> None:
        """Send a text message already encoded as UTF-8. On every relayed upstream event, so
        there is no ``closed`` check: picows drops what is sent after a close or a disconnect."""
        t = self.transport
        if t is not None:
            t.send(TEXT, payload)
            if self._writes_paused:
                self._enforce_unsent_cap()

    def send_bytes(self, data: bytes) -> None:
        if not self.closed:
            self.transport.send(BINARY, data)  # type: ignore[union-attr]
            if self._writes_paused:
                self._enforce_unsent_cap()

    def _enforce_unsent_cap(self) -> None:
        """A client whose unsent bytes pass the hard cap is dropped: memory is bounded in
        bytes, not only in time (the stall timeout)."""
        if self.write_buffer_size > self._max_unsent_bytes:
            gone = ClientGone(1013, "client too slow", "too much unsent data", CLIENT_TOO_SLOW)
            self._end(gone)
            self.abort()

    def hold_writes(self) -> None:
        """More frames are about to be sent at once: send them together (see
        :class:`WriteCoalescer`)."""
        if self._coalescer is not None:
            self._coalescer.hold()

    def ping(self) -> None:
        if not self.closed:
            self.transport.send_ping()  # type: ignore[union-attr]

    def pause_reading(self, reason: str = "upstream") -> None:
        """Stop reading the client for ``reason``; reading resumes when no reason is left
        (its own unsent data, an upstream not taking data, the session's start-up)."""
        self._read_blocks.add(reason)
        if self.transport is not None and not self.transport.is_disconnected:
            self.transport.underlying_transport.pause_reading()

    def resume_reading(self, reason: str = "upstream") -> None:
        self._read_blocks.discard(reason)
        if self._read_blocks or self._sink is None:
            return
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

        Frames already queued are flushed first: the client gets everything sent before.
        Reading resumes if it was paused (a session whose upstream never connected): the
        client's close answer must be read for the connection to end at once, as RFC 6455
        §7.1.1 has the server close TCP as soon as the close handshake is done."""
        self._sink = None
        self._closing = True
        self._early.clear()
        t = self.transport
        if t is None:
            return
        if not t.is_disconnected and not t.is_close_frame_sent:
            t.send_close(WSCloseCode(code), truncate_utf8(reason))
        if not t.is_disconnected:
            t.underlying_transport.resume_reading()
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
            if not self._closing:
                self._early.append((msg_type, data))
        elif msg_type is BINARY:
            sink.client_binary(data)
        else:
            try:
                text = data.decode()
            except UnicodeDecodeError:
                self._refuse(invalid_text())
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
        try:
            code, reason, message = read_close(frame)
            if code and not is_sendable_close_code(code):
                raise FrameError(WSCloseCode.PROTOCOL_ERROR, f"invalid close code {code}")
        except FrameError as error:
            self._refuse(error)
            return
        answer_close(transport, code, message)
        self._end(ClientGone(code or 1005, reason))  # 1005: a close frame without a code

    def _refuse(self, error: FrameError) -> None:
        """Close the client for breaking the protocol; the session learns it as ``client_gone``."""
        refuse(self.transport, error)
        self._end(ClientGone(error.code.value, error.reason, error=error.reason))
