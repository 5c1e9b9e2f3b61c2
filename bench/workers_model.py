"""bench/workers.py's configurations, knobs and per-run numbers, and the sums over them that
both the runs and the report use."""

from __future__ import annotations

import os
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

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
    #: (a) flat out: sessions, each keeping ``flat_window`` frames in flight (no pacing)
    cpu_flat_sessions: list[int]
    flat_window: int
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
    #: "paced" (``rate`` events/s per session each way) or "flat" (``window`` frames in flight)
    mode: str = "paced"
    window: int = 0
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


# ---- sums ------------------------------------------------------------------------------------


def _median(values: Sequence[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def planned_per_core(capacity: float, p: Params) -> int:
    """Sessions per full core at the planning margin, from one quota-slot's capacity."""
    return int(capacity / p.quota * p.margin)
