"""The in-process upstream: one :class:`RealtimeCore` per session, driven by asyncio.

``send`` feeds the core synchronously (so the order of client events is kept) and queues what
became due; a timer task sleeps until the core's next deadline or until new input moves it, then
queues what is due. No socket, no busy loop; ``close`` cancels the task and ``receive`` then
reports ``UpstreamClosed``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from realtime_bridge.errors import UpstreamError
from realtime_bridge.upstream.base import UpstreamClosed, UpstreamRequest

from .core import RealtimeCore

LOCAL_URL = "local://realtime"
logger = logging.getLogger(__name__)


class LocalConnection:
    """One session of the local upstream (implements ``UpstreamConnection``)."""

    def __init__(self, core: RealtimeCore) -> None:
        self._core = core
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[str | UpstreamClosed] = asyncio.Queue()
        self._wake = asyncio.Event()
        self._closed: UpstreamClosed | None = None
        core.start(self._loop.time())
        self._pump()
        self._task = asyncio.create_task(self._timer(), name="local-upstream-timer")

    @property
    def core(self) -> RealtimeCore:
        return self._core

    def _pump(self) -> None:
        for out in self._core.poll(self._loop.time()):
            self._queue.put_nowait(out.text)

    async def _timer(self) -> None:
        try:
            await self._run_timer()
        except Exception:  # a core bug ends this session only, visibly
            logger.exception("local upstream session failed")
            self._closed = UpstreamClosed(1011, "local upstream internal error")
            self._queue.put_nowait(self._closed)

    async def _run_timer(self) -> None:
        while True:
            deadline = self._core.next_deadline()
            self._wake.clear()
            if deadline is None:
                await self._wake.wait()
            else:
                delay = deadline - self._loop.time()
                if delay > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), delay)
            self._pump()

    async def send(self, text: str) -> None:
        if self._closed is not None:
            raise UpstreamError("the local upstream session is closed")
        self._core.receive(text, self._loop.time())
        self._pump()
        self._wake.set()

    async def receive(self) -> str | UpstreamClosed:
        if self._closed is not None:
            return self._closed
        item = await self._queue.get()
        if isinstance(item, UpstreamClosed):
            self._queue.put_nowait(item)  # every later call sees it too
        return item

    async def close(self, code: int = 1000, reason: str = "") -> None:
        if self._closed is not None:
            return
        self._closed = UpstreamClosed(1000, reason or "closed")
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        while not self._queue.empty():
            self._queue.get_nowait()
        self._queue.put_nowait(self._closed)


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
        core = RealtimeCore(model=request.model, pace=self.pace, created_at=int(time.time()))
        return LocalConnection(core)

    async def aclose(self) -> None:
        """Nothing shared to release."""
