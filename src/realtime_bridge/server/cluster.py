"""One worker's view of the whole server, when a supervisor runs several (``WORKERS``).

Workers share nothing but a run directory the supervisor made. Each one writes a snapshot of
itself there every second (its sessions, its metrics exposition) and reads the others', so that
``/health``, ``/info``, ``/metrics`` and ``/sessions`` on any worker answer for the whole
server, ``MAX_SESSIONS`` counts every worker's sessions, and a ``DELETE`` that lands on one
worker reaches the session on another (through that worker's inbox, read at its next tick).
Nothing of it is on the per-frame path: snapshots are taken from counters the relay keeps
anyway, once a second. A snapshot older than :data:`STALE_S` is a dead worker's and ignored.

A snapshot is two files: the worker's state (counts, ports, a few bytes) and its sessions'
summaries (hundreds of bytes each). A tick and ``/health`` read only the others' states; the
summaries are parsed only to list or find a session. Parsing every other worker's sessions once
a second made enough short-lived objects to run Python's full garbage collection every few
seconds, stalling every session of the worker for tens of milliseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from prometheus_client.parser import text_string_to_metric_families

#: How often a worker writes its snapshot and reads its inbox.
TICK_S = 1.0
#: Every how many ticks it writes its metrics exposition too (the costly part of a snapshot:
#: a few milliseconds, so not every second; ``/metrics`` is at most this many seconds behind
#: for the other workers, well inside any scrape interval).
METRICS_EVERY_TICKS = 5
#: A snapshot this old belongs to a worker that is gone (or hung).
STALE_S = 3.0


@dataclass(frozen=True, slots=True)
class WorkerIdentity:
    """Which worker this process is, and where the workers meet."""

    index: int
    run_dir: Path

    @classmethod
    def parse(cls, value: str) -> WorkerIdentity:
        """From ``REALTIME_BRIDGE_WORKER`` as the supervisor sets it: ``<index>:<run dir>``."""
        index, _, run_dir = value.partition(":")
        return cls(int(index), Path(run_dir))

    @property
    def snapshot_path(self) -> Path:
        return self.run_dir / f"worker-{self.index}.json"

    @property
    def sessions_path(self) -> Path:
        return self.run_dir / f"worker-{self.index}.sessions"

    @property
    def inbox(self) -> Path:
        return self.run_dir / f"worker-{self.index}.end"

    @property
    def metrics_path(self) -> Path:
        return self.run_dir / f"worker-{self.index}.metrics"


class Cluster:
    """This worker's side of the run directory (see the module docstring)."""

    def __init__(
        self,
        me: WorkerIdentity,
        snapshot: Callable[[], dict[str, Any]],
        end_session: Callable[[str], bool],
        failed: Callable[[BaseException], None] | None = None,
        metrics: Callable[[], bytes] | None = None,
    ) -> None:
        self.me = me
        self._snapshot = snapshot
        self._metrics = metrics
        self._ticks = 0
        self._end_session = end_session
        #: Called when this worker can no longer keep its place (its snapshot cannot be
        #: written): a worker the others cannot see must not go on taking sessions.
        self._failed = failed
        self._task: asyncio.Task[None] | None = None
        self._others_sessions = 0
        #: The supervisor: a worker whose supervisor is gone (killed) must not live on alone.
        self._parent = os.getppid()
        me.inbox.mkdir(parents=True, exist_ok=True)

    def start(self) -> None:
        self.tick()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="cluster")

    async def stop(self, *, keep_snapshot: bool = False) -> None:
        """Stop ticking; the snapshot goes (a worker that failed leaves it: the supervisor
        counts the sessions it held from it)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if not keep_snapshot:
            for path in (self.me.snapshot_path, self.me.sessions_path, self.me.metrics_path):
                with contextlib.suppress(OSError):
                    path.unlink()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)  # the cluster's clock: a snapshot a second
            try:
                if os.getppid() != self._parent:
                    raise OSError("the supervisor is gone")
                self.tick()
            except OSError as exc:
                if self._failed is not None:
                    self._failed(exc)
                return

    def tick(self) -> None:
        """Write this worker's snapshot and end the sessions others asked it to end."""
        snapshot = self._snapshot()
        sessions = snapshot.pop("sessions", [])
        _write(self.me.sessions_path, orjson.dumps(sessions))  # before the state that vouches
        body = {"index": self.me.index, "pid": os.getpid(), "at": time.time(), **snapshot}
        _write(self.me.snapshot_path, orjson.dumps(body))
        if self._metrics is not None and self._ticks % METRICS_EVERY_TICKS == 0:
            _write(self.me.metrics_path, self._metrics())
        self._ticks += 1
        for request in list(self.me.inbox.iterdir()):
            self._end_session(request.name)
            with contextlib.suppress(OSError):
                request.unlink()
        self._others_sessions = sum(int(o.get("session_count", 0)) for o in self.others())

    def others(self, *, with_sessions: bool = False) -> list[dict[str, Any]]:
        """The other live workers' latest snapshots; ``with_sessions``: with their sessions'
        summaries under ``"sessions"`` (costly: only to list or find a session)."""
        found = []
        now = time.time()
        for path in self.me.run_dir.glob("worker-*.json"):
            if path == self.me.snapshot_path:
                continue
            try:
                snapshot = orjson.loads(path.read_bytes())
            except (OSError, orjson.JSONDecodeError):
                continue  # being replaced, or gone
            if isinstance(snapshot, dict) and now - float(snapshot.get("at", 0)) < STALE_S:
                if with_sessions:
                    snapshot["sessions"] = _sessions_of(path.with_suffix(".sessions"))
                found.append(snapshot)
        return found

    def others_metrics(self) -> list[str]:
        """The other live workers' latest metrics expositions."""
        texts = []
        for snapshot in self.others():
            path = self.me.run_dir / f"worker-{snapshot['index']}.metrics"
            with contextlib.suppress(OSError, UnicodeDecodeError):
                texts.append(path.read_text())
        return texts

    def others_sessions(self) -> int:
        """The other workers' sessions as of the last tick (the admission check asks this, so
        it reads no file: at most about two ticks old)."""
        return self._others_sessions

    def supervisor(self) -> dict[str, Any]:
        """What the supervisor wrote (restarts, sessions lost with a dead worker)."""
        try:
            data = orjson.loads((self.me.run_dir / "supervisor.json").read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return {}
        return data if isinstance(data, dict) else {}

    def ask_to_end(self, session_id: str) -> bool:
        """Ask the worker that holds ``session_id`` to end it; False when no worker has it."""
        for snapshot in self.others(with_sessions=True):
            ids = {str(s.get("id")) for s in snapshot.get("sessions", ())}
            if session_id in ids:
                inbox = self.me.run_dir / f"worker-{snapshot['index']}.end"
                with contextlib.suppress(OSError):
                    (inbox / session_id).touch()
                    return True
        return False


def _sessions_of(path: Path) -> list[dict[str, Any]]:
    """A worker's session summaries, as it last wrote them (none when unreadable)."""
    try:
        sessions = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return []
    return [s for s in sessions if isinstance(s, dict)] if isinstance(sessions, list) else []


def _write(path: Path, data: bytes) -> None:
    temporary = path.with_name(path.name + ".tmp")  # one per file: worker-0.json.tmp
    temporary.write_bytes(data)
    temporary.replace(path)  # readers never see half a file


def merge_expositions(texts: Iterable[str]) -> bytes:
    """Several Prometheus text expositions as one: samples with the same name and labels are
    summed (counters, histogram buckets, sums and counts, and gauges of sessions alike), except
    ``*_up`` gauges, which take the lowest (the server is up only where every worker is)."""
    order: list[str] = []
    families: dict[str, tuple[str, str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]] = {}
    for text in texts:
        for family in text_string_to_metric_families(text):
            if family.name not in families:
                order.append(family.name)
                families[family.name] = (family.type, family.documentation, {})
            samples = families[family.name][2]
            for sample in family.samples:
                if sample.name.endswith("_created"):
                    continue  # a timestamp, not a count: meaningless summed
                key = (sample.name, tuple(sorted(sample.labels.items())))
                if family.type == "gauge" and family.name.endswith("_up") and key in samples:
                    samples[key] = min(samples[key], sample.value)  # up only if every one is
                else:
                    samples[key] = samples.get(key, 0.0) + sample.value
    lines: list[str] = []
    for name in order:
        kind, documentation, samples = families[name]
        shown = f"{name}_total" if kind == "counter" else name  # as prometheus-client writes it
        lines.append(f"# HELP {shown} {_escape_help(documentation)}")
        lines.append(f"# TYPE {shown} {kind}")
        for (sample_name, labels), value in samples.items():
            rendered = ",".join(f'{k}="{_escape_label(v)}"' for k, v in labels)
            lines.append(
                f"{sample_name}{{{rendered}}} {_number(value)}"
                if labels
                else f"{sample_name} {_number(value)}"
            )
    return ("\n".join(lines) + "\n").encode()


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


__all__ = ["STALE_S", "TICK_S", "Cluster", "WorkerIdentity", "merge_expositions"]
