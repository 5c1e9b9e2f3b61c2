"""Workers benchmark: how the bridge scales with ``WORKERS``, with the machine not the limit.

On a 2-core machine one worker and its load generator already fill both cores, so raw
throughput with 2 workers cannot show the design's scaling. This script measures instead:

(a) **CPU per message.** The same paced load (100, 200 and 300 sessions × 50 events/s each way,
    as bench/relay.py) against the bridge with ``WORKERS=1`` (one process, no supervisor) and
    ``WORKERS=2`` (supervisor + 2 workers), ``WORKERS=2`` with ``REDIS_URL`` (a throw-away
    ``redis-server`` the script starts; its own CPU is reported, not counted as the bridge's),
    alternating, with two independent single-process bridges (load split, or fed alike) and the
    Node ``ws`` relay beside them. CPU (user + system) is summed over each relay's whole process
    tree; µs per relayed message (each frame counts once up and once down), and messages per
    wake-up from the voluntary context switches. Target: ``WORKERS=2`` (with or without the
    store) ≤ 1.1× ``WORKERS=1``. ``--pin`` keeps the load generator and the echo off the CPU
    the relay runs on.

(b) **Capacity under a CPU quota.** Every relay process gets its own cgroup (v1 ``cpu``
    controller) with the same small quota (default 0.25 core, ``cfs_period_us`` 10 ms so the
    quota behaves like a slow dedicated core rather than one that stops for 75 ms at a time):
    one worker (1 process), ``WORKERS=2`` (each worker in its own cgroup, found as the
    supervisor's children once it is ready; the supervisor shares worker 0's cgroup, so worker 0
    gets slightly less than worker 1), two independent bridges (each its own cgroup, the load
    split between their two URLs) and the Node relay (1 process). The sessions (paced,
    50 events/s each way) are ramped in steps of ~6 %, all four configurations at each step back
    to back with the same sessions per process (a spell of load from outside then hits them
    alike); a configuration leaves the ramp after two failures in a row, and its capacity is the
    highest count whose p99 round trip stayed under the bound (default 50 ms) with nothing lost.
    Every run starts fresh processes; 2 rounds, the median reported. Targets: ``WORKERS=2`` ≥
    0.9× two independent bridges and ≥ 1.8× one worker.

(c) **Planned load on one core.** ``WORKERS=1`` in one cgroup of exactly 1 core (100 ms
    period, as a container's CPU limit) at the sessions per core that follow from (b) with the
    planning margin of docs/operations.md (60 % of the core), and the same sessions direct
    (load generator ⇄ echo, no relay) for the floor: CPU, p99, +p99 and RSS for the sizing table.

Everything else is bench/relay.py's: the Node ``ws`` echo upstream, the Node load generator
(2 processes, pre-built ~1.37 KB ``input_audio_buffer.append`` frames) and CPU from /proc.
Runs as root (it writes /sys/fs/cgroup/cpu); without a writable cgroup v1 cpu controller (b)
and (c) are skipped with the reason. Every process it starts is killed and every cgroup it made
is removed when it ends, also on error or Ctrl-C.

    .venv/bin/python bench/workers.py            # full run (~20 min on 2 cores, at most 25)
    .venv/bin/python bench/workers.py --quick    # ~5 min smoke run (at most 8)
    .venv/bin/python bench/workers.py --parts cpu,plan --plan-sessions 345   # parts alone
    .venv/bin/python bench/workers.py --render A.json B.json   # tables again, runs pooled

The bridge measured is a copy of the checked-out commit's src/ (``--source worktree``: of src/
as it is on disk; ``--source COMMIT``: of that commit), so edits during a run do not count.

Output: tables on stdout, the same as a markdown section and the raw per-run numbers as JSON
under bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import hashlib
import io
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchutil import (
    CpuMark,
    Proc,
    context_switches,
    cpu_mark,
    free_port,
    machine_description,
    pin,
    process_tree,
    rss_kb,
    wait_quiet,
)
from relay import PEERS, READY_RELAY, _split, bridge_env, ensure_node_peers
from relay import parse_args as relay_parse_args
from relay_report import _md_table, _text_table

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
DEFAULT_PYTHON = ROOT / ".venv" / "bin" / "python"
CGROUP_CPU = Path("/sys/fs/cgroup/cpu")
READY_BRIDGE = r"realtime-bridge listening ws://[^\s:]+:(\d+) http://[^\s:]+:(\d+)"
WORKER_ENV = "REALTIME_BRIDGE_WORKER"

ONE, TWO, PAIR, NODE, DIRECT = "1w", "2w", "2x1w", "node", "direct"
#: WORKERS=2 with the shared store: every worker on a ``redis-server`` the script starts.
TWO_REDIS = "2w-redis"
#: Two independent bridges, each load-generator process spreading its sessions over both (as
#: ``SO_REUSEPORT`` spreads them over workers), rather than one bridge per load generator.
MIXED = "2x1w-mixed"
LABELS = {
    ONE: "bridge WORKERS=1",
    TWO: "bridge WORKERS=2",
    TWO_REDIS: "bridge WORKERS=2, REDIS_URL",
    PAIR: "2 independent bridges",
    MIXED: "2 independent bridges, fed alike",
    NODE: "Node ws relay",
    DIRECT: "direct (no relay)",
}
#: With ``--pin``: the relay's processes (every configuration alike) on the last CPU, the load
#: generator and the echo upstream on the others, so they never compete with the relay.
RELAY_CPUS = {max(os.sched_getaffinity(0))}
OTHER_CPUS = set(os.sched_getaffinity(0)) - RELAY_CPUS or RELAY_CPUS
#: Processes that get a CPU quota (one cgroup each) per configuration.
SLOTS = {ONE: 1, TWO: 2, TWO_REDIS: 2, PAIR: 2, MIXED: 2, NODE: 1, DIRECT: 0}
PROCS_NOTE = {
    ONE: "1 process",
    TWO: "supervisor + 2 workers",
    TWO_REDIS: "supervisor + 2 workers",
    PAIR: "2 processes",
    MIXED: "2 processes",
    NODE: "1 process",
    DIRECT: "—",
}
CPU_CONFIGS = (ONE, TWO, TWO_REDIS, PAIR, MIXED, NODE)
#: Configurations whose bridge is a supervisor with two workers.
SUPERVISED = (TWO, TWO_REDIS)
CAPACITY_CONFIGS = (ONE, TWO, PAIR, NODE)


@dataclass
class Params:
    """Knobs of one run (set from the command line)."""

    quick: bool
    cpu_sessions: list[int]
    cpu_repeats: int
    warmup: float
    measure: float
    rate: float
    loadgen_procs: int
    quota: float
    period_us: int
    p99_bound_ms: float
    ramp_repeats: int
    step: float
    max_levels: int
    margin: float
    plan_repeats: int
    plan_sessions: int
    parts: list[str]
    python: str
    node: str
    max_minutes: float
    quiet_wait: float
    max_other_cpu: float
    max_attempts: int
    source: str
    pin: bool = False


@dataclass
class Run:
    """Numbers from one run: one configuration, one session count, fresh processes."""

    part: str  # "cpu", "capacity" or "plan"
    config: str
    sessions: int
    repeat: int
    attempts: int = 1
    limit_cores: float | None = None  # CPU quota per cgroup slot, cores; None: no quota
    period_us: int | None = None
    ok: bool = True
    error: str | None = None
    passed: bool | None = None
    connected: int = 0
    sent: int = 0
    lost: int = 0
    reordered: int = 0
    misrouted: int = 0
    closed_early: int = 0
    samples: int = 0
    p50_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    window_s: float = 0.0
    relayed: int = 0
    msgs_per_s: float | None = None
    relay_cpu_pct: float | None = None
    us_per_msg: float | None = None
    role_cpu_pct: dict[str, float] = field(default_factory=dict)
    # relayed messages per voluntary context switch (per wake-up of the relay's processes), and
    # involuntary switches (preempted) per 1000 messages
    msgs_per_wakeup: float | None = None
    preempted_per_kmsg: float | None = None
    slot_throttled_pct: list[float] = field(default_factory=list)
    rss_base_kb: dict[str, int] = field(default_factory=dict)
    rss_peak_kb: dict[str, int] = field(default_factory=dict)
    split: list[int] = field(default_factory=list)
    host_cpu_pct: float | None = None
    loadgen_cpu_pct: float | None = None
    echo_cpu_pct: float | None = None
    redis_cpu_pct: float | None = None  # the redis-server's own CPU (not the bridge's)
    other_cpu_pct: float | None = None


# ---- cgroups ---------------------------------------------------------------------------------


class CpuCgroups:
    """cgroup v1 ``cpu`` directories, one per slot, with a CFS quota; removed by :meth:`remove`
    (and at interpreter exit as a last resort)."""

    def __init__(self, count: int, root: Path = CGROUP_CPU) -> None:
        self.root = root
        self.dirs = [root / f"realtime-bridge-bench-{os.getpid()}-s{i}" for i in range(count)]
        self.made: list[Path] = []

    @staticmethod
    def unavailable(root: Path = CGROUP_CPU) -> str | None:
        """None if a cgroup v1 cpu controller with CFS quotas is writable here, else why not."""
        if not (root / "cpu.cfs_quota_us").exists():
            return (
                f"no cgroup v1 cpu controller with CFS quotas at {root} (cgroup v2 not supported)"
            )
        probe = root / f"realtime-bridge-bench-{os.getpid()}-probe"
        try:
            probe.mkdir()
            (probe / "cpu.cfs_period_us").write_text("100000")
            (probe / "cpu.cfs_quota_us").write_text("50000")
        except OSError as exc:
            return f"cannot create a cgroup under {root}: {exc}"
        finally:
            with contextlib.suppress(OSError):
                probe.rmdir()
        return None

    def create(self) -> None:
        atexit.register(self.remove)
        for d in self.dirs:
            d.mkdir(exist_ok=True)
            self.made.append(d)

    def set_quota(self, cores: float, period_us: int) -> None:
        """Every slot: ``cores`` of CPU per ``period_us`` (quota written after the period)."""
        for d in self.dirs:
            (d / "cpu.cfs_quota_us").write_text("-1")
            (d / "cpu.cfs_period_us").write_text(str(period_us))
            (d / "cpu.cfs_quota_us").write_text(str(max(1000, round(cores * period_us))))

    def place(self, slot: int, pid: int) -> None:
        """Move process ``pid`` (all its threads) into slot ``slot``."""
        (self.dirs[slot] / "cgroup.procs").write_text(str(pid))

    def pids(self, slot: int) -> list[int]:
        with contextlib.suppress(OSError):
            return [int(x) for x in (self.dirs[slot] / "cgroup.procs").read_text().split()]
        return []

    def throttle_stats(self) -> list[tuple[int, int]]:
        """(nr_periods, nr_throttled) per slot."""
        out = []
        for d in self.dirs:
            stat = dict(
                line.split()
                for line in (d / "cpu.stat").read_text().splitlines()
                if len(line.split()) == 2
            )
            out.append((int(stat.get("nr_periods", 0)), int(stat.get("nr_throttled", 0))))
        return out

    async def wait_empty(self, timeout: float = 5.0) -> None:
        """Wait until the previous run's processes have left every slot."""
        deadline = time.monotonic() + timeout
        while any(self.pids(i) for i in range(len(self.dirs))):
            if time.monotonic() > deadline:
                self.evict()
                return
            await asyncio.sleep(0.1)

    def evict(self) -> None:
        """Move whatever is still in a slot back to the root cgroup."""
        for i in range(len(self.dirs)):
            for pid in self.pids(i):
                with contextlib.suppress(OSError):
                    (self.root / "cgroup.procs").write_text(str(pid))

    def remove(self) -> None:
        """Empty and delete every slot directory (idempotent)."""
        for d in list(self.made):
            for _ in range(20):
                try:
                    d.rmdir()
                except FileNotFoundError:
                    break
                except OSError:
                    self.evict()
                    time.sleep(0.1)
                    continue
                break
            if not d.exists():
                self.made.remove(d)


