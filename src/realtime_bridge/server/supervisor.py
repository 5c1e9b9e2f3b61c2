"""``WORKERS=N``: one supervisor process and N worker processes, each a whole bridge.

A Python process uses one core, so a machine's cores need several processes. The workers
listen on the same ports with ``SO_REUSEPORT``, and the kernel spreads new connections over
them; a session lives in one worker from start to end, so nothing is shared on the per-frame
path. The supervisor listens on nothing itself: it reserves the ports (bound, never listening,
so no connection waits on it), starts the workers with the resolved settings in their
environment, prints one ready line once every worker is up, restarts a worker that dies (with
backoff; what it held is counted in ``supervisor.json`` for the others' ``/metrics``), and on
SIGTERM or SIGINT has every worker drain (``SHUTDOWN_GRACE_S``) before it exits. Workers meet
in a run directory (:mod:`realtime_bridge.server.cluster`).

Where ``SO_REUSEPORT`` is missing (Windows), ``WORKERS`` above 1 stops start-up with exit 2:
run one bridge per process behind a load balancer there.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, TextIO

import orjson
from pydantic import SecretStr

from realtime_bridge.config import Settings
from realtime_bridge.errors import ConfigError
from realtime_bridge.observability import get_logger
from realtime_bridge.server.signals import stop_on_signals

log = get_logger("supervisor")

#: The environment variable that makes a bridge process a worker: ``<index>:<run dir>``.
WORKER_ENV = "REALTIME_BRIDGE_WORKER"
READY_TIMEOUT_S = 30.0
#: Waits before restarting a worker that died; reset once one has lived a minute.
RESTART_BACKOFF_S = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
HEALTHY_AFTER_S = 60.0
#: After the drain, how long a worker may take to exit before it is killed.
EXIT_MARGIN_S = 10.0


def settings_env(settings: Settings) -> dict[str, str]:
    """The settings as environment variables, so a worker gets exactly the supervisor's: each in
    the form its validator reads (``tests/test_settings_env.py`` checks every one round trips)."""
    env: dict[str, str] = {}
    for name, field in Settings.model_fields.items():
        value = getattr(settings, name)
        if value is None or field.alias is None:
            continue
        if name == "webrtc_udp_ports":
            env[field.alias] = "{}-{}".format(*value)  # a range, read back as "first-last"
        elif isinstance(value, tuple):
            env[field.alias] = ",".join(_plain(part) for part in value)
        else:
            env[field.alias] = _plain(value)
    return env


def _plain(value: object) -> str:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def reserve_port(host: str, port: int) -> socket.socket:
    """A socket bound to ``port`` with ``SO_REUSEPORT`` but not listening: it keeps the port
    (a chosen one, when ``port`` is 0) for the workers, and takes no connection itself."""
    if not hasattr(socket, "SO_REUSEPORT"):
        raise ConfigError("WORKERS", "more than one worker needs SO_REUSEPORT (Linux, BSD, macOS)")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


class Worker:
    """One worker process, and what the supervisor knows of it."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.process: asyncio.subprocess.Process | None = None
        self.started = 0.0
        self.failures = 0
        self.ready_line = ""


