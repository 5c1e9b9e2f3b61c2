"""The shared store in Redis (``REDIS_URL``): limits, revocations and the session registry of
several bridge instances, kept in step by one asyncio task per instance.

Every :class:`~realtime_bridge.store.base.Store` call is decided locally by the
:class:`~realtime_bridge.store.mirror.Mirror` (no round trip at an upgrade, none per frame);
this task writes its changes out and reads the shared values back, every
:data:`REFRESH_S` and at once after a change. It publishes this instance's sessions under a key
that expires (:data:`INSTANCE_TTL_S`), so a dead instance's sessions and slots vanish on their
own, and listens on one pub/sub channel: revocations and end requests arrive within
milliseconds, and a change elsewhere triggers a refresh here right away.

When Redis does not answer, nothing waits for it: sessions go on, each instance admits with
what it knows alone (its own sessions and slots, the windows and budgets it last read), one
WARNING says so, and the task reconnects with backoff; on reconnect it writes what happened
meanwhile, publishes its state again, and logs one INFO.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import socket
import time
from collections.abc import Callable
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from realtime_bridge.observability import get_logger
from realtime_bridge.store.mirror import Batch, Mirror

log = get_logger("store")

PREFIX = "rb:"
CHANNEL = f"{PREFIX}events"
INSTANCES = f"{PREFIX}instances"
REVOKED = f"{PREFIX}revoked"
#: How often the shared values are read when nothing is announced. A change anywhere is
#: announced on pub/sub and read at once; this catches what no one announces (an instance that
#: died, a missed message). Each round wakes Redis and costs this process ~0.2-1.5 ms of CPU,
#: so 4 a second made 4-8 % of a worker's CPU per message at light load (bench/workers.py).
REFRESH_S = 1.0
#: Rounds are at least this far apart, however often something changes.
MIN_GAP_S = 0.02
#: An instance's published state expires after this long without a refresh.
INSTANCE_TTL_S = 5.0
TTL_MS = int(INSTANCE_TTL_S * 1000)
#: ... which it refreshes this often, and its session list for ``GET /sessions`` as often.
PUBLISH_S = 1.0
#: Revocations are read whole on (re)connect and this often (pub/sub brings them at once).
REVOCATIONS_S = 5.0
#: A counter (a daily budget) is kept this long after its last change.
COUNTER_TTL_S = 2 * 86400
#: Any one Redis command, and a connection attempt, gives up after this long.
COMMAND_TIMEOUT_S = 1.0
BACKOFF_S = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0)
STOP_WITHIN_S = 3.0


def new_instance_id() -> str:
    """Host, process and a random part: unique among instances and workers, readable in logs."""
    host = re.sub(r"[^A-Za-z0-9._-]", "_", socket.gethostname())[:40]
    return f"{host}-{os.getpid()}-{secrets.token_hex(2)}"


class RedisStore(Mirror):
    """The Store protocol from the mirror, plus the task that keeps it in step with Redis."""

    kind = "redis"

    def __init__(self, url: str, instance_id: str | None = None) -> None:
        super().__init__(instance_id or new_instance_id())
        self._url = url
        #: What this instance publishes, and who ends its sessions (server/shared.py sets them).
        self.session_count: Callable[[], int] = lambda: 0
        self.session_summaries: Callable[[], list[dict[str, Any]]] = list
        self.on_end_request: Callable[[str], object] = lambda _session_id: None
        self.ok = False
        self.client: Redis | None = None
        self.wake = self._wake
        self._woken = asyncio.Event()
        self._attempted = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._was_down = False
        self._published: tuple[int, dict[str, int]] | None = None
        self._summaries_at = 0.0
        self._revocations_at = 0.0

    def _wake(self) -> None:
        self._woken.set()

    async def start(self, within_s: float = 2 * COMMAND_TIMEOUT_S) -> None:
        """Start the task and give it ``within_s`` to connect (start-up never fails for it)."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name="redis-store")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within_s):
                await self._attempted.wait()

    async def stop(self) -> None:
        """Stop the task; this instance's sessions leave the shared registry at once."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=STOP_WITHIN_S)  # bounded, whatever it does
            self._task = None
        if self.ok:
            self.ok = False
            client = self._connect()
            with contextlib.suppress(RedisError, OSError, TimeoutError):
                async with asyncio.timeout(COMMAND_TIMEOUT_S):
                    await client.delete(
                        _instance_key(self.instance_id), sessions_key(self.instance_id)
                    )
                    await client.srem(INSTANCES, self.instance_id)
            with contextlib.suppress(RedisError, OSError):
                await client.aclose()

    # -- the task ------------------------------------------------------------------------------

    def _connect(self) -> Redis:
        return Redis.from_url(
            self._url,
            socket_timeout=COMMAND_TIMEOUT_S,
            socket_connect_timeout=COMMAND_TIMEOUT_S,
            retry=Retry(NoBackoff(), 0),
            decode_responses=True,
        )

    async def _run(self) -> None:
        attempt = 0
        while True:
            client = self._connect()
            try:
                await self._connected(client)
            except Exception as exc:  # whatever it was, the store is down until a reconnect
                attempt = 0 if self.ok else attempt + 1
                self._down(exc)
            finally:
                self.client = None
                self._attempted.set()
                with contextlib.suppress(RedisError, OSError):
                    await client.aclose()
            await asyncio.sleep(BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)])

    async def _connected(self, client: Redis) -> None:
        pubsub: PubSub = client.pubsub()
        try:
            await pubsub.subscribe(CHANNEL)
            self._published, self._summaries_at, self._revocations_at = None, 0.0, 0.0
            await self._round(client)
            self.client = client
            self._up()
            self._attempted.set()
            async with asyncio.TaskGroup() as group:  # until one of them fails
                group.create_task(self._rounds(client))
                group.create_task(self._listen(pubsub))
        finally:
            with contextlib.suppress(RedisError, OSError):
                await pubsub.aclose()

    async def _rounds(self, client: Redis) -> None:
        while True:
            with contextlib.suppress(TimeoutError):  # not wait_for: 3.11's can lose a cancel
                async with asyncio.timeout(REFRESH_S):
                    await self._woken.wait()
            await asyncio.sleep(MIN_GAP_S)  # changes that come together are written together
            await self._round(client)

    async def _listen(self, pubsub: PubSub) -> None:
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if message is not None:
                self._heard(message.get("data"))

    def _heard(self, data: object) -> None:
        event = loads(data)
        if not isinstance(event, dict):
            return
        kind, subject = event.get("kind"), event.get("id")
        mine = event.get("instance") == self.instance_id
        if kind == "revoke" and isinstance(subject, str):
            until = event.get("until")
            self.heard_revocation(subject, float(until) if isinstance(until, int | float) else 0)
        elif kind == "changed" and not mine:
            self._wake()
        elif kind == "end" and mine and isinstance(subject, str):
            self.on_end_request(subject)

    async def _round(self, client: Redis) -> None:
        """Write what changed here, publish this instance, read back the shared values."""
        self._woken.clear()
        now = time.time()
        batch = self.take(now)
        state = (self.session_count(), dict(self.slots))
        changed = state != self._published
        publish_all = now - self._summaries_at >= PUBLISH_S or (
            changed and now - self._summaries_at >= REFRESH_S
        )
        pipe = client.pipeline(transaction=True)  # all of it or, on a broken connection, none
        self._write(pipe, batch, now)
        if changed or publish_all:
            sessions, slots = state
            body = {"id": self.instance_id, "sessions": sessions, "slots": slots}
            pipe.set(_instance_key(self.instance_id), orjson.dumps(body), px=TTL_MS)
            pipe.sadd(INSTANCES, self.instance_id)
        if publish_all:
            summaries = orjson.dumps(self.session_summaries())
            pipe.set(sessions_key(self.instance_id), summaries, px=TTL_MS)
        if changed or batch.events or batch.additions:
            pipe.publish(CHANNEL, orjson.dumps({"kind": "changed", "instance": self.instance_id}))
        first_read = len(pipe)
        pipe.smembers(INSTANCES)
        for key, window_s in batch.windows.items():
            pipe.zrangebyscore(f"{PREFIX}w:{key}", f"({now - window_s}", "+inf", withscores=True)
        for key in batch.counters:
            pipe.get(f"{PREFIX}c:{key}")
        reading_revocations = now - self._revocations_at >= REVOCATIONS_S
        if reading_revocations:
            pipe.zremrangebyscore(REVOKED, "-inf", now)
            pipe.zrangebyscore(REVOKED, now, "+inf", withscores=True)
        try:
            reads = (await pipe.execute())[first_read:]
        except BaseException:
            self.restore(batch)
            raise
        self._published = state
        if publish_all:
            self._summaries_at = now
        values = iter(reads[1:])
        windows = {key: {str(m): float(t) for m, t in next(values)} for key in batch.windows}
        self.settle(batch, windows, {key: int(next(values) or 0) for key in batch.counters})
        if reading_revocations:
            self._revocations_at = now
            for secret_id, until in reads[-1]:
                self.heard_revocation(str(secret_id), float(until))
        self.heard_others(await self._read_others(client, reads[0]))

    def _write(self, pipe: Any, batch: Batch, now: float) -> None:
        for key, (window_s, events) in batch.events.items():
            name = f"{PREFIX}w:{key}"
            pipe.zadd(name, events)
            pipe.zremrangebyscore(name, "-inf", now - window_s)
            pipe.expire(name, int(window_s) + 1)
        for key, amount in batch.additions.items():
            pipe.incrby(f"{PREFIX}c:{key}", amount)
            pipe.expire(f"{PREFIX}c:{key}", COUNTER_TTL_S)
        for secret_id, until in batch.revocations.items():
            pipe.zadd(REVOKED, {secret_id: until})
            event = {"kind": "revoke", "id": secret_id, "until": until}
            pipe.publish(CHANNEL, orjson.dumps(event))

    async def _read_others(self, client: Redis, ids: set[str]) -> list[dict[str, Any]]:
        others = sorted(i for i in ids if i != self.instance_id)
        if not others:
            return []
        blobs = await client.mget([_instance_key(i) for i in others])
        gone = [i for i, blob in zip(others, blobs, strict=True) if blob is None]
        if gone:
            await client.srem(INSTANCES, *gone)
        states = (loads(blob) for blob in blobs if blob is not None)
        return [state for state in states if isinstance(state, dict)]

    def _up(self) -> None:
        self.ok = True
        if self._was_down:
            log.info("the shared store answers again: limits and sessions are shared again")
        else:
            log.info("shared store: redis (instance %s)", self.instance_id)
        self._was_down = False

    def _down(self, exc: BaseException) -> None:
        self.ok = False
        self.heard_others(None)  # their sessions may have ended: each instance counts alone
        if not self._was_down:
            log.warning(
                "the shared store does not answer (%s): sessions go on; new ones are admitted "
                "with this instance's own limits until it is back",
                type(exc.exceptions[0] if isinstance(exc, ExceptionGroup) else exc).__name__,
            )
        self._was_down = True


def _instance_key(instance_id: str) -> str:
    return f"{PREFIX}instance:{instance_id}"


def sessions_key(instance_id: str) -> str:
    return f"{PREFIX}instance:{instance_id}:sessions"


def end_request(instance_id: str, session_id: str) -> bytes:
    """The pub/sub message that asks ``instance_id`` to end ``session_id``."""
    return orjson.dumps({"kind": "end", "instance": instance_id, "id": session_id})


def loads(data: object) -> object:
    """What another instance wrote (None when it is not JSON: never trusted to be)."""
    if not isinstance(data, str | bytes):
        return None
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return None


__all__ = [
    "CHANNEL",
    "INSTANCES",
    "RedisStore",
    "end_request",
    "loads",
    "new_instance_id",
    "sessions_key",
]
