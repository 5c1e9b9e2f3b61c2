"""Tables and the markdown report for bench/relay.py (pure functions of the aggregated numbers)."""

from __future__ import annotations

import re
import statistics
from collections.abc import Sequence
from typing import Any

Agg = dict[tuple[str, str, int], dict[str, Any]]
METRICS_AB = "metrics-ab"

LABELS = {
    "direct": "direct (floor)",
    "node": "Node ws relay",
    "node-parse": "Node ws relay, JSON parse",
    "aiohttp": "aiohttp",
    "aiohttp+uvloop": "aiohttp+uvloop",
    "websockets": "websockets",
    "websockets+uvloop": "websockets+uvloop",
    "picows+uvloop": "picows+uvloop",
    "bridge": "bridge",
    "bridge-nometrics": "bridge, metrics off",
    "metrics-ab": "bridge, metrics on | off side by side",
}

PACED_HEAD = [
    "relay",
    "p50 ms",
    "p99 ms",
    "+p50 ms",
    "+p99 ms",
    "p50 ×direct",
    "lost",
    "relay CPU %",
    "µs/msg",
    "µs/msg ×Node",
    "KB/session",
    "loadgen CPU %",
    "echo CPU %",
    "other CPU %",
]
FLAT_HEAD = [
    "relay",
    "msgs/s each way",
    "×Node",
    "relay CPU %",
    "loadgen CPU %",
    "echo CPU %",
    "host CPU %",
]


def _f(v: float | None, fmt: str = "{:.2f}") -> str:
    return "—" if v is None else fmt.format(v)


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b <= 0:
        return None
    return a / b


