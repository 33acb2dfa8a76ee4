"""CPU use of the machine and of the engine's processes over a phase of the check (Linux
``/proc``; NaN elsewhere)."""

from __future__ import annotations

import math
import os
import time


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (Linux /proc), NaN elsewhere."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            parts = f.read().rsplit(")", 1)[1].split()
        return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return math.nan


def machine_busy() -> tuple[float, float]:
    """(busy jiffies, total jiffies) of all CPUs from /proc/stat (NaN elsewhere)."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        idle = v[3] + (v[4] if len(v) > 4 else 0)
        return float(sum(v) - idle), float(sum(v))
    except (OSError, ValueError, IndexError):
        return math.nan, math.nan


class LoadMeter:
    """CPU use of the whole machine and of the engine's processes over one phase (Linux
    ``/proc``): ``machine_busy_cores`` (all processes), ``engine_busy_cores`` (the driver and
    the two workers), ``other_busy_cores`` (the rest: other people's work on a shared
    machine), averaged over the phase's wall time."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids

    def start(self) -> None:
        self.t = time.perf_counter()
        self.busy = machine_busy()
        self.cpu = sum(proc_cpu_s(p) for p in self.pids)
        self.load = os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan

    def stop(self, phase: str) -> dict:
        wall = time.perf_counter() - self.t
        busy = machine_busy()
        cpu = sum(proc_cpu_s(p) for p in self.pids)
        ncpu = os.cpu_count() or 1
        tot = busy[1] - self.busy[1]
        machine = (busy[0] - self.busy[0]) / tot * ncpu if tot > 0 else math.nan
        mine = (cpu - self.cpu) / wall if wall > 0 else math.nan
        return {
            "phase": phase,
            "wall_s": wall,
            "cpu_count": ncpu,
            "machine_busy_cores": machine,
            "engine_busy_cores": mine,
            "other_busy_cores": machine - mine,
            "loadavg_1m_before": self.load,
            "loadavg_1m_after": os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan,
        }
