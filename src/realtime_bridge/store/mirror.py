"""The shared store's local half: each :class:`~realtime_bridge.store.base.Store` call is
decided here, synchronously, from what this instance last read from Redis plus its own changes
since; the changes wait here until :mod:`realtime_bridge.store.redis` writes them out.

Why a mirror: admission is decided inside picows' synchronous upgrade callback, so no call may
wait for a round trip, and a live session must never depend on Redis answering. The price:
instances deciding within one refresh of each other can both take the last place (README,
"Several instances: Redis"). No I/O here, so every rule is tested without a server.

What is kept, per kind:

- rate windows: the events Redis held at the last read, plus this instance's events not yet
  written (each event has a unique member, so an event read back is still one event);
- counters (daily budgets): the value at the last read, plus this instance's additions since;
- concurrency slots: this instance's own (published with its sessions, so a dead instance's
  slots go with it), plus the other live instances' as last read (forgotten while Redis is
  down: each instance then counts alone);
- revocations: every one written or heard of, until it expires;
- keys under :data:`LOCAL_PREFIXES` (failed authentications per client address) stay in this
  process's memory: one key per address would make every refresh read them all.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from realtime_bridge.store.base import still_revoked
from realtime_bridge.store.memory import MemoryStore

#: Keys kept per instance (each instance throttles the addresses that fail with it).
LOCAL_PREFIXES = ("authfail:",)
#: A counter nobody touched for this long is forgotten here (Redis keeps it; read again when
#: next used).
COUNTER_KEPT_S = 3600.0


@dataclass(slots=True)
class _Window:
    window_s: float
    used: float
    shared: dict[str, float] = field(default_factory=dict)  # member → time, as last read
    writing: dict[str, float] = field(default_factory=dict)
    pending: dict[str, float] = field(default_factory=dict)

    def times(self, now: float) -> list[float]:
        since = now - self.window_s
        merged = {**self.shared, **self.writing, **self.pending}
        return sorted(t for t in merged.values() if t > since)


@dataclass(slots=True)
class _Counter:
    used: float
    shared: int = 0
    writing: int = 0
    pending: int = 0

    @property
    def value(self) -> int:
        return self.shared + self.writing + self.pending


@dataclass(slots=True)
class Batch:
    """One write-and-read round: this instance's changes, and the keys to read back."""

    events: dict[str, tuple[float, dict[str, float]]]  # key → (window, member → time)
    additions: dict[str, int]
    revocations: dict[str, float]  # secret id → until
    windows: dict[str, float]  # keys to read → window
    counters: list[str]