# ---- targets ---------------------------------------------------------------------------------


@dataclass
class Started:
    """The relay processes of one configuration, as started for one run."""

    config: str
    procs: list[Proc]
    urls: list[str]
    health: list[str]
    roles: dict[str, int]  # role -> pid ("bridge", "supervisor", "worker0", "bridge-b", ...)
    slots: list[list[int]]  # pids per cgroup slot


_RELAY_PARAMS: list[Any] = []
#: The snapshot of src/ the bridge processes import (see :func:`snapshot_source`).
_SOURCE: list[str] = []


def _bridge_env(
    ws_port: int, http_port: int, echo_port: int, workers: int, redis_url: str | None = None
) -> dict[str, str]:
    """bench/relay.py's bridge environment (UPSTREAM=openai → the echo), with ``WORKERS`` and
    ``REDIS_URL``."""
    if not _RELAY_PARAMS:
        _RELAY_PARAMS.append(relay_parse_args([])[0])
    env = bridge_env(_RELAY_PARAMS[0], ws_port, http_port, echo_port, metrics=True)
    env["WORKERS"] = str(workers)
    env.pop(WORKER_ENV, None)
    env.pop("REDIS_URL", None)
    if redis_url is not None:
        env["REDIS_URL"] = redis_url
    if _SOURCE:
        env["PYTHONPATH"] = _SOURCE[0]  # ahead of the editable install's path
    return env


def _worker_index(pid: int) -> int | None:
    """A worker's index from its ``REALTIME_BRIDGE_WORKER`` (``<index>:<run dir>``)."""
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return None
    for item in raw.split(b"\0"):
        if item.startswith(WORKER_ENV.encode() + b"="):
            return int(item.split(b"=", 1)[1].split(b":", 1)[0])
    return None


async def _start_bridge(
    p: Params,
    workers: int,
    echo_port: int,
    log_dir: Path,
    name: str,
    redis_url: str | None = None,
) -> Proc:
    proc = Proc(
        name,
        [p.python, "-m", "realtime_bridge"],
        log_dir=log_dir,
        env=_bridge_env(free_port(), free_port(), echo_port, workers, redis_url),
        cwd=log_dir,  # no stray .env
    )
    await proc.start()
    return proc


