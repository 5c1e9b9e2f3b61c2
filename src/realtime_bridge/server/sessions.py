"""The session registry: ids, the concurrency limit, listing, and termination requests.

One registry per server; it is the only state shared between sessions, and it holds records,
not sockets: a session is asked to end through its own ``request_end`` and ends itself.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from realtime_bridge.errors import ClientError
from realtime_bridge.metrics import DirectionMetrics, SessionMetrics
from realtime_bridge.protocol.session import SessionProtocol


def new_session_id() -> str:
    return f"sess_{secrets.token_urlsafe(12)}"


@dataclass(frozen=True, slots=True)
class Traffic:
    """Totals of one direction of one session."""

    events: int = 0
    bytes: int = 0

    @classmethod
    def of(cls, counters: DirectionMetrics) -> Traffic:
        events, size = counters.totals()
        return cls(events, size)


@dataclass(slots=True)
class SessionRecord:
    """What the server knows about one live session (listing, logs, limits)."""

    id: str
    client: str
    model: str
    upstream: str
    started_at: float = field(default_factory=time.time)
    started_monotonic: float = field(default_factory=time.monotonic)
    last_client_activity: float = field(default_factory=time.monotonic)
    #: Frames counted by event type each way (the session counts them; ``/metrics`` reads the
    #: same counters when metrics are on).
    counters: SessionMetrics = field(default_factory=SessionMetrics)
    rules: SessionProtocol | None = None
    request_end: Callable[[ClientError], None] | None = None
    #: How the client got in (token or client secret, by non-secret id; never a value).
    credential: dict[str, Any] = field(default_factory=dict)
    #: Tokens left of the client's daily budget (None: no budget).
    budget_left: Callable[[], int | None] | None = None
    #: ``realtime`` or ``twilio`` (a low-cardinality label in metrics).
    client_kind: str = "realtime"
    #: A phone call's ids and what it carried (call SID, stream SID, DTMF, barge-ins).
    call: dict[str, Any] | None = None

    @property
    def client_to_upstream(self) -> Traffic:
        return Traffic.of(self.counters.client_to_upstream)

    @property
    def upstream_to_client(self) -> Traffic:
        return Traffic.of(self.counters.upstream_to_client)

    @property
    def protocol(self) -> str:
        """``ga`` or ``beta``: how the client speaks (decided once per session)."""
        return self.rules.protocol_name if self.rules else "ga"

    @property
    def audio_seconds(self) -> dict[str, float]:
        """Audio relayed each way, in seconds of the client's own audio."""
        rules = self.rules
        return {
            "client_to_upstream": round(rules.audio_ms_in / 1000, 3) if rules else 0.0,
            "upstream_to_client": round(rules.audio_ms_out / 1000, 3) if rules else 0.0,
        }

    @property
    def usage(self) -> dict[str, int]:
        """Token usage summed from the upstream's ``response.done`` events."""
        return dict(self.rules.usage) if self.rules else {}

    @property
    def turns(self) -> dict[str, float | int]:
        """What the bridge added to help turns end (silence fill, answers after a commit)."""
        if self.rules is None:
            return {}
        stats = self.rules.turns.stats
        return {
            "silence_fill_ms": round(stats.fill_ms, 1),
            "silence_fill_bytes": stats.fill_bytes,
            "responses_created": stats.responses_created,
            "commits_answered": stats.commits_answered,
        }

    @property
    def duration_s(self) -> float:
        return time.monotonic() - self.started_monotonic

    def summary(self) -> dict[str, Any]:
        """The public view of a session (``GET /sessions``)."""
        return {
            "id": self.id,
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started_at)),
            "duration_s": round(self.duration_s, 3),
            "client": self.client,
            "model": self.model,
            "upstream": self.upstream,
            "protocol": self.protocol,
            "bytes": {
                "client_to_upstream": self.client_to_upstream.bytes,
                "upstream_to_client": self.upstream_to_client.bytes,
            },
            "events": {
                "client_to_upstream": self.client_to_upstream.events,
                "upstream_to_client": self.upstream_to_client.events,
            },
            "audio_seconds": self.audio_seconds,
            "usage": self.usage,
            "turns": self.turns,
            "credential": self.credential,
            "client_kind": self.client_kind,
            **({"call": self.call} if self.call is not None else {}),
            "budget": {"tokens_left_today": self.budget_left() if self.budget_left else None},
        }


class SessionRegistry:
    """Live sessions of one server, and the limit on how many may run at once."""

    def __init__(self, max_sessions: int) -> None:
        self.max_sessions = max_sessions
        self.total = 0
        self._sessions: dict[str, SessionRecord] = {}
        self._waiters: list[asyncio.Future[None]] = []
        #: Sessions this server's other processes hold (other workers, other instances), as
        #: last heard: ``MAX_SESSIONS`` counts the whole server.
        self.elsewhere: list[Callable[[], int]] = []
        #: Told whenever a session is added or removed (a shared store publishes then).
        self.on_change: list[Callable[[], None]] = []

    def __len__(self) -> int:
        return len(self._sessions)

    def __iter__(self) -> Iterator[SessionRecord]:
        return iter(list(self._sessions.values()))

    @property
    def full(self) -> bool:
        held = len(self._sessions)
        if held >= self.max_sessions:
            return True
        return held + sum(count() for count in self.elsewhere) >= self.max_sessions

    def get(self, session_id: str) -> SessionRecord | None:
        return self._sessions.get(session_id)

    def add(self, record: SessionRecord) -> None:
        self._sessions[record.id] = record
        self.total += 1
        self._notify()

    def remove(self, record: SessionRecord) -> None:
        self._sessions.pop(record.id, None)
        self._notify()

    def end_all(self, error: ClientError) -> None:
        for record in self:
            if record.request_end is not None:
                record.request_end(error)

    def _notify(self) -> None:
        for listener in self.on_change:
            listener()
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def wait_for_count(self, count: int, within_s: float) -> bool:
        """Wait until exactly ``count`` sessions are live; False if not within ``within_s``."""
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(within_s):
                while len(self._sessions) != count:
                    waiter: asyncio.Future[None] = loop.create_future()
                    self._waiters.append(waiter)
                    await waiter
        except TimeoutError:
            return False
        return True

    async def wait_empty(self, within_s: float) -> bool:
        """Wait until no session is left; False if some remain after ``within_s`` seconds."""
        return await self.wait_for_count(0, within_s)