class Mirror:
    """Implements the Store protocol from local state (see the module docstring)."""

    def __init__(self, instance_id: str) -> None:
        self.instance_id = instance_id
        #: Called when something waits to be written or read (the sync task wakes up).
        self.wake: Callable[[], None] = _nothing
        self.slots: dict[str, int] = {}
        self.others_slots: dict[str, int] = {}
        self.others_sessions = 0
        self._local = MemoryStore()
        self._windows: dict[str, _Window] = {}
        self._counters: dict[str, _Counter] = {}
        self._revoked: dict[str, float] = {}
        self._revoking: dict[str, float] = {}
        self._revocations_writing: dict[str, float] = {}
        self._members = itertools.count()

    # -- the Store protocol ------------------------------------------------------------------

    def hit(self, key: str, limit: int, window_s: float, now: float) -> float | None:
        if key.startswith(LOCAL_PREFIXES):
            return self._local.hit(key, limit, window_s, now)
        window = self._window(key, window_s, now)
        times = window.times(now)
        if len(times) >= limit:
            return max(0.0, times[-limit] + window_s - now)
        window.pending[f"{self.instance_id}:{next(self._members)}"] = now
        self.wake()
        return None

    def recent(self, key: str, window_s: float, now: float) -> tuple[int, float]:
        if key.startswith(LOCAL_PREFIXES):
            return self._local.recent(key, window_s, now)
        times = self._window(key, window_s, now).times(now)
        return len(times), (max(0.0, times[0] + window_s - now) if times else 0.0)

    def acquire(self, key: str, limit: int) -> bool:
        if key.startswith(LOCAL_PREFIXES):
            return self._local.acquire(key, limit)
        mine = self.slots.get(key, 0)
        if mine + self.others_slots.get(key, 0) >= limit:
            return False
        self.slots[key] = mine + 1
        self.wake()
        return True

    def release(self, key: str) -> None:
        if key.startswith(LOCAL_PREFIXES):
            self._local.release(key)
            return
        mine = self.slots.get(key, 0)
        if mine <= 1:
            self.slots.pop(key, None)
        else:
            self.slots[key] = mine - 1
        self.wake()

    def add(self, key: str, amount: int) -> int:
        if key.startswith(LOCAL_PREFIXES):
            return self._local.add(key, amount)
        counter = self._counter(key)
        counter.pending += amount
        self.wake()
        return counter.value

    def get(self, key: str) -> int:
        if key.startswith(LOCAL_PREFIXES):
            return self._local.get(key)
        return self._counter(key).value

    def revoke(self, secret_id: str, until: float) -> None:
        self.heard_revocation(secret_id, until)
        self._revoking[secret_id] = until
        self.wake()

    def revoked(self, secret_id: str, now: float) -> bool:
        return still_revoked(self._revoked, secret_id, now)

    # -- what the sync task calls --------------------------------------------------------------

    def take(self, now: float) -> Batch:
        """This instance's changes, now being written (still counted until read back), and the
        keys to read; keys nobody used for a while are forgotten first."""
        self._forget_unused(now)
        events: dict[str, tuple[float, dict[str, float]]] = {}
        for key, window in self._windows.items():
            since = now - window.window_s
            window.writing = {m: t for m, t in window.pending.items() if t > since}
            window.pending = {}
            if window.writing:
                events[key] = (window.window_s, dict(window.writing))
        additions: dict[str, int] = {}
        for key, counter in self._counters.items():
            counter.writing, counter.pending = counter.pending, 0
            if counter.writing:
                additions[key] = counter.writing
        self._revocations_writing, self._revoking = self._revoking, {}
        return Batch(
            events=events,
            additions=additions,
            revocations=dict(self._revocations_writing),
            windows={key: window.window_s for key, window in self._windows.items()},
            counters=list(self._counters),
        )

    def settle(
        self, batch: Batch, windows: Mapping[str, dict[str, float]], counters: Mapping[str, int]
    ) -> None:
        """The batch is written; ``windows`` and ``counters`` are what was read after it."""
        for key, shared in windows.items():
            window = self._windows.get(key)
            if window is not None:
                window.shared, window.writing = dict(shared), {}
        for key, value in counters.items():
            counter = self._counters.get(key)
            if counter is not None:
                counter.shared, counter.writing = value, 0
        self._revocations_writing = {}

    def restore(self, batch: Batch) -> None:
        """The batch could not be written: its changes wait for the next round."""
        for key in batch.events:
            window = self._windows.get(key)
            if window is not None:
                window.pending = {**window.writing, **window.pending}
                window.writing = {}
        for key in batch.additions:
            counter = self._counters.get(key)
            if counter is not None:
                counter.pending += counter.writing
                counter.writing = 0
        self._revoking = {**self._revocations_writing, **self._revoking}
        self._revocations_writing = {}

    def heard_others(self, states: Sequence[Mapping[str, object]] | None) -> None:
        """The other live instances' published states (None: unknown, so not counted)."""
        slots: dict[str, int] = {}
        sessions = 0
        for state in states or ():
            count = state.get("sessions")
            sessions += count if isinstance(count, int) else 0
            theirs = state.get("slots")
            if isinstance(theirs, dict):
                for key, taken in theirs.items():
                    if isinstance(taken, int):
                        slots[str(key)] = slots.get(str(key), 0) + taken
        self.others_slots, self.others_sessions = slots, sessions

    def heard_revocation(self, secret_id: str, until: float) -> None:
        self._revoked[secret_id] = max(until, self._revoked.get(secret_id, until))

    # -- inside ---------------------------------------------------------------------------------

    def _window(self, key: str, window_s: float, now: float) -> _Window:
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = _Window(window_s, now)
            self.wake()  # read what the others counted
        window.window_s, window.used = max(window.window_s, window_s), now
        return window

    def _counter(self, key: str) -> _Counter:
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = _Counter(time.time())
            self.wake()
        counter.used = time.time()
        return counter

    def _forget_unused(self, now: float) -> None:
        for key, window in list(self._windows.items()):
            idle = now - window.used > max(window.window_s, 60.0)
            if idle and not window.pending and not window.writing:
                del self._windows[key]
        for key, counter in list(self._counters.items()):
            idle = now - counter.used > COUNTER_KEPT_S
            if idle and not counter.pending and not counter.writing:
                del self._counters[key]
        for secret_id, until in list(self._revoked.items()):
            if until <= now:
                del self._revoked[secret_id]


def _nothing() -> None:
    return None


__all__ = ["LOCAL_PREFIXES", "Batch", "Mirror"]