async def start_target(
    config: str,
    p: Params,
    echo_port: int,
    log_dir: Path,
    tag: str,
    redis_url: str | None = None,
) -> Started:
    """Start ``config``'s processes and wait until they are ready."""
    upstream = f"ws://127.0.0.1:{echo_port}/v1/realtime"
    if config == DIRECT:
        return Started(config, [], [f"{upstream}?model=x"], [], {}, [])
    started = Started(config, [], [], [], {}, [])
    try:
        if config == NODE:
            argv = [p.node, str(PEERS / "node-relay.js"), "--port", "0", "--upstream", upstream]
            proc = Proc(f"node-{tag}", argv, log_dir=log_dir)
            started.procs.append(proc)
            await proc.start()
            m = await proc.wait_line(READY_RELAY, timeout=20)
            started.urls.append(f"ws://127.0.0.1:{int(m.group(1))}/v1/realtime?model=x")
            started.roles["node"] = proc.pid
            started.slots.append([proc.pid])
            return started
        pair = ["bridge-a", "bridge-b"]
        names = {ONE: ["bridge"], TWO: ["bridge"], TWO_REDIS: ["bridge"], PAIR: pair, MIXED: pair}
        for name in names[config]:
            supervised = config in SUPERVISED
            proc = await _start_bridge(
                p,
                2 if supervised else 1,
                echo_port,
                log_dir,
                f"{config}-{name}-{tag}",
                redis_url if config == TWO_REDIS else None,
            )
            started.procs.append(proc)
        for name, proc in zip(names[config], started.procs, strict=True):
            m = await proc.wait_line(READY_BRIDGE, timeout=40)
            started.urls.append(f"ws://127.0.0.1:{int(m.group(1))}/v1/realtime?model=x")
            started.health.append(f"http://127.0.0.1:{int(m.group(2))}/health")
            if config not in SUPERVISED:
                started.roles[name] = proc.pid
                started.slots.append([proc.pid])
        if config in SUPERVISED:
            sup = started.procs[0].pid
            workers: dict[int, int] = {}
            for pid in process_tree(sup)[1:]:
                index = _worker_index(pid)
                if index is not None:
                    workers[index] = pid
            if sorted(workers) != [0, 1]:
                raise RuntimeError(f"expected workers 0 and 1 under {sup}, found {workers}")
            started.roles.update(supervisor=sup, worker0=workers[0], worker1=workers[1])
            # The supervisor shares worker 0's quota: stricter than a cgroup of its own.
            started.slots = [[sup, workers[0]], [workers[1]]]
    except BaseException:
        for proc in started.procs:
            await proc.stop()
        raise
    return started


def _health_split(url: str) -> list[int]:
    """Sessions per worker from ``/health`` (snapshots at most ~2 s old)."""
    with urllib.request.urlopen(url, timeout=3) as resp:
        body = json.loads(resp.read())
    workers = sorted(body.get("workers") or [], key=lambda w: int(w["index"]))
    return [int(w["sessions"]) for w in workers] or [int(body.get("sessions", 0))]


# ---- one run ---------------------------------------------------------------------------------


@dataclass
class Ctx:
    """What every run shares."""

    p: Params
    echo: Proc
    echo_port: int
    log_dir: Path
    cgroups: CpuCgroups | None
    deadline: float
    redis: Proc | None = None
    redis_url: str | None = None


async def run_once(
    ctx: Ctx,
    part: str,
    config: str,
    n: int,
    rep: int,
    limit: tuple[float, int] | None = None,
) -> Run:
    """Start ``config``, optionally put each process into its own cgroup at ``limit`` (cores per
    slot, period µs), drive ``n`` paced sessions, measure a window, tear everything down."""
    p = ctx.p
    res = Run(part=part, config=config, sessions=n, repeat=rep)
    if limit is not None:
        res.limit_cores, res.period_us = limit
    target: Started | None = None
    lgs: list[Proc] = []
    sample_files: list[Path] = []
    tag = f"{part}-{n}-r{rep}"
    try:
        if limit is not None:
            assert ctx.cgroups is not None
            await ctx.cgroups.wait_empty()
            ctx.cgroups.set_quota(*limit)
        target = await start_target(config, p, ctx.echo_port, ctx.log_dir, tag, ctx.redis_url)
        if limit is not None and ctx.cgroups is not None:
            for slot, pids in enumerate(target.slots):
                for pid in pids:
                    ctx.cgroups.place(slot, pid)
        if p.pin:
            pin(target.roles.values(), RELAY_CPUS)
        await asyncio.sleep(0.5)
        res.rss_base_kb = {role: rss_kb([pid]) for role, pid in target.roles.items()}
        chunks = _split(n, max(p.loadgen_procs, len(target.urls)))
        for i, (first, cnt) in enumerate(chunks):
            url = ",".join(target.urls) if config == MIXED else target.urls[i % len(target.urls)]
            sample_file = ctx.log_dir / f"{config}-{tag}-{i}.f64"
            argv = [
                p.node,
                str(PEERS / "loadgen.js"),
                *("--url", url, "--sessions", str(cnt), "--first", str(first)),
                *("--rate", str(p.rate), "--mode", "paced"),
                *("--samples-file", str(sample_file), "--max-seconds", "120"),
            ]
            lg = Proc(f"loadgen-{config}-{tag}-{i}", argv, log_dir=ctx.log_dir, stdin=True)
            sample_files.append(sample_file)
            await lg.start()
            lgs.append(lg)
            if p.pin:
                pin([lg.pid], OTHER_CPUS)
        if config == PAIR:
            res.split = [sum(c for j, (_, c) in enumerate(chunks) if j % 2 == k) for k in (0, 1)]
        elif config == MIXED:  # session i of the whole run goes to bridge i mod 2
            res.split = [sum(1 for j in range(n) if j % 2 == k) for k in (0, 1)]
        failures = []
        for lg in lgs:
            m = await lg.wait_line(r"^ready (.*)", timeout=60)
            info = json.loads(m.group(1))
            res.connected += info["connected"]
            if info["failed"]:
                failures.append(f"{info['failed']} sessions failed to connect: {info['error']}")
        if failures:
            res.error = "; ".join(failures)
        if res.connected == 0:
            raise RuntimeError(res.error or "no session connected")
        for lg in lgs:
            await lg.send("go")
        await asyncio.sleep(p.warmup)
        groups: dict[str, list[int]] = {
            "echo": [ctx.echo.pid],
            "loadgen": [lg.pid for lg in lgs],
            "kernel": process_tree(2),
            "redis": [ctx.redis.pid] if ctx.redis is not None else [],
        }
        groups.update({f"relay:{role}": [pid] for role, pid in target.roles.items()})
        throttle0 = ctx.cgroups.throttle_stats() if limit and ctx.cgroups else []
        for lg in lgs:
            await lg.send("mark")
        relay_pids = list(target.roles.values())
        cs0 = context_switches(relay_pids)
        m0 = cpu_mark(groups)
        peak: dict[str, int] = {}
        for _ in range(4):
            await asyncio.sleep(p.measure / 4)
            for role, pid in target.roles.items():
                peak[role] = max(peak.get(role, 0), rss_kb([pid]))
        m1 = cpu_mark(groups)
        cs1 = context_switches(relay_pids)
        throttle1 = ctx.cgroups.throttle_stats() if limit and ctx.cgroups else []
        if config in SUPERVISED:
            with contextlib.suppress(OSError, ValueError, KeyError):
                res.split = await asyncio.to_thread(_health_split, target.health[0])
        for lg in lgs:
            await lg.send("stop")
        results = []
        for lg in lgs:
            m = await lg.wait_line(r"^result (.*)", timeout=30)
            results.append(json.loads(m.group(1)))
        for proc in target.procs:
            if not proc.alive():
                raise RuntimeError(f"{proc.name} died: {proc.tail()}")
        for role, pid in target.roles.items():
            if not Path(f"/proc/{pid}").exists():
                raise RuntimeError(f"{role} (pid {pid}) died")
        res.rss_peak_kb = peak
        res.slot_throttled_pct = [
            100 * (t1 - t0) / max(1, q1 - q0)
            for (q0, t0), (q1, t1) in zip(throttle0, throttle1, strict=True)
        ]
        _fill(res, results, sample_files, m0, m1)
        if res.relayed:
            res.msgs_per_wakeup = res.relayed / max(1, cs1[0] - cs0[0])
            res.preempted_per_kmsg = 1000 * (cs1[1] - cs0[1]) / res.relayed
        if limit is not None or part == "plan":
            res.passed = _passes(res, p)
    except Exception as exc:
        res.ok = False
        res.passed = False
        res.error = f"{type(exc).__name__}: {exc}"[:500]
    finally:
        for lg in lgs:
            await lg.stop(grace=1.0)
        if target is not None:
            for proc in target.procs:
                await proc.stop()
        for f in sample_files:
            with contextlib.suppress(OSError):
                f.unlink()
    return res