class Supervisor:
    def __init__(self, settings: Settings, out: TextIO) -> None:
        self.settings = settings
        self.out = out
        self.run_dir = Path(tempfile.mkdtemp(prefix="realtime-bridge-"))
        self.workers = [Worker(index) for index in range(settings.workers)]
        self.restarts = 0
        self.lost_sessions = 0
        self._stopping = False
        self._reserved: list[socket.socket] = []

    async def run(self) -> int:
        s = self.settings
        ws = reserve_port(s.host, s.ws_port)
        self._reserved.append(ws)
        ws_port = ws.getsockname()[1]
        if s.single_listener:
            http_port = ws_port
        else:
            http = reserve_port(s.host, s.http_port)
            self._reserved.append(http)
            http_port = http.getsockname()[1]
        self.env = {
            **os.environ,
            **settings_env(s),
            "WS_PORT": str(ws_port),
            "HTTP_PORT": str(http_port),
            "WORKERS": "1",
        }
        if s.bridge_secret_key is None:
            # One key for every worker, or a secret minted by one would fail on another.
            self.env["BRIDGE_SECRET_KEY"] = secrets.token_hex(32)
        stop = stop_on_signals()
        try:
            failed = await self._start_all()
            if failed is not None:
                return failed
            first = self.workers[0].ready_line.split()
            upstream = next((w for w in first if w.startswith("upstream=")), "upstream=?")
            print(
                f"realtime-bridge listening {first[2]} {first[3]} {upstream} "
                f"workers={len(self.workers)}",
                file=self.out,
                flush=True,
            )
            log.info("supervising %d workers (run directory %s)", len(self.workers), self.run_dir)
            await self._watch(stop)
            return 0
        finally:
            await self._stop_all()
            for sock in self._reserved:
                sock.close()
            shutil.rmtree(self.run_dir, ignore_errors=True)

    async def _start_all(self) -> int | None:
        """Start every worker; a worker that exits before it is ready stops start-up (with its
        exit code: 2 for bad configuration)."""
        for worker in self.workers:
            await self._spawn(worker)
        for worker in self.workers:
            code = await self._await_ready(worker)
            if code is not None:
                return code
        return None

    async def _spawn(self, worker: Worker) -> None:
        env = {**self.env, WORKER_ENV: f"{worker.index}:{self.run_dir}"}
        worker.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "realtime_bridge",
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
        )
        worker.started = time.monotonic()

    async def _await_ready(self, worker: Worker) -> int | None:
        process = worker.process
        assert process is not None
        assert process.stdout is not None
        try:
            line = await asyncio.wait_for(process.stdout.readline(), READY_TIMEOUT_S)
        except TimeoutError:
            line = b""
        worker.ready_line = line.decode().strip()
        if worker.ready_line.startswith("realtime-bridge listening"):
            return None
        code = await process.wait()
        log.error("worker %d did not start (exit code %s)", worker.index, code)
        return code if code else 1

    async def _watch(self, stop: asyncio.Event) -> None:
        """Restart workers that die, each on its own (the others go on), until told to stop."""
        stopping: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
        #: What each pending future is: a worker's exit, or its restart.
        watched: dict[asyncio.Future[Any], tuple[str, Worker]] = {}

        def watch(worker: Worker) -> None:
            assert worker.process is not None
            watched[asyncio.ensure_future(worker.process.wait())] = ("exit", worker)

        for worker in self.workers:
            watch(worker)
        try:
            while True:
                done, _ = await asyncio.wait(
                    {stopping, *watched}, return_when=asyncio.FIRST_COMPLETED
                )
                if stopping in done:
                    return
                for future in done:
                    what, worker = watched.pop(future)
                    if what == "exit":
                        restart = asyncio.ensure_future(self._restart(worker, future.result()))
                        watched[restart] = ("restart", worker)
                    else:
                        watch(worker)
        finally:
            for pending in watched:
                pending.cancel()

    async def _restart(self, worker: Worker, code: int) -> None:
        """Count what the dead worker held, then start it again with backoff until it is up."""
        snapshot = self.run_dir / f"worker-{worker.index}.json"
        lost = 0
        with contextlib.suppress(OSError, orjson.JSONDecodeError, AttributeError, ValueError):
            lost = int(orjson.loads(snapshot.read_bytes()).get("session_count", 0))
            snapshot.unlink()
        self.restarts += 1
        self.lost_sessions += lost
        self._write_state()
        lived = time.monotonic() - worker.started
        worker.failures = 0 if lived >= HEALTHY_AFTER_S else worker.failures + 1
        log.warning(
            "worker %d exited (code %s) after %.1f s with %d session(s); restarting",
            worker.index,
            code,
            lived,
            lost,
        )
        while True:
            wait = RESTART_BACKOFF_S[min(worker.failures, len(RESTART_BACKOFF_S) - 1)]
            await asyncio.sleep(wait)  # backoff before the restart
            await self._spawn(worker)
            if await self._await_ready(worker) is None:
                return
            worker.failures += 1
            log.error("worker %d could not be restarted; trying again", worker.index)

    def _write_state(self) -> None:
        state = {"restarts": self.restarts, "lost_sessions": self.lost_sessions}
        temporary = self.run_dir / "supervisor.tmp"
        temporary.write_bytes(orjson.dumps(state))
        temporary.replace(self.run_dir / "supervisor.json")

    async def _stop_all(self) -> None:
        """Every worker drains (SIGTERM), within the grace period and a margin, else is killed."""
        running = [w.process for w in self.workers if w.process and w.process.returncode is None]
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        deadline = self.settings.shutdown_grace_s + EXIT_MARGIN_S
        for process in running:
            try:
                await asyncio.wait_for(process.wait(), deadline)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()


async def supervise(settings: Settings, out: TextIO = sys.stdout) -> int:
    """Run the workers until SIGINT/SIGTERM; the exit code."""
    return await Supervisor(settings, out).run()


__all__ = ["WORKER_ENV", "Supervisor", "settings_env", "supervise"]
