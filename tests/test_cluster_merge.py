"""Whole-server /metrics from several workers' expositions: summed, except `_up` gauges."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from realtime_bridge.server.cluster import merge_expositions

ONE = """# HELP realtime_bridge_sessions_active Client sessions open now.
# TYPE realtime_bridge_sessions_active gauge
realtime_bridge_sessions_active 3.0
# HELP realtime_bridge_events_total Events relayed.
# TYPE realtime_bridge_events_total counter
realtime_bridge_events_total{direction="up",type="x"} 10.0
# HELP realtime_bridge_store_up Whether the store answers.
# TYPE realtime_bridge_store_up gauge
realtime_bridge_store_up 1.0
# HELP realtime_bridge_latency_seconds Latency.
# TYPE realtime_bridge_latency_seconds histogram
realtime_bridge_latency_seconds_bucket{le="0.1"} 2.0
realtime_bridge_latency_seconds_bucket{le="+Inf"} 3.0
realtime_bridge_latency_seconds_count 3.0
realtime_bridge_latency_seconds_sum 0.5
"""
TWO = ONE.replace(" 3.0\n", " 4.0\n", 1).replace("store_up 1.0", "store_up 0.0")


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_workers_expositions_are_summed_and_stay_valid() -> None:
    merged = merge_expositions([ONE, TWO]).decode()
    got = samples(merged)  # parses back: the merge is valid exposition text
    assert got[("realtime_bridge_sessions_active", ())] == 7.0
    assert got[("realtime_bridge_events_total", (("direction", "up"), ("type", "x")))] == 20.0
    assert got[("realtime_bridge_latency_seconds_bucket", (("le", "+Inf"),))] == 6.0
    assert got[("realtime_bridge_latency_seconds_sum", ())] == 1.0
    assert got[("realtime_bridge_store_up", ())] == 0.0  # up only if every worker is
    assert "# TYPE realtime_bridge_events_total counter" in merged
