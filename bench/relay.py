"""Relay benchmark: direct vs minimal relays (Node ws, aiohttp, websockets, picows) vs the bridge.

Everything runs on loopback against one Node ``ws`` echo upstream (every text frame is sent
straight back). A Node load generator (pre-built ~1.37 KB ``input_audio_buffer.append`` frames,
several processes) drives N realtime sessions at 50 events/s each way, or one session flat out,
and measures round-trip times; this script samples the relay's CPU time and RSS from /proc.
Each configuration is repeated and medians are reported. Not a test: it prints numbers.

    .venv/bin/python bench/relay.py            # full run, 3 repeats (~15 min on 2 cores)
    make bench                                 # as in docs/benchmarks.md: 5 repeats (~25 min)
    .venv/bin/python bench/relay.py --quick    # ~2 min smoke run

Output: a table on stdout, the same as markdown in docs/benchmarks.md (``--markdown``) and the
raw per-run numbers as JSON under bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchutil import (
    CpuMark,
    Proc,
    bridge_process_env,
    cpu_mark,
    free_port,
    machine_description,
    process_tree,
    rss_kb,
    wait_quiet,
)
from relay_report import render_markdown, render_text

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PEERS = BENCH / "peers"
DEFAULT_PYTHON = ROOT / ".venv" / "bin" / "python"
ALL_CONFIGS = (
    "direct",
    "node",
    "aiohttp",
    "aiohttp+uvloop",
    "websockets",
    "websockets+uvloop",
    "picows+uvloop",
    "bridge",
)
#: ``metrics-ab``: two bridges at once, metrics on and off, each serving half the sessions
#: (paced only). Measured in the same window, the machine's drift cancels out of their
#: difference, which run-to-run comparisons cannot resolve (it is smaller than their noise).
METRICS_AB = "metrics-ab"
EXTRA_CONFIGS = ("node-parse", "bridge-nometrics", METRICS_AB)
READY_RELAY = r"relay listening (\d+)"
READY_BRIDGE = r"realtime-bridge listening ws://[^\s:]+:(\d+)"


@dataclass
class Params:
    """Knobs of one benchmark run (set from the command line)."""

    sessions: list[int]
    repeats: int
    warmup: float
    measure: float
    flat_warmup: float
    flat_seconds: float
    flat_window: int
    rate: float
    loadgen_procs: int
    python: str
    node: str
    bridge_metrics: str
    bridge_start_timeout: float
    configs: list[str]
    skip_flat: bool
    max_other_cpu: float
    max_attempts: int
    quiet_wait: float


@dataclass
class RunResult:
    """Numbers from one (config, workload, repeat) run."""

    config: str
    mode: str  # "paced" or "flat"
    sessions: int
    repeat: int
    ok: bool = True
    error: str | None = None
    connected: int = 0
    p50_ms: float | None = None
    p99_ms: float | None = None
    p999_ms: float | None = None
    max_ms: float | None = None
    samples: int = 0
    sent: int = 0
    received: int = 0
    lost: int = 0
    reordered: int = 0
    misrouted: int = 0
    foreign: int = 0
    closed_early: int = 0
    window_s: float = 0.0
    relayed_msgs: int = 0
    msgs_per_s_up: float | None = None
    msgs_per_s_down: float | None = None
    relay_cpu_pct: float | None = None
    relay_us_per_msg: float | None = None
    rss_base_kb: int | None = None
    rss_peak_kb: int | None = None
    kb_per_session: float | None = None
    echo_cpu_pct: float | None = None
    loadgen_cpu_pct: float | None = None
    host_cpu_pct: float | None = None
    other_cpu_pct: float | None = None
    kernel_cpu_pct: float | None = None
    steal_pct: float | None = None
    attempts: int = 1
    extra: dict[str, Any] = field(default_factory=dict)


# ---- peers ---------------------------------------------------------------------------------


def ensure_node_peers(node: str) -> None:
    """Install the ``ws`` package into bench/peers/ (npm install --prefix) when missing."""
    if (PEERS / "node_modules" / "ws" / "package.json").exists():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit("npm not found: install Node.js >= 18 with npm to run the Node peers")
    print("installing bench/peers node_modules (ws) ...", flush=True)
    cmd = [npm, "ci" if (PEERS / "package-lock.json").exists() else "install"]
    subprocess.run(
        [*cmd, "--prefix", str(PEERS), "--no-audit", "--no-fund", "--loglevel=error"],
        check=True,
        timeout=300,
        cwd=PEERS,
    )


def relay_argv(config: str, p: Params, upstream: str) -> list[str]:
    """Command line of a minimal relay peer."""
    if config in ("node", "node-parse"):
        argv = [p.node, str(PEERS / "node-relay.js"), "--port", "0", "--upstream", upstream]
        return [*argv, "--parse"] if config == "node-parse" else argv
    lib, _, loop = config.partition("+")
    argv = [p.python, str(PEERS / f"{lib}_relay.py"), "--port", "0", "--upstream", upstream]
    return [*argv, "--uvloop"] if loop == "uvloop" else argv


def bridge_env(
    p: Params, ws_port: int, http_port: int, echo_port: int, metrics: bool
) -> dict[str, str]:
    """Environment for ``python -m realtime_bridge`` pointed at the echo upstream."""
    env = bridge_process_env(
        WS_PORT=str(ws_port),
        HTTP_PORT=str(http_port),
        UPSTREAM="openai",
        OPENAI_API_KEY="sk-bench",
        OPENAI_REALTIME_URL=f"ws://127.0.0.1:{echo_port}/v1/realtime",
        LOG_LEVEL="info",  # the default: "with metrics and logging on"
        MAX_SESSIONS="10000",
    )
    if not metrics:
        env["METRICS_ENABLED"] = "false"
    return env


async def start_target(
    config: str, p: Params, echo_port: int, log_dir: Path, tag: str
) -> tuple[Proc | None, str]:
    """Start the relay for ``config``; return (process or None for direct, client URL)."""
    upstream = f"ws://127.0.0.1:{echo_port}/v1/realtime"
    if config == "direct":
        return None, f"{upstream}?model=x"
    if config.startswith("bridge"):
        metrics = config == "bridge" and p.bridge_metrics != "off"
        ws_port, http_port = free_port(), free_port()
        proc = Proc(
            f"{config}-{tag}",
            [p.python, "-m", "realtime_bridge"],
            log_dir=log_dir,
            env=bridge_env(p, ws_port, http_port, echo_port, metrics),
            cwd=log_dir,  # no stray .env
        )
        pattern, timeout = READY_BRIDGE, p.bridge_start_timeout
    else:
        proc = Proc(f"{config}-{tag}", relay_argv(config, p, upstream), log_dir=log_dir)
        pattern, timeout = READY_RELAY, 20.0
    await proc.start()
    try:
        m = await proc.wait_line(pattern, timeout=timeout)
    except BaseException:
        await proc.stop()
        raise
    return proc, f"ws://127.0.0.1:{int(m.group(1))}/v1/realtime?model=x"


# ---- one run -------------------------------------------------------------------------------


async def loadgens_ready(lgs: list[Proc]) -> tuple[int, list[str]]:
    """Wait for each load generator's ``ready`` line: sessions connected in all, and why the
    others failed."""
    connected = 0
    failures = []
    for lg in lgs:
        m = await lg.wait_line(r"^ready (.*)", timeout=60)
        info = json.loads(m.group(1))
        connected += info["connected"]
        if info["failed"]:
            failures.append(f"{info['failed']} sessions failed to connect: {info['error']}")
    return connected, failures


async def loadgens_results(lgs: list[Proc], timeout: float) -> list[dict[str, Any]]:
    """Stop every load generator and read back its ``result`` line."""
    for lg in lgs:
        await lg.send("stop")
    results = []
    for lg in lgs:
        m = await lg.wait_line(r"^result (.*)", timeout=timeout)
        results.append(json.loads(m.group(1)))
    return results


def _split(n: int, k: int) -> list[tuple[int, int]]:
    """Split n sessions into k (first, count) chunks."""
    k = max(1, min(k, n))
    base, extra = divmod(n, k)
    out, first = [], 0
    for i in range(k):
        cnt = base + (1 if i < extra else 0)
        out.append((first, cnt))
        first += cnt
    return out


async def run_one(
    config: str, mode: str, n: int, rep: int, p: Params, echo: Proc, echo_port: int, log_dir: Path
) -> RunResult:
    """Start the relay, drive it with the load generator(s), measure, tear everything down."""
    res = RunResult(config=config, mode=mode, sessions=n, repeat=rep)
    relay: Proc | None = None
    relay_b: Proc | None = None  # metrics-ab: the bridge with metrics off
    lgs: list[Proc] = []
    sample_files: list[Path] = []
    tag = f"{mode}{n}-r{rep}"
    try:
        ab = config == METRICS_AB
        relay, url = await start_target("bridge" if ab else config, p, echo_port, log_dir, tag)
        urls = [url]
        if ab:
            relay_b, url_b = await start_target("bridge-nometrics", p, echo_port, log_dir, tag)
            # Which load generator drives which bridge alternates, in case they differ.
            urls = [url, url_b] if rep % 2 == 0 else [url_b, url]
        await asyncio.sleep(0.5)  # let it settle before the RSS baseline
        if relay is not None:
            res.rss_base_kb = rss_kb(process_tree(relay.pid))
        chunks = _split(n, max(p.loadgen_procs, 2 if ab else 1) if mode == "paced" else 1)
        for i, (first, cnt) in enumerate(chunks):
            url = urls[i % len(urls)]
            sample_file = log_dir / f"{config}-{tag}-{i}.f64"
            argv = [
                p.node,
                str(PEERS / "loadgen.js"),
                *("--url", url, "--sessions", str(cnt), "--first", str(first)),
                *("--rate", str(p.rate), "--mode", mode, "--window", str(p.flat_window)),
                *("--samples-file", str(sample_file), "--max-seconds", "300"),
            ]
            lg = Proc(f"loadgen-{config}-{tag}-{i}", argv, log_dir=log_dir, stdin=True)
            sample_files.append(sample_file)
            await lg.start()
            lgs.append(lg)
        res.connected, failures = await loadgens_ready(lgs)
        if res.connected == 0:
            raise RuntimeError("; ".join(failures) or "no session connected")
        if failures:
            res.error = "; ".join(failures)
        for lg in lgs:
            await lg.send("go")
        await asyncio.sleep(p.warmup if mode == "paced" else p.flat_warmup)
        groups = {
            "echo": [echo.pid],
            "loadgen": [lg.pid for lg in lgs],
            "kernel": process_tree(2),  # kthreadd and its children (ksoftirqd: loopback TCP)
        }
        if relay is not None:
            groups["relay"] = process_tree(relay.pid)
        if relay_b is not None:
            groups["relay_b"] = process_tree(relay_b.pid)
        for lg in lgs:
            await lg.send("mark")
        m0 = cpu_mark(groups)
        seconds = p.measure if mode == "paced" else p.flat_seconds
        rss_peak = 0
        for _ in range(4):
            await asyncio.sleep(seconds / 4)
            if relay is not None:
                rss_peak = max(rss_peak, rss_kb(process_tree(relay.pid)))
        m1 = cpu_mark(groups)
        results = await loadgens_results(lgs, timeout=20)
        for proc in (relay, relay_b):
            if proc is not None and not proc.alive():
                raise RuntimeError(f"relay died: {proc.tail()}")
        _fill(res, results, sample_files, m0, m1, rss_peak, n)
        if ab:
            _fill_ab(res, results, urls, url, m0, m1)
    except Exception as exc:  # report the row as failed/unavailable, carry on
        res.ok = False
        res.error = f"{type(exc).__name__}: {exc}"[:500]
    finally:
        for lg in lgs:
            await lg.stop(grace=1.0)
        for proc in (relay, relay_b):
            if proc is not None:
                await proc.stop()
    return res


def _fill_ab(
    res: RunResult,
    results: list[dict[str, Any]],
    urls: list[str],
    url_on: str,
    m0: CpuMark,
    m1: CpuMark,
) -> None:
    """metrics-ab: each bridge's CPU per message from the load generators that drove it."""
    msgs = {"relay": 0, "relay_b": 0}
    for i, r in enumerate(results):
        side = "relay" if urls[i % len(urls)] == url_on else "relay_b"
        msgs[side] += int(r["window_sent"]) + int(r["window_received"])
    us = {
        side: 1e6 * (m1.groups[side] - m0.groups[side]) / count
        for side, count in msgs.items()
        if count
    }
    res.relay_us_per_msg = us.get("relay")
    res.extra["metrics_off_us_per_msg"] = us.get("relay_b")
    on, off = us.get("relay"), us.get("relay_b")
    if on is not None and off:
        res.extra["metrics_cost_pct"] = 100 * (on - off) / off
    res.kb_per_session = None  # two processes: not comparable with the other rows


