"""A session's watchdog: the idle timeout and the maximum lifetime, peers that stopped reading,
the keep-alive ping, and the rollover to a fresh upstream. One wake-up per deadline, no timer
per frame. Part of :class:`~realtime_bridge.server.bridge.BridgeSession`."""

from __future__ import annotations

import asyncio
import contextlib
import time

from realtime_bridge.errors import ClientError, ErrorCode
from realtime_bridge.observability import SessionLogger
from realtime_bridge.server.channel import ClientConnection
from realtime_bridge.server.endings import Ending, ending_for_error, stall_check
from realtime_bridge.server.sessions import SessionRecord

#: Bounded buffers (SPEC §8): when a peer's socket buffer passes its high-water mark, the
#: other side stops being read (TCP pushes back on it), so memory stays bounded. A peer that
#: takes nothing for this long has stopped reading: the watchdog ends the session (within 1.5x
#: the timeout): a stalled client with close 1013 and no error event (it would not be read; the
#: socket is then aborted), a stalled upstream with ``upstream_unavailable`` and close 1014.
CLIENT_SEND_TIMEOUT_S = 10.0
UPSTREAM_SEND_TIMEOUT_S = 10.0
#: Keep-alive: a client quiet for this long gets a ping, as the API pings its clients (about
#: every 20 s), so proxies and NATs keep the connection open. Sent by the watchdog, which needs
#: no timer per frame.
CLIENT_PING_INTERVAL_S = 20.0


class SessionLifetime:
    """The watchdog of a :class:`BridgeSession` (its state is the session's)."""

    record: SessionRecord
    _client: ClientConnection
    _log: SessionLogger
    _ended: asyncio.Future[Ending]
    _idle_timeout_s: float
    _max_duration_s: float
    _last_ping: float
    _client_paused_since: float | None
    _upstream_paused_since: float | None

    def _end(self, ending: Ending) -> None:
        raise NotImplementedError

    def _rollover_due(self, now: float) -> float | None:
        raise NotImplementedError

    def _stall_check(self, now: float) -> tuple[Ending | None, float]:
        """A stalled peer's ending (or None), and when to check next."""
        return stall_check(
            now,
            self._client_paused_since,
            self._upstream_paused_since,
            CLIENT_SEND_TIMEOUT_S,
            UPSTREAM_SEND_TIMEOUT_S,
        )

    async def _watch(self) -> Ending:
        """Wait for the ending; meanwhile end the session after the idle timeout or the maximum
        lifetime, or when a peer stopped reading for longer than its timeout, and ping a quiet
        client (as the API pings its clients about every 20 s) so proxies keep the line open."""
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
                self._end(ending_for_error(error, "session_expired"))
            elif now >= idle_deadline:
                error = ClientError(
                    ErrorCode.SESSION_IDLE_TIMEOUT,
                    f"No message from the client for {self._idle_timeout_s:g} s.",
                )
                self._end(ending_for_error(error, "idle_timeout"))
            stalled, stall_check = self._stall_check(now)
            if stalled is not None:
                self._log.warning("ending session: %s", stalled.close_message)
                self._end(stalled)
            if self._ended.done():
                return self._ended.result()
            ping_at = max(record.last_client_activity, self._last_ping) + CLIENT_PING_INTERVAL_S
            if now >= ping_at:
                self._last_ping = now
                self._client.ping()
                continue
            rollover = self._rollover_due(now) or max_deadline
            timeout = min(idle_deadline, max_deadline, stall_check, ping_at, rollover) - now
            with contextlib.suppress(TimeoutError):
                return await asyncio.wait_for(asyncio.shield(self._ended), timeout)


__all__ = [
    "CLIENT_PING_INTERVAL_S",
    "CLIENT_SEND_TIMEOUT_S",
    "UPSTREAM_SEND_TIMEOUT_S",
    "SessionLifetime",
]
