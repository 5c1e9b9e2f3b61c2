"""bench/workers.py's tables: plain text for the terminal and a markdown section, from the runs."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))


from relay_report import _md_table, _text_table
from workers_model import (
    CAPACITY_CONFIGS,
    CPU_CONFIGS,
    DIRECT,
    LABELS,
    MIXED,
    NODE,
    ONE,
    PAIR,
    PROCS_NOTE,
    SLOTS,
    SUPERVISED,
    TWO,
    TWO_REDIS,
    Params,
    Run,
    _median,
)

# ---- aggregation -----------------------------------------------------------------------------


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


def _load(p: Any, mode: str, n: int) -> str:
    """The load of one (a) table, in words."""
    if mode == "paced":
        return f"{n} sessions × {p.rate:.0f} events/s each way"
    window = getattr(p, "flat_window", 0)
    return f"{n} sessions flat out ({window} frames in flight each)"


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
    for mode, n in sorted(
        {(r.mode, r.sessions) for r in cpu}, key=lambda k: (k[0] != "paced", k[1])
    ):
        level = [r for r in cpu if r.sessions == n and r.mode == mode]
        load = _load(p, mode, n)
        at = f"N={n}" if mode == "paced" else f"N={n} flat out"
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
            f"(a) CPU per message: {load}, no quota",
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
                f"(a) {at}: CPU per message, WORKERS=2 ≤ 1.1× WORKERS=1",
                _f(r21, "{:.2f}×") + (f" (per repeat {paired})" if paired else ""),
                _yes(None if r21 is None else r21 <= 1.1),
            ]
        )
        if by_cfg.get(TWO_REDIS):
            r_store = _ratio(us[TWO_REDIS], us[ONE])
            redis_cpu = _median([r.redis_cpu_pct for r in by_cfg[TWO_REDIS] if r.ok])
            checks.append(
                [
                    f"(a) {at}: CPU per message, WORKERS=2 with REDIS_URL ≤ 1.1× WORKERS=1",
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
                    f"(a) {at}, reference: WORKERS=2 with REDIS_URL vs without (what the store"
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
                f"(a) {at}, reference: WORKERS=2 vs 2 independent bridges (same load per process)",
                _f(_ratio(us[TWO], us[PAIR]), "{:.2f}×")
                + (f" (per repeat {pp})" if (pp := _paired_ratios(level, TWO, PAIR)) else ""),
                "—",
            ]
        )
        checks.append(
            [
                f"(a) {at}, reference: WORKERS=2 vs 2 independent bridges fed alike",
                _f(_ratio(us[TWO], us[MIXED]), "{:.2f}×")
                + (f" (per repeat {pm})" if (pm := _paired_ratios(level, TWO, MIXED)) else ""),
                "—",
            ]
        )
        checks.append(
            [
                f"(a) {at}, reference: WORKERS=1 vs Node",
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
