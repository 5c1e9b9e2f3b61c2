"""What the policy needs from a store: rate windows, concurrency slots, daily budgets and
revoked secrets, each behind one small synchronous call.

Synchronous because the decisions are made in the upgrade itself (picows asks for the answer
to an upgrade synchronously) and must be atomic per key. A shared implementation keeps that
contract (for example with a local cache in front of its server, refreshed off the hot path).
"""

from __future__ import annotations

from typing import Protocol


class Store(Protocol):
    def hit(self, key: str, limit: int, window_s: float, now: float) -> float | None:
        """Count one event under ``key`` if fewer than ``limit`` happened in the last
        ``window_s`` seconds: None when counted, else the seconds until one more is allowed."""
        ...

    def recent(self, key: str, window_s: float, now: float) -> tuple[int, float]:
        """How many events :meth:`hit` counted under ``key`` in the last ``window_s`` seconds,
        and the seconds until the oldest of them leaves the window (0 when none)."""
        ...

    def acquire(self, key: str, limit: int) -> bool:
        """Take one of ``limit`` concurrent slots under ``key``; False when all are taken."""
        ...

    def release(self, key: str) -> None:
        """Give back a slot taken with :meth:`acquire`."""
        ...

    def add(self, key: str, amount: int) -> int:
        """Add ``amount`` to the counter ``key`` (created at 0) and return its new value."""
        ...

    def get(self, key: str) -> int:
        """The counter ``key`` (0 when absent)."""
        ...

    def revoke(self, secret_id: str, until: float) -> None:
        """Refuse the secret ``secret_id`` from now on (it need not be kept past ``until``)."""
        ...

    def revoked(self, secret_id: str, now: float) -> bool: ...


def still_revoked(revoked: dict[str, float], secret_id: str, now: float) -> bool:
    """Whether ``secret_id`` is revoked at ``now`` in a map of revocations to their end; one
    that has ended is dropped as it is met (the map stays bounded)."""
    until = revoked.get(secret_id)
    if until is None:
        return False
    if until <= now:
        del revoked[secret_id]
        return False
    return True
