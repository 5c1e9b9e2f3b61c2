"""Helpers for bench/relay.py: child processes, /proc readings, machine description.

Nothing here is specific to one relay: a :class:`Proc` is a child process whose stdout is read
line by line (so a ready line can be awaited with a timeout), whose stderr goes to a file, and
which is always killed (its whole process group) on :meth:`Proc.stop`, at interpreter exit, or
on Ctrl-C. CPU time and RSS come from ``/proc/<pid>/stat`` and ``/proc/<pid>/status`` (no psutil).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import datetime as dt
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

CLK_TCK = os.sysconf("SC_CLK_TCK")
_LIVE: dict[int, str] = {}  # pid -> name, for the atexit safety net


def _kill_group(pid: int, sig: int) -> None:
    """Send ``sig`` to the process group led by our child ``pid`` (started in a new session)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


@atexit.register
def _kill_leftovers() -> None:
    """Last-resort cleanup: SIGKILL every child process group still registered."""
    for pid in list(_LIVE):
        _kill_group(pid, signal.SIGKILL)
        _LIVE.pop(pid, None)


class Proc:
    """A child process with line-oriented stdout and a guaranteed kill."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log_dir: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        stdin: bool = False,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.want_stdin = stdin
        self.stderr_path = log_dir / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}.stderr"
        self.proc: asyncio.subprocess.Process | None = None
        self.lines: list[str] = []
        self._new_line = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None
        self._eof = False

    @property
    def pid(self) -> int:
        """The child's pid (also its process group id)."""
        assert self.proc is not None
        return self.proc.pid

    async def start(self) -> None:
        """Start the process (new session, so the whole group can be killed)."""
        with self.stderr_path.open("wb") as err:
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=subprocess.PIPE if self.want_stdin else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=err,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
            )
        _LIVE[self.proc.pid] = self.name
        self._reader = asyncio.create_task(self._read_stdout())

    async def _read_stdout(self) -> None:
        assert self.proc is not None
        assert self.proc.stdout is not None
        try:
            while True:
                raw = await self.proc.stdout.readline()
                if not raw:
                    break
                self.lines.append(raw.decode(errors="replace").rstrip("\n"))
                self._new_line.set()
        finally:
            self._eof = True
            self._new_line.set()

    async def wait_line(self, pattern: str, timeout: float, start: int = 0) -> re.Match[str]:
        """Wait for a stdout line matching ``pattern`` (searched from line ``start``)."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        i = start
        while True:
            while i < len(self.lines):
                m = rx.search(self.lines[i])
                i += 1
                if m:
                    return m
            if self._eof:
                raise RuntimeError(f"{self.name} exited before printing /{pattern}/: {self.tail()}")
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(
                    f"{self.name}: no /{pattern}/ within {timeout:.0f}s: {self.tail()}"
                )
            self._new_line.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._new_line.wait(), timeout=left)

    async def send(self, line: str, timeout: float = 5.0) -> None:
        """Write one line to the child's stdin."""
        assert self.proc is not None
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        await asyncio.wait_for(self.proc.stdin.drain(), timeout=timeout)

    def tail(self, n: int = 3) -> str:
        """Last lines of stderr (or stdout) for error messages."""
        try:
            err = self.stderr_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            err = []
        lines = list(deque((ln for ln in err if ln.strip()), maxlen=n)) or self.lines[-n:]
        return " | ".join(lines)[-400:] or "(no output)"

    def alive(self) -> bool:
        """Whether the child is still running."""
        return self.proc is not None and self.proc.returncode is None

    async def stop(self, grace: float = 3.0) -> None:
        """SIGTERM the group, SIGKILL after ``grace`` seconds; always reaps the child."""
        if self.proc is None:
            return
        if self.proc.returncode is None:
            _kill_group(self.proc.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), timeout=grace)
            except TimeoutError:
                _kill_group(self.proc.pid, signal.SIGKILL)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.proc.wait(), timeout=5.0)
        # stragglers in the group (e.g. a child of the child)
        _kill_group(self.proc.pid, signal.SIGKILL)
        _LIVE.pop(self.proc.pid, None)
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._reader, timeout=1.0)


# ---- /proc ---------------------------------------------------------------------------------


def _children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
        kids.setdefault(ppid, []).append(int(entry.name))
    return kids


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its live descendants."""
    kids = _children_map()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def cpu_seconds(pids: Iterable[int]) -> float:
    """User + system CPU seconds of the given processes (all their threads)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(b")") + 2 :].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return total / CLK_TCK


def _status_numbers(path: str, *fields: str) -> list[int]:
    """The numbers of ``fields`` in a /proc ``status`` file (0 for a field absent or a process
    gone)."""
    found = dict.fromkeys(fields, 0)
    try:
        with open(path) as f:
            for line in f:
                name, _, rest = line.partition(":")
                if name in found:
                    found[name] = int(rest.split()[0])
    except OSError:
        pass
    return list(found.values())


def context_switches(pids: Iterable[int]) -> tuple[int, int]:
    """(voluntary, involuntary) context switches of the given processes, over all their threads.

    A voluntary switch is the process going to sleep (its event loop waiting for sockets), so
    per message it says how many messages each wake-up handled.
    """
    vol = invol = 0
    for pid, tid in _threads(pids):
        v, n = _status_numbers(
            f"/proc/{pid}/task/{tid}/status",
            "voluntary_ctxt_switches",
            "nonvoluntary_ctxt_switches",
        )
        vol += v
        invol += n
    return vol, invol


