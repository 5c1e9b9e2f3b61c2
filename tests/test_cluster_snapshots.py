"""Workers' snapshots: a tick reads only the others' small state; their sessions' summaries are
read only to list or find a session (parsing them every second ran Python's full garbage
collection every few seconds under load, a 40-70 ms stall of every session of the worker)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from realtime_bridge.server.cluster import Cluster, WorkerIdentity


def worker(run_dir: Path, index: int, sessions: list[dict[str, Any]], ended: list[str]) -> Cluster:
    def snapshot() -> dict[str, Any]:
        return {
            "session_count": len(sessions),
            "internal_ws_port": 40000 + index,
            "sessions": list(sessions),
            "draining": False,
        }

    def end(session_id: str) -> bool:
        ended.append(session_id)
        return True

    return Cluster(WorkerIdentity(index, run_dir), snapshot, end)


def test_a_tick_reads_the_others_counts_without_their_sessions(tmp_path: Path) -> None:
    ended: list[str] = []
    held = [{"id": f"sess_{n}", "client": "198.51.100.9", "call": None} for n in range(3)]
    zero = worker(tmp_path, 0, held, ended)
    one = worker(tmp_path, 1, [], ended)
    zero.tick()
    one.tick()
    assert one.others_sessions() == 3
    (state,) = one.others()
    assert state["index"] == 0
    assert state["internal_ws_port"] == 40000
    assert "sessions" not in state  # the summaries stay unread
    (listed,) = one.others(with_sessions=True)
    assert [s["id"] for s in listed["sessions"]] == ["sess_0", "sess_1", "sess_2"]
    # A damaged summaries file costs the listing, not the worker's view of the server.
    zero.me.sessions_path.write_bytes(b"{not json")
    one.tick()
    assert one.others_sessions() == 3
    assert one.others(with_sessions=True)[0]["sessions"] == []


def test_ending_a_session_on_another_worker_goes_through_its_summaries(tmp_path: Path) -> None:
    ended: list[str] = []
    zero = worker(tmp_path, 0, [{"id": "sess_a"}], ended)
    one = worker(tmp_path, 1, [], ended)
    zero.tick()
    one.tick()
    assert one.ask_to_end("sess_a") is True
    assert one.ask_to_end("sess_nobody") is False
    zero.tick()  # worker 0 reads its inbox at its next tick
    assert ended == ["sess_a"]
