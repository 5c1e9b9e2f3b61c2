"""The local upstream never stalls the server: while ten sessions get spoken replies through a
real bridge, no call into the local upstream holds the event loop for more than 5 ms (CPU time
of the call, so a busy machine does not make it fail), and a task that measures its own wake-up
delay sees the loop stay responsive."""

from __future__ import annotations

import asyncio
import gc
import statistics
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import orjson
import pytest

from realtime_bridge.upstream.local.adapter import LocalUpstream
from realtime_bridge.upstream.local.core import RealtimeCore
from tests.conftest import running_bridge, ws_url

SESSIONS = 10
LONG_REPLY = "Reply with: " + "A long spoken answer that goes on for a while, and then some. " * 3


class LoopLag:
    """Wakes every millisecond and records how late it woke (ms)."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + 0.001
            await asyncio.sleep(0.001)
            self.lags.append(max(0.0, loop.time() - due) * 1000)

    def __enter__(self) -> LoopLag:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


def timed(calls: list[float], method: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.thread_time()
        try:
            return method(*args, **kwargs)
        finally:
            calls.append((time.thread_time() - started) * 1000)

    return wrapper


async def one_reply(url: str) -> int:
    audio = 0
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        await ws.receive()  # session.created
        update = {
            "type": "session.update",
            "session": {"type": "realtime", "instructions": LONG_REPLY},
        }
        await ws.send_str(orjson.dumps(update).decode())
        await ws.send_str('{"type":"response.create"}')
        while True:
            event = orjson.loads((await asyncio.wait_for(ws.receive(), 30)).data)
            if event["type"] == "response.output_audio.delta":
                audio += len(event["delta"])
            if event["type"] == "response.done":
                assert event["response"]["status"] == "completed"
                return audio


@pytest.mark.parametrize("pace", [1.0, 0.0], ids=["real-time", "all-at-once"])
async def test_ten_spoken_replies_never_hold_the_loop(
    monkeypatch: pytest.MonkeyPatch, pace: float
) -> None:
    calls: list[float] = []
    for name in ("receive", "poll"):
        monkeypatch.setattr(RealtimeCore, name, timed(calls, getattr(RealtimeCore, name)))
    # The garbage collector's pauses are the whole process's, not the local upstream's: after
    # a thousand tests the heap is large enough that one lands in a measured call.
    gc.collect()
    gc.disable()
    try:
        async with running_bridge(
            LocalUpstream(pace=pace), UPSTREAM="local", LOG_LEVEL="info"
        ) as bridge:
            with LoopLag() as lag:
                replies = (one_reply(ws_url(bridge)) for _ in range(SESSIONS))
                audio = await asyncio.gather(*replies)
    finally:
        gc.enable()
    assert all(size > 100_000 for size in audio)  # each reply is seconds of audio
    worst_call = max(calls)
    slow = [round(c, 1) for c in calls if c >= 5.0]
    # No call does more than a 100 ms chunk's work (about 1.5 ms); on a machine busy with other
    # processes a single call's CPU time can still stretch past 5 ms now and then (caches,
    # frequency), so one in 500 is tolerated. The old code spent 35-180 ms in one call.
    assert len(slow) <= len(calls) // 500, f"calls over 5 ms of CPU: {slow} of {len(calls)}"
    assert worst_call < 20.0, f"a call into the local upstream took {worst_call:.1f} ms of CPU"
    print(
        f"\nlocal upstream, {SESSIONS} replies, pace {pace:g}: {len(calls)} calls, "
        f"worst {worst_call:.2f} ms CPU; loop lag median {statistics.median(lag.lags):.2f} ms, "
        f"max {max(lag.lags):.1f} ms"
    )
    if pace > 0:
        # The ten replies start together, so their 100 ms steps share loop turns: the worst
        # lag is about their sum (~25 ms here). Before, each reply's synthesis held the loop
        # 35-160 ms on its own, 350 ms and more for ten. (All at once, pace 0, every step of
        # every session is due at once: that lag is reported, not bounded.)
        assert statistics.median(lag.lags) < 2.0
        assert max(lag.lags) < 60.0
