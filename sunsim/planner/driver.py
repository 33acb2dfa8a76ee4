"""A tiny scheduler for the planner's searches: generator "chains" that ``yield SimTask`` (and
receive ``(evaluation, SimResult | None, cached)``) or ``yield Spawn([...])`` (and receive the
children's return values, in order), their simulations run on a
:class:`concurrent.futures.Executor` (one handed in -- a process pool, Dask's
``Client.get_executor()`` -- or a process pool of ``jobs`` processes made here, or in this
process), evaluations cached by :func:`~sunsim.planner.tasks.task_key` in a
:class:`~sunsim.cache.ResultCache`.

Where simulations run (:func:`pick_executor`): on the executor handed in when there is one;
else serially in this process when ``jobs`` is 1 or this process is a daemon (a process-pool
or Dask worker, which may not have children: "daemonic processes are not allowed to have
children"); else on a :class:`~concurrent.futures.ProcessPoolExecutor` of ``jobs`` processes,
shut down when the run ends. A task carries everything it needs (its requests, its latency
models) as arguments; no module state is set up in the workers."""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
from collections import deque
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

import pandas as pd

from sunsim.cache import Fingerprints, ResultCache
from sunsim.planner.tasks import (
    SimTask,
    describe,
    run_task,
    task_key,
    task_latency,
    task_requests,
)

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


def in_daemon_process() -> bool:
    """Whether this process is a daemon (a process-pool worker, a Dask worker process): it
    may not start child processes."""
    return bool(multiprocessing.current_process().daemon)


def pick_executor(executor: cf.Executor | None, jobs: int) -> tuple[cf.Executor | None, bool]:
    """(the executor to run simulations on, whether the caller owns it and must shut it
    down): ``executor`` if given; None (serial, in this process) for ``jobs`` <= 1 or inside
    a daemon process; else a new process pool of ``jobs`` processes."""
    if executor is not None:
        return executor, False
    if jobs <= 1 or in_daemon_process():
        return None, False
    return cf.ProcessPoolExecutor(max_workers=jobs), True


class Driver:
    """Runs chains to completion. Counts simulations run (``num_sims``), cache hits
    (``num_cached``) and seconds of simulation (``sim_wall_s``); ``on_event`` receives
    ``("submit" | "done", {"task": description, ...})`` per simulation.

    ``workloads``: the labelled frames by workload key; ``latency``: (prefill, decode)
    latency models by decode precision (others are resolved on demand); ``executor``: where
    simulations run (None: serially here); ``cache``: evaluations by
    :func:`~sunsim.planner.tasks.task_key`; ``fingerprints``: the content digests for keys.
    """

    def __init__(
        self,
        workloads: dict[str, pd.DataFrame],
        latency: dict[str, tuple[Any, Any]],
        executor: cf.Executor | None,
        cache: ResultCache,
        fingerprints: Fingerprints,
        on_event: OnEvent | None,
    ) -> None:
        self.workloads = workloads
        self.latency = dict(latency)
        self.executor = executor
        self.cache = cache
        self.fingerprints = fingerprints
        self.on_event = on_event
        self.num_sims = 0
        self.num_cached = 0
        self.sim_wall_s = 0.0
        self._slots: dict[int, _Slot] = {}
        self._ready: deque[tuple[Chain, Any]] = deque()
        self._futures: dict[cf.Future[Any], tuple[Chain, str, SimTask]] = {}
        self._local: deque[tuple[Chain, str, SimTask]] = deque()

    def _emit(self, kind: str, **info: Any) -> None:
        if self.on_event is not None:
            self.on_event(kind, info)

    def _latency(self, task: SimTask) -> tuple[Any, Any]:
        precision = str(task.cluster.decode_precision)
        if precision not in self.latency:
            self.latency[precision] = task_latency(task)
        return self.latency[precision]

    def run(self, roots: list[Chain]) -> list[Any]:
        """Run ``roots`` to completion; their return values, in order. On an error, the
        simulations still queued are cancelled (the executor itself is not shut down)."""
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
            for f in self._futures:
                f.cancel()
            self._futures.clear()
            raise
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
        key = task_key(task, self.fingerprints, self._latency(task))
        hit = None if task.fresh else self.cache.get(key)
        if hit is not None:
            self.num_cached += 1
            self._ready.append((g, (hit, None, True)))
            return
        self._emit("submit", task=describe(task))
        if self.executor is None:
            self._local.append((g, key, task))
        else:
            req = task_requests(task, self.workloads)
            f = self.executor.submit(run_task, task, req, self._latency(task))
            self._futures[f] = (g, key, task)

    def _collect(self) -> None:
        """Run one local task, or wait for at least one pool task; resume their chains."""
        if self._local:
            g, key, task = self._local.popleft()
            ev, res = run_task(task, task_requests(task, self.workloads), self._latency(task))
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
        self.cache.put(key, ev)
        self._emit(
            "done", task=describe(task), wall_s=ev.get("wall_s", 0.0), attainment=ev["attainment"]
        )
