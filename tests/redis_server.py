"""A real ``redis-server`` for the tests: on a free loopback port, no persistence, started and
stopped by the test (and killed mid-test when it needs Redis gone). ``make test`` installs the
system package (scripts/ensure-system-deps.sh); a missing binary fails the test, never skips."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time

from redis.asyncio import Redis
from redis.exceptions import RedisError

READY_WITHIN_S = 10.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """One ``redis-server`` process; :meth:`start` again after :meth:`kill` reuses its port."""

    def __init__(self, password: str = "") -> None:
        self.password = password
        binary = shutil.which("redis-server")
        assert binary, "redis-server is missing: `make test` installs it (apt-get redis-server)"
        self.binary = binary
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        credentials = f":{self.password}@" if self.password else ""
        return f"redis://{credentials}127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        command = [self.binary, "--port", str(self.port), "--save", "", "--appendonly", "no"]
        command += [
            "--bind",
            "127.0.0.1",
            *(["--requirepass", self.password] * bool(self.password)),
        ]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + READY_WITHIN_S
        client = Redis.from_url(self.url, socket_connect_timeout=0.5, socket_timeout=0.5)
        try:
            while True:
                assert self.process.poll() is None, "redis-server exited at start"
                try:
                    if await client.ping():
                        return
                except (RedisError, OSError):
                    assert time.monotonic() < deadline, "redis-server did not answer PING"
                    await asyncio.sleep(0.05)  # the process is starting: poll, bounded
        finally:
            await client.aclose()

    def kill(self) -> None:
        """Gone at once, as a crash or a lost network would leave it."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)
        self.process = None