def _sub(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def sessions_of(agg: Agg) -> list[int]:
    """Session counts present in the paced results, ascending."""
    return sorted({n for (_, mode, n) in agg if mode == "paced"})


def paced_rows(
    agg: Agg, n: int, configs: Sequence[str], unavailable: dict[str, str]
) -> list[list[str]]:
    """One table row per config for the N-session realtime workload."""
    direct = agg.get(("direct", "paced", n), {})
    node = agg.get(("node", "paced", n), {})
    rows = []
    for c in configs:
        a = agg.get((c, "paced", n))
        if a is None or not a["ok_runs"]:
            why = unavailable.get(c) or (a["errors"][0] if a and a["errors"] else "no data")
            rows.append(
                [LABELS.get(c, c), f"unavailable ({why[:80]})", *[""] * (len(PACED_HEAD) - 2)]
            )
            continue
        is_direct = c == "direct"
        lost = f"{a['lost']}" + (
            f" (+{a['failed_sessions']} sess. failed)" if a["failed_sessions"] else ""
        )
        rows.append(
            [
                LABELS.get(c, c),
                _f(a["p50_ms"]),
                _f(a["p99_ms"]),
                "—" if is_direct else _f(_sub(a["p50_ms"], direct.get("p50_ms")), "{:+.2f}"),
                "—" if is_direct else _f(_sub(a["p99_ms"], direct.get("p99_ms")), "{:+.2f}"),
                _f(_ratio(a["p50_ms"], direct.get("p50_ms")), "{:.2f}×"),
                lost,
                _f(a["relay_cpu_pct"], "{:.0f}"),
                _f(a["relay_us_per_msg"], "{:.1f}"),
                _f(_ratio(a["relay_us_per_msg"], node.get("relay_us_per_msg")), "{:.2f}×"),
                _f(a["kb_per_session"], "{:.1f}"),
                _f(a["loadgen_cpu_pct"], "{:.0f}"),
                _f(a["echo_cpu_pct"], "{:.0f}"),
                _f(a["other_cpu_pct"], "{:.0f}"),
            ]
        )
    return rows


def flat_rows(agg: Agg, configs: Sequence[str], unavailable: dict[str, str]) -> list[list[str]]:
    """One row per config for the flat-out single-session run."""
    node = agg.get(("node", "flat", 1), {})
    rows = []
    for c in configs:
        a = agg.get((c, "flat", 1))
        if a is None or not a["ok_runs"]:
            if a is None and c not in unavailable:
                continue
            why = unavailable.get(c) or (a["errors"][0] if a and a["errors"] else "no data")
            rows.append([LABELS.get(c, c), f"unavailable ({why[:80]})"])
            continue
        rate = a["msgs_per_s_down"]
        rows.append(
            [
                LABELS.get(c, c),
                _f(rate, "{:,.0f}"),
                _f(_ratio(rate, node.get("msgs_per_s_down")), "{:.2f}×"),
                _f(a["relay_cpu_pct"], "{:.0f}"),
                _f(a["loadgen_cpu_pct"], "{:.0f}"),
                _f(a["echo_cpu_pct"], "{:.0f}"),
                _f(a["host_cpu_pct"], "{:.0f}"),
            ]
        )
    return rows


def _check(ok: bool | None) -> str:
    return "—" if ok is None else ("yes" if ok else "**no**")


def portable(command: str) -> str:
    """A command as a reader of the project runs it: paths relative to the repository, never
    those of the machine it was measured on."""
    return re.sub(r"(?<=\s)/\S*?/(\.venv/bin/python\S*)", r"\1", command)


def target_rows(agg: Agg) -> list[list[str]]:
    """The bridge against its performance targets (only when the bridge ran)."""
    b = {n: agg.get(("bridge", "paced", n)) for n in sessions_of(agg)}
    if not any(v and v["ok_runs"] for v in b.values()):
        return []
    rows: list[list[str]] = []

    def get(cfg: str, n: int, key: str) -> float | None:
        a = agg.get((cfg, "paced", n))
        return a[key] if a and a["ok_runs"] else None

    for n in (10, 100, 200):
        bridge = agg.get(("bridge", "paced", n))
        if not bridge or not bridge["ok_runs"]:
            continue
        added = _sub(bridge["p50_ms"], get("direct", n, "p50_ms"))
        ratio = _ratio(bridge["relay_us_per_msg"], get("node", n, "relay_us_per_msg"))
        add99 = _sub(bridge["p99_ms"], get("direct", n, "p99_ms"))
        node99 = _sub(get("node", n, "p99_ms"), get("direct", n, "p99_ms"))
        lost = bridge["lost"] + bridge["failed_sessions"]
        rows.append([f"N={n}: no message lost", f"{lost}", _check(lost == 0)])
        rows.append(
            [
                f"N={n}: CPU per message ≤ 1.0× the Node relay's",
                _f(ratio, "{:.2f}×"),
                _check(None if ratio is None else ratio <= 1.0),
            ]
        )
        limit = {10: 0.5, 100: 1.0}.get(n)
        if limit is not None:
            rows.append(
                [
                    f"N={n}: added p50 ≤ {limit} ms",
                    _f(added, "{:+.2f} ms"),
                    _check(None if added is None else added <= limit),
                ]
            )
        kb = bridge["kb_per_session"]
        if n >= 100:
            rows.append(
                [
                    f"N={n}: memory ≤ 50 KB/session",
                    _f(kb, "{:.1f} KB"),
                    _check(None if kb is None else kb <= 50),
                ]
            )
            rows.append(
                [
                    f"N={n}: added p99 ≤ 1.5× Node's added p99",
                    f"{_f(add99, '{:+.2f}')} vs {_f(node99, '{:+.2f}')} ms",
                    _check(
                        None if add99 is None or node99 is None else add99 <= 1.5 * max(node99, 0.0)
                    ),
                ]
            )
    flat_b = agg.get(("bridge", "flat", 1))
    flat_n = agg.get(("node", "flat", 1))
    if flat_b and flat_b["ok_runs"]:
        r = _ratio(flat_b["msgs_per_s_down"], flat_n["msgs_per_s_down"] if flat_n else None)
        rows.append(
            [
                "flat-out throughput ≥ 1.0× Node",
                _f(r, "{:.2f}×"),
                _check(None if r is None else r >= 1.0),
            ]
        )
    for n in (100, 200):
        costs = metrics_costs(agg, n)
        if costs:
            cost = statistics.median(costs)
            spread = f" (runs {min(costs):+.1f} … {max(costs):+.1f})" if len(costs) > 1 else ""
            rows.append(
                [f"N={n}: metrics cost ≤ 5 % CPU", f"{cost:+.1f} %{spread}", _check(cost <= 5.0)]
            )
    return rows


AB_HEAD = ["N", "metrics on µs/msg", "metrics off µs/msg", "cost (median)", "cost per run"]


def metrics_ab_rows(agg: Agg) -> list[list[str]]:
    rows = []
    for n in sessions_of(agg):
        a = agg.get((METRICS_AB, "paced", n))
        if not a or not a["ok_runs"] or not a["metrics_cost_pct_all"]:
            continue
        costs = a["metrics_cost_pct_all"]
        rows.append(
            [
                str(n),
                _f(a["relay_us_per_msg"], "{:.1f}"),
                _f(a["metrics_off_us_per_msg"], "{:.1f}"),
                f"{statistics.median(costs):+.1f} %",
                ", ".join(f"{c:+.1f}" for c in costs),
            ]
        )
    return rows


def metrics_costs(agg: Agg, n: int) -> list[float]:
    """CPU the metrics add, in % of the bridge's CPU per message without them, one value per
    repeat. Best from ``metrics-ab`` (both bridges in the same window); otherwise the
    ``bridge`` and ``bridge-nometrics`` rows of each repeat, which run back to back, paired."""
    ab = agg.get((METRICS_AB, "paced", n))
    if ab and ab["ok_runs"] and ab.get("metrics_cost_pct_all"):
        return list(ab["metrics_cost_pct_all"])
    on, off = agg.get(("bridge", "paced", n)), agg.get(("bridge-nometrics", "paced", n))
    if not (on and off):
        return []
    off_by_repeat = {int(rep): us for rep, us in off.get("us_per_msg_by_repeat", []) if us}
    return [
        100 * (us - off_by_repeat[int(rep)]) / off_by_repeat[int(rep)]
        for rep, us in on.get("us_per_msg_by_repeat", [])
        if us is not None and int(rep) in off_by_repeat
    ]


def losses(agg: Agg, configs: Sequence[str]) -> list[str]:
    """Plain-language findings: where the bridge (or each relay) loses against Node."""
    notes: list[str] = []
    ranked = []
    for c in configs:
        a = agg.get((c, "paced", 100)) or agg.get((c, "paced", max(sessions_of(agg) or [0])))
        if c in ("direct", METRICS_AB) or not (a and a["ok_runs"]):
            continue
        if a["relay_us_per_msg"] is not None:
            ranked.append((a["relay_us_per_msg"], c))
    if ranked:
        ranked.sort()
        notes.append(
            "CPU per relayed message, cheapest first (N=100): "
            + ", ".join(f"{LABELS.get(c, c)} {v:.1f} µs" for v, c in ranked)
            + "."
        )
    for subject in ("bridge", "aiohttp+uvloop"):
        for n in sessions_of(agg):
            s = agg.get((subject, "paced", n))
            node = agg.get(("node", "paced", n))
            direct = agg.get(("direct", "paced", n))
            if not (s and s["ok_runs"] and node and node["ok_runs"]):
                continue
            lose = []
            r = _ratio(s["relay_us_per_msg"], node["relay_us_per_msg"])
            if r is not None and r > 1.0:
                lose.append(f"CPU/msg {r:.2f}× Node")
            if direct and direct["ok_runs"]:
                sa = _sub(s["p50_ms"], direct["p50_ms"])
                na = _sub(node["p50_ms"], direct["p50_ms"])
                if sa is not None and na is not None and sa > na:
                    lose.append(f"added p50 {sa:+.2f} ms vs Node {na:+.2f} ms")
            if (
                s["p99_ms"] is not None
                and node["p99_ms"] is not None
                and s["p99_ms"] > node["p99_ms"]
            ):
                lose.append(f"p99 {s['p99_ms']:.1f} ms vs Node {node['p99_ms']:.1f} ms")
            if s["lost"]:
                lose.append(f"{s['lost']} messages lost")
            if lose:
                notes.append(f"{LABELS[subject]} loses to Node at N={n}: " + "; ".join(lose) + ".")
        fs = agg.get((subject, "flat", 1))
        fn = agg.get(("node", "flat", 1))
        if fs and fn and fs["ok_runs"] and fn["ok_runs"]:
            r = _ratio(fs["msgs_per_s_down"], fn["msgs_per_s_down"])
            if r is not None and r < 1.0:
                notes.append(f"{LABELS[subject]} flat-out throughput is {r:.2f}× Node's.")
    return notes


def sanity_notes(agg: Agg) -> list[str]:
    """Is the load generator the bottleneck? Was the machine shared? (from the direct rows)."""
    notes = []
    for n in sessions_of(agg):
        d = agg.get(("direct", "paced", n))
        if d and d["ok_runs"] and d["p99_ms"] is not None:
            lg = d["loadgen_cpu_pct"] or 0.0
            verdict = "not the bottleneck" if d["p99_ms"] < 5 and lg < 80 else "possibly limiting"
            notes.append(
                f"Load generator at N={n}: direct p50/p99 {d['p50_ms']:.2f}/{d['p99_ms']:.2f} ms"
                f" with the load generator at {lg:.0f} % of a core — {verdict}."
            )
    fd = agg.get(("direct", "flat", 1))
    if fd and fd["ok_runs"]:
        best = max(
            (
                a["msgs_per_s_down"]
                for (c, mode, _), a in agg.items()
                if mode == "flat" and c != "direct" and a["ok_runs"] and a["msgs_per_s_down"]
            ),
            default=None,
        )
        if best:
            notes.append(
                f"Flat out, direct reaches {fd['msgs_per_s_down']:,.0f} msgs/s each way,"
                f" {fd['msgs_per_s_down'] / best:.1f}× the best relay, so the relay rows measure"
                " the relays; but relay, echo and load generator share the cores there (host CPU"
                " column), so flat-out numbers describe the whole box, not the relay alone."
            )
    retries = sum(a.get("retries", 0) for a in agg.values())
    if retries:
        notes.append(
            f"{retries} runs were repeated because other processes used the CPU during them."
        )
    return notes


# ---- rendering -------------------------------------------------------------------------------


def _text_table(head: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows, strict=False)]
    fmt = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    lines = [fmt.format(*head), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*(r + [""] * (len(head) - len(r)))) for r in rows]
    return "\n".join(lines)


