"""A tiny scheduler for the planner's searches: generator "chains" that ``yield SimTask`` (and
receive ``(evaluation, SimResult | None, cached)``) or ``yield Spawn([...])`` (and receive the
children's return values, in order), run with at most ``jobs`` simulations in flight in a
:class:`concurrent.futures.ProcessPoolExecutor` (``jobs`` = 1: in this process), evaluations
cached by :func:`~sunsim.planner.tasks.task_key`."""

from __future__ import annotations

import concurrent.futures as cf
from collections import deque
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

import pandas as pd

from sunsim.planner.tasks import SimTask, describe, init_worker, run_task, task_key

#: A search chain: yields SimTask or Spawn, receives their answers, returns its result.
Chain = Generator[Any, Any, Any]
#: Progress callback: ``(kind, info)`` with kind ``submit``, ``done`` or ``phase``.
OnEvent = Callable[[str, dict[str, Any]], None]


@dataclass
class Spawn:
    """Yielded by a chain: run ``children`` (chains) side by side; the chain receives their
    return values as a list, in order."""

    children: list[Chain]


@dataclass
class _Slot:
    """Where a finished chain's return value goes: ``slots[index]``; ``parent`` resumes with
    ``slots`` when ``counter[0]`` reaches 0 (None for a root)."""

    parent: Chain | None
    index: int
    slots: list[Any]
    counter: list[int] | None


class Driver:
    """Runs chains to completion. Counts simulations run (``num_sims``), cache hits
    (``num_cached``) and seconds of simulation (``sim_wall_s``); ``on_event`` receives
    ``("submit" | "done", {"task": description, ...})`` per simulation."""

    def __init__(
        self,
        workloads: dict[str, pd.DataFrame],
        jobs: int,
        cache: dict[str, Any],
        on_event: OnEvent | None,
    ) -> None:
        self.workloads = workloads
        self.jobs = jobs
        self.cache = cache
        self.on_event = on_event
        self.num_sims = 0
        self.num_cached = 0
        self.sim_wall_s = 0.0
        self._slots: dict[int, _Slot] = {}
        self._ready: deque[tuple[Chain, Any]] = deque()
        self._futures: dict[cf.Future[Any], tuple[Chain, str, SimTask]] = {}
        self._local: deque[tuple[Chain, str, SimTask]] = deque()
        self._pool: cf.ProcessPoolExecutor | None = None

    def _emit(self, kind: str, **info: Any) -> None:
        if self.on_event is not None:
            self.on_event(kind, info)

    def run(self, roots: list[Chain]) -> list[Any]:
        """Run ``roots`` to completion; their return values, in order."""
        if self.jobs > 1:
            self._pool = cf.ProcessPoolExecutor(
                max_workers=self.jobs, initializer=init_worker, initargs=(self.workloads,)
            )
        else:
            init_worker(self.workloads)
        results: list[Any] = [None] * len(roots)
        for i, g in enumerate(roots):
            self._slots[id(g)] = _Slot(None, i, results, None)
            self._ready.append((g, None))
        try:
            while self._ready or self._futures or self._local:
                while self._ready:
                    self._step(*self._ready.popleft())
                self._collect()
        except BaseException:
            if self._pool is not None:
                for f in self._futures:
                    f.cancel()
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None
            raise
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None
        return results

    def _step(self, g: Chain, value: Any) -> None:
        """Resume ``g`` with ``value`` and act on what it yields (or returns)."""
        try:
            y = g.send(value)
        except StopIteration as stop:
            self._finish(g, stop.value)
            return
        if isinstance(y, Spawn):
            self._spawn(g, y.children)
        else:
            self._submit(g, y)

    def _finish(self, g: Chain, value: Any) -> None:
        slot = self._slots.pop(id(g))
        slot.slots[slot.index] = value
        if slot.parent is not None and slot.counter is not None:
            slot.counter[0] -= 1
            if slot.counter[0] == 0:
                self._ready.append((slot.parent, slot.slots))

    def _spawn(self, g: Chain, children: list[Chain]) -> None:
        if not children:
            self._ready.append((g, []))
            return
        slots: list[Any] = [None] * len(children)
        counter = [len(children)]
        for j, c in enumerate(children):
            self._slots[id(c)] = _Slot(g, j, slots, counter)
            self._ready.append((c, None))

    def _submit(self, g: Chain, task: SimTask) -> None:
        key = task_key(task)
        hit = self.cache.get(key)
        if hit is not None and not task.fresh:
            self.num_cached += 1
            self._ready.append((g, (hit, None, True)))
            return
        self._emit("submit", task=describe(task))
        if self._pool is None:
            self._local.append((g, key, task))
        else:
            self._futures[self._pool.submit(run_task, task)] = (g, key, task)

    def _collect(self) -> None:
        """Run one local task, or wait for at least one pool task; resume their chains."""
        if self._local:
            g, key, task = self._local.popleft()
            ev, res = run_task(task)
            self._done(key, task, ev)
            self._ready.append((g, (ev, res, False)))
            return
        if self._futures:
            done, _ = cf.wait(list(self._futures), return_when=cf.FIRST_COMPLETED)
            for f in done:
                g, key, task = self._futures.pop(f)
                ev, res = f.result()
                self._done(key, task, ev)
                self._ready.append((g, (ev, res, False)))

    def _done(self, key: str, task: SimTask, ev: dict[str, Any]) -> None:
        self.num_sims += 1
        self.sim_wall_s += ev.get("wall_s", 0.0)
        self.cache[key] = ev
        self._emit(
            "done", task=describe(task), wall_s=ev.get("wall_s", 0.0), attainment=ev["attainment"]
        )