def _passes(res: Run, p: Params) -> bool:
    return (
        res.ok
        and res.connected == res.sessions
        and res.lost == 0
        and res.closed_early == 0
        and res.misrouted == 0
        and res.p99_ms is not None
        and res.p99_ms <= p.p99_bound_ms
    )


def _fill(
    res: Run,
    results: list[dict[str, Any]],
    sample_files: list[Path],
    m0: CpuMark,
    m1: CpuMark,
) -> None:
    """Load-generator results and /proc readings into ``res``."""
    for key in ("sent", "lost", "reordered", "misrouted", "closed_early"):
        setattr(res, key, sum(int(r[key]) for r in results))
    res.window_s = max(float(r["window_s"]) for r in results)
    res.relayed = sum(int(r["window_sent"]) + int(r["window_received"]) for r in results)
    res.msgs_per_s = res.relayed / res.window_s if res.window_s else None
    arrays = [np.fromfile(f, dtype=np.float64) for f in sample_files if f.exists()]
    rtt = np.concatenate(arrays) if arrays else np.empty(0)
    res.samples = int(rtt.size)
    if rtt.size:
        p50, p99 = np.percentile(rtt, [50, 99])
        res.p50_ms, res.p99_ms, res.max_ms = float(p50), float(p99), float(rtt.max())
    wall = m1.wall - m0.wall
    d = {k: m1.groups[k] - m0.groups[k] for k in m0.groups}
    res.role_cpu_pct = {k[6:]: 100 * v / wall for k, v in d.items() if k.startswith("relay:")}
    relay_cpu = sum(v for k, v in d.items() if k.startswith("relay:"))
    if res.role_cpu_pct:
        res.relay_cpu_pct = 100 * relay_cpu / wall
        if res.relayed:
            res.us_per_msg = 1e6 * relay_cpu / res.relayed
    res.echo_cpu_pct = 100 * d["echo"] / wall
    res.loadgen_cpu_pct = 100 * d["loadgen"] / wall
    res.redis_cpu_pct = 100 * d["redis"] / wall if "redis" in d else None
    res.host_cpu_pct = 100 * (m1.host_busy - m0.host_busy) / wall
    irq = 100 * (m1.host_irq - m0.host_irq) / wall
    steal = 100 * (m1.host_steal - m0.host_steal) / wall
    res.other_cpu_pct = max(0.0, res.host_cpu_pct - irq - 100 * sum(d.values()) / wall) + steal


# ---- the three parts -------------------------------------------------------------------------


def _left(ctx: Ctx) -> bool:
    return time.monotonic() < ctx.deadline


def _progress(r: Run, t_start: float) -> str:
    head = (
        f"[{time.monotonic() - t_start:5.0f}s] {r.part:<8} {r.config:<5} N={r.sessions:<4}"
        f" #{r.repeat}"
    )
    if r.limit_cores is not None:
        head += f" quota {r.limit_cores:g}/slot"
    if not r.ok:
        return f"{head} FAILED {r.error}"
    parts = [f"p50 {r.p50_ms or 0:.2f} p99 {r.p99_ms or 0:.2f} ms", f"lost {r.lost}"]
    if r.us_per_msg is not None:
        roles = " ".join(f"{k} {v:.0f}%" for k, v in r.role_cpu_pct.items())
        parts.append(f"cpu {r.relay_cpu_pct:.0f}% ({roles}) {r.us_per_msg:.1f}us/msg")
    if r.msgs_per_wakeup is not None:
        parts.append(f"{r.msgs_per_wakeup:.1f} msg/wake, {r.preempted_per_kmsg:.1f} preempt/kmsg")
    if r.slot_throttled_pct:
        parts.append("throttled " + "/".join(f"{t:.0f}%" for t in r.slot_throttled_pct))
    if r.split:
        parts.append("split " + "/".join(map(str, r.split)))
    parts.append(
        f"{r.msgs_per_s or 0:,.0f} msg/s | host {r.host_cpu_pct:.0f}%"
        f" lg {r.loadgen_cpu_pct:.0f}% echo {r.echo_cpu_pct:.0f}% other {r.other_cpu_pct:.0f}%"
        + (f" redis {r.redis_cpu_pct:.1f}%" if r.config == TWO_REDIS and r.redis_cpu_pct else "")
    )
    verdict = "" if r.passed is None else (" PASS" if r.passed else " fail")
    return f"{head} " + " | ".join(parts) + verdict + (f" ({r.error})" if r.error else "")


async def _run(ctx: Ctx, runs: list[Run], t_start: float, *args: Any, **kw: Any) -> Run:
    """One run; again (up to ``max_attempts``) when other processes took more than
    ``max_other_cpu`` % of a core during its window."""
    p = ctx.p
    for attempt in range(1, p.max_attempts + 1):
        await wait_quiet(p.max_other_cpu, max_wait=p.quiet_wait)
        r = await asyncio.wait_for(run_once(ctx, *args, **kw), timeout=150)
        r.attempts = attempt
        if not r.ok or (r.other_cpu_pct or 0) <= p.max_other_cpu or attempt == p.max_attempts:
            break
        print(f"  retry: other processes used {r.other_cpu_pct:.0f}% of a core", flush=True)
    runs.append(r)
    print(_progress(r, t_start), flush=True)
    return r


async def part_cpu(ctx: Ctx, runs: list[Run], t_start: float) -> None:
    """(a) The same paced load, no quota, configurations alternating."""
    p = ctx.p
    configs = [c for c in CPU_CONFIGS if c != TWO_REDIS or ctx.redis_url is not None]
    for rep in range(p.cpu_repeats):
        k = rep % len(configs)
        for n in p.cpu_sessions:
            for config in configs[k:] + configs[:k]:
                if not _left(ctx):
                    return
                await _run(ctx, runs, t_start, "cpu", config, n, rep)


def _estimate(runs: list[Run], p: Params) -> int:
    """Sessions one process should hold at the quota, from (a)'s µs/msg for WORKERS=1 at its
    largest N (the closest to saturation), else 20 µs."""
    n_max = max(p.cpu_sessions, default=0)
    us = _median(
        [
            r.us_per_msg
            for r in runs
            if r.part == "cpu" and r.config == ONE and r.ok and r.sessions == n_max
        ]
    )
    return max(4, int(p.quota * 1e6 / ((us or 20.0) * 2 * p.rate)))


