"""The in-process upstream: one :class:`RealtimeCore` per session, driven by asyncio callbacks.

Every event the core emits is handed to the attached :class:`UpstreamSink` synchronously, in
order: ``send`` feeds the core and delivers what became due at once; a timer task sleeps until
the core's next deadline (or until ``send`` moves it) and delivers what is due then. Events due
before ``attach`` or while reading is paused wait in a pending list. A core bug ends the session
with ``upstream_closed(1011)``; after ``close`` the sink is never called again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque

from realtime_bridge.errors import UpstreamError
from realtime_bridge.upstream.base import UpstreamClosed, UpstreamRequest, UpstreamSink

from .core import RealtimeCore

LOCAL_URL = "local://realtime"
#: Undelivered events past which the bridge is told to stop sending (backpressure).
MAX_PENDING_EVENTS = 1000
INTERNAL_ERROR = UpstreamClosed(1011, "local upstream internal error")
logger = logging.getLogger(__name__)


class LocalConnection:
    """One session of the local upstream (implements ``UpstreamConnection``)."""

    def __init__(self, core: RealtimeCore) -> None:
        self._core = core
        self._loop = asyncio.get_running_loop()
        self._sink: UpstreamSink | None = None
        self._pending: deque[str | UpstreamClosed] = deque()  # due, not yet delivered
        self._delivering = False  # guards re-entrant delivery (the sink calling send)
        self._paused = False
        self._failed = False  # the core raised: the session is over, its close is pending
        self._closed = False  # our own close: nothing is delivered any more
        self._wake = asyncio.Event()
        self._told_full = False
        core.start(self._loop.time())
        self._pump()
        self._task = asyncio.create_task(self._timer(), name="local-upstream-timer")

    @property
    def core(self) -> RealtimeCore:
        return self._core

    def attach(self, sink: UpstreamSink) -> None:
        self._sink = sink
        self._deliver()

    def send_payload(self, payload: bytes | memoryview) -> None:
        self.send(bytes(payload).decode())  # the bridge sends only text it checked as UTF-8

    def send(self, text: str) -> None:
        if self._closed or self._failed:
            raise UpstreamError("the local upstream session is closed")
        try:
            self._core.receive(text, self._loop.time())
            self._pump()
            self._backpressure()
        except Exception as exc:  # a core bug ends this session only, visibly
            logger.exception("local upstream session failed")
            self._task.cancel()
            self._fail()
            raise UpstreamError("the local upstream session failed") from exc
        self._wake.set()
        self._deliver()

    def hold_writes(self) -> None:
        """In process: nothing to coalesce."""

    def pause_reading(self) -> None:
        self._paused = True

    def resume_reading(self) -> None:
        self._paused = False
        self._deliver()
        self._backpressure()

    def _backpressure(self) -> None:
        """Like a socket's write buffer: while the bridge does not take what this session
        produced (its client is slow), past a bound the bridge is told to stop sending."""
        sink = self._sink
        if sink is None:
            return
        full = len(self._pending) > MAX_PENDING_EVENTS
        if full != self._told_full:
            self._told_full = full
            sink.upstream_writable(not full)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        if self._closed:
            return
        self._closed = True
        self._sink = None
        self._pending.clear()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    def _pump(self) -> None:
        """Move what the core has due into the pending list (the caller delivers)."""
        self._pending.extend(out.text for out in self._core.poll(self._loop.time()))

    def _deliver(self) -> None:
        """Hand the pending events to the sink, oldest first, each once.

        A call made while a delivery is under way (the sink calling ``send`` or
        ``resume_reading``) only queues: the outer loop delivers it after what came before.
        """
        sink = self._sink
        if sink is None or self._delivering:
            return
        self._delivering = True
        try:
            while self._pending and not self._paused and not self._closed:
                item = self._pending.popleft()
                if isinstance(item, UpstreamClosed):
                    self._pending.clear()
                    sink.upstream_closed(item)
                    return
                sink.upstream_text(item)
        finally:
            self._delivering = False

    def _fail(self) -> None:
        """End the session after a core failure: queue ``upstream_closed(1011)`` once."""
        if not self._failed and not self._closed:
            self._failed = True
            self._pending.append(INTERNAL_ERROR)
        self._deliver()

    async def _timer(self) -> None:
        try:
            while True:
                await self._sleep()
                self._pump()
                self._deliver()
                self._backpressure()
        except Exception:  # a core (or sink) bug ends this session only, visibly
            logger.exception("local upstream session failed")
            self._fail()

    async def _sleep(self) -> None:
        """Wait for the core's next deadline, or for ``send`` to move it."""
        deadline = self._core.next_deadline()
        self._wake.clear()
        if deadline is None:
            await self._wake.wait()
            return
        delay = deadline - self._loop.time()
        if delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
        else:
            await asyncio.sleep(0)  # more is due at once: let other sessions run first


class LocalUpstream:
    """The built-in offline upstream (implements ``Upstream``); ``pace`` as LOCAL_AUDIO_PACE."""

    def __init__(self, pace: float = 1.0) -> None:
        if pace < 0:
            raise ValueError("pace must be >= 0")
        self.pace = pace

    @property
    def kind(self) -> str:
        return "local"

    @property
    def url(self) -> str:
        return LOCAL_URL

    async def connect(self, request: UpstreamRequest) -> LocalConnection:
        core = RealtimeCore(
            model=request.model,
            pace=self.pace,
            created_at=int(time.time()),
            transcription=request.intent == "transcription",
        )
        return LocalConnection(core)

    async def aclose(self) -> None:
        """Nothing shared to release."""
