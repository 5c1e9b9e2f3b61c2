"""Workers benchmark: how the bridge scales with ``WORKERS``, with the machine not the limit.

On a 2-core machine one worker and its load generator already fill both cores, so raw
throughput with 2 workers cannot show the design's scaling. This script measures instead:

(a) **CPU per message.** The same load, paced (100 to 400 sessions × 50 events/s each way, as
    bench/relay.py) and flat out (100 and 200 sessions, each keeping ``--flat-window`` frames in
    flight: the load at which one worker and its load generator fill both cores), against the
    bridge with ``WORKERS=1`` (one process, no supervisor) and
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

    .venv/bin/python bench/workers.py            # full run (~28 min on 2 cores, at most 45)
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
import contextlib
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))


from benchutil import (
    Proc,
    free_port,
    machine_description,
    pin,
    wait_quiet,
)
from relay import PEERS, ensure_node_peers
from workers_cgroups import CpuCgroups
from workers_model import (
    BENCH,
    CAPACITY_CONFIGS,
    CPU_CONFIGS,
    DEFAULT_PYTHON,
    DIRECT,
    ONE,
    OTHER_CPUS,
    ROOT,
    SLOTS,
    TWO_REDIS,
    Params,
    Run,
    _median,
    planned_per_core,
)
from workers_report import capacities, report
from workers_runs import _SOURCE, Ctx, run_once

# ---- the three parts -------------------------------------------------------------------------


def _left(ctx: Ctx) -> bool:
    return time.monotonic() < ctx.deadline


def _numbers(given: str | None, default: str) -> list[int]:
    """A comma-separated list of session counts (``''``: none)."""
    return [int(x) for x in (default if given is None else given).split(",") if x.strip()]


def _progress(r: Run, t_start: float) -> str:
    head = (
        f"[{time.monotonic() - t_start:5.0f}s] {r.part:<8} {r.config:<5} N={r.sessions:<4}"
        f" #{r.repeat}" + (f" flat window {r.window}" if r.mode == "flat" else "")
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
    loads = [(n, False) for n in p.cpu_sessions] + [(n, True) for n in p.cpu_flat_sessions]
    for rep in range(p.cpu_repeats):
        k = rep % len(configs)
        for n, flat in loads:
            for config in configs[k:] + configs[:k]:
                if not _left(ctx):
                    return
                await _run(ctx, runs, t_start, "cpu", config, n, rep, flat=flat)


def _estimate(runs: list[Run], p: Params) -> int:
    """Sessions one process should hold at the quota, from (a)'s µs/msg for WORKERS=1 at its
    largest N (the closest to saturation), else 20 µs."""
    n_max = max(p.cpu_sessions, default=0)
    us = _median(
        [
            r.us_per_msg
            for r in runs
            if r.part == "cpu"
            and r.mode == "paced"
            and r.config == ONE
            and r.ok
            and r.sessions == n_max
        ]
    )
    return max(4, int(p.quota * 1e6 / ((us or 20.0) * 2 * p.rate)))


async def part_capacity(ctx: Ctx, runs: list[Run], t_start: float) -> None:
    """(b) Paired ramps: at each level k, every configuration still in the ramp runs once, back
    to back (order rotated), with k sessions per process (k for one process, 2k for two), so a
    spell of load from outside hits them all alike. A configuration leaves the ramp after two
    failures in a row; its capacity in the round is the highest N that passed (one that passed
    none is probed below the start). Later rounds start two steps below the lowest capacity of
    the round before."""
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
        await _probe_below(ctx, runs, t_start, rep, k0, step)


#: How many steps below the start a configuration that never passed is probed.
PROBE_STEPS_BELOW = 4


async def _probe_below(
    ctx: Ctx, runs: list[Run], t_start: float, rep: int, k0: int, step: int
) -> None:
    """A configuration that failed its first levels without passing one (a spell of load from
    outside, or a start above its capacity) is run again below the start, one step at a time,
    until it passes, so the round still has a capacity for it rather than none."""
    limit = (ctx.p.quota, ctx.p.period_us)
    for config in CAPACITY_CONFIGS:
        k = k0 - step
        while _round_capacity(runs, config, rep) is None and k >= max(
            step, k0 - PROBE_STEPS_BELOW * step
        ):
            if not _left(ctx):
                return
            await _run(ctx, runs, t_start, "capacity", config, k * SLOTS[config], rep, limit)
            k -= step


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
        "--cpu-sessions",
        default=None,
        help="(a) comma-separated N, paced (100,200,300,400; quick 100)",
    )
    ap.add_argument(
        "--cpu-repeats", type=int, default=None, help="(a) runs per config (3; quick 1)"
    )
    ap.add_argument(
        "--cpu-flat-sessions",
        default=None,
        help="(a) comma-separated N driven flat out; '' for none (100,200; quick 100)",
    )
    ap.add_argument(
        "--flat-window", type=int, default=2, help="(a) frames in flight per session flat out (2)"
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
        "--max-minutes", type=float, default=None, help="time limit, minutes (45; quick 8)"
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
        cpu_sessions=_numbers(args.cpu_sessions, "100" if q else "100,200,300,400"),
        cpu_repeats=args.cpu_repeats or (1 if q else 3),
        cpu_flat_sessions=_numbers(args.cpu_flat_sessions, "100" if q else "100,200"),
        flat_window=args.flat_window,
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
        max_minutes=args.max_minutes or (8.0 if q else 45.0),
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
