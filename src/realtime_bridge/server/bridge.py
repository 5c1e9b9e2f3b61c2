"""One client ⇄ one upstream: frames relayed from socket callbacks, plus a watchdog.

Both sockets deliver whole messages to :class:`BridgeSession` through callbacks, which route
each one (:class:`SessionProtocol`) and send the result on in the same call: no queue and no
task switch per event, which is most of what a relay's CPU per message is spent on. The first
:class:`Ending` reported (by either side, the watchdog, or the server) wins; the session then
sends the client the error event that goes with it and closes both sockets with the right codes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from realtime_bridge.errors import (
    ClientError,
    ErrorCode,
    UpstreamError,
    UpstreamUnavailable,
)
from realtime_bridge.observability import SessionLogger
from realtime_bridge.protocol.events import error_event_text
from realtime_bridge.protocol.large_events import LARGE_EVENT_CHARS, LargeEventReader
from realtime_bridge.protocol.session import APPEND, Routed, SessionProtocol
from realtime_bridge.server.channel import ClientConnection, ClientGone
from realtime_bridge.server.chores import SessionChores
from realtime_bridge.server.endings import (
    CLIENT_STALLED,
    Ending,
    ending_for_error,
    upstream_ending,
)
from realtime_bridge.server.lifetime import SessionLifetime
from realtime_bridge.server.resume import SessionResumption
from realtime_bridge.server.sessions import SessionRecord
from realtime_bridge.server.tool_calls import SessionTools
from realtime_bridge.upstream.base import (
    Upstream,
    UpstreamClosed,
    UpstreamConnection,
    UpstreamRequest,
)

#: How long closing the upstream may take after the client left (SPEC §9: within a second).
UPSTREAM_CLOSE_TIMEOUT_S = 1.0
# Bound once: read on every relayed frame.
_perf_counter_ns = time.perf_counter_ns
_monotonic = time.monotonic


class BridgeSession(SessionChores, SessionResumption, SessionLifetime):
    """Relays one client session; create, then ``await run()``.

    The relay itself is callbacks: the client's and the upstream's frames arrive through
    :meth:`client_text` / :meth:`upstream_text` (called by the sockets' protocol objects) and are
    routed and sent on in the same call. ``run`` connects the upstream, then waits for the
    ending while acting as the watchdog (idle and maximum lifetime, stalled peers, keep-alive).
    """

    def __init__(
        self,
        *,
        record: SessionRecord,
        client: ClientConnection,
        upstream: Upstream,
        idle_timeout_s: float,
        max_duration_s: float,
        log: SessionLogger,
        protocol: SessionProtocol | None = None,
        time_frames: bool = True,
        on_connected: Callable[[float], None] | None = None,
        charge: Callable[[int, float], bool] | None = None,
        intent: str | None = None,
        tools: SessionTools | None = None,
        resume_on_drop: bool = False,
        resume_deadline_s: float = 15.0,
        rollover_s: float = 0.0,
        bridge_events: bool = False,
        on_resumed: Callable[[str, bool, float], None] | None = None,
    ) -> None:
        self.record = record
        #: A fresh upstream replaces a lost one (see :mod:`.resume`; the protocol's memory
        #: says whether the session may resume at all).
        self._resuming = False
        self._held_upstream: list[str] = []
        self._resume_task: asyncio.Task[None] | None = None
        self._resume_on_drop = resume_on_drop
        self._resume_deadline_s = resume_deadline_s
        self._rollover_s = rollover_s
        self._rollover_pending = False
        #: When the client last sent something other than audio (a rollover waits it out).
        self._last_client_event = 0.0
        self._upstream_since = 0.0
        self._bridge_events = bridge_events
        self._on_resumed = on_resumed
        #: The operator's tools, run by the bridge (None: the session has none).
        self._tools = tools
        self._client = client
        self._upstream_kind = upstream
        self._upstream: UpstreamConnection | None = None
        self._idle_timeout_s = idle_timeout_s
        self._max_duration_s = max_duration_s
        self._log = log
        self._debug = log.isEnabledFor(logging.DEBUG)
        self._protocol = protocol or SessionProtocol()
        # Each frame is counted in the record's counters; with metrics on it is also timed,
        # for the relay-latency histogram. Chosen once: one call per frame either way.
        counters = record.counters
        self._time_frames = time_frames
        self._count_to_upstream = (
            counters.client_to_upstream.relayed
            if time_frames
            else counters.client_to_upstream.counted
        )
        self._count_to_client = (
            counters.upstream_to_client.relayed
            if time_frames
            else counters.upstream_to_client.counted
        )
        self._on_connected = on_connected
        #: Charges a response's tokens to the client's daily budget; False once it is spent.
        self._charge = charge
        self._intent = intent
        record.rules = self._protocol
        self._ended: asyncio.Future[Ending] = asyncio.get_running_loop().create_future()
        record.request_end = self.request_end
        self.ending: Ending | None = None
        #: Since when each peer has not been taking data (None: it is); for the stall check.
        self._client_paused_since: float | None = None
        self._upstream_paused_since: float | None = None
        self._last_ping = 0.0
        #: The protocol's clock (silence fill, answers after a commit, start-up timeout).
        self._timer: asyncio.TimerHandle | None = None
        #: The client is not read while its frames wait for the upstream's start-up.
        self._holding_paused = False
        #: A large event is being read, or a large append converted, a step per loop turn;
        #: the client's later frames wait in order.
        self._busy = False
        self._waiting: deque[str | bytes] = deque()
        self._reader: LargeEventReader | None = None

    def request_end(self, error: ClientError) -> None:
        """Ask the session to end with ``error`` (admin delete, shutdown); idempotent."""
        self._end(ending_for_error(error, "ended_by_server"))

    def _end(self, ending: Ending) -> None:
        """The first ending wins; ``run`` then closes both sides."""
        if not self._ended.done():
            self._ended.set_result(ending)

    async def run(self) -> Ending:
        request = UpstreamRequest(
            session_id=self.record.id, model=self.record.model, intent=self._intent
        )
        started = time.monotonic()
        connect = asyncio.ensure_future(self._upstream_kind.connect(request))
        waiters: set[asyncio.Future[Any]] = {connect, self._ended}
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        if self._ended.done():
            connect.cancel()
            late: UpstreamConnection | None = None
            with contextlib.suppress(asyncio.CancelledError, UpstreamUnavailable):
                late = await connect
            return await self._finish(self._ended.result(), late)
        try:
            upstream = connect.result()
        except UpstreamUnavailable as exc:
            # The operator's side of the story: why, and where (never a credential).
            self._log.warning(
                "upstream unavailable: %s",
                exc,
                extra={
                    "upstream": self._upstream_kind.kind,
                    "upstream_host": exc.host,
                    "cause": exc.cause,
                    "connect_s": round(time.monotonic() - started, 3),
                },
            )
            error = ClientError(ErrorCode.UPSTREAM_UNAVAILABLE, str(exc))
            return await self._finish(ending_for_error(error, "upstream_unavailable"), None)
        connect_s = time.monotonic() - started
        self._log.debug("upstream connected in %.3f s", connect_s)
        if self._on_connected is not None:
            self._on_connected(connect_s)
        self._start_relay(upstream)
        ending = await self._watch()
        await self._stop_resuming()
        return await self._finish(ending, self._upstream)

    def _start_relay(self, upstream: UpstreamConnection) -> None:
        """Connect the two sides: from now on each one's frames are delivered here."""
        self._upstream = upstream
        self._upstream_since = time.monotonic()
        upstream.attach(self)
        self._client.attach(self)

    # -- client → upstream ------------------------------------------------------------------------

    def client_passthrough(self, payload: memoryview) -> bool:
        """The hot path: an audio append that goes upstream as it arrived (see
        :meth:`SessionProtocol.passthrough_client`); False leaves the frame to ``client_text``."""
        if self._busy or len(payload) > LARGE_EVENT_CHARS:
            return False  # waits in order, or is read in steps
        received_ns = _perf_counter_ns() if self._time_frames else 0
        try:
            now = _monotonic()
            if not self._protocol.passthrough_client(payload, now):
                return False
            self.record.last_client_activity = now
            if self._debug:
                self._log.debug("client → upstream", extra={"type": APPEND, "bytes": len(payload)})
            upstream = self._upstream
            if upstream is not None:
                upstream.send_payload(payload)
        except UpstreamError:
            pass  # the upstream is gone; its callback says how
        except Exception:
            self._internal_error("routing a client event")
            return True
        self._count_to_upstream(APPEND, len(payload), received_ns)
        return True

    def client_burst(self) -> None:
        """A burst from the client: the appends relayed now go upstream together."""
        upstream = self._upstream
        if upstream is not None:
            upstream.hold_writes()

    def client_text(self, text: str) -> None:
        if self._busy:
            self._waiting.append(text)  # after the large event being read or converted
            return
        if len(text) > LARGE_EVENT_CHARS:
            self._start_reading(text)
            return
        self._from_client(self._protocol.from_client_text, text, len(text))

    def own_text(self, text: str) -> None:
        """An event of the bridge's own for the upstream (a call's greeting), in order with
        the client's."""
        self._from_client(self._protocol.from_bridge_text, text, len(text))

    def client_binary(self, data: bytes) -> None:
        if self._busy:
            self._waiting.append(data)
            return
        self._from_client(self._protocol.from_client_binary, data, len(data))

    def _from_client(self, route: Callable[[Any, float], Routed], data: object, size: int) -> None:
        received_ns = _perf_counter_ns() if self._time_frames else 0
        now = self.record.last_client_activity = _monotonic()
        event_type: str | None = None  # counted as "invalid" unless routing tells better
        try:
            routed = route(data, now)
            event_type = routed.event_type
            if routed.error is not None:
                self._log.info(
                    "client error",
                    extra={"code": routed.error.code.value, "detail": routed.error.message},
                )
            elif self._debug:
                self._log.debug(
                    "client → upstream", extra={"type": routed.event_type, "bytes": size}
                )
                if routed.dropped_fields:
                    self._log.debug(
                        "beta fields GA has no place for were dropped",
                        extra={"fields": ",".join(routed.dropped_fields)},
                    )
            if routed.to_client:
                self._send_client(routed.to_client)
            if routed.to_upstream and event_type != APPEND:
                self._last_client_event = now
            self._send_upstream(routed.to_upstream)
            if self._protocol.slicer is not None and not self._busy:
                self._start_slicing()
            if self._protocol.holding_over_limit and not self._holding_paused:
                self._holding_paused = True  # read no more until the upstream is configured
                self._client.pause_reading("startup")
            self._arm_timer()
        except UpstreamError:
            pass  # the upstream is gone; its callback says how
        except Exception:
            self._internal_error("routing a client event")
        self._count_to_upstream(event_type, size, received_ns)

    def _send_upstream(self, frames: tuple[str, ...]) -> None:
        upstream = self._upstream
        if upstream is not None:
            for frame in frames:
                upstream.send(frame)
        elif self._resuming:
            self._held_upstream.extend(frames)  # sent, in order, once the new upstream is up

    def client_gone(self, gone: ClientGone) -> None:
        if gone.error is not None:
            why = gone.ending or "client_protocol_error"
            self._end(Ending(why, gone.code, gone.error, client_gone=True))
        else:
            self._end(Ending("client_closed", gone.code, gone.reason, client_gone=True))

    def client_writable(self, writable: bool) -> None:
        """The client's socket buffer crossed its high (False) or low (True) water mark: stop
        or resume reading the upstream, so a slow client holds the upstream back."""
        upstream = self._upstream
        if writable:
            self._client_paused_since = None
            if upstream is not None:
                upstream.resume_reading()
        else:
            self._client_paused_since = time.monotonic()
            if upstream is not None:
                upstream.pause_reading()

    # -- upstream → client ------------------------------------------------------------------------

    def upstream_passthrough(self, payload: bytes) -> bool:
        """The hot path: an upstream event that goes to the client as it arrived (see
        :meth:`SessionProtocol.passthrough_upstream`); False leaves it to ``upstream_text``."""
        received_ns = _perf_counter_ns() if self._time_frames else 0
        try:
            event_type = self._protocol.passthrough_upstream(payload)
            if event_type is None:
                return False
            if self._debug:
                self._log.debug(
                    "upstream → client", extra={"type": event_type, "bytes": len(payload)}
                )
            self._client.send_text_payload(payload)
        except Exception:
            self._internal_error("routing an upstream event")
            return True
        self._count_to_client(event_type, len(payload), received_ns)
        return True

    def upstream_text(self, text: str) -> None:
        received_ns = _perf_counter_ns() if self._time_frames else 0
        event_type: str | None = None
        try:
            routed = self._protocol.from_upstream_text(text, _monotonic())
            event_type = routed.event_type
            if self._debug:
                self._log.debug("upstream → client", extra={"type": event_type, "bytes": len(text)})
            self._send_client(routed.to_client)
            if routed.to_upstream:
                self._send_upstream(routed.to_upstream)
            if routed.tool_calls:
                self._start_tools(routed.tool_calls)
            if routed.tokens_used and self._charge is not None:
                self._spend(routed.tokens_used)
            if self._rollover_pending:
                self._roll_over_if_quiet()
            self._after_bridge_step()
        except UpstreamError:
            pass  # the upstream is gone; its callback says how
        except Exception:
            self._internal_error("routing an upstream event")
        self._count_to_client(event_type, len(text), received_ns)

    def upstream_burst(self) -> None:
        """A burst from the upstream (audio faster than real time): sent on together."""
        self._client.hold_writes()

    def upstream_closed(self, closed: UpstreamClosed) -> None:
        if self._resumable(closed):
            self._log.info("upstream dropped; resuming", extra={"code": closed.code})
            self._start_resume("upstream_dropped")
            return
        self._end(upstream_ending(closed))

    @property
    def _busy_elsewhere(self) -> bool:
        """Work of the bridge's own in flight (a large event, a slicer, a tool call)."""
        return self._busy or (self._tools is not None and self._tools.running > 0)

    def upstream_writable(self, writable: bool) -> None:
        """Backpressure the other way: an upstream not taking data holds the client back."""
        if writable:
            self._upstream_paused_since = None
            self._client.resume_reading("upstream")
        else:
            self._upstream_paused_since = time.monotonic()
            self._client.pause_reading("upstream")

    def _send_client(self, frames: tuple[str | bytes, ...]) -> None:
        client = self._client
        for frame in frames:
            if isinstance(frame, str):
                client.send_text(frame)
            else:
                client.send_bytes(frame)

    def _internal_error(self, doing: str) -> None:
        self._log.exception("unexpected error %s", doing)
        error = ClientError(ErrorCode.INTERNAL_ERROR, "The bridge hit an internal error.")
        self._end(ending_for_error(error, "internal_error"))

    async def _finish(self, ending: Ending, upstream: UpstreamConnection | None) -> Ending:
        self.ending = ending
        if self._tools is not None:
            self._tools.cancel()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        client = self._client
        if not client.closed and not ending.client_gone:
            if ending.error is not None:
                client.send_text(error_event_text(ending.error))
            await client.close(ending.close_code, ending.close_message)
        if upstream is not None:
            await _quietly(upstream.close(1000, "client session ended"))
        if ending.reason == CLIENT_STALLED:
            client.abort()  # it stopped reading: its unsent buffer would never drain
        return ending


async def _quietly(action: Awaitable[object]) -> None:
    """Best-effort I/O while closing: the peer may already be gone."""
    with contextlib.suppress(ConnectionError, RuntimeError, TimeoutError):
        await asyncio.wait_for(action, UPSTREAM_CLOSE_TIMEOUT_S)