async def part_capacity(ctx: Ctx, runs: list[Run], t_start: float) -> None:
    """(b) Paired ramps: at each level k, every configuration still in the ramp runs once, back
    to back (order rotated), with k sessions per process (k for one process, 2k for two), so a
    spell of load from outside hits them all alike. A configuration leaves the ramp after two
    failures in a row; its capacity in the round is the highest N that passed. Later rounds
    start two steps below the lowest capacity of the round before."""
    p = ctx.p
    est = _estimate(runs, p)
    step = max(2, round(est * p.step))
    k0 = max(step, round(est * 0.75 / step) * step)
    limit = (p.quota, p.period_us)
    for rep in range(p.ramp_repeats):
        if rep > 0:
            tops = [
                top / SLOTS[c]
                for c in CAPACITY_CONFIGS
                if (top := _round_capacity(runs, c, rep - 1)) is not None
            ]
            if tops:
                k0 = max(step, int(min(tops)) - 2 * step)
        active = list(CAPACITY_CONFIGS)
        fails = dict.fromkeys(active, 0)
        k = k0
        for level in range(p.max_levels):
            if not active:
                break
            j = (level + rep) % len(active)
            for config in active[j:] + active[:j]:
                if not _left(ctx):
                    return
                r = await _run(
                    ctx, runs, t_start, "capacity", config, k * SLOTS[config], rep, limit
                )
                fails[config] = 0 if r.passed else fails[config] + 1
            active = [c for c in active if fails[c] < 2]
            k += step


def _round_capacity(runs: list[Run], config: str, rep: int) -> int | None:
    """The highest N that passed in one round of (b)."""
    passed = [
        r.sessions
        for r in runs
        if r.part == "capacity" and r.config == config and r.repeat == rep and r.passed
    ]
    return max(passed) if passed else None


async def part_plan(ctx: Ctx, runs: list[Run], t_start: float) -> None:
    """(c) One worker in a 1-core cgroup at the planned sessions per core; direct beside it."""
    p = ctx.p
    cap = capacities(runs, p).get(ONE)
    if p.plan_sessions:
        n = p.plan_sessions
    elif cap and cap["median"] is not None:
        n = planned_per_core(cap["median"], p)
    else:
        print("plan: no capacity for WORKERS=1 (run capacity, or --plan-sessions), skipped")
        return
    for rep in range(p.plan_repeats):
        for config in (DIRECT, ONE):
            if not _left(ctx):
                return
            limit = (1.0, 100_000) if config == ONE else None
            await _run(ctx, runs, t_start, "plan", config, n, rep, limit)


# ---- aggregation -----------------------------------------------------------------------------


