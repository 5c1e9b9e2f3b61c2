"""Does the local upstream hold the event loop? N sessions get long spoken replies at once
through an in-process bridge on the local upstream; printed: the CPU time of the longest call
into the local upstream (target: under 5 ms), and how late a task that wakes every millisecond
woke (the loop's lag; clients, bridge and upstream share this one loop, so it is an upper bound).

    .venv/bin/python bench/local_lag.py [--sessions 10]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import numpy as np
import orjson

from realtime_bridge.config import load_settings
from realtime_bridge.server.app import BridgeServer
from realtime_bridge.upstream.local.adapter import LocalUpstream
from realtime_bridge.upstream.local.core import RealtimeCore

#: The local upstream's entry points, as they are (each run wraps them afresh).
ORIGINAL = {name: getattr(RealtimeCore, name) for name in ("receive", "poll")}
REPLY = "Reply with: " + "A long spoken answer that goes on for a while, and then some. " * 3


def timed(calls: list[float], method: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.thread_time()
        try:
            return method(*args, **kwargs)
        finally:
            calls.append((time.thread_time() - started) * 1000)

    return wrapper


async def reply(url: str) -> None:
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        await ws.receive()
        session = {"type": "realtime", "instructions": REPLY}
        await ws.send_str(orjson.dumps({"type": "session.update", "session": session}).decode())
        await ws.send_str('{"type":"response.create"}')
        while orjson.loads((await ws.receive()).data)["type"] != "response.done":
            pass


async def measure(sessions: int, pace: float) -> dict[str, float]:
    calls: list[float] = []
    lags: list[float] = []
    for name, method in ORIGINAL.items():
        setattr(RealtimeCore, name, timed(calls, method))
    settings = load_settings({"WS_PORT": "0", "HTTP_PORT": "0", "LOG_LEVEL": "warning"})
    server = BridgeServer(settings, upstream=LocalUpstream(pace=pace))
    await server.start()

    async def monitor() -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + 0.001
            await asyncio.sleep(0.001)
            lags.append(max(0.0, loop.time() - due) * 1000)

    task = asyncio.create_task(monitor())
    try:
        url = f"ws://127.0.0.1:{server.ws_port}/v1/realtime"
        await asyncio.gather(*(reply(url) for _ in range(sessions)))
    finally:
        task.cancel()
        await server.shutdown()
    return {
        "worst_call_ms": max(calls),
        "p99_call_ms": float(np.percentile(calls, 99)),
        "lag_median_ms": statistics.median(lags),
        "lag_p99_ms": float(np.percentile(lags, 99)),
        "lag_max_ms": max(lags),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=10)
    args = parser.parse_args()
    print(f"Local upstream, {args.sessions} long spoken replies at once (ms)")
    print("  pace          worst call  p99 call  lag median  lag p99  lag max")
    for pace in (1.0, 0.0):
        r = asyncio.run(measure(args.sessions, pace))
        label = "real time" if pace else "all at once"
        print(
            f"  {label:12} {r['worst_call_ms']:10.2f} {r['p99_call_ms']:9.2f} "
            f"{r['lag_median_ms']:11.2f} {r['lag_p99_ms']:8.1f} {r['lag_max_ms']:8.1f}"
        )


if __name__ == "__main__":
    main()