def _fill(
    res: RunResult,
    results: list[dict[str, Any]],
    sample_files: list[Path],
    m0: CpuMark,
    m1: CpuMark,
    rss_peak: int,
    n: int,
) -> None:
    """Combine load-generator results and /proc readings into ``res``."""
    for key in ("sent", "received", "lost", "reordered", "misrouted", "foreign", "closed_early"):
        setattr(res, key, sum(int(r[key]) for r in results))
    res.window_s = max(float(r["window_s"]) for r in results)
    up = sum(int(r["window_sent"]) for r in results)
    down = sum(int(r["window_received"]) for r in results)
    res.relayed_msgs = up + down
    res.msgs_per_s_up = up / res.window_s
    res.msgs_per_s_down = down / res.window_s
    arrays = [np.fromfile(f, dtype=np.float64) for f in sample_files]
    rtt = np.concatenate(arrays) if arrays else np.empty(0)
    res.samples = int(rtt.size)
    if rtt.size:
        p50, p99, p999 = np.percentile(rtt, [50, 99, 99.9])
        res.p50_ms, res.p99_ms, res.p999_ms = float(p50), float(p99), float(p999)
        res.max_ms = float(rtt.max())
    wall = m1.wall - m0.wall
    res.echo_cpu_pct = 100 * (m1.groups["echo"] - m0.groups["echo"]) / wall
    res.loadgen_cpu_pct = 100 * (m1.groups["loadgen"] - m0.groups["loadgen"]) / wall
    res.host_cpu_pct = 100 * (m1.host_busy - m0.host_busy) / wall
    res.steal_pct = 100 * (m1.host_steal - m0.host_steal) / wall
    ours = sum(m1.groups[k] - m0.groups[k] for k in m0.groups)
    res.kernel_cpu_pct = 100 * (m1.groups["kernel"] - m0.groups["kernel"]) / wall
    irq = 100 * (m1.host_irq - m0.host_irq) / wall
    res.other_cpu_pct = max(0.0, res.host_cpu_pct - irq - 100 * ours / wall)
    if "relay" in m0.groups:
        cpu = m1.groups["relay"] - m0.groups["relay"]
        res.relay_cpu_pct = 100 * cpu / wall
        if res.relayed_msgs:
            res.relay_us_per_msg = 1e6 * cpu / res.relayed_msgs
        if res.rss_base_kb is not None and rss_peak:
            res.rss_peak_kb = rss_peak
            res.kb_per_session = (rss_peak - res.rss_base_kb) / n


