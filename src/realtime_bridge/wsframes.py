"""WebSocket message rules both ends of the relay share (RFC 6455), on top of picows' frames.

picows hands over single frames; the client's side (``server/channel.py``) and the upstream's
side (``upstream/websocket.py``) both reassemble fragmented messages, refuse what breaks the
protocol, and answer close frames. The rules live here once; each side decides what a breach
means for its session.
"""

from __future__ import annotations

import asyncio
import socket

from picows import WSCloseCode, WSFrame, WSMsgType, WSTransport

#: Frame types, bound once: both ends compare every frame's type against them.
TEXT, BINARY, CONTINUATION, CLOSE, PING, PONG = (
    WSMsgType.TEXT,
    WSMsgType.BINARY,
    WSMsgType.CONTINUATION,
    WSMsgType.CLOSE,
    WSMsgType.PING,
    WSMsgType.PONG,
)
#: Close reasons are at most 123 bytes (a control frame's payload is 125, two are the code).
MAX_CLOSE_REASON_BYTES = 123


class FrameError(Exception):
    """A frame or message the peer must be closed for: the close code and a reason."""

    def __init__(self, code: WSCloseCode, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def invalid_text() -> FrameError:
    """What a text message that is not UTF-8 is refused with (1007)."""
    return FrameError(WSCloseCode.INVALID_TEXT, "invalid UTF-8 in text")


#: Fragments one message may have. Clients send whole messages; browsers and SDKs fragment
#: only very large ones, into frames of tens of KB or more.
MAX_FRAGMENTS = 1024
#: What each fragment costs against the message limit on top of its payload: the bookkeeping a
#: frame costs is never free, so empty or tiny fragments cannot grow memory past the limit.
FRAGMENT_OVERHEAD_BYTES = 64


class MessageAssembler:
    """Joins a fragmented message (a TEXT or BINARY frame without ``fin``, then CONTINUATION
    frames up to one with ``fin``) into one buffer, keeping the whole, counted as its payload
    plus :data:`FRAGMENT_OVERHEAD_BYTES` per fragment, under ``limit`` bytes, and the number of
    fragments under :data:`MAX_FRAGMENTS`."""

    __slots__ = ("_buffer", "_count", "_limit", "_size", "_type", "open")

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._buffer = bytearray()
        self._count = 0
        self._size = 0
        self._type = TEXT
        #: Whether a fragmented message has started and not finished.
        self.open = False

    def add(self, frame: WSFrame) -> tuple[WSMsgType, bytes] | None:
        """Take one data frame; the whole message once its last frame came, else None.
        Raises :class:`FrameError` for a frame out of sequence or a message over the limits."""
        starts = frame.msg_type is not CONTINUATION
        if starts == self.open:
            if starts:
                raise FrameError(
                    WSCloseCode.PROTOCOL_ERROR, "a new message inside a fragmented one"
                )
            raise FrameError(WSCloseCode.PROTOCOL_ERROR, "continuation frame without a start")
        if starts:
            self.open = True
            self._type = frame.msg_type
        self._count += 1
        self._size += frame.payload_size + FRAGMENT_OVERHEAD_BYTES
        if self._size > self._limit or self._count > MAX_FRAGMENTS:
            self._reset()
            raise FrameError(WSCloseCode.MESSAGE_TOO_BIG, "message too big")
        self._buffer += frame.get_payload_as_memoryview()
        if not frame.fin:
            return None
        data = bytes(self._buffer)
        self._reset()
        return self._type, data

    def _reset(self) -> None:
        self._buffer = bytearray()
        self._count = 0
        self._size = 0
        self.open = False


def read_close(frame: WSFrame) -> tuple[int, str, bytes]:
    """A close frame's code (0 when it carries none), reason, and raw reason bytes.
    Raises :class:`FrameError` (1007) for a reason that is not UTF-8."""
    message = frame.get_close_message() or b""
    try:
        reason = message.decode()
    except UnicodeDecodeError:
        raise FrameError(WSCloseCode.INVALID_TEXT, "invalid UTF-8 in a close reason") from None
    return frame.get_close_code().value, reason, message


def answer_close(transport: WSTransport, code: int, message: bytes) -> None:
    """Echo the peer's close (a close without a code is answered with 1000), then disconnect."""
    if not transport.is_close_frame_sent:
        transport.send_close(WSCloseCode(code or 1000), message)
    transport.disconnect()


def refuse(transport: WSTransport | None, error: FrameError) -> None:
    """Close the peer for breaking the protocol (unless a close already went out)."""
    if transport is not None and not transport.is_disconnected:
        if not transport.is_close_frame_sent:
            transport.send_close(error.code, error.reason.encode())
        transport.disconnect()


def closed_by_picows(transport: WSTransport) -> FrameError | None:
    """When the connection ended because picows itself refused a frame (malformed: 1002, too
    big: 1009, bad close reason: 1007), what it sent; None for any other ending.

    We closed first and never heard back, and our own closes decide the session's ending
    before the disconnect, so a close we sent that is still unexplained here is picows'."""
    handshake = transport.close_handshake
    if handshake is None or handshake.sent is None or handshake.recv_then_sent:
        return None
    sent = handshake.sent
    return FrameError(sent.code, sent.reason or "protocol error")


def truncate_utf8(text: str, limit: int = MAX_CLOSE_REASON_BYTES) -> bytes:
    """``text`` encoded and cut to ``limit`` bytes without splitting a character."""
    return text.encode()[:limit].decode("utf-8", "ignore").encode()


#: Linux only; elsewhere writes are simply not coalesced.
_TCP_CORK: int | None = getattr(socket, "TCP_CORK", None)


class WriteCoalescer:
    """Sends a burst of small frames to one socket as a few full TCP segments.

    When the other side delivers several frames in one read (a client or an upstream sending
    faster than real time), each one relayed here would otherwise be a ``send`` and a segment
    of its own. :meth:`hold` corks the socket (``TCP_CORK``) until the event loop has run the
    callbacks it is running now, so the frames relayed meanwhile go out together, and nothing
    waits longer than that round of callbacks. It costs two system calls per burst and none
    per frame, so it is only used when a burst is known to be under way.
    """

    __slots__ = ("_held", "_loop", "_socket", "_transport")

    def __init__(self, transport: WSTransport) -> None:
        self._transport = transport.underlying_transport
        sock = self._transport.get_extra_info("socket")
        self._socket = sock if _TCP_CORK is not None else None
        self._loop = asyncio.get_running_loop()
        self._held = False

    def hold(self) -> None:
        """Hold writes back until the current round of event-loop callbacks is done."""
        if self._held or self._socket is None or self._transport.is_closing():
            return
        if self._cork(1):
            self._held = True
            self._loop.call_soon(self._release)

    def _release(self) -> None:
        self._held = False
        # A closing socket flushes what it holds itself; its descriptor may not be ours any more.
        if not self._transport.is_closing():
            self._cork(0)

    def _cork(self, on: int) -> bool:
        if self._socket is None or _TCP_CORK is None:
            return False
        try:
            self._socket.setsockopt(socket.IPPROTO_TCP, _TCP_CORK, on)
        except (OSError, ValueError):  # not TCP, or already closed: stop trying
            self._socket = None
            return False
        return True
