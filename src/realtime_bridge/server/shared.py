"""Several instances on one Redis (``REDIS_URL``): this instance's session registry joined to
the others', through :class:`~realtime_bridge.store.redis.RedisStore`.

- ``MAX_SESSIONS`` counts every instance's sessions: the registry adds the others' count as
  last read (at once after a change anywhere, announced on pub/sub, and at least every second).
- ``GET /sessions`` lists every instance's sessions, each marked with its ``instance``.
- ``DELETE /sessions/{id}`` for a session of another instance asks that instance over pub/sub;
  it ends the session exactly as a local ``DELETE`` would.

While Redis does not answer, this instance is alone: its own sessions, its own count, and a
``DELETE`` of a session it does not hold answers 503 ``store_unavailable``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from redis.exceptions import RedisError

from realtime_bridge.server.sessions import SessionRegistry
from realtime_bridge.store.redis import (
    CHANNEL,
    INSTANCES,
    RedisStore,
    end_request,
    loads,
    sessions_key,
)


class SharedRegistry:
    """The registry of this instance, published to and joined with the other instances'."""

    def __init__(
        self, store: RedisStore, registry: SessionRegistry, end_session: Callable[[str], bool]
    ) -> None:
        """``end_session`` ends a session of this instance as a local ``DELETE`` does."""
        self.store = store
        self.registry = registry
        store.session_count = registry.__len__
        store.session_summaries = self._summaries
        store.on_end_request = end_session
        registry.elsewhere.append(self._elsewhere)
        registry.on_change.append(store.wake)

    @property
    def instance_id(self) -> str:
        return self.store.instance_id

    @property
    def ok(self) -> bool:
        return self.store.ok

    async def start(self) -> None:
        await self.store.start()

    async def stop(self) -> None:
        await self.store.stop()

    def status(self) -> dict[str, Any]:
        return {"store": "redis", "store_ok": self.store.ok}

    async def listing(self) -> list[dict[str, Any]]:
        """Every live instance's sessions, this one's first (only this one's while Redis is
        down)."""
        sessions = self._summaries()
        for instance_id, theirs in await self._others() or ():
            sessions.extend({**summary, "instance": instance_id} for summary in theirs)
        return sessions

    async def end_elsewhere(self, session_id: str) -> bool | None:
        """Ask the instance that holds ``session_id`` to end it: True when asked, False when
        no live instance lists it, None when Redis does not answer."""
        others = await self._others()
        if others is None:
            return None
        for instance_id, theirs in others:
            if any(summary.get("id") == session_id for summary in theirs):
                return await self._ask_to_end(instance_id, session_id)
        return False

    async def _others(self) -> list[tuple[str, list[dict[str, Any]]]] | None:
        """The other live instances' published sessions (None: Redis does not answer)."""
        client = self.store.client
        if client is None or not self.store.ok:
            return None
        try:
            ids = sorted(str(i) for i in await client.smembers(INSTANCES))
            ids = [i for i in ids if i != self.instance_id]
            blobs = await client.mget([sessions_key(i) for i in ids]) if ids else []
        except (RedisError, OSError):
            return None
        found = []
        for instance_id, blob in zip(ids, blobs, strict=True):
            sessions = loads(blob)
            if isinstance(sessions, list):
                found.append((instance_id, [s for s in sessions if isinstance(s, dict)]))
        return found

    async def _ask_to_end(self, instance_id: str, session_id: str) -> bool | None:
        client = self.store.client
        if client is None:
            return None
        try:
            await client.publish(CHANNEL, end_request(instance_id, session_id))
        except (RedisError, OSError):
            return None
        return True

    def _elsewhere(self) -> int:
        return self.store.others_sessions if self.store.ok else 0

    def _summaries(self) -> list[dict[str, Any]]:
        return [{**record.summary(), "instance": self.instance_id} for record in self.registry]


__all__ = ["SharedRegistry"]
