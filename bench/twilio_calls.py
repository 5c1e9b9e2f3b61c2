"""Phone calls at scale: N simulated Twilio calls (50 media messages/s each way, 160-byte µ-law
frames) through the bridge and, in the same run, through a minimal relay written the way
Twilio's published Python sample is (FastAPI + websockets, ``bench/peers/``). Printed: frames
lost, the relay's CPU per message, and the median/p99 round trip of a caller's frame (caller →
relay → upstream → relay → caller) for each, and the bridge's CPU as a ratio of the sample's.

The upstream answers each append with the same audio as an output delta
(``bench/peers/twilio_echo.py``), so every frame a caller sends comes back to it; each frame
carries its send time in its first 8 bytes. The simulated phones acknowledge marks.

    .venv/bin/python bench/twilio_calls.py [--calls 100] [--seconds 5] [--repeats 3]

Needs fastapi and uvicorn (``pip install fastapi uvicorn``) for the sample relay.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import numpy as np
import orjson
import uvloop
from benchutil import Proc, cpu_seconds, free_port, process_tree

PEERS = Path(__file__).resolve().parent / "peers"
FRAME = 160
RATE = 50  # media messages per second, each way


async def call(url: str, stop_at: float, window: tuple[float, float], out: dict[str, list]) -> None:
    """One phone: start, then a frame every 20 ms; counts and times what comes back."""
    loop = asyncio.get_running_loop()
    sent = received = 0
    latencies: list[float] = []
    async with aiohttp.ClientSession() as http, http.ws_connect(url, max_msg_size=0) as ws:
        sid = "MZbench"
        start = {
            "streamSid": sid,
            "callSid": "CAbench",
            "customParameters": {},
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        }
        await ws.send_str(orjson.dumps({"event": "connected"}).decode())
        await ws.send_str(
            orjson.dumps({"event": "start", "streamSid": sid, "start": start}).decode()
        )

        async def reader() -> None:
            nonlocal received
            async for msg in ws:
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    return
                message = orjson.loads(msg.data)
                if message["event"] == "media":
                    data = base64.b64decode(message["media"]["payload"])
                    (sent_ns,) = struct.unpack_from("<q", data)
                    now = time.monotonic_ns()
                    if window[0] <= sent_ns / 1e9 < window[1]:
                        received += 1
                        latencies.append((now - sent_ns) / 1e6)
                elif message["event"] == "mark":
                    await ws.send_str(msg.data)  # played at once

        task = asyncio.create_task(reader())
        filler = os.urandom(FRAME - 8)
        begin = loop.time()
        index = 0
        while loop.time() < stop_at:
            index += 1
            wait = begin + index / RATE - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            now_ns = time.monotonic_ns()
            if window[0] <= now_ns / 1e9 < window[1]:
                sent += 1
            payload = base64.b64encode(struct.pack("<q", now_ns) + filler).decode()
            await ws.send_str(
                '{"event":"media","streamSid":"MZbench","media":{"track":"inbound","payload":"'
                + payload
                + '"}}'
            )
        await asyncio.sleep(1.0)  # the last frames' way back
        await ws.send_str('{"event":"stop","streamSid":"MZbench"}')
        task.cancel()
    out["sent"].append(sent)
    out["received"].append(received)
    out["latency"].extend(latencies)


async def measure(kind: str, calls: int, seconds: float, echo_port: int, logs: Path) -> dict:
    port = free_port()
    upstream = f"ws://127.0.0.1:{echo_port}/v1/realtime"
    if kind == "bridge":
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "BRIDGE_"))},
            "UPSTREAM": "openai",
            "OPENAI_API_KEY": "sk-bench",
            "OPENAI_REALTIME_URL": upstream,
            "WS_PORT": str(port),
            "HTTP_PORT": str(free_port()),
            "LOG_LEVEL": "warning",
            "MAX_SESSIONS": str(calls * 2),
        }
        argv = [sys.executable, "-m", "realtime_bridge"]
    else:
        env = dict(os.environ)
        argv = [
            sys.executable,
            str(PEERS / "twilio_fastapi_relay.py"),
            "--upstream",
            upstream,
            "--port",
            str(port),
        ]
    relay = Proc(kind, argv, log_dir=logs, env=env)
    await relay.start()
    try:
        await relay.wait_line("listening", 20)
        await asyncio.sleep(0.5)  # uvicorn prints before it listens
        out: dict[str, list] = {"sent": [], "received": [], "latency": []}
        now = time.monotonic()
        warmup = 2.0
        window = (now + warmup, now + warmup + seconds)
        url = f"ws://127.0.0.1:{port}/twilio"
        phones = [
            asyncio.create_task(call(url, window[1] + 0.2, window, out)) for _ in range(calls)
        ]
        await asyncio.sleep(max(0.0, window[0] - time.monotonic()))
        pids = process_tree(relay.pid)
        cpu0 = cpu_seconds(pids)
        await asyncio.sleep(max(0.0, window[1] - time.monotonic()))
        cpu1 = cpu_seconds(pids)
        await asyncio.gather(*phones)
    finally:
        await relay.stop()
    messages = 2 * sum(out["sent"])
    lat = np.array(out["latency"]) if out["latency"] else np.array([0.0])
    return {
        "lost": sum(out["sent"]) - sum(out["received"]),
        "us_per_msg": (cpu1 - cpu0) / messages * 1e6 if messages else 0.0,
        "cpu_pct": (cpu1 - cpu0) / seconds * 100,
        "p50": float(np.percentile(lat, 50)),
        "p99": float(np.percentile(lat, 99)),
    }


async def run(calls: int, seconds: float, repeats: int) -> dict[str, list[dict]]:
    results: dict[str, list[dict]] = {"bridge": [], "fastapi": []}
    with tempfile.TemporaryDirectory() as logs:
        echo_port = free_port()
        echo = Proc(
            "echo",
            [sys.executable, str(PEERS / "twilio_echo.py"), "--port", str(echo_port)],
            log_dir=Path(logs),
        )
        await echo.start()
        try:
            await echo.wait_line("listening", 20)
            for repeat in range(repeats):
                order = ("bridge", "fastapi") if repeat % 2 == 0 else ("fastapi", "bridge")
                for kind in order:
                    result = await measure(kind, calls, seconds, echo_port, Path(logs))
                    results[kind].append(result)
                    print(
                        f"  {kind:8} #{repeat}: {result['us_per_msg']:.1f} µs/msg, "
                        f"p50 {result['p50']:.2f} ms, p99 {result['p99']:.2f} ms, "
                        f"lost {result['lost']}",
                        flush=True,
                    )
        finally:
            await echo.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(
        f"{args.calls} simulated calls, {RATE} media messages/s each way, "
        f"{args.seconds:g} s windows"
    )
    results = uvloop.run(run(args.calls, args.seconds, args.repeats))
    med = {k: {m: statistics.median(r[m] for r in v) for m in v[0]} for k, v in results.items()}
    lost = {k: sum(r["lost"] for r in v) for k, v in results.items()}
    print("\n| relay | µs/msg | CPU % | round trip p50 / p99 ms | lost |")
    print("|---|---:|---:|---|---:|")
    for kind, label in (("bridge", "bridge"), ("fastapi", "FastAPI + websockets sample")):
        m = med[kind]
        print(
            f"| {label} | {m['us_per_msg']:.1f} | {m['cpu_pct']:.0f} | "
            f"{m['p50']:.2f} / {m['p99']:.2f} | {lost[kind]} |"
        )
    ratio = med["bridge"]["us_per_msg"] / med["fastapi"]["us_per_msg"]
    print(
        f"\nbridge CPU per message: {ratio:.2f}× the sample's (target ≤ 0.6×); "
        f"medians of {args.repeats}"
    )


if __name__ == "__main__":
    main()