# ---- aggregation -----------------------------------------------------------------------------


def _median(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def aggregate(runs: list[RunResult]) -> dict[tuple[str, str, int], dict[str, Any]]:
    """Medians over repeats per (config, mode, sessions); losses summed."""
    groups: dict[tuple[str, str, int], list[RunResult]] = {}
    for r in runs:
        groups.setdefault((r.config, r.mode, r.sessions), []).append(r)
    out: dict[tuple[str, str, int], dict[str, Any]] = {}
    for key, rs in groups.items():
        ok = [r for r in rs if r.ok]
        agg: dict[str, Any] = {"runs": len(rs), "ok_runs": len(ok)}
        agg["errors"] = sorted({r.error for r in rs if r.error})
        for name in (
            "p50_ms",
            "p99_ms",
            "p999_ms",
            "relay_cpu_pct",
            "relay_us_per_msg",
            "kb_per_session",
            "echo_cpu_pct",
            "loadgen_cpu_pct",
            "host_cpu_pct",
            "other_cpu_pct",
            "kernel_cpu_pct",
            "steal_pct",
            "msgs_per_s_up",
            "msgs_per_s_down",
        ):
            agg[name] = _median([getattr(r, name) for r in ok])
        for name in ("lost", "reordered", "misrouted", "closed_early"):
            agg[name] = sum(getattr(r, name) for r in ok)
        agg["sent"] = sum(r.sent for r in ok)
        agg["p99_ms_all"] = [r.p99_ms for r in ok]
        agg["us_per_msg_all"] = [r.relay_us_per_msg for r in ok]
        agg["metrics_cost_pct_all"] = [
            r.extra["metrics_cost_pct"] for r in ok if "metrics_cost_pct" in r.extra
        ]
        agg["metrics_off_us_per_msg"] = _median([r.extra.get("metrics_off_us_per_msg") for r in ok])
        # [repeat, µs/msg]: lets two configs be compared run by run (see relay_report).
        agg["us_per_msg_by_repeat"] = [[r.repeat, r.relay_us_per_msg] for r in ok]
        agg["failed_sessions"] = sum(r.sessions - r.connected for r in ok)
        agg["retries"] = sum(r.attempts - 1 for r in rs)
        out[key] = agg
    return out


# ---- main --------------------------------------------------------------------------------------


def plan(p: Params) -> list[tuple[str, str, int, int]]:
    """(config, mode, sessions, repeat) in run order; the config order rotates per repeat."""
    steps = []
    for rep in range(p.repeats):
        k = rep % len(p.configs)
        order = p.configs[k:] + p.configs[:k]
        for n in p.sessions:
            steps += [(c, "paced", n, rep) for c in order]
        if not p.skip_flat:
            steps += [(c, "flat", 1, rep) for c in order if c != METRICS_AB]
    return steps


async def probe_bridge(p: Params, echo_port: int, log_dir: Path) -> str | None:
    """Try to start the bridge once; return None if it works, else why not."""
    try:
        proc, _ = await start_target("bridge", p, echo_port, log_dir, "probe")
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"[:300]
    assert proc is not None
    await proc.stop()
    return None


async def bench(p: Params, args: argparse.Namespace) -> int:
    """Run everything; print and write the results."""
    ensure_node_peers(p.node)
    log_dir = Path(tempfile.mkdtemp(prefix="relay-bench-"))
    echo = Proc("echo", [p.node, str(PEERS / "echo-server.js"), "--port", "0"], log_dir=log_dir)
    runs: list[RunResult] = []
    unavailable: dict[str, str] = {}
    t_start = time.monotonic()
    try:
        await echo.start()
        echo_port = int((await echo.wait_line(r"echo listening (\d+)", timeout=20)).group(1))
        if any(c.startswith("bridge") for c in p.configs):
            why = await probe_bridge(p, echo_port, log_dir)
            if why is not None:
                print(f"bridge unavailable: {why}", flush=True)
                for c in [c for c in p.configs if c.startswith("bridge")]:
                    unavailable[c] = why
                    p.configs.remove(c)
        steps = plan(p)
        for i, (config, mode, n, rep) in enumerate(steps, 1):
            if not echo.alive():
                raise RuntimeError(f"echo upstream died: {echo.tail()}")
            for attempt in range(1, p.max_attempts + 1):
                await wait_quiet(p.max_other_cpu, max_wait=p.quiet_wait)
                r = await asyncio.wait_for(
                    run_one(config, mode, n, rep, p, echo, echo_port, log_dir), timeout=180
                )
                r.attempts = attempt
                contended = r.ok and (r.other_cpu_pct or 0) + (r.steal_pct or 0) > p.max_other_cpu
                if not contended or attempt == p.max_attempts:
                    break
                print(f"  retry: {r.other_cpu_pct:.0f}% CPU used by other processes", flush=True)
            runs.append(r)
            print(_progress(i, len(steps), r, time.monotonic() - t_start), flush=True)
    finally:
        await echo.stop()
    elapsed = time.monotonic() - t_start
    agg = aggregate(runs)
    machine = machine_description(p.python, p.node, PEERS)
    meta = {
        "machine": machine,
        "params": asdict(p),
        "elapsed_s": round(elapsed),
        "command": " ".join(["bench/relay.py", *sys.argv[1:]]),
        "unavailable": unavailable,
        "all_configs": [*p.configs, *unavailable],
    }
    emit(agg, meta, args.markdown)
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"meta": meta, "runs": [asdict(r) for r in runs]}, indent=1))
        print(f"wrote {path}")
    shutil.rmtree(log_dir, ignore_errors=True)
    return 0