def pin(pids: Iterable[int], cpus: set[int]) -> None:
    """Restrict every thread of the given processes to ``cpus`` (threads made later inherit it)."""
    for _pid, tid in _threads(pids):
        with contextlib.suppress(OSError):
            os.sched_setaffinity(int(tid), cpus)


def _threads(pids: Iterable[int]) -> Iterator[tuple[int, str]]:
    """(pid, thread id) of every thread of the given processes that still exist."""
    for pid in pids:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            yield pid, tid


def rss_kb(pids: Iterable[int]) -> int:
    """Resident set size in KiB, summed over the given processes."""
    return sum(_status_numbers(f"/proc/{pid}/status", "VmRSS")[0] for pid in pids)


def host_cpu() -> tuple[float, float, float]:
    """(busy, irq, steal) CPU seconds of the whole machine, summed over cores, from /proc/stat.

    busy = user + nice + system + irq + softirq (guest time is already inside user); irq =
    irq + softirq, time not charged to any process (loopback TCP does much of its work there).
    """
    with open("/proc/stat") as f:
        vals = [int(v) for v in f.readline().split()[1:]] + [0] * 8
    irq = vals[5] + vals[6]
    busy = vals[0] + vals[1] + vals[2] + irq
    return busy / CLK_TCK, irq / CLK_TCK, vals[7] / CLK_TCK


@dataclass(frozen=True)
class CpuMark:
    """A CPU reading of several process groups and the host at one instant."""

    wall: float
    groups: dict[str, float]
    host_busy: float
    host_irq: float
    host_steal: float


def cpu_mark(groups: Mapping[str, Iterable[int]]) -> CpuMark:
    """Read CPU seconds for each named group of pids, plus host busy time."""
    busy, irq, steal = host_cpu()
    return CpuMark(
        wall=time.monotonic(),
        groups={k: cpu_seconds(v) for k, v in groups.items()},
        host_busy=busy,
        host_irq=irq,
        host_steal=steal,
    )


async def wait_quiet(threshold_pct: float, max_wait: float, probe: float = 0.5) -> float:
    """Wait (at most ``max_wait`` s) until the machine's busy CPU over ``probe`` s is below
    ``threshold_pct`` % of one core; return the last reading."""
    deadline = time.monotonic() + max_wait
    while True:
        b0 = host_cpu()[0]
        await asyncio.sleep(probe)
        pct = 100 * (host_cpu()[0] - b0) / probe
        if pct < threshold_pct or time.monotonic() >= deadline:
            return pct


# ---- misc ----------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_text(argv: Sequence[str]) -> str:
    try:
        return subprocess.run(
            argv, capture_output=True, text=True, timeout=20, check=False
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def machine_description(python: str, node: str, peers_dir: Path) -> dict[str, str]:
    """nproc, CPU model, memory, kernel, interpreter and library versions, date."""
    cpu_model = "?"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    mem_gb = "?"
    with contextlib.suppress(OSError), open("/proc/meminfo") as f:
        mem_gb = f"{int(f.readline().split()[1]) / 1024 / 1024:.1f} GiB"
    libs = _run_text(
        [
            python,
            "-c",
            "import importlib.metadata as m, sys;"
            "print(sys.version.split()[0], *(f'{p}=' + m.version(p) "
            "for p in ('aiohttp','websockets','uvloop','picows')))",
        ]
    )
    ws_version = "?"
    with contextlib.suppress(OSError, ValueError):
        import json

        ws_version = json.loads((peers_dir / "node_modules/ws/package.json").read_text())["version"]
    py_ver, *lib_vers = (libs.split() or ["?"]) if libs != "?" else ["?"]
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": str(len(os.sched_getaffinity(0))),
        "cpu": cpu_model,
        "memory": mem_gb,
        "kernel": f"{platform.system()} {platform.release()}",
        "python": py_ver,
        "python_libs": " ".join(lib_vers),
        "node": _run_text([node, "--version"]),
        "ws": ws_version,
        "orchestrator_python": sys.version.split()[0],
    }


class LoopbackUpstream:
    """A Realtime-API stand-in on a loopback port: an aiohttp WebSocket server whose
    subclasses say what each connection does (``_handle``)."""

    def __init__(self) -> None:
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"ws://127.0.0.1:{self._runner.addresses[0][1]}/v1/realtime"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.WebSocketResponse:
        raise NotImplementedError


#: Settings a developer's environment may hold that would change the bridge a benchmark runs.
_BRIDGE_SETTING_PREFIXES = (
    "OPENAI_",
    "AZURE_",
    "BRIDGE_",
    "WEBRTC_",
    "UPSTREAM",
    "ALLOWED_",
    "SESSION_",
    "MAX_",
)


def bridge_process_env(**settings: str) -> dict[str, str]:
    """This process's environment without the bridge's settings, on loopback, with ``settings``:
    what a benchmark's ``python -m realtime_bridge`` runs with."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_BRIDGE_SETTING_PREFIXES)}
    env.update(HOST="127.0.0.1", PYTHONUNBUFFERED="1", **settings)
    return env
