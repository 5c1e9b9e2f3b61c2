"""A session that outlives its upstream connection: reconnect after a drop, and move to a fresh
connection before the API's 60-minute limit.

On a drop that is not the client's fault (an abrupt end, 1001, 1006, 1011–1014), the session
tells the client that a response under way ended, stops reading the client, and reconnects with
backoff until ``RESUME_DEADLINE_S``; then it re-applies the confirmed session and replays the
conversation (:mod:`realtime_bridge.protocol.memory`) and sends on, in order, what it held
meanwhile (client events already read, tool outputs, the bridge's own events). A rollover is
the same move, made by the bridge at a quiet moment after ``UPSTREAM_ROLLOVER_S``. Close codes
for the client's own faults (1000, 1008, 3000, 4000, …) are never retried. Part of
:class:`~realtime_bridge.server.bridge.BridgeSession`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

from realtime_bridge.errors import ClientError, ErrorCode, UpstreamUnavailable
from realtime_bridge.observability import SessionLogger
from realtime_bridge.protocol.events import dumps, new_event_id
from realtime_bridge.protocol.session import Routed, SessionProtocol
from realtime_bridge.server.channel import ClientConnection
from realtime_bridge.server.endings import Ending, ending_for_error
from realtime_bridge.server.sessions import SessionRecord
from realtime_bridge.upstream.base import (
    Upstream,
    UpstreamClosed,
    UpstreamConnection,
    UpstreamRequest,
)

#: Upstream closes that are the connection's fault, not the client's: worth a new connection.
RESUMABLE_CLOSE_CODES = frozenset({1001, 1006, 1011, 1012, 1013, 1014})
#: Waits between reconnection attempts; the last one repeats until the deadline.
BACKOFF_S = (0.1, 0.25, 0.5, 1.0, 2.0)
#: A connection refused like this will be refused again: no point retrying until the deadline.
_FOR_GOOD = frozenset({"http_401", "http_403", "http_404"})
#: A rollover waits until the client's last event (other than audio) is this old, so that the
#: old connection has taken it in and its effect is in the replay, not lost with the connection.
ROLLOVER_SETTLE_S = 1.0
#: The informational event a client that asked for it (``?bridge_events=true``) gets.
RESUMED = "bridge.session.resumed"


class _Detached:
    """Where an upstream connection being retired delivers: nowhere."""

    def upstream_text(self, text: str) -> None:
        pass

    def upstream_passthrough(self, payload: bytes) -> bool:
        return True

    def upstream_burst(self) -> None:
        pass

    def upstream_closed(self, closed: UpstreamClosed) -> None:
        pass

    def upstream_writable(self, writable: bool) -> None:
        pass


class SessionResumption:
    """What a :class:`BridgeSession` does to move to a fresh upstream (its state is the
    session's)."""

    record: SessionRecord
    _protocol: SessionProtocol
    _client: ClientConnection
    _log: SessionLogger
    _ended: asyncio.Future[Ending]
    _upstream: UpstreamConnection | None
    _upstream_kind: Upstream
    _intent: str | None
    _resuming: bool
    _held_upstream: list[str]
    _resume_task: asyncio.Task[None] | None
    _resume_on_drop: bool
    _resume_deadline_s: float
    _rollover_s: float
    _rollover_pending: bool
    _last_client_event: float
    _upstream_since: float
    _upstream_paused_since: float | None
    _bridge_events: bool
    _on_resumed: Callable[[str, bool, float], None] | None

    def _end(self, ending: Ending) -> None:
        raise NotImplementedError

    def _send_client(self, frames: tuple[str | bytes, ...]) -> None:
        raise NotImplementedError

    @property
    def _busy_elsewhere(self) -> bool:
        raise NotImplementedError

    # -- when --------------------------------------------------------------------------------

    def _resumable(self, closed: UpstreamClosed) -> bool:
        """Whether this upstream close is one to reconnect after."""
        if not self._resume_on_drop or self._protocol.memory is None:
            return False
        if self._resuming or self._ended.done():
            return False
        if closed.protocol_error:
            return False  # an upstream that breaks the protocol is not one to trust again
        return closed.code is None or closed.code in RESUMABLE_CLOSE_CODES

    def _rollover_due(self, now: float) -> float | None:
        """When the watchdog should look at the rollover next (None: never). Once it is due,
        the session moves at its next quiet moment (:meth:`_roll_over_if_quiet`)."""
        if self._rollover_s <= 0 or self._protocol.memory is None:
            return None
        if self._resuming:
            return now + 0.25  # the next one is timed from the next connection
        if self._rollover_pending:
            self._roll_over_if_quiet()  # due already: now, if the session has gone quiet
            return now + 0.25
        due = self._upstream_since + self._rollover_s
        if now < due:
            return due
        self._rollover_pending = True
        self._roll_over_if_quiet()
        return now + 0.25

    def _roll_over_if_quiet(self) -> None:
        """A rollover that is due happens now if the session is quiet: no response under way,
        nobody speaking, no client event in the last second, nothing of the bridge's own in
        flight. Called when it falls due and
        after each upstream event until then."""
        memory = self._protocol.memory
        settled = time.monotonic() - self._last_client_event >= ROLLOVER_SETTLE_S
        if memory is not None and memory.quiet and settled and not self._busy_elsewhere:
            self._rollover_pending = False
            self._start_resume("rollover")

    # -- how ---------------------------------------------------------------------------------

    def _start_resume(self, reason: str) -> None:
        """Leave the current upstream (gone, or retired at a quiet moment) for a fresh one."""
        self._resuming = True
        old, self._upstream = self._upstream, None
        if old is not None and reason == "rollover":
            old.attach(_Detached())  # nothing more of it is delivered; closed below
            asyncio.get_running_loop().create_task(_close_quietly(old))
        routed: Routed = self._protocol.upstream_lost(time.monotonic())
        if routed.to_client:
            self._send_client(routed.to_client)
        self._client.pause_reading("resume")
        self._resume_task = asyncio.get_running_loop().create_task(self._resume(reason))

    async def _resume(self, reason: str) -> None:
        try:
            await self._reconnect(reason)
        except Exception:
            self._internal_error("resuming the upstream")

    def _internal_error(self, doing: str) -> None:
        raise NotImplementedError

    async def _reconnect(self, reason: str) -> None:
        started = time.monotonic()
        deadline = started + self._resume_deadline_s
        request = UpstreamRequest(
            session_id=self.record.id, model=self.record.model, intent=self._intent
        )
        attempts = 0
        while True:
            attempts += 1
            try:
                remaining = max(0.1, deadline - time.monotonic())
                upstream = await asyncio.wait_for(self._upstream_kind.connect(request), remaining)
                break
            except (UpstreamUnavailable, TimeoutError) as exc:
                cause = getattr(exc, "cause", "timeout")
                wait = BACKOFF_S[min(attempts - 1, len(BACKOFF_S) - 1)]
                if cause in _FOR_GOOD or time.monotonic() + wait >= deadline:
                    self._give_up(reason, attempts, str(cause), started)
                    return
                await asyncio.sleep(wait)  # backoff between attempts, bounded by the deadline
        if self._ended.done():
            await _close_quietly(upstream)
            return
        self._continue_on(upstream, reason, attempts, started)

    def _continue_on(
        self, upstream: UpstreamConnection, reason: str, attempts: int, started: float
    ) -> None:
        """The fresh connection: the session and conversation first, then what was held."""
        frames = self._protocol.resume_frames()
        self._upstream = upstream
        self._upstream_since = time.monotonic()
        self._upstream_paused_since = None
        upstream.attach(self)  # type: ignore[arg-type]
        held, self._held_upstream = self._held_upstream, []
        for frame in (*frames, *held):
            upstream.send(frame)
        self._resuming = False
        downtime_ms = round((time.monotonic() - started) * 1000, 1)
        memory = self._protocol.memory
        items = memory.items if memory is not None else 0
        self._log.info(
            "upstream session resumed",
            extra={
                "reason": reason,
                "attempts": attempts,
                "downtime_ms": downtime_ms,
                "items_replayed": items,
                "held_frames": len(held),
            },
        )
        if self._on_resumed is not None:
            self._on_resumed(reason, True, downtime_ms / 1000)
        if self._bridge_events:
            event: dict[str, Any] = {
                "type": RESUMED,
                "event_id": new_event_id(),
                "reason": reason,
                "items_replayed": items,
                "downtime_ms": downtime_ms,
            }
            self._send_client((dumps(event),))
        self._client.resume_reading("upstream")
        self._client.resume_reading("resume")

    def _give_up(self, reason: str, attempts: int, cause: str, started: float) -> None:
        self._log.warning(
            "upstream could not be resumed",
            extra={"reason": reason, "attempts": attempts, "cause": cause},
        )
        if self._on_resumed is not None:
            self._on_resumed(reason, False, time.monotonic() - started)
        error = ClientError(
            ErrorCode.UPSTREAM_UNAVAILABLE,
            "The upstream connection was lost and could not be made again.",
        )
        self._end(ending_for_error(error, "upstream_unavailable"))

    async def _stop_resuming(self) -> None:
        """The session ends: a reconnection under way is dropped."""
        task = self._resume_task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _close_quietly(upstream: UpstreamConnection) -> None:
    with contextlib.suppress(ConnectionError, RuntimeError, TimeoutError, OSError):
        await asyncio.wait_for(upstream.close(1000, "session moved"), 5.0)


__all__ = ["RESUMABLE_CLOSE_CODES", "RESUMED", "SessionResumption"]
