"""What client secrets cost: minting and verifying one (µs, without sockets), and the upgrade of
a session opened with a secret against one opened with a static token (ms, a bridge process
over loopback, the two kinds alternating so the machine's drift cancels out).

Targets: mint and verify < 50 µs each; a secret adds < 1 ms to the upgrade.

    .venv/bin/python bench/client_secrets.py [--sessions 200]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import timeit
from pathlib import Path

import aiohttp
from benchutil import Proc, free_port

from realtime_bridge.policy.secrets import SecretCodec

TOKEN = "bench-token-0123456789"
SESSION = {
    "type": "realtime",
    "model": "gpt-realtime",
    "instructions": "You are the voice assistant of ACME. Be brief and friendly. " * 4,
    "audio": {"output": {"voice": "marin"}},
}


def codec_costs() -> tuple[float, float]:
    codec = SecretCodec("k" * 64)
    value = codec.mint(SESSION, token_id="abc", ttl_s=600, now=time.time()).value
    n = 20000
    mint = min(
        timeit.repeat(
            lambda: codec.mint(SESSION, token_id="abc", ttl_s=600, now=time.time()),
            number=n,
            repeat=5,
        )
    )
    verify = min(timeit.repeat(lambda: codec.verify(value, time.time()), number=n, repeat=5))
    return mint / n * 1e6, verify / n * 1e6


async def upgrade_ms(http: aiohttp.ClientSession, url: str, protocols: list[str]) -> float:
    started = time.perf_counter()
    ws = await http.ws_connect(url, protocols=protocols)
    took = (time.perf_counter() - started) * 1000
    await ws.close()
    return took


async def upgrades(sessions: int) -> tuple[float, float]:
    ws_port, http_port = free_port(), free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "BRIDGE_"))},
        "UPSTREAM": "local",
        "WS_PORT": str(ws_port),
        "HTTP_PORT": str(http_port),
        "LOG_LEVEL": "warning",
        "BRIDGE_API_KEYS": TOKEN,
        "BRIDGE_SECRET_KEY": "k" * 64,
        "MAX_SESSIONS": "1000",
    }
    with tempfile.TemporaryDirectory() as logs:
        argv = [sys.executable, "-m", "realtime_bridge"]
        bridge = Proc("bridge", argv, log_dir=Path(logs), env=env)
        await bridge.start()
        try:
            await bridge.wait_line("listening", 20)
            url = f"ws://127.0.0.1:{ws_port}/v1/realtime"
            async with aiohttp.ClientSession() as http:
                async with http.post(
                    f"http://127.0.0.1:{http_port}/v1/realtime/client_secrets",
                    json={"expires_after": {"seconds": 600}, "session": SESSION},
                    headers={"Authorization": f"Bearer {TOKEN}"},
                ) as response:
                    secret = (await response.json())["value"]
                with_token = ["realtime", f"openai-insecure-api-key.{TOKEN}"]
                with_secret = ["realtime", f"openai-insecure-api-key.{secret}"]
                for _ in range(20):  # warm-up
                    await upgrade_ms(http, url, with_token)
                    await upgrade_ms(http, url, with_secret)
                token_ms: list[float] = []
                secret_ms: list[float] = []
                for i in range(sessions):
                    order = (with_token, with_secret) if i % 2 else (with_secret, with_token)
                    for protocols in order:
                        took = await upgrade_ms(http, url, protocols)
                        (token_ms if protocols is with_token else secret_ms).append(took)
        finally:
            await bridge.stop()
    return statistics.median(token_ms), statistics.median(secret_ms)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=200)
    args = parser.parse_args()
    mint_us, verify_us = codec_costs()
    token_ms, secret_ms = asyncio.run(upgrades(args.sessions))
    print("Client secrets")
    print(f"  mint   {mint_us:6.1f} µs   (target < 50)")
    print(f"  verify {verify_us:6.1f} µs   (target < 50)")
    print(
        f"  upgrade, median of {args.sessions}: static token {token_ms:.3f} ms, "
        f"client secret {secret_ms:.3f} ms, difference {secret_ms - token_ms:+.3f} ms (target < 1)"
    )


if __name__ == "__main__":
    main()