def _md_table(head: list[str], rows: list[list[str]]) -> str:
    out = [
        "| " + " | ".join(head) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|",
    ]
    out += ["| " + " | ".join(r + [""] * (len(head) - len(r))) + " |" for r in rows]
    return "\n".join(out)


def _sections(agg: Agg, meta: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    configs = [c for c in meta["all_configs"] if c != METRICS_AB]
    unavailable = meta["unavailable"]
    p = meta["params"]
    out = []
    for n in sessions_of(agg):
        title = f"{n} sessions × {p['rate']:.0f} events/s each way (medians of {p['repeats']})"
        out.append((title, PACED_HEAD, paced_rows(agg, n, configs, unavailable)))
    flat = flat_rows(agg, configs, unavailable)
    if flat:
        out.append((f"Flat out, one session, {p['flat_window']} frames in flight", FLAT_HEAD, flat))
    ab = metrics_ab_rows(agg)
    if ab:
        out.append(("Metrics cost, measured side by side (metrics-ab)", AB_HEAD, ab))
    targets = target_rows(agg)
    if targets:
        out.append(("Bridge against its targets", ["target", "measured", "met"], targets))
    return out


def render_text(agg: Agg, meta: dict[str, Any]) -> str:
    """Plain-text tables for stdout."""
    parts = []
    for title, head, rows in _sections(agg, meta):
        parts += [title, _text_table(head, rows), ""]
    for c, why in meta["unavailable"].items():
        parts.append(f"{c}: unavailable — {why}")
    parts += [f"- {n}" for n in sanity_notes(agg) + losses(agg, meta["all_configs"])]
    return "\n".join(parts)


def render_markdown(agg: Agg, meta: dict[str, Any]) -> str:
    """The whole docs/benchmarks.md."""
    m = meta["machine"]
    p = meta["params"]
    lines = [
        "# Relay benchmarks",
        "",
        "Generated by `bench/relay.py` (`make bench`); rerun it to refresh this file. The numbers"
        + (
            f" are from {meta['pooled_runs']} runs of the same command on the machine below,"
            " pooled (`--render` with their raw JSON files): each median is over all their"
            " repeats. Compare rows within this file, not across machines."
            if meta.get("pooled_runs", 1) > 1
            else " are from one run on the machine below; compare rows within the run, not across"
            " machines."
        ),
        "",
        "## Machine",
        "",
        f"- {m['nproc']} cores (`nproc`), {m['cpu']}, {m['memory']} RAM, {m['kernel']}",
        f"- Python {m['python']} ({m['python_libs']}), Node {m['node']} (ws {m['ws']})",
        f"- date: {m['date']}; command: `{portable(meta['command'])}`;"
        f" wall time {meta['elapsed_s']} s",
        "",
        "## What is measured",
        "",
        "All rows talk to the same loopback echo upstream (a Node `ws` server that sends every text"
        " frame straight back). A Node load generator "
        f"({p['loadgen_procs']} processes, pre-built frames, no JSON parsing) opens N sessions,"
        f" each sending {p['rate']:.0f} `input_audio_buffer.append` events/s (~1.37 KB: 20 ms"
        " of 24 kHz PCM16 as base64) with a sequence number and the send time in `event_id`,"
        " and times each frame's round trip (client → relay → echo → relay → client). Rows:",
        "",
        "- **direct**: load generator ⇄ echo, no relay — the floor, and a check that the load"
        " generator is not the bottleneck;",
        "- **Node ws relay** (`bench/peers/node-relay.js`): in the style of"
        " openai-realtime-console's relay (ws server, one upstream `ws` per client, queue until"
        " open), passing frames through;",
        "- **aiohttp**, **websockets**, each with and without **uvloop**"
        " (`bench/peers/*_relay.py`): two pumps, no parsing;",
        "- **picows+uvloop** (`bench/peers/picows_relay.py`): frame callbacks that send each"
        " frame straight on (no queue, no task per message), no parsing — the stack the bridge"
        " runs on, without the bridge;",
        "- **bridge**: the product, `python -m realtime_bridge` with `UPSTREAM=openai` pointed at"
        " the echo (`LOG_LEVEL=info`, the default; metrics on unless noted).",
        "- **metrics-ab** (with `--bridge-metrics both`): two bridges at once, metrics on and off,"
        " each driven by one load-generator process with half the sessions (which one drives which"
        " alternates by repeat). Their CPU per message is compared within the same window, so the"
        " machine's drift between runs, larger than the metrics' cost, cancels out.",
        "",
        f"Each configuration runs {p['repeats']}× (order rotated), each run with a fresh relay"
        f" process: {p['warmup']:.1f} s warm-up, then a {p['measure']:.1f} s window. Columns:"
        " p50/p99 round trip of frames sent in the window; `+p50`/`+p99` = minus the direct row's;"
        " `lost` = frames sent but never received (all repeats summed); relay CPU = user+system"
        " time of the relay's process tree over the window (% of one core) and per relayed message"
        " (each frame counts once up and once down); KB/session = (peak RSS under load − idle RSS"
        " after start) / N; loadgen, echo CPU = the load generator's and the echo's share; other"
        " CPU = the rest of the machine (anything else running, plus hypervisor steal) — a run"
        f" where it exceeds {p['max_other_cpu']:.0f} % is rerun (up to {p['max_attempts']}"
        " attempts). Host CPU % (flat out) is the whole machine, max"
        f" {int(m['nproc']) * 100 if m['nproc'].isdigit() else '?'} %, so a reader can see when"
        " the box is saturated. Flat out: one session keeps"
        f" {p['flat_window']} frames in flight for {p['flat_seconds']:.1f} s; messages/s each way.",
        "",
    ]
    for title, head, rows in _sections(agg, meta):
        lines += [f"## {title}", "", _md_table(head, rows), ""]
    if meta["unavailable"]:
        lines += ["## Unavailable rows", ""]
        lines += [f"- `{c}`: {why}" for c, why in meta["unavailable"].items()]
        lines.append("")
    lines += ["## Is the load generator the bottleneck?", ""]
    lines += [f"- {n}" for n in sanity_notes(agg)]
    lines += ["", "## Where we lose", ""]
    lines += [f"- {n}" for n in losses(agg, meta["all_configs"])] or [
        "- nowhere measurable in this run."
    ]
    lines += [
        "",
        "Caveats: on 2 cores the relay, the echo and the load generator share the CPU, so p99 at"
        " 100+ sessions is dominated by scheduling noise (it varies by tens of ms between identical"
        " runs); trust CPU per message and medians more than p99. KB/session at N=10 is mostly"
        " noise (allocator arenas, lazy imports).",
        "",
        "## Phone calls",
        "",
        "100 simulated Twilio calls through the bridge and through a relay written like"
        " Twilio's published FastAPI sample, in the same run: the bridge at 0.48× the sample's"
        " CPU per message, 0 lost. The table and the method are in"
        " [benchmarks-sessions.md](benchmarks-sessions.md#phone-calls-benchtwilio_callspy).",
        "",
        "## How to reproduce",
        "",
        "```sh",
        "make bench   # this file: relay.py --bridge-metrics both --repeats 5 (~25 min), and the"
        " codec, session-rules and relay-chain benchmarks",
        ".venv/bin/python bench/relay.py --quick     # ~2 min smoke run (writes bench/results/)",
        ".venv/bin/python bench/relay.py --configs direct,node,bridge --sessions 100 --repeats 5",
        ".venv/bin/python bench/relay.py --bridge-metrics both   # metrics-off row and metrics-ab",
        ".venv/bin/python bench/relay_chain.py      # the bridge's own work per frame, no sockets",
        ".venv/bin/python bench/turns.py            # silence fill (docs/benchmarks-sessions.md)",
        ".venv/bin/python bench/local_lag.py        # the local upstream and the event loop",
        ".venv/bin/python bench/twilio_calls.py     # 100 phone calls, against Twilio's sample",
        "```",
        "",
        "Needs Node ≥ 18 with npm (the script installs `ws` into `bench/peers/node_modules`) and"
        " the project venv. Raw per-run numbers go to `bench/results/relay-*.json`.",
        "",
    ]
    return "\n".join(lines)