def emit(agg: dict[tuple[str, str, int], dict[str, Any]], meta: dict[str, Any], md: str) -> None:
    """Print the tables; write the markdown report when ``md`` is a path."""
    print()
    print(render_text(agg, meta))
    if md:
        path = Path(md)
        path.parent.mkdir(parents=True, exist_ok=True)
        kept = other_sections(path.read_text()) if path.is_file() else ""
        path.write_text(render_markdown(agg, meta).rstrip("\n") + "\n" + kept)
        print(f"wrote {path}")


#: A section another benchmark writes into the same file: ``## Title (`bench/<script>.py`)``.
_OTHER_SECTION = re.compile(r"^## .*\(`bench/(?!relay\.py)[\w./-]+`\)", re.M)


def other_sections(text: str) -> str:
    """The sections of ``text`` that other benchmarks own (from the first of them to the end),
    kept when this one rewrites its part of the file."""
    found = _OTHER_SECTION.search(text)
    return "\n" + text[found.start() :] if found else ""


def rerender(raw_jsons: list[str], md: str) -> int:
    """Rebuild the tables and the markdown from the raw JSON of earlier runs. Several runs of the
    same command are pooled, their repeats numbered on, so the medians are over all of them."""
    runs: list[RunResult] = []
    metas = []
    for raw_json in raw_jsons:
        data = json.loads(Path(raw_json).read_text())
        metas.append(data["meta"])
        offset = max((r.repeat + 1 for r in runs), default=0)
        runs += [RunResult(**{**r, "repeat": r["repeat"] + offset}) for r in data["runs"]]
    meta = metas[0]
    if len(metas) > 1:
        if len({json.dumps(m["params"], sort_keys=True) for m in metas}) > 1:
            raise SystemExit("only runs with the same parameters can be pooled")
        meta = {
            **meta,
            "params": {**meta["params"], "repeats": sum(m["params"]["repeats"] for m in metas)},
            "elapsed_s": sum(m["elapsed_s"] for m in metas),
            "pooled_runs": len(metas),
            "command": f"{meta['command']}, {len(metas)} runs pooled ("
            + ", ".join(m["machine"]["date"] for m in metas)
            + ")",
        }
    emit(aggregate(runs), meta, md)
    return 0