def _median(values: Sequence[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def planned_per_core(capacity: float, p: Params) -> int:
    """Sessions per full core at the planning margin, from one quota-slot's capacity."""
    return int(capacity / p.quota * p.margin)


def capacities(runs: list[Run], p: Params) -> dict[str, dict[str, Any]]:
    """Per configuration: each ramp's capacity (highest passing N), its run, their median."""
    out: dict[str, dict[str, Any]] = {}
    for config in CAPACITY_CONFIGS:
        ramps: dict[int, list[Run]] = {}
        for r in runs:
            if r.part == "capacity" and r.config == config:
                ramps.setdefault(r.repeat, []).append(r)
        if not ramps:
            continue
        per_ramp: list[int | None] = []
        best: list[Run] = []
        first_fail: list[Run] = []
        for rep in sorted(ramps):
            passed = [r for r in ramps[rep] if r.passed]
            top = max(passed, key=lambda r: r.sessions) if passed else None
            per_ramp.append(top.sessions if top else None)
            if top is not None:
                best.append(top)
            above = [
                r for r in ramps[rep] if not r.passed and (not top or r.sessions > top.sessions)
            ]
            if above:
                first_fail.append(min(above, key=lambda r: r.sessions))
        out[config] = {
            "per_ramp": per_ramp,
            "median": _median([float(x) if x is not None else None for x in per_ramp]),
            "msgs_per_s": _median([r.msgs_per_s for r in best]),
            "p99_ms": _median([r.p99_ms for r in best]),
            "cpu_of_quota_pct": _median(
                [
                    (r.relay_cpu_pct or 0) / (SLOTS[config] * (r.limit_cores or 1))
                    for r in best
                    if r.relay_cpu_pct is not None
                ]
            ),
            "us_per_msg": _median([r.us_per_msg for r in best]),
            "splits": [r.split for r in best if r.split],
            "fail_p99_ms": _median([r.p99_ms for r in first_fail]),
            "fail_lost": sum(r.lost for r in first_fail),
            "probes": sum(len(v) for v in ramps.values()),
        }
    return out


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _f(v: float | None, fmt: str = "{:.1f}") -> str:
    return "—" if v is None else fmt.format(v)


def _yes(ok: bool | None) -> str:
    return "—" if ok is None else ("yes" if ok else "**NO**")


def report(runs: list[Run], meta: dict[str, Any]) -> tuple[str, str]:
    """(plain text, markdown section) from the runs."""
    p: Any = SimpleNamespace(**meta["params"])  # also older JSON with fewer fields
    text: list[str] = []
    md: list[str] = []

    def table(title: str, head: list[str], rows: list[list[str]]) -> None:
        text.extend(["", title, _text_table(head, rows)])
        md.extend([f"### {title}", "", _md_table(head, rows), ""])

    # (a)
    checks: list[list[str]] = []
    cpu = [r for r in runs if r.part == "cpu"]
    for n in sorted({r.sessions for r in cpu}):
        level = [r for r in cpu if r.sessions == n]
        by_cfg = {c: [r for r in level if r.config == c] for c in CPU_CONFIGS}
        us = {c: _median([r.us_per_msg for r in rs if r.ok]) for c, rs in by_cfg.items()}
        rows = []
        for c, rs in by_cfg.items():
            ok = [r for r in rs if r.ok]
            if not rs:
                continue
            rows.append(
                [
                    LABELS[c],
                    PROCS_NOTE[c],
                    f"{len(ok)}/{len(rs)}",
                    _f(us[c]),
                    ", ".join(_f(r.us_per_msg) for r in ok),
                    _f(_median([r.relay_cpu_pct for r in ok]), "{:.0f}"),
                    _f(_median([r.role_cpu_pct.get("supervisor") for r in ok]), "{:.2f}")
                    if c in SUPERVISED
                    else "—",
                    _f(_median([r.msgs_per_wakeup for r in ok])),
                    _f(_median([r.p50_ms for r in ok]), "{:.2f}"),
                    _f(_median([r.p99_ms for r in ok]), "{:.2f}"),
                    str(sum(r.lost for r in ok)),
                    _f(_median([r.host_cpu_pct for r in ok]), "{:.0f}"),
                    _f(_median([r.other_cpu_pct for r in ok]), "{:.0f}"),
                ]
            )
        table(
            f"(a) CPU per message: {n} sessions × {p.rate:.0f} events/s each way, no quota",
            [
                "relay",
                "processes",
                "runs ok",
                "µs/msg (median)",
                "µs/msg per run",
                "CPU % (all processes)",
                "supervisor CPU %",
                "msgs per wake-up",
                "p50 ms",
                "p99 ms",
                "lost",
                "host CPU %",
                "other CPU %",
            ],
            rows,
        )
        r21 = _ratio(us[TWO], us[ONE])
        paired = _paired_ratios(level, TWO, ONE)
        checks.append(
            [
                f"(a) N={n}: CPU per message, WORKERS=2 ≤ 1.1× WORKERS=1",
                _f(r21, "{:.2f}×") + (f" (per repeat {paired})" if paired else ""),
                _yes(None if r21 is None else r21 <= 1.1),
            ]
        )
        if by_cfg.get(TWO_REDIS):
            r_store = _ratio(us[TWO_REDIS], us[ONE])
            redis_cpu = _median([r.redis_cpu_pct for r in by_cfg[TWO_REDIS] if r.ok])
            checks.append(
                [
                    f"(a) N={n}: CPU per message, WORKERS=2 with REDIS_URL ≤ 1.1× WORKERS=1",
                    _f(r_store, "{:.2f}×")
                    + (
                        f" (per repeat {ps})"
                        if (ps := _paired_ratios(level, TWO_REDIS, ONE))
                        else ""
                    ),
                    _yes(None if r_store is None else r_store <= 1.1),
                ]
            )
            checks.append(
                [
                    f"(a) N={n}, reference: WORKERS=2 with REDIS_URL vs without (what the store"
                    f" adds); redis-server itself {_f(redis_cpu, '{:.1f}')} % of a core",
                    _f(_ratio(us[TWO_REDIS], us[TWO]), "{:.2f}×")
                    + (
                        f" (per repeat {pr})"
                        if (pr := _paired_ratios(level, TWO_REDIS, TWO))
                        else ""
                    ),
                    "—",
                ]
            )
        checks.append(
            [
                f"(a) N={n}, reference: WORKERS=2 vs 2 independent bridges (same load per process)",
                _f(_ratio(us[TWO], us[PAIR]), "{:.2f}×")
                + (f" (per repeat {pp})" if (pp := _paired_ratios(level, TWO, PAIR)) else ""),
                "—",
            ]
        )
        checks.append(
            [
                f"(a) N={n}, reference: WORKERS=2 vs 2 independent bridges fed alike",
                _f(_ratio(us[TWO], us[MIXED]), "{:.2f}×")
                + (f" (per repeat {pm})" if (pm := _paired_ratios(level, TWO, MIXED)) else ""),
                "—",
            ]
        )
        checks.append(
            [
                f"(a) N={n}, reference: WORKERS=1 vs Node",
                _f(_ratio(us[ONE], us[NODE]), "{:.2f}×"),
                "—",
            ]
        )

    # (b)
    caps = capacities(runs, p)
    if caps:
        rows = []
        for cfg, cap in caps.items():
            quota_cores = SLOTS[cfg] * p.quota
            rows.append(
                [
                    LABELS[cfg],
                    f"{SLOTS[cfg]} × {p.quota:g} core",
                    _f(cap["median"], "{:.0f}"),
                    ", ".join("—" if x is None else str(x) for x in cap["per_ramp"]),
                    _f(cap["msgs_per_s"], "{:,.0f}"),
                    _f(cap["p99_ms"], "{:.1f}"),
                    _f(cap["cpu_of_quota_pct"], "{:.0f}"),
                    _f(cap["us_per_msg"]),
                    _f(None if cap["median"] is None else cap["median"] / quota_cores, "{:.0f}"),
                    "; ".join("/".join(map(str, s)) for s in cap["splits"]) or "—",
                    _f(cap["fail_p99_ms"], "{:.0f}"),
                    str(cap["probes"]),
                ]
            )
        table(
            f"(b) Capacity: each process in its own cgroup at {p.quota:g} core"
            f" (period {p.period_us / 1000:g} ms); highest N with p99 ≤ {p.p99_bound_ms:g} ms"
            " and 0 lost",
            [
                "relay",
                "CPU",
                "sessions (median)",
                "per round",
                "msgs/s at capacity",
                "p99 ms at capacity",
                "CPU % of quota",
                "µs/msg",
                "sessions per quota core",
                "split per worker",
                "p99 ms one step above",
                "probes",
            ],
            rows,
        )
        med: dict[str, float | None] = {k: v["median"] for k, v in caps.items()}
        r_pair = _ratio(med.get(TWO), med.get(PAIR))
        r_one = _ratio(med.get(TWO), med.get(ONE))
        m_pair = _ratio(caps.get(TWO, {}).get("msgs_per_s"), caps.get(PAIR, {}).get("msgs_per_s"))
        m_one = _ratio(caps.get(TWO, {}).get("msgs_per_s"), caps.get(ONE, {}).get("msgs_per_s"))
        checks.append(
            [
                "(b) capacity, WORKERS=2 ≥ 0.9× 2 independent bridges",
                f"{_f(r_pair, '{:.2f}×')} sessions, {_f(m_pair, '{:.2f}×')} msgs/s"
                + _per_ramp_ratio(caps, TWO, PAIR),
                _yes(None if r_pair is None else r_pair >= 0.9),
            ]
        )
        checks.append(
            [
                "(b) capacity, WORKERS=2 ≥ 1.8× WORKERS=1",
                f"{_f(r_one, '{:.2f}×')} sessions, {_f(m_one, '{:.2f}×')} msgs/s"
                + _per_ramp_ratio(caps, TWO, ONE),
                _yes(None if r_one is None else r_one >= 1.8),
            ]
        )
        checks.append(
            [
                "(b) reference: 2 independent bridges vs WORKERS=1",
                f"{_f(_ratio(med.get(PAIR), med.get(ONE)), '{:.2f}×')} sessions",
                "—",
            ]
        )
        checks.append(
            [
                "(b) reference: WORKERS=1 vs Node relay (same quota)",
                f"{_f(_ratio(med.get(ONE), med.get(NODE)), '{:.2f}×')} sessions",
                "—",
            ]
        )

    # (c)
    plan = [r for r in runs if r.part == "plan"]
    if plan:
        rows = []
        direct_p99 = _median([r.p99_ms for r in plan if r.config == DIRECT and r.ok])
        for cfg in (DIRECT, ONE):
            rs = [r for r in plan if r.config == cfg and r.ok]
            if not rs:
                continue
            p99 = _median([r.p99_ms for r in rs])
            rows.append(
                [
                    LABELS[cfg],
                    "1 core (100 ms period)" if cfg == ONE else "none",
                    str(rs[0].sessions),
                    f"{len(rs)}/{len([r for r in plan if r.config == cfg])}",
                    _f(_median([r.relay_cpu_pct for r in rs]), "{:.0f}"),
                    _f(_median([r.p50_ms for r in rs]), "{:.2f}"),
                    _f(p99, "{:.2f}"),
                    _f(p99 - direct_p99, "+{:.2f}") if cfg == ONE and p99 and direct_p99 else "—",
                    str(sum(r.lost for r in rs)),
                    _f(_median([r.rss_base_kb.get("bridge") for r in rs]), "{:,.0f}")
                    if cfg == ONE
                    else "—",
                    _f(_median([r.rss_peak_kb.get("bridge") for r in rs]), "{:,.0f}")
                    if cfg == ONE
                    else "—",
                    _f(_median([r.loadgen_cpu_pct for r in rs]), "{:.0f}"),
                ]
            )
        table(
            f"(c) Planned load: sessions per core at {p.margin:.0%} of a core, WORKERS=1 in a"
            " 1-core cgroup",
            [
                "relay",
                "CPU limit",
                "sessions",
                "runs ok",
                "relay CPU % of a core",
                "p50 ms",
                "p99 ms",
                "+p99 ms",
                "lost",
                "RSS idle KB",
                "RSS loaded KB",
                "loadgen CPU %",
            ],
            rows,
        )
    if checks:
        table("Targets", ["target", "measured", "met"], checks)
    rss = _rss_summary(runs)
    if rss:
        text.extend(["", rss])
        md.extend([rss, ""])
    return "\n".join(text), "\n".join(md)


def _paired_ratios(runs: list[Run], a: str, b: str) -> str:
    """a/b µs per message run by run (same repeat: close in time)."""
    va = {r.repeat: r.us_per_msg for r in runs if r.config == a and r.ok and r.us_per_msg}
    vb = {r.repeat: r.us_per_msg for r in runs if r.config == b and r.ok and r.us_per_msg}
    return ", ".join(f"{va[k] / vb[k]:.2f}" for k in sorted(va) if k in vb)


def _per_ramp_ratio(caps: dict[str, dict[str, Any]], a: str, b: str) -> str:
    ra, rb = caps.get(a, {}).get("per_ramp", []), caps.get(b, {}).get("per_ramp", [])
    pairs = [f"{x / y:.2f}" for x, y in zip(ra, rb, strict=False) if x and y]
    return f" (per round {', '.join(pairs)})" if len(pairs) > 1 else ""


def _rss_summary(runs: list[Run]) -> str:
    """Idle RSS per process kind (after start, before load), medians over all runs."""
    kinds: dict[str, list[float | None]] = {"single": [], "supervisor": [], "worker": []}
    for r in runs:
        if not r.ok:
            continue
        for role, kb in r.rss_base_kb.items():
            if role == "supervisor":
                kinds["supervisor"].append(kb)
            elif role.startswith("worker"):
                kinds["worker"].append(kb)
            elif role.startswith("bridge"):
                kinds["single"].append(kb)
    parts = [f"{k} {_f(_median(v), '{:,.0f}')} KB" for k, v in kinds.items() if v]
    return "Idle RSS per process (median): " + ", ".join(parts) + "." if parts else ""


# ---- main ------------------------------------------------------------------------------------


def _git(*argv: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["git", "-C", str(ROOT), *argv], capture_output=True, timeout=30, check=False
    )


def snapshot_source(which: str, dest: Path, python: str) -> dict[str, str]:
    """Copy the bridge's source (``head``: the checked-out commit; ``worktree``: src/ as it is
    on disk; anything else: that commit) to ``dest``/src, and make every bridge process import
    it from there, so an edit made during a long run cannot mix versions. Returns what was
    measured."""
    rev = "HEAD" if which in ("head", "worktree") else which
    commit = _git("rev-parse", "--short", f"{rev}^{{commit}}").stdout.decode().strip()
    if not commit:
        raise SystemExit(f"--source {which}: not a commit")
    dirty = bool(_git("status", "--porcelain", "--", "src").stdout.strip())
    if which != "worktree":
        archive = _git("archive", "--format=tar", commit, "src")
        if archive.returncode != 0:
            raise SystemExit(f"git archive {commit} src failed: {archive.stderr.decode()[:300]}")
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(dest, filter="data")
            else:  # Python 3.11 before 3.11.4
                tar.extractall(dest)
    else:
        shutil.copytree(ROOT / "src", dest / "src", ignore=shutil.ignore_patterns("__pycache__"))
    src = dest / "src"
    digest = hashlib.sha1(usedforsecurity=False)
    for path in sorted(src.rglob("*.py")):
        digest.update(str(path.relative_to(src)).encode() + b"\0" + path.read_bytes())
    _SOURCE[:] = [str(src)]
    where = subprocess.run(
        [python, "-c", "import realtime_bridge; print(realtime_bridge.__file__)"],
        env={**os.environ, "PYTHONPATH": str(src)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    ).stdout.strip()
    if not where.startswith(str(src)):
        raise SystemExit(f"the bridge would not import from the snapshot {src} ({where!r})")
    if which == "worktree":
        label = f"working tree on {commit}" + (" with uncommitted changes" if dirty else "")
    else:
        label = f"commit {commit}" + (" (HEAD)" if which == "head" else "")
    return {"which": which, "commit": commit, "label": label, "src_sha1": digest.hexdigest()[:12]}


async def _start_redis(log_dir: Path, pinned: bool) -> tuple[Proc | None, str | None]:
    """A throw-away ``redis-server`` on loopback for the WORKERS=2 with REDIS_URL configuration
    (no persistence); (None, None) with the reason printed when there is none to start."""
    binary = shutil.which("redis-server")
    if binary is None:
        print(
            "redis-server not found: (a) without 'WORKERS=2, REDIS_URL'"
            " (scripts/ensure-system-deps.sh installs it)",
            flush=True,
        )
        return None, None
    port = free_port()
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    redis = Proc("redis", argv, log_dir=log_dir)
    await redis.start()
    await redis.wait_line(r"Ready to accept connections", timeout=20)
    if pinned:
        pin([redis.pid], OTHER_CPUS)
    return redis, f"redis://127.0.0.1:{port}/0"


async def bench(p: Params, args: argparse.Namespace) -> int:
    """Run the parts; print and write the results."""
    ensure_node_peers(p.node)
    log_dir = Path(tempfile.mkdtemp(prefix="workers-bench-"))
    echo = Proc("echo", [p.node, str(PEERS / "echo-server.js"), "--port", "0"], log_dir=log_dir)
    runs: list[Run] = []
    cgroups: CpuCgroups | None = None
    skipped: dict[str, str] = {}
    t_start = time.monotonic()
    deadline = t_start + 60 * p.max_minutes
    incomplete = False
    interrupted = False
    ctx: Ctx | None = None
    source = snapshot_source(p.source, log_dir, p.python)
    print(f"bridge source: {source['label']}, digest {source['src_sha1']}", flush=True)
    try:
        if any(part in p.parts for part in ("capacity", "plan")):
            why = CpuCgroups.unavailable()
            if why is None:
                cgroups = CpuCgroups(2)
                cgroups.create()
            else:
                print(f"CPU quotas unavailable, (b) and (c) skipped: {why}", flush=True)
                skipped.update(capacity=why, plan=why)
        await echo.start()
        echo_port = int((await echo.wait_line(r"echo listening (\d+)", timeout=20)).group(1))
        if p.pin:
            pin([echo.pid], OTHER_CPUS)
        ctx = Ctx(p, echo, echo_port, log_dir, cgroups, deadline)
        if "cpu" in p.parts:
            ctx.redis, ctx.redis_url = await _start_redis(log_dir, p.pin)
        steps: list[tuple[str, Callable[[Ctx, list[Run], float], Any]]] = [
            ("cpu", part_cpu),
            ("capacity", part_capacity),
            ("plan", part_plan),
        ]
        for name, fn in steps:
            if name in p.parts and name not in skipped:
                await fn(ctx, runs, t_start)
            if not echo.alive():
                raise RuntimeError(f"echo upstream died: {echo.tail()}")
        incomplete = not _left(ctx)
        if incomplete:
            print(f"time limit ({p.max_minutes:g} min) reached: some runs skipped", flush=True)
    except asyncio.CancelledError:
        interrupted = True  # Ctrl-C or SIGTERM: children stopped; keep what was measured
        print("interrupted: writing the runs so far", file=sys.stderr, flush=True)
    finally:
        await echo.stop()
        if ctx is not None and ctx.redis is not None:
            await ctx.redis.stop()
        if cgroups is not None:
            cgroups.remove()
            if cgroups.made:
                print(f"could not remove cgroups {cgroups.made}", file=sys.stderr)
        shutil.rmtree(log_dir, ignore_errors=True)
    meta = {
        "machine": machine_description(p.python, p.node, PEERS),
        "params": asdict(p),
        "elapsed_s": round(time.monotonic() - t_start),
        "command": " ".join(["bench/workers.py", *sys.argv[1:]]),
        "skipped": skipped,
        "incomplete": incomplete,
        "interrupted": interrupted,
        "source": source,
    }
    emit(runs, meta, args)
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"meta": meta, "runs": [asdict(r) for r in runs]}, indent=1))
    print(f"wrote {path}")
    return 130 if interrupted else 0


