"""One run of bench/workers.py: start a configuration's relay processes, drive the load, read
/proc, tear everything down."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


from benchutil import (
    CpuMark,
    Proc,
    context_switches,
    cpu_mark,
    free_port,
    pin,
    process_tree,
    rss_kb,
)
from relay import PEERS, READY_RELAY, _split, bridge_env, loadgens_ready, loadgens_results
from relay import parse_args as relay_parse_args
from workers_cgroups import CpuCgroups
from workers_model import (
    DIRECT,
    MIXED,
    NODE,
    ONE,
    OTHER_CPUS,
    PAIR,
    READY_BRIDGE,
    RELAY_CPUS,
    SUPERVISED,
    TWO,
    TWO_REDIS,
    WORKER_ENV,
    Params,
    Run,
)

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
    flat: bool = False,
) -> Run:
    """Start ``config``, optionally put each process into its own cgroup at ``limit`` (cores per
    slot, period µs), drive ``n`` sessions (paced, or with ``flat`` each keeping
    ``flat_window`` frames in flight), measure a window, tear everything down."""
    p = ctx.p
    res = Run(part=part, config=config, sessions=n, repeat=rep)
    if flat:
        res.mode, res.window = "flat", p.flat_window
    if limit is not None:
        res.limit_cores, res.period_us = limit
    target: Started | None = None
    lgs: list[Proc] = []
    sample_files: list[Path] = []
    tag = f"{part}-{res.mode}-{n}-r{rep}"
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
                *("--rate", str(p.rate), "--mode", res.mode, "--window", str(p.flat_window)),
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
        res.connected, failures = await loadgens_ready(lgs)
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
        results = await loadgens_results(lgs, timeout=30)
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
