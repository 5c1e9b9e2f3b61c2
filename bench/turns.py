"""What silence fill adds, and what it costs: a bridge on the local upstream, over loopback.

- ``continuous``: N clients stream speech then silence in 20 ms frames at real-time pace for a
  few seconds, never pausing. The bridge must add **no audio at all** to them: the bytes of
  silence fill it added are printed (target: 0), with the clients' jitter that did not trip it.
- ``seed-like``: N clients send only loud 4 096-sample chunks (the seed's web page) and then
  nothing. Printed: how much silence the bridge added per turn, and how long after the client's
  last audio the upstream's VAD ended the turn (target: about the gap plus the session's
  silence duration).
- The turn keeper's own cost per client append (µs), measured without sockets.

    .venv/bin/python bench/turns.py [--sessions 20] [--seconds 4]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import statistics
import sys
import tempfile
import time
import timeit
import wave
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import orjson
from benchutil import Proc, free_port

from realtime_bridge.protocol.turns import TurnKeeper

FRAME = 960  # 20 ms of PCM16 at 24 kHz
CHUNK = 4096 * 2  # the seed page's 4 096 samples
SHARED_AUDIO = Path(__file__).resolve().parents[2] / "shared" / "audio" / "speech-hello-24k.wav"


def speech(seconds: float) -> bytes:
    """Real speech when ../shared/audio is there, else a voiced synthetic burst."""
    n = int(24000 * seconds)
    if SHARED_AUDIO.is_file():
        with wave.open(str(SHARED_AUDIO)) as w:
            return w.readframes(n)
    t = np.arange(n) / 24000
    voiced = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 10))
    return (
        (0.2 * 32767 * voiced * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t) ** 2))
        .astype("<i2")
        .tobytes()
    )


def append(chunk: bytes) -> str:
    return orjson.dumps(
        {"type": "input_audio_buffer.append", "audio": base64.b64encode(chunk).decode()}
    ).decode()


ADMIN = "bench-admin-token"


async def session_turns(http: aiohttp.ClientSession, base: str, session_id: str) -> dict[str, Any]:
    """The bridge's own account of one live session's turns (``GET /sessions``)."""
    headers = {"Authorization": f"Bearer {ADMIN}"}
    async with http.get(f"{base}/sessions", headers=headers) as response:
        listing = await response.json()
    (found,) = [s for s in listing["sessions"] if s["id"] == session_id]
    turns: dict[str, Any] = found["turns"]
    return turns


async def continuous_client(
    ws_url: str, base: str, seconds: float, lateness: list[float], fills: list[int]
) -> None:
    stream = speech(min(seconds / 2, 4.0))
    stream += bytes(int(24000 * seconds) * 2 - len(stream))
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession() as http, http.ws_connect(ws_url) as ws:
        session_id = ws._response.headers["X-Bridge-Session-Id"]
        await ws.receive()  # session.created
        start = loop.time()
        for index, offset in enumerate(range(0, len(stream), FRAME)):
            due = start + index * 0.02
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            lateness.append(max(0.0, loop.time() - due) * 1000)
            await ws.send_str(append(stream[offset : offset + FRAME]))
        fills.append((await session_turns(http, base, session_id))["silence_fill_bytes"])


async def seed_like_client(
    ws_url: str, base: str, turn_end_ms: list[float], fills: list[float]
) -> None:
    audio = speech(1.7)
    chunks = [audio[i : i + CHUNK] for i in range(0, len(audio), CHUNK)]
    async with aiohttp.ClientSession() as http, http.ws_connect(ws_url) as ws:
        session_id = ws._response.headers["X-Bridge-Session-Id"]
        await ws.receive()  # session.created
        sent_at = time.monotonic()
        for chunk in chunks:
            await ws.send_str(append(chunk))
        # Sent at once, the audio lasts (played at real time) until its duration after sending.
        audio_end = sent_at + len(audio) / 48000
        while True:
            event = orjson.loads((await asyncio.wait_for(ws.receive(), 20)).data)
            if event["type"] == "input_audio_buffer.speech_stopped":
                turn_end_ms.append((time.monotonic() - audio_end) * 1000)
                break
        fills.append((await session_turns(http, base, session_id))["silence_fill_ms"])


async def run(sessions: int, seconds: float) -> dict[str, Any]:
    """A bridge process on the local upstream (its own process, so the load generator here
    never delays it), then each kind of client, ``sessions`` at once."""
    ws_port, http_port = free_port(), free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "UPSTREAM"))},
        "UPSTREAM": "local",
        "HOST": "127.0.0.1",
        "WS_PORT": str(ws_port),
        "HTTP_PORT": str(http_port),
        "LOG_LEVEL": "warning",
        "BRIDGE_ADMIN_TOKEN": ADMIN,
        "MAX_SESSIONS": str(max(100, sessions * 2)),
    }
    with tempfile.TemporaryDirectory() as logs:
        bridge = Proc(
            "bridge", [sys.executable, "-m", "realtime_bridge"], log_dir=Path(logs), env=env
        )
        await bridge.start()
        try:
            await bridge.wait_line("listening", 20)
            ws_url = f"ws://127.0.0.1:{ws_port}/v1/realtime"
            base = f"http://127.0.0.1:{http_port}"
            lateness: list[float] = []
            continuous_fills: list[int] = []
            await asyncio.gather(
                *(
                    continuous_client(ws_url, base, seconds, lateness, continuous_fills)
                    for _ in range(sessions)
                )
            )
            turn_end: list[float] = []
            seed_fills: list[float] = []
            await asyncio.gather(
                *(seed_like_client(ws_url, base, turn_end, seed_fills) for _ in range(sessions))
            )
        finally:
            await bridge.stop()
    return {
        "continuous_sessions": len(continuous_fills),
        "continuous_fill_bytes": sum(continuous_fills),
        "lateness_p99_ms": float(np.percentile(lateness, 99)) if lateness else 0.0,
        "lateness_max_ms": max(lateness, default=0.0),
        "seed_fill_ms_median": statistics.median(seed_fills) if seed_fills else 0.0,
        "seed_turn_end_ms_median": statistics.median(turn_end) if turn_end else 0.0,
    }


def keeper_cost_us() -> float:
    keeper = TurnKeeper()
    times = timeit.repeat(lambda: keeper.client_audio(1.0, 20.0), number=200_000, repeat=7)
    return statistics.median(times) / 200_000 * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args()
    result = asyncio.run(run(args.sessions, args.seconds))
    print(f"Silence fill, {args.sessions} sessions on the local upstream over loopback")
    print(
        f"  continuous clients ({args.seconds:g} s each): silence added "
        f"{result['continuous_fill_bytes']} bytes (target 0); their send lateness "
        f"p99 {result['lateness_p99_ms']:.1f} ms, max {result['lateness_max_ms']:.1f} ms"
    )
    print(
        f"  seed-like clients (loud chunks, then nothing): silence added per turn "
        f"{result['seed_fill_ms_median']:.0f} ms (median); VAD ended the turn "
        f"{result['seed_turn_end_ms_median']:.0f} ms after the client's audio ran out (median; "
        "gap 200 ms + VAD silence 500 ms)"
    )
    print(f"  turn keeper per client append: {keeper_cost_us():.3f} µs")


if __name__ == "__main__":
    main()
