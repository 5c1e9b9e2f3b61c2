"""One client ⇄ one upstream: two pumps and a watchdog; the first to finish decides the ending.

Each pump returns an :class:`Ending` (or None when it has nothing to say, e.g. its peer
vanished and the other pump will report how); the session then sends the client the error
event that goes with the ending, closes both sockets with the right codes, and returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from realtime_bridge.errors import (
    ERROR_POLICY,
    ClientError,
    CloseCode,
    ErrorCode,
    UpstreamError,
    UpstreamUnavailable,
)
from realtime_bridge.metrics import SessionMetrics
from realtime_bridge.observability import SessionLogger
from realtime_bridge.protocol.events import error_event_text
from realtime_bridge.protocol.session import SessionProtocol
from realtime_bridge.server.sessions import SessionRecord
from realtime_bridge.upstream.base import (
    Upstream,
    UpstreamClosed,
    UpstreamConnection,
    UpstreamRequest,
)

#: How long closing the upstream may take after the client left (SPEC §9: within a second).
UPSTREAM_CLOSE_TIMEOUT_S = 1.0
#: How long to wait for the upstream pump to explain a failed send before giving up on it.
UPSTREAM_EXPLAIN_TIMEOUT_S = 1.0
_MAX_REASON_BYTES = 123
#: Bounded buffers (SPEC §8): a send that cannot complete for this long means the peer stopped
#: reading. Until then backpressure holds (aiohttp's writers await drain past their buffer limit
#: and its readers pause the socket), so memory stays bounded; past it the watchdog ends the
#: session (within 1.5x the timeout): a stalled client with close 1013 and no error event (it
#: would not be read; the socket is then aborted), a stalled upstream with
#: ``upstream_unavailable`` and close 1014. Sends only stamp the time (no timer per send).
CLIENT_SEND_TIMEOUT_S = 10.0
UPSTREAM_SEND_TIMEOUT_S = 10.0
CLIENT_STALLED = "client_stalled"
#: Keep-alive: a client quiet for this long gets a ping, as the API pings its clients (about
#: every 20 s), so proxies and NATs keep the connection open. Sent by the watchdog rather than
#: aiohttp's heartbeat, which schedules a loop callback for every frame received.
CLIENT_PING_INTERVAL_S = 20.0


@dataclass(frozen=True, slots=True)
class Ending:
    """Why a session ends and how the client is told."""

    reason: str
    close_code: int
    close_message: str = ""
    error: ClientError | None = None
    client_gone: bool = False


def is_sendable_close_code(code: int) -> bool:
    """Whether a close frame may carry ``code`` (RFC 6455 §7.4: 1005, 1006, 1015 never may)."""
    return code in (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014) or (
        3000 <= code <= 4999
    )


def ending_for_error(error: ClientError, reason: str) -> Ending:
    code = ERROR_POLICY[error.code].close_code or CloseCode.NORMAL
    return Ending(reason, int(code), error.code.value, error=error)


class BridgeSession:
    """Relays one client session; create, then ``await run()``."""

    def __init__(
        self,
        *,
        record: SessionRecord,
        client: web.WebSocketResponse,
        upstream: Upstream,
        idle_timeout_s: float,
        max_duration_s: float,
        log: SessionLogger,
        protocol: SessionProtocol | None = None,
        metrics: SessionMetrics | None = None,
        on_connected: Callable[[float], None] | None = None,
    ) -> None:
        self.record = record
        self._client = client
        self._upstream = upstream
        self._idle_timeout_s = idle_timeout_s
        self._max_duration_s = max_duration_s
        self._log = log
        self._protocol = protocol or SessionProtocol()
        self._metrics = metrics
        self._on_connected = on_connected
        record.rules = self._protocol
        self._end_requested: asyncio.Future[Ending] = asyncio.get_running_loop().create_future()
        record.request_end = self.request_end
        self.ending: Ending | None = None
        #: When the send in progress to each peer started (None: none in progress).
        self._client_send_since: float | None = None
        self._last_ping = 0.0
        self._upstream_send_since: float | None = None

    def request_end(self, error: ClientError) -> None:
        """Ask the session to end with ``error`` (admin delete, shutdown); idempotent."""
        if not self._end_requested.done():
            self._end_requested.set_result(ending_for_error(error, "ended_by_server"))

    async def run(self) -> Ending:
        request = UpstreamRequest(session_id=self.record.id, model=self.record.model)
        started = time.monotonic()
        connect = asyncio.ensure_future(self._upstream.connect(request))
        waiters: set[asyncio.Future[Any]] = {connect, self._end_requested}
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        if self._end_requested.done():
            connect.cancel()
            late: UpstreamConnection | None = None
            with contextlib.suppress(asyncio.CancelledError, UpstreamUnavailable):
                late = await connect
            return await self._finish(self._end_requested.result(), late)
        try:
            upstream = connect.result()
        except UpstreamUnavailable as exc:
            error = ClientError(ErrorCode.UPSTREAM_UNAVAILABLE, str(exc))
            return await self._finish(ending_for_error(error, "upstream_unavailable"), None)
        connect_s = time.monotonic() - started
        self._log.debug("upstream connected in %.3f s", connect_s)
        if self._on_connected is not None:
            self._on_connected(connect_s)
        ending = await self._relay(upstream)
        return await self._finish(ending, upstream)

    async def _relay(self, upstream: UpstreamConnection) -> Ending:
        tasks = {
            asyncio.create_task(self._client_pump(upstream), name="client_pump"),
            asyncio.create_task(self._upstream_pump(upstream), name="upstream_pump"),
            asyncio.create_task(self._watchdog(), name="watchdog"),
        }
        ending: Ending | None = None
        pending = tasks
        try:
            while ending is None and pending:
                done, pending = await asyncio.wait(
                    pending,
                    return_when=asyncio.FIRST_COMPLETED,
                    timeout=None if len(pending) == len(tasks) else UPSTREAM_EXPLAIN_TIMEOUT_S,
                )
                if not done:
                    break
                for task in done:
                    ending = ending or self._task_ending(task)
        finally:
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if ending is None:
            error = ClientError(ErrorCode.UPSTREAM_CLOSED, "The upstream connection was lost.")
            ending = ending_for_error(error, "upstream_lost")
        return ending

    def _task_ending(self, task: asyncio.Task[Ending | None]) -> Ending | None:
        if task.cancelled():
            return None
        exc = task.exception()
        if exc is None:
            return task.result()
        self._log.error(
            "unexpected error in %s", task.get_name(), exc_info=(type(exc), exc, exc.__traceback__)
        )
        error = ClientError(ErrorCode.INTERNAL_ERROR, "The bridge hit an internal error.")
        return ending_for_error(error, "internal_error")

    async def _client_pump(self, upstream: UpstreamConnection) -> Ending | None:
        # The hot loop: locals for everything touched per frame, no helper coroutines.
        client = self._client
        receive = client.receive
        send_upstream = upstream.send
        protocol = self._protocol
        traffic = self.record.client_to_upstream
        record = self.record
        metrics = self._metrics.client_to_upstream if self._metrics else None
        log = self._log
        debug = log.isEnabledFor(logging.DEBUG)
        while True:
            msg = await receive()
            received_ns = time.perf_counter_ns()
            if msg.type is aiohttp.WSMsgType.TEXT:
                routed = protocol.from_client_text(msg.data)
            elif msg.type is aiohttp.WSMsgType.BINARY:
                routed = protocol.from_client_binary(msg.data)
            elif msg.type is aiohttp.WSMsgType.ERROR:
                code = client.close_code or CloseCode.INTERNAL_ERROR
                return Ending("client_protocol_error", code, str(msg.data)[:80], client_gone=True)
            else:
                return Ending("client_closed", client.close_code or 1005, client_gone=True)
            size = len(msg.data)
            traffic.bytes += size
            traffic.events += 1
            now = record.last_client_activity = time.monotonic()
            if routed.error is not None:
                log.info(
                    "client error",
                    extra={"code": routed.error.code.value, "detail": routed.error.message},
                )
            elif debug:
                log.debug("client → upstream", extra={"type": routed.event_type, "bytes": size})
                if routed.dropped_fields:
                    log.debug(
                        "beta fields GA has no place for were dropped",
                        extra={"fields": ",".join(routed.dropped_fields)},
                    )
            if routed.to_client:
                await self._send_client(routed.to_client)
            self._upstream_send_since = now
            try:
                for frame in routed.to_upstream:
                    await send_upstream(frame)
            except UpstreamError:
                return None
            finally:
                self._upstream_send_since = None
            if metrics is not None:
                metrics.relayed(routed.event_type, size, received_ns)

    async def _upstream_pump(self, upstream: UpstreamConnection) -> Ending | None:
        receive = upstream.receive
        protocol = self._protocol
        traffic = self.record.upstream_to_client
        metrics = self._metrics.upstream_to_client if self._metrics else None
        log = self._log
        debug = log.isEnabledFor(logging.DEBUG)
        while True:
            item = await receive()
            received_ns = time.perf_counter_ns()
            if isinstance(item, UpstreamClosed):
                return self._upstream_ending(item)
            traffic.bytes += len(item)
            traffic.events += 1
            routed = protocol.from_upstream_text(item)
            if debug:
                log.debug(
                    "upstream → client", extra={"type": routed.event_type, "bytes": len(item)}
                )
            await self._send_client(routed.to_client)
            if metrics is not None:
                metrics.relayed(routed.event_type, len(item), received_ns)

    async def _send_client(self, frames: tuple[str | bytes, ...]) -> None:
        """Send frames to the client, stamping when the send began (for the stall check)."""
        client = self._client
        self._client_send_since = time.monotonic()
        try:
            for frame in frames:
                if isinstance(frame, str):
                    await client.send_str(frame)
                else:
                    await client.send_bytes(frame)
        finally:
            self._client_send_since = None

    def _stall_check(self, now: float) -> tuple[Ending | None, float]:
        """A stalled peer's ending (or None), and when to check next."""
        client_since = self._client_send_since
        if client_since is not None and now - client_since >= CLIENT_SEND_TIMEOUT_S:
            message = f"client too slow: took no frame for {CLIENT_SEND_TIMEOUT_S:g} s"
            ending = Ending(
                CLIENT_STALLED, int(CloseCode.TRY_AGAIN_LATER), message, client_gone=True
            )
            return ending, now
        upstream_since = self._upstream_send_since
        if upstream_since is not None and now - upstream_since >= UPSTREAM_SEND_TIMEOUT_S:
            message = f"The upstream took no message for {UPSTREAM_SEND_TIMEOUT_S:g} s."
            error = ClientError(ErrorCode.UPSTREAM_UNAVAILABLE, message)
            return ending_for_error(error, "upstream_stalled"), now
        client_check = (
            client_since + CLIENT_SEND_TIMEOUT_S
            if client_since is not None
            else now + CLIENT_SEND_TIMEOUT_S / 2
        )
        upstream_check = (
            upstream_since + UPSTREAM_SEND_TIMEOUT_S
            if upstream_since is not None
            else now + UPSTREAM_SEND_TIMEOUT_S / 2
        )
        return None, min(client_check, upstream_check)

    def _upstream_ending(self, closed: UpstreamClosed) -> Ending:
        if closed.code is None:
            error = ClientError(
                ErrorCode.UPSTREAM_CLOSED, "The upstream connection ended without a close frame."
            )
            return ending_for_error(error, "upstream_lost")
        if not is_sendable_close_code(closed.code):
            return Ending("upstream_closed", int(CloseCode.NORMAL), closed.reason)
        return Ending("upstream_closed", closed.code, closed.reason)

    async def _watchdog(self) -> Ending:
        """Ends the session on an end request, after the idle timeout or the maximum lifetime,
        or when a peer stopped reading (a send in progress for longer than its timeout)."""
        record = self.record
        while True:
            now = time.monotonic()
            idle_deadline = record.last_client_activity + self._idle_timeout_s
            max_deadline = record.started_monotonic + self._max_duration_s
            if now >= max_deadline:
                error = ClientError(
                    ErrorCode.SESSION_EXPIRED,
                    f"The session reached its maximum duration of {self._max_duration_s:g} s.",
                )
                return ending_for_error(error, "session_expired")
            if now >= idle_deadline:
                error = ClientError(
                    ErrorCode.SESSION_IDLE_TIMEOUT,
                    f"No message from the client for {self._idle_timeout_s:g} s.",
                )
                return ending_for_error(error, "idle_timeout")
            stalled, stall_check = self._stall_check(now)
            if stalled is not None:
                self._log.warning("ending session: %s", stalled.close_message)
                return stalled
            ping_at = max(record.last_client_activity, self._last_ping) + CLIENT_PING_INTERVAL_S
            if now >= ping_at:
                self._last_ping = now
                await _quietly(self._client.ping())
                continue
            timeout = min(idle_deadline, max_deadline, stall_check, ping_at) - now
            with contextlib.suppress(TimeoutError):
                return await asyncio.wait_for(asyncio.shield(self._end_requested), timeout)

    async def _finish(self, ending: Ending, upstream: UpstreamConnection | None) -> Ending:
        self.ending = ending
        client = self._client
        if not client.closed and not ending.client_gone:
            if ending.error is not None:
                await _quietly(client.send_str(error_event_text(ending.error)))
            message = ending.close_message.encode()[:_MAX_REASON_BYTES]
            await _quietly(client.close(code=ending.close_code, message=message))
        if upstream is not None:
            await _quietly(upstream.close(1000, "client session ended"))
        return ending


async def _quietly(action: Awaitable[object]) -> None:
    """Best-effort I/O while closing: the peer may already be gone.

    A peer that stopped reading can make aiohttp raise CancelledError although nobody cancelled
    us: cancelling the pump that was blocked in ``drain()`` cancels the connection's shared
    drain waiter, which every later drain then awaits. That is swallowed too; a real
    cancellation of this task is not.
    """
    try:
        with contextlib.suppress(aiohttp.ClientError, ConnectionError, RuntimeError, TimeoutError):
            await asyncio.wait_for(action, UPSTREAM_CLOSE_TIMEOUT_S)
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is None or task.cancelling():
            raise
