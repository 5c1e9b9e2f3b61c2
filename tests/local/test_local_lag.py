"""The local upstream never stalls the server: while ten sessions get spoken replies through a
real bridge, no call into the local upstream synthesises more than one 100 ms chunk of audio (and
the syllable that straddles its end), where the old code made a whole reply, seconds of audio, in
one call. Counted in samples, not timed, so a busy machine cannot make it fail; the CPU time of
the calls and the loop's lag are printed here and measured by ``bench/local_lag.py``."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import aiohttp
import orjson
import pytest

from realtime_bridge.upstream.local import synth
from realtime_bridge.upstream.local.adapter import LocalUpstream
from realtime_bridge.upstream.local.core import RealtimeCore
from realtime_bridge.upstream.local.response_run import CHUNK_MS
from tests.conftest import running_bridge, ws_url

SESSIONS = 10
RATE = 24_000  # the session's default output, PCM16 at 24 kHz
LONG_REPLY = "Reply with: " + "A long spoken answer that goes on for a while, and then some. " * 3
#: The most one call may synthesise: a chunk, plus the last segment begun to fill it (a
#: sentence's pause is the longest segment there is).
MOST_PER_CALL = RATE * CHUNK_MS // 1000 + round(
    max(synth.SYLLABLE_MS, synth.STOP_PAUSE_MS, synth.COMMA_PAUSE_MS) * RATE / 1000
)


class Work:
    """Samples synthesised and CPU time spent by each call into the local upstream."""

    def __init__(self) -> None:
        self.samples: list[int] = []
        self.cpu_ms: list[float] = []
        self._current = 0

    def count(self, samples: int) -> None:
        self._current += samples

    def timed(self, method: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            self._current = 0
            started = time.thread_time()
            try:
                return method(*args, **kwargs)
            finally:
                self.cpu_ms.append((time.thread_time() - started) * 1000)
                self.samples.append(self._current)

        return wrapper


class LoopLag:
    """Wakes every millisecond and records how late it woke (ms)."""

    def __init__(self) -> None:
        self.lags: list[float] = [0.0]
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


@contextmanager
def measured(monkeypatch: pytest.MonkeyPatch) -> Iterator[Work]:
    work = Work()
    for name in ("receive", "poll"):
        monkeypatch.setattr(RealtimeCore, name, work.timed(getattr(RealtimeCore, name)))
    segment = synth.SynthStream._segment

    def counted(self: synth.SynthStream, seg: synth.Segment, n: int) -> Any:
        work.count(n)
        return segment(self, seg, n)

    monkeypatch.setattr(synth.SynthStream, "_segment", counted)
    yield work


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
    with measured(monkeypatch) as work:
        async with running_bridge(
            LocalUpstream(pace=pace), UPSTREAM="local", LOG_LEVEL="info"
        ) as bridge:
            with LoopLag() as lag:
                replies = (one_reply(ws_url(bridge)) for _ in range(SESSIONS))
                audio = await asyncio.gather(*replies)
    assert all(size > 100_000 for size in audio)  # each reply is seconds of audio
    made = sum(work.samples)
    # base64 of PCM16: 4 characters per 3 bytes, 2 bytes a sample
    assert made >= sum(audio) * 3 // 8 - SESSIONS * RATE, "the replies' audio was not counted"
    assert made > 40 * MOST_PER_CALL  # so the bound below is far below one whole reply
    worst = max(work.samples)
    assert worst <= MOST_PER_CALL, (
        f"one call synthesised {worst} samples ({worst * 1000 // RATE} ms of audio); "
        f"at most {MOST_PER_CALL} may be made at once"
    )
    print(
        f"\nlocal upstream, {SESSIONS} replies, pace {pace:g}: {len(work.samples)} calls, "
        f"at most {worst} samples made in one, worst {max(work.cpu_ms):.2f} ms CPU; "
        f"loop lag median {statistics.median(lag.lags):.2f} ms, max {max(lag.lags):.1f} ms"
    )