def _progress(i: int, total: int, r: RunResult, elapsed: float) -> str:
    head = (
        f"[{i:3d}/{total} {elapsed:5.0f}s] {r.config:<18} {r.mode:<5} N={r.sessions:<4} #{r.repeat}"
    )
    if not r.ok:
        return f"{head} FAILED {r.error}"
    parts = [f"p50 {r.p50_ms:.2f} p99 {r.p99_ms:.2f} ms", f"lost {r.lost}"]
    if r.mode == "flat":
        parts.append(f"{r.msgs_per_s_down:,.0f} msg/s")
    if r.relay_cpu_pct is not None:
        parts.append(f"cpu {r.relay_cpu_pct:.0f}% {r.relay_us_per_msg:.1f}us/msg")
    if r.kb_per_session is not None and r.mode == "paced":
        parts.append(f"{r.kb_per_session:.1f} KB/sess")
    parts.append(
        f"host {r.host_cpu_pct:.0f}% lg {r.loadgen_cpu_pct:.0f}% echo {r.echo_cpu_pct:.0f}%"
        f" other {r.other_cpu_pct:.0f}%"
    )
    return f"{head} " + " | ".join(parts) + (f" ({r.error})" if r.error else "")


def parse_args(argv: list[str] | None = None) -> tuple[Params, argparse.Namespace]:
    """Command line → (Params, raw namespace)."""
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--quick", action="store_true", help="smoke run: 1 repeat, short windows (~2 min)"
    )
    ap.add_argument(
        "--sessions", default="10,100,200", help="comma-separated N (default 10,100,200)"
    )
    ap.add_argument(
        "--repeats", type=int, default=None, help="repeats per config (default 3, quick 1)"
    )
    ap.add_argument("--warmup", type=float, default=None, help="seconds before measuring (paced)")
    ap.add_argument(
        "--measure", type=float, default=None, help="measurement window, seconds (paced)"
    )
    ap.add_argument("--flat-seconds", type=float, default=None, help="flat-out measurement window")
    ap.add_argument("--flat-window", type=int, default=128, help="frames in flight when flat out")
    ap.add_argument("--no-flat", action="store_true", help="skip the flat-out throughput runs")
    ap.add_argument("--rate", type=float, default=50.0, help="events/s per session each way")
    ap.add_argument("--loadgen-procs", type=int, default=2, help="load-generator processes")
    ap.add_argument(
        "--configs",
        default=",".join(ALL_CONFIGS),
        help=f"comma-separated rows from {', '.join(ALL_CONFIGS + EXTRA_CONFIGS)}",
    )
    ap.add_argument(
        "--bridge-metrics",
        choices=("on", "off", "both"),
        default="on",
        help="off: run the bridge with METRICS_ENABLED=false; both: add a 'bridge-nometrics' row",
    )
    ap.add_argument(
        "--max-other-cpu",
        type=float,
        default=25.0,
        help="rerun a run when other processes (or steal) used more than this %% of a core",
    )
    ap.add_argument(
        "--max-attempts", type=int, default=None, help="attempts per run (default 2, quick 1)"
    )
    ap.add_argument(
        "--quiet-wait",
        type=float,
        default=None,
        help="wait up to this long before each run for an idle machine (default 30, quick 5)",
    )
    ap.add_argument("--bridge-start-timeout", type=float, default=20.0)
    ap.add_argument(
        "--python", default=str(DEFAULT_PYTHON if DEFAULT_PYTHON.exists() else sys.executable)
    )
    ap.add_argument("--node", default=shutil.which("node") or "node")
    ap.add_argument("--markdown", default=None, help="markdown output (default docs/benchmarks.md)")
    ap.add_argument(
        "--json", default=None, help="raw JSON output (default bench/results/relay-*.json)"
    )
    ap.add_argument(
        "--render",
        metavar="JSON",
        nargs="+",
        help="only re-render tables from raw JSON files (several runs of one command are pooled)",
    )
    args = ap.parse_args(argv)
    quick = args.quick
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    for c in configs:
        if c not in ALL_CONFIGS + EXTRA_CONFIGS:
            ap.error(f"unknown config {c!r}")
    if args.bridge_metrics == "both" and "bridge" in configs and "bridge-nometrics" not in configs:
        configs.insert(configs.index("bridge") + 1, "bridge-nometrics")
    if args.bridge_metrics == "both" and "bridge" in configs and METRICS_AB not in configs:
        configs.insert(configs.index("bridge-nometrics") + 1, METRICS_AB)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    if args.markdown is None:
        args.markdown = str(
            BENCH / "results" / "benchmarks-quick.md" if quick else ROOT / "docs" / "benchmarks.md"
        )
    if args.json is None:
        args.json = str(BENCH / "results" / f"relay-{'quick-' if quick else ''}{stamp}.json")
    p = Params(
        sessions=[int(s) for s in args.sessions.split(",") if s.strip()],
        repeats=args.repeats or (1 if quick else 3),
        warmup=args.warmup if args.warmup is not None else (0.7 if quick else 1.5),
        measure=args.measure if args.measure is not None else (2.0 if quick else 5.0),
        flat_warmup=0.5 if quick else 1.0,
        flat_seconds=args.flat_seconds
        if args.flat_seconds is not None
        else (1.5 if quick else 3.0),
        flat_window=args.flat_window,
        rate=args.rate,
        loadgen_procs=args.loadgen_procs,
        python=args.python,
        node=args.node,
        bridge_metrics=args.bridge_metrics,
        bridge_start_timeout=args.bridge_start_timeout,
        configs=configs,
        skip_flat=args.no_flat,
        max_other_cpu=args.max_other_cpu,
        max_attempts=args.max_attempts or (1 if quick else 2),
        quiet_wait=args.quiet_wait if args.quiet_wait is not None else (5.0 if quick else 30.0),
    )
    return p, args


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the benchmark; Ctrl-C/SIGTERM still kill every child."""
    p, args = parse_args(argv)
    if args.render:
        return rerender(args.render, args.markdown)

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
        print("interrupted; all child processes were stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
