"""The sideband: an operator's backend attached to a live WebRTC call over WebSocket.

``GET /v1/realtime?call_id=rtc_…`` on the WebSocket port, as on the API: the backend receives
the call's server events and may send client events (instructions, tools, tool outputs) while
the audio flows between the caller and the bridge. It takes a server credential: one of
``BRIDGE_API_KEYS`` (a client secret is refused, so a page holding one cannot attach to any
call, its own included), and any request with an ``Origin`` (a browser) is refused, token or
not. A bridge with no keys is open to local backends, never to pages.

Its events are the bridge's own (``own_text``), so the call's locked fields, which bind the
page, do not bind the operator. It is not a session: no slot, no upstream; it ends with the call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import aiohttp

from realtime_bridge.errors import ClientError, ErrorCode
from realtime_bridge.observability import get_logger
from realtime_bridge.policy.secrets import looks_like_secret
from realtime_bridge.server.admission import admit, offered_subprotocols, presented_tokens
from realtime_bridge.server.channel import ClientConnection, ClientGone
from realtime_bridge.server.http import ServerState

if TYPE_CHECKING:  # a call's connection; WebRTC's libraries load only when calls are taken
    from realtime_bridge.server.webrtc_channel import WebRTCConnection

log = get_logger("webrtc")


def sideband_target(
    state: ServerState, headers: Mapping[str, str], query: Mapping[str, str]
) -> WebRTCConnection | int:
    """The live call a sideband request may attach to, or the internal port of the worker that
    holds it; raises :class:`ClientError` (401, 403, 404) otherwise, before anything is opened."""
    settings = state.settings
    presented = presented_tokens(
        headers, query, offered_subprotocols(headers.get("Sec-WebSocket-Protocol"))
    )
    if any(looks_like_secret(token) for token in presented):
        raise ClientError(
            ErrorCode.FORBIDDEN_ORIGIN,
            "A sideband needs a server credential (a bridge token), not a client secret.",
        )
    if headers.get("Origin") is not None:  # a browser: a backend sends no Origin
        raise ClientError(
            ErrorCode.FORBIDDEN_ORIGIN, "A page may not attach to a call; a backend may."
        )
    if settings.bridge_api_keys:
        admit(
            headers=headers,
            query=query,
            api_keys=settings.bridge_api_keys,
            allowed_origins=(),
            own=(),
        )
    call_id = query.get("call_id", "")
    call = state.calls.get(call_id)
    if call is not None and not call.closed:
        return call
    port = _holder(state, call_id)
    if port is None:
        raise ClientError(
            ErrorCode.CALL_NOT_FOUND, "No live call with that call_id on this bridge."
        )
    return port


def _holder(state: ServerState, call_id: str) -> int | None:
    """The internal port of the worker holding ``call_id`` (its snapshot lists the call)."""
    if state.cluster is None or not call_id:
        return None
    for other in state.cluster.others(with_sessions=True):
        port = other.get("internal_ws_port")
        for summary in other.get("sessions", ()):
            call = summary.get("call")
            if isinstance(call, dict) and call.get("call_id") == call_id and isinstance(port, int):
                return port
    return None


class SidebandSink:
    """The backend's frames, delivered to the call."""

    def __init__(self, call: WebRTCConnection, connection: ClientConnection) -> None:
        self._call = call
        self._connection = connection
        self.gone: asyncio.Future[ClientGone] = asyncio.get_running_loop().create_future()

    def client_passthrough(self, payload: memoryview) -> bool:
        return False

    def client_text(self, text: str) -> None:
        self._call.sideband_event(text)

    def client_binary(self, data: bytes) -> None:
        """The call's audio is its track: a sideband sends events only."""

    def own_text(self, text: str) -> None:
        self._call.sideband_event(text)

    def client_gone(self, gone: ClientGone) -> None:
        if not self.gone.done():
            self.gone.set_result(gone)

    def client_burst(self) -> None:
        pass

    def client_writable(self, writable: bool) -> None:
        pass


async def attach_sideband(call: WebRTCConnection, connection: ClientConnection) -> None:
    """From the 101 to the end of the sideband (its own close, or the call's end)."""
    if not await connection.connected():
        return
    if call.closed:
        await connection.close(1000, "the call ended")
        return
    sink = SidebandSink(call, connection)
    connection.attach(sink)
    call.sidebands.add(connection)
    log.info("sideband attached", extra={"session_id": call.session_id, "call_id": call.call_id})
    try:
        waiters: set[asyncio.Future[Any]] = {sink.gone, call.ended}
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        call.sidebands.discard(connection)
    if not connection.closed:
        await connection.close(1000, "the call ended" if call.ended.done() else "")


class _RelaySink(SidebandSink):
    """The backend's frames, for the worker that holds the call (in order, through a queue)."""

    def __init__(self) -> None:
        self.gone = asyncio.get_running_loop().create_future()
        self.outbox: asyncio.Queue[str] = asyncio.Queue()

    def client_text(self, text: str) -> None:
        self.outbox.put_nowait(text)

    def own_text(self, text: str) -> None:
        self.outbox.put_nowait(text)


async def relay_sideband(
    connection: ClientConnection, port: int, target: str, headers: Mapping[str, str]
) -> None:
    """A sideband that landed on a worker other than the call's (workers share the port): its
    frames are relayed to the holder's internal listener, which checks it again and attaches
    it. The relay ends when either side does."""
    if not await connection.connected():
        return
    sink = _RelaySink()
    forwarded = {k: v for k, v in headers.items() if k.lower() in ("authorization",)}
    code = 1000
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(
                f"ws://127.0.0.1:{port}{target}", headers=forwarded, max_msg_size=0
            ) as inner,
        ):
            connection.attach(sink)
            log.info("sideband relayed", extra={"worker_port": port})

            async def up() -> None:
                while True:
                    await inner.send_str(await sink.outbox.get())

            async def down() -> None:
                async for message in inner:
                    if message.type is aiohttp.WSMsgType.TEXT:
                        connection.send_text(message.data)

            tasks: set[asyncio.Future[Any]] = {
                asyncio.ensure_future(up()),
                asyncio.ensure_future(down()),
                sink.gone,
            }
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in tasks:
                task.cancel()
    except (aiohttp.ClientError, OSError) as error:
        log.info("sideband relay to worker port %d failed: %s", port, type(error).__name__)
        code = 1011
    if not connection.closed:
        await connection.close(code, "the call ended" if code == 1000 else "the call is gone")


__all__ = ["SidebandSink", "attach_sideband", "relay_sideband", "sideband_target"]
