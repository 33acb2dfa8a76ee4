"""Arrivals: the trace's requests enter the cluster, at most one timer per arrival instant.

:class:`Arrivals` is the part of :class:`~sunsim.engine.cluster.ClusterSim` that reads the
trace: it schedules a timer at each distinct arrival instant (or, when that timer would be
the next event anyway, does its work at once), rejects the requests that can never run
(:func:`~sunsim.engine.scheduler.reject_reason`) and queues the others on their model's
prefill workers through the prefill router. The trace's columns are turned into
Python lists :data:`ARRIVAL_BLOCK` rows at a time, so a long trace is never held as Python
objects whole; a closed loop (:mod:`sunsim.engine.closed_loop`) appends to a list
``arrival_s`` during the run instead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from sunsim.engine.clock import advance_if_next
from sunsim.engine.request import Request
from sunsim.engine.scheduler import reject_reason

if TYPE_CHECKING:  # pragma: no cover
    import simpy

    from sunsim.engine.clock import Timer
    from sunsim.engine.records import RecordTable
    from sunsim.engine.router import Router
    from sunsim.engine.spec import ClusterSpec
    from sunsim.latency.base import LatencyModel

#: Trace rows the arrival loop turns into Python lists at a time.
ARRIVAL_BLOCK = 1 << 16


class Arrivals:
    """The arrival side of :class:`~sunsim.engine.cluster.ClusterSim` (a base class of it:
    the attributes annotated here are the cluster's)."""

    env: simpy.Environment
    cluster: ClusterSpec
    decode_latency: LatencyModel
    capacity_blocks: int
    records: RecordTable
    #: per model: its prefill pool's router, or a co-located design's router over its
    #: co-located workers (both kinds of worker have ``submit``, ``busy``, ``start_if_idle``)
    prefill_routers: list[Router[Any]]
    num_done: int
    _progress_at: float
    on_request_end: Callable[[float, int], None] | None

    def schedule(self, delay: float, callback: Callable[[Any], None]) -> Timer:
        raise NotImplementedError  # pragma: no cover - ClusterSim's

    def _progress(self) -> None:
        raise NotImplementedError  # pragma: no cover - ClusterSim's

    def start_arrivals(
        self,
        arrival_s: Sequence[float] | np.ndarray,
        model_idx: Sequence[int] | np.ndarray,
        prompt: Sequence[int],
        output: Sequence[int],
    ) -> None:
        """Schedule the arrivals (equal-length sequences or arrays, sorted): one timer per
        distinct instant, read in blocks of :data:`ARRIVAL_BLOCK` rows. A list ``arrival_s``
        may grow during the run: a closed loop appends its next arrival (at or after now) and
        schedules :meth:`_arrive` itself (:mod:`sunsim.engine.closed_loop`)."""
        self._arrival = (arrival_s, model_idx, prompt, output)
        self._num_arrivals = len(arrival_s)
        self._next = 0
        self._block_lo = self._block_hi = 0
        if self._num_arrivals:
            self._load_block(0)
            self.schedule(max(self._block[0][0], 0.0), self._arrive)

    def _load_block(self, lo: int) -> None:
        hi = min(lo + ARRIVAL_BLOCK, len(self._arrival[0]))
        self._block: tuple[list[Any], ...] = tuple(
            a[lo:hi].tolist() if isinstance(a, np.ndarray) else list(a[lo:hi])
            for a in self._arrival
        )
        self._block_lo, self._block_hi = lo, hi

    def _arrive(self, _ev: Any) -> None:
        """The arrival timer: :meth:`_arrive_now`, then the timer of the next arrival instant,
        or, when that timer would be the very next event, its work at once
        (:func:`~sunsim.engine.clock.advance_if_next`: same order, one event fewer)."""
        env = self.env
        while True:
            i = self._arrive_now(env._now)
            if i < 0:
                return
            if i >= self._block_hi:
                self._load_block(i)
            delay = self._block[0][i - self._block_lo] - env._now
            if not advance_if_next(env, delay):
                self.schedule(delay, self._arrive)
                return

    def _arrive_now(self, now: float) -> int:
        """Every request arriving by ``now``: reject it (:func:`reject_reason`) or queue it for
        prefill; idle prefill workers start once all of this instant's arrivals are queued.
        Returns the index of the first request still to arrive, or -1 when none was left when
        the call began (a closed loop schedules the arrivals it adds itself)."""
        max_len = self.decode_latency.max_model_len
        B = self.cluster.block_size
        cap = self.capacity_blocks
        routers = self.prefill_routers
        n = len(self._arrival[0])  # a closed loop's list grows during the run
        i = self._next
        touched = []
        while i < n:
            if i >= self._block_hi:
                self._load_block(i)
            lo = self._block_lo
            arrival_s, model_idx, prompt, output = self._block
            j = i - lo
            m_end = self._block_hi - lo
            while j < m_end and arrival_s[j] <= now:
                t = arrival_s[j]
                p = prompt[j]
                o = output[j]
                reason = reject_reason(p, o, max_len, cap, B)
                if reason is not None:
                    self.records.reject(lo + j, t, reason)
                    self.num_done += 1
                    if self.num_done >= self._progress_at:
                        self._progress()
                    if self.on_request_end is not None:
                        self.on_request_end(now, lo + j)
                else:
                    m = model_idx[j]
                    r = Request(lo + j, m, p, o, t)
                    rt = routers[m]
                    w = rt.choose_for(r) if rt.reads_request else rt.choose()
                    assert w is not None
                    w.submit(r, defer=False)
                    if not w.busy:
                        touched.append(w)
                j += 1
            i = lo + j
            if j < m_end:
                break
        self._next = i
        for w in touched:  # all of this instant's arrivals are queued: start idle workers
            w.start_if_idle()
        return i if i < n else -1
