"""Timing the real engine's kernels for its own profile: wall and thread CPU time per call."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sunsim.validate.real_engine.config import clock


def time_calls(
    fn: Callable[[], Any],
    *,
    warmup: int,
    min_repeats: int,
    max_repeats: int,
    budget_s: float,
    idle_s: float = 0.0,
) -> tuple[list[float], list[float]]:
    """``warmup`` calls, then repeats until ``min_repeats`` are done and ``budget_s`` seconds
    of calls have passed (at most ``max_repeats``), each timed call after ``idle_s`` seconds of
    sleep. Returns (wall seconds, thread CPU seconds) per repeat. ``fn`` must return only when
    its work is done (the engine's kernels end with a ``.tolist()``, a device sync on CUDA)."""
    for _ in range(warmup):
        fn()
    wall: list[float] = []
    cpu: list[float] = []
    spent = 0.0
    while len(wall) < max_repeats and (len(wall) < min_repeats or spent < budget_s):
        if idle_s > 0:
            time.sleep(idle_s)
        c0 = time.thread_time()
        t0 = clock()
        fn()
        wall.append(clock() - t0)
        cpu.append(time.thread_time() - c0)
        spent += wall[-1]
    return wall, cpu


def ready(conn: Any) -> Callable[[], bool]:
    """A cheap non-blocking "has ``conn`` data?" check: one ``poll(2)`` syscall on a reused
    poll object (``Connection.poll()`` builds a selector per call: about 80 us right after a
    decode step, with the interpreter's caches cold, against 10 us for this)."""
    import select

    if not hasattr(select, "poll"):  # pragma: no cover - not Linux
        return lambda: conn.poll()
    p = select.poll()
    p.register(conn.fileno(), select.POLLIN)
    return lambda: bool(p.poll(0))


def sync(torch: Any, device: Any) -> None:
    """Wait for the device's queued work (CUDA); nothing on a CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
