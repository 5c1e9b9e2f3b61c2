"""The default store: one process's memory. Enough for one bridge process; several processes or
instances share limits through a shared store instead."""

from __future__ import annotations

from collections import defaultdict, deque

from realtime_bridge.store.base import still_revoked


class MemoryStore:
    """Implements :class:`~realtime_bridge.store.base.Store` with dicts (bounded: old rate
    events and expired revocations are dropped as they are met)."""

    def __init__(self) -> None:
        self._events: dict[str, deque[float]] = defaultdict(deque)
        self._slots: dict[str, int] = defaultdict(int)
        self._counters: dict[str, int] = defaultdict(int)
        self._revoked: dict[str, float] = {}

    def hit(self, key: str, limit: int, window_s: float, now: float) -> float | None:
        events = self._events[key]
        while events and events[0] <= now - window_s:
            events.popleft()
        if len(events) >= limit:
            return max(0.0, events[0] + window_s - now)
        events.append(now)
        return None

    def recent(self, key: str, window_s: float, now: float) -> tuple[int, float]:
        events = self._events.get(key)
        if not events:
            return 0, 0.0
        while events and events[0] <= now - window_s:
            events.popleft()
        if not events:
            del self._events[key]
            return 0, 0.0
        return len(events), max(0.0, events[0] + window_s - now)

    def acquire(self, key: str, limit: int) -> bool:
        if self._slots[key] >= limit:
            return False
        self._slots[key] += 1
        return True

    def release(self, key: str) -> None:
        if self._slots[key] > 0:
            self._slots[key] -= 1

    def add(self, key: str, amount: int) -> int:
        self._counters[key] += amount
        return self._counters[key]

    def get(self, key: str) -> int:
        return self._counters.get(key, 0)

    def revoke(self, secret_id: str, until: float) -> None:
        self._revoked[secret_id] = until

    def revoked(self, secret_id: str, now: float) -> bool:
        return still_revoked(self._revoked, secret_id, now)