def emit(runs: list[Run], meta: dict[str, Any], args: argparse.Namespace) -> None:
    """Print the tables; write the markdown section."""
    text, md = report(runs, meta)
    m = meta["machine"]
    head = (
        f"{m['nproc']} cores, {m['cpu']}, {m['kernel']}; Python {m['python']}, Node {m['node']};"
        f" {m['date']}; `{meta['command']}`; wall time {meta['elapsed_s']} s"
        + ("; INCOMPLETE (time limit)" if meta.get("incomplete") else "")
        + ("; INTERRUPTED" if meta.get("interrupted") else "")
    )
    if src := meta.get("source"):
        head += f"\nbridge source: {src['label']}, src digest {src['src_sha1']}"
    for part, why in meta.get("skipped", {}).items():
        head += f"\n{part} skipped: {why}"
    print()
    print(head)
    print(text)
    if args.markdown:
        path = Path(args.markdown)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{head}\n\n{md}\n")
        print(f"wrote {path}")


def parse_args(argv: list[str] | None = None) -> tuple[Params, argparse.Namespace]:
    """Command line → (Params, raw namespace)."""
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="smoke run (~5 min)")
    ap.add_argument(
        "--parts", default="cpu,capacity,plan", help="comma-separated: cpu, capacity, plan"
    )
    ap.add_argument(
        "--cpu-sessions", default="100,200,300", help="(a) comma-separated N (100,200,300)"
    )
    ap.add_argument(
        "--cpu-repeats", type=int, default=None, help="(a) runs per config (3; quick 1)"
    )
    ap.add_argument(
        "--pin",
        action="store_true",
        help="the relay's processes on the last CPU, the load generator and the echo on the others",
    )
    ap.add_argument("--warmup", type=float, default=None, help="seconds before measuring")
    ap.add_argument("--measure", type=float, default=None, help="measurement window, seconds")
    ap.add_argument("--rate", type=float, default=50.0, help="events/s per session each way")
    ap.add_argument("--loadgen-procs", type=int, default=2, help="load-generator processes")
    ap.add_argument("--quota", type=float, default=0.25, help="(b) cores per process (0.25)")
    ap.add_argument(
        "--period-us", type=int, default=10_000, help="(b) cfs_period_us (default 10000)"
    )
    ap.add_argument("--p99-bound", type=float, default=50.0, help="(b) p99 bound, ms (50)")
    ap.add_argument(
        "--ramp-repeats", type=int, default=None, help="(b) rounds of ramps (2; quick 1)"
    )
    ap.add_argument(
        "--step", type=float, default=None, help="(b) ramp step, fraction of the estimate (0.06)"
    )
    ap.add_argument("--max-levels", type=int, default=16, help="(b) ramp levels per round")
    ap.add_argument("--margin", type=float, default=0.6, help="(c) planning margin (0.6)")
    ap.add_argument(
        "--plan-sessions",
        type=int,
        default=0,
        help="(c) sessions (default: from (b)'s capacity of one worker)",
    )
    ap.add_argument("--plan-repeats", type=int, default=None, help="(c) runs per config (2)")
    ap.add_argument(
        "--max-minutes", type=float, default=None, help="time limit, minutes (25; quick 8)"
    )
    ap.add_argument(
        "--quiet-wait", type=float, default=None, help="wait for an idle machine (10 s; quick 3)"
    )
    ap.add_argument(
        "--max-other-cpu",
        type=float,
        default=25.0,
        help="rerun a run when other processes used more than this %% of a core (25)",
    )
    ap.add_argument("--max-attempts", type=int, default=None, help="attempts per run (2; quick 1)")
    ap.add_argument(
        "--python", default=str(DEFAULT_PYTHON if DEFAULT_PYTHON.exists() else sys.executable)
    )
    ap.add_argument("--node", default=shutil.which("node") or "node")
    ap.add_argument(
        "--source",
        default="head",
        help="bridge code measured: head (the checked-out commit, default), worktree (src/ as"
        " it is on disk) or a commit; copied at start, so edits during the run do not count",
    )
    ap.add_argument("--markdown", default=None, help="markdown section (bench/results/...)")
    ap.add_argument("--json", default=None, help="raw JSON (default bench/results/workers-*.json)")
    ap.add_argument(
        "--render",
        metavar="JSON",
        nargs="+",
        help="only re-render the tables from raw JSON; several runs (for example --parts cpu and"
        " --parts capacity,plan) of the same source are pooled",
    )
    args = ap.parse_args(argv)
    q = args.quick
    stamp = time.strftime("%Y%m%d-%H%M%S")
    kind = "workers-quick" if q else "workers"
    if args.json is None:
        args.json = str(BENCH / "results" / f"{kind}-{stamp}.json")
    if args.markdown is None:
        args.markdown = str(BENCH / "results" / f"{kind}-{stamp}.md")
    parts = [s.strip() for s in args.parts.split(",") if s.strip()]
    for part in parts:
        if part not in ("cpu", "capacity", "plan"):
            ap.error(f"unknown part {part!r}")
    p = Params(
        quick=q,
        cpu_sessions=[int(x) for x in args.cpu_sessions.split(",") if x.strip()],
        cpu_repeats=args.cpu_repeats or (1 if q else 3),
        warmup=args.warmup if args.warmup is not None else (1.0 if q else 1.5),
        measure=args.measure if args.measure is not None else (2.0 if q else 4.0),
        rate=args.rate,
        loadgen_procs=args.loadgen_procs,
        quota=args.quota,
        period_us=args.period_us,
        p99_bound_ms=args.p99_bound,
        ramp_repeats=args.ramp_repeats or (1 if q else 2),
        step=args.step or (0.1 if q else 0.06),
        max_levels=args.max_levels,
        margin=args.margin,
        plan_repeats=args.plan_repeats or (1 if q else 2),
        plan_sessions=args.plan_sessions,
        parts=parts,
        python=args.python,
        node=args.node,
        max_minutes=args.max_minutes or (8.0 if q else 25.0),
        quiet_wait=args.quiet_wait if args.quiet_wait is not None else (3.0 if q else 10.0),
        max_other_cpu=args.max_other_cpu,
        max_attempts=args.max_attempts or (1 if q else 2),
        source=args.source,
        pin=args.pin,
    )
    return p, args


