"""CPU quotas for bench/workers.py's (b) and (c): one cgroup v1 ``cpu`` directory per process
slot."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


from workers_model import CGROUP_CPU

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