def rerender(raw_jsons: list[str], args: argparse.Namespace) -> int:
    """Tables from the raw JSON of earlier runs. Several are pooled: their repeats (rounds) are
    numbered on per part, so medians are over all of them."""
    runs: list[Run] = []
    metas = []
    for raw_json in raw_jsons:
        data = json.loads(Path(raw_json).read_text())
        metas.append(data["meta"])
        loaded = [Run(**r) for r in data["runs"]]
        for part in {r.part for r in loaded}:
            offset = max((r.repeat + 1 for r in runs if r.part == part), default=0)
            for r in loaded:
                if r.part == part:
                    r.repeat += offset
        runs += loaded
    meta = metas[0]
    if len(metas) > 1:
        digests = {(m.get("source") or {}).get("src_sha1") for m in metas}
        if len(digests) > 1:
            raise SystemExit("only runs of the same bridge source can be pooled")
        meta = {
            **meta,
            "command": "; ".join(m["command"] for m in metas),
            "elapsed_s": sum(m["elapsed_s"] for m in metas),
            "incomplete": any(m.get("incomplete") for m in metas),
            "interrupted": any(m.get("interrupted") for m in metas),
            "machine": {
                **meta["machine"],
                "date": ", ".join(m["machine"]["date"] for m in metas),
            },
        }
    emit(runs, meta, args)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; Ctrl-C/SIGTERM still kill every child and remove the cgroups."""
    p, args = parse_args(argv)
    if args.render:
        return rerender(args.render, args)

    async def runner() -> int:
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        assert task is not None
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        return await bench(p, args)

    try:
        return asyncio.run(runner())
    except (asyncio.CancelledError, KeyboardInterrupt):
        print("interrupted; child processes stopped, cgroups removed", file=sys.stderr)
        return 130


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
