"""Decode workers: continuous batching over a paged KV cache, with preemption.

One decode worker is one GPU running a decode module (a model's own in ``partitioned``,
the shared frozen one in ``sun``/``qsun``). Its loop, per iteration (Orca, OSDI'22;
vLLM, SOSP'23):

1. requests whose KV has arrived join the waiting queue (FCFS);
2. if the running requests' KV would outgrow the cache at this iteration, the newest running
   request is preempted (vLLM's policy) until it fits: its KV is dropped and it goes back to
   its model's prefill queue for recompute; it is counted, never lost;
3. otherwise waiting requests are admitted in order while ``running < max_num_seqs`` and the
   cache has blocks for their whole context (head-of-line blocking, as vLLM's FCFS);
4. one iteration costs ``decode_step_time(batch_size, total_context_tokens)`` and gives every
   running request one token.

O(log n) per iteration: the running set's context is kept as sums. A request admitted
before iteration ``K0 + 1`` with ``c`` context tokens has ``a + k`` tokens at iteration ``k``,
with ``a = c - (K0 + 1)``; so the total context is ``sum(a) + n k`` and the number of KV
blocks ``sum(ceil((a + k) / B))`` follows from the count of requests per residue
``a mod B`` (B = block size, 16 in vLLM) in O(B), computed only when an upper bound says
the cache may be full. Finishing iterations sit in a heap; preempted requests' stale heap
entries are skipped by admission id.
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_left
from collections import deque
from heapq import heappop, heappush
from typing import TYPE_CHECKING

import numpy as np

from sunsim.engine.request import RUNNING, TRANSFERRING, WAITING, Request
from sunsim.latency.base import LatencyModel

if TYPE_CHECKING:  # pragma: no cover
    from sunsim.engine.cluster import ClusterSim

_INF = float("inf")

#: ITL histogram: log-spaced bins, 200 per decade from 1 microsecond (about 1.2% wide).
ITL_BINS_PER_DECADE = 200
ITL_MIN_S = 1e-6
ITL_NUM_BINS = ITL_BINS_PER_DECADE * 10  # 1 us .. 10^4 s

#: The longest run of iterations planned at once (a run is one SimPy timer event; 1 steps
#: every iteration as its own event, which gives the same records).
MAX_MACRO_ITERATIONS = 4096


def itl_bin(dt: float) -> int:
    """Index of the ITL histogram bin holding ``dt`` seconds."""
    if dt <= ITL_MIN_S:
        return 0
    i = int(math.log10(dt / ITL_MIN_S) * ITL_BINS_PER_DECADE)
    return i if i < ITL_NUM_BINS else ITL_NUM_BINS - 1


class DecodeWorker:
    """A decode worker of pool ``pool_idx`` (a model's pool, or 0 for the shared pool).

    Args:
        sim: the simulation it belongs to.
        wid: global decode worker index.
        pool_idx: which decode pool.
        latency: the decode module's latency model.
        capacity_blocks: KV-cache capacity in blocks of ``block_tokens`` tokens.

    Router view: ``load`` = requests assigned (in transfer, waiting or running);
    ``load_tokens`` = their KV tokens when they were assigned.

    Statistics (seconds): ``busy_s``; ``batch_s`` = integral of batch size over time;
    ``kv_tokens_s`` = integral of KV tokens held; ``batch_time[b]`` = seconds spent at batch
    size b; a log of every run of iterations, from which :meth:`timeline`, :meth:`kv_time` and
    :meth:`itl_hist` compute the distributions once the simulation is over.
    """

    def __init__(
        self,
        sim: ClusterSim,
        wid: int,
        pool_idx: int,
        latency: LatencyModel,
        capacity_blocks: int,
    ) -> None:
        cl = sim.cluster
        self.sim = sim
        self.env = sim.env
        self.wid = wid
        self.pool_idx = pool_idx
        self.latency = latency
        self.decode_run = latency.decode_run
        self.block_tokens = cl.block_size
        self.capacity_blocks = capacity_blocks
        self.capacity_tokens = capacity_blocks * cl.block_size
        self.max_num_seqs = cl.max_num_seqs
        self.pending: list = []  # heap of (kv_ready_at, seq, request)
        self.waiting: deque[Request] = deque()
        self.running: dict[int, Request] = {}  # admit_id -> request, in admission order
        self.finish_heap: list = []  # (finishing iteration, admit_id, request)
        self.iteration = 0  # iterations completed
        self.n = 0  # running requests
        self.sum_offset = 0  # sum of a_i
        self.residue_count = [0] * self.block_tokens
        self.load = 0
        self.load_tokens = 0
        self.held = None  # the pool's queue when its router is ``central`` (set by ClusterSim)
        self.idle = True
        self.timer_version = 0
        self.timer_at = _INF  # when the pending timer fires (idle: next KV arrival)
        # the planned run of iterations in progress (see _plan)
        self.run_t0 = 0.0
        self.run_cum: list[float] = []  # cumulative seconds at the end of each iteration
        self.run_ctx1 = 0  # context tokens of the run's first iteration
        self.run_todo = 0
        self.run_n = 0
        self.run_fresh: list | None = None
        self.plan_cap = 64
        # statistics
        self.busy_s = 0.0
        self.batch_s = 0.0
        self.kv_tokens_s = 0.0
        self.num_iterations = 0
        self.num_tokens = 0
        self.num_preemptions = 0
        self.peak_batch = 0
        self.batch_time = [0.0] * (self.max_num_seqs + 1)
        # one row per run of iterations, for the distributions computed after the run
        # (timeline, KV occupancy, ITL): start (s), busy (s), KV token-seconds, batch size,
        # iterations, first and last iteration's seconds, requests on their first iteration
        self.log_t0 = array("d")
        self.log_busy = array("d")
        self.log_kv = array("d")
        self.log_n = array("q")
        self.log_todo = array("q")
        self.log_dt0 = array("d")
        self.log_dt1 = array("d")
        self.log_fresh = array("q")
        self.fresh_gaps = array("d")  # a request's first token after (re)admission: its ITL

    # -- arrivals and the timer ------------------------------------------------------
    def deliver(self, r: Request, ready_at: float) -> None:
        """The KV of ``r`` arrives at ``ready_at`` (>= now); then ``r`` waits for admission.

        An idle worker wakes at ``ready_at``; a busy one admits ``r`` at the first iteration
        boundary at or after ``ready_at`` (its planned run is cut short there).
        """
        r.state = TRANSFERRING
        self.sim.seq += 1
        heappush(self.pending, (ready_at, self.sim.seq, r))
        if self.idle:
            if ready_at < self.timer_at:
                self._set_timer(ready_at)
        elif ready_at < self.timer_at:
            cum = self.run_cum
            j = bisect_left(cum, ready_at - self.run_t0) + 1
            if j < self.run_todo:
                self.run_todo = j
                self._set_timer(self.run_t0 + cum[j - 1])

    def _set_timer(self, at: float) -> None:
        """(Re)schedule the worker's one timer; an earlier timer still in SimPy's queue is
        ignored when it fires (its version is stale)."""
        self.timer_version += 1
        self.timer_at = at
        self.sim.num_events += 1
        ev = self.env.timeout(at - self.env.now, self.timer_version)
        ev.callbacks.append(self._on_timer)

    def _on_timer(self, ev) -> None:
        if ev._value != self.timer_version:
            return  # superseded
        self.timer_at = _INF
        if not self.idle:
            self._end_run()
        self._boundary()

    # -- KV accounting ----------------------------------------------------------------
    def blocks_at(self, k: int) -> int:
        """KV blocks the running requests hold at iteration ``k`` (exact, O(block size))."""
        B = self.block_tokens
        s = self.sum_offset + self.n * k
        for res, c in enumerate(self.residue_count):
            if c:
                s += c * ((-(res + k)) % B)
        return s // B

    def _add(self, r: Request, aid: int) -> None:
        k1 = self.iteration + 1
        a = r.prompt_tokens + r.generated - k1
        r.kv_offset = a
        r.admit_id = aid
        r.state = RUNNING
        self.sum_offset += a
        self.residue_count[a % self.block_tokens] += 1
        self.n += 1
        self.running[aid] = r
        heappush(self.finish_heap, (self.iteration + r.output_tokens - r.generated, aid, r))

    def _remove(self, r: Request) -> None:
        a = r.kv_offset
        self.sum_offset -= a
        self.residue_count[a % self.block_tokens] -= 1
        self.n -= 1
        self.load -= 1
        self.load_tokens -= r.routed_tokens
        if self.held:  # central routing: a slot is free and the pool holds requests
            self.sim.on_slot_freed(self)

    def _preempt_newest(self) -> None:
        _aid, r = self.running.popitem()
        self._remove(r)
        # tokens emitted so far: a - prompt + 1 + K
        r.generated = r.kv_offset - r.prompt_tokens + 1 + self.iteration
        r.last_token_at = self.env.now
        r.num_preemptions += 1
        self.num_preemptions += 1
        self.sim.on_preempted(r)

    # -- iteration boundaries -----------------------------------------------------------
    def _boundary(self) -> None:
        """At an iteration boundary (or on waking): take arrived KV, preempt if the cache
        overflows, admit FCFS, then plan the next run of iterations or go idle."""
        now = self.env.now
        B = self.block_tokens
        cap = self.capacity_blocks
        max_seqs = self.max_num_seqs
        pending = self.pending
        waiting = self.waiting
        while pending and pending[0][0] <= now:
            r = heappop(pending)[2]
            r.state = WAITING
            waiting.append(r)
        k = self.iteration + 1
        n = self.n
        # growth: preempt the newest until this iteration's KV fits
        preempted = False
        if n and (self.sum_offset + n * k + n * (B - 1)) // B > cap:
            blocks = self.blocks_at(k)
            while blocks > cap:
                self._preempt_newest()
                preempted = True
                blocks = self.blocks_at(k)
        # admission, FCFS, when nothing was preempted (vLLM)
        fresh = None
        if waiting and self.n < max_seqs and not preempted:
            n = self.n
            blocks = (self.sum_offset + n * k + n * (B - 1)) // B  # upper bound
            exact = False
            sim = self.sim
            while waiting and self.n < max_seqs:
                r = waiting[0]
                need = -(-(r.prompt_tokens + r.generated) // B)
                if blocks + need > cap:
                    if exact:
                        break
                    blocks = self.blocks_at(k)  # includes those admitted just now
                    exact = True
                    if blocks + need > cap:
                        break
                waiting.popleft()
                blocks += need
                sim.admit_seq += 1
                self._add(r, sim.admit_seq)
                if r.decode_started_at < 0:
                    r.decode_started_at = now
                if fresh is None:
                    fresh = [r]
                else:
                    fresh.append(r)
        n = self.n
        if n == 0:
            self.idle = True
            if pending and pending[0][0] < self.timer_at:
                self._set_timer(pending[0][0])
            return
        self.idle = False
        self._plan(now, n, preempted, fresh)

    def _plan(self, now: float, n: int, preempted: bool, fresh) -> None:
        """Plan a run of iterations with the current batch, up to the first finish, the first
        boundary at or after a known KV arrival, a possible KV overflow, or ``plan_cap``
        iterations (adapted to how often runs get cut), and set the timer to its end."""
        B = self.block_tokens
        cap = self.capacity_blocks
        sum_a = self.sum_offset
        base = self.iteration
        last = self.finish_heap[0][0] - base
        cap_it = self.plan_cap if self.plan_cap < MAX_MACRO_ITERATIONS else MAX_MACRO_ITERATIONS
        if last > cap_it:
            last = cap_it
        if preempted:
            last = 1  # admission was skipped at this boundary; try at the next one
        else:
            # the last iteration whose KV surely fits: blocks <= ((ctx + n (B - 1)) // B)
            i_max = ((cap + 1) * B - sum_a - n * (B - 1) - n * base - 1) // n
            if last > i_max:
                last = i_max if i_max > 1 else 1
        t_stop = self.pending[0][0] - now if self.pending else _INF
        ctx1 = sum_a + n * (base + 1)
        cum = self.decode_run(n, ctx1, last, t_stop)
        self.run_t0 = now
        self.run_cum = cum
        self.run_ctx1 = ctx1
        self.run_todo = len(cum)
        self.run_n = n
        self.run_fresh = fresh
        self._set_timer(now + cum[-1])

    def _end_run(self) -> None:
        """The planned run (possibly cut short) ended now: account it, finish requests."""
        todo = self.run_todo
        self.run_todo = 0  # no run in progress: a delivery during this boundary cuts nothing
        planned = len(self.run_cum)
        if todo < planned:
            self.plan_cap = max(32, 8 * todo)
        elif self.plan_cap < MAX_MACRO_ITERATIONS:
            self.plan_cap = min(MAX_MACRO_ITERATIONS, 2 * self.plan_cap)
        self._commit(self.run_t0, self.run_cum, todo, self.run_n, self.run_ctx1, self.run_fresh)
        self.run_fresh = None
        k = self.iteration
        fheap = self.finish_heap
        running = self.running
        end = self.env.now
        sim = self.sim
        while fheap and fheap[0][0] <= k:
            _fin, aid, r = heappop(fheap)
            if r.admit_id != aid or r.state != RUNNING:
                continue  # preempted since
            del running[aid]
            self._remove(r)
            r.generated = r.output_tokens
            sim.finish(r, end)

    def _commit(self, t0: float, cum: list, todo: int, n: int, ctx1: int, fresh) -> None:
        """Account ``todo`` iterations of batch ``n`` that started at ``t0``; iteration ``m``
        (1-based) ended at ``t0 + cum[m-1]`` and held ``ctx1 + n (m-1)`` context tokens."""
        self.iteration += todo
        self.num_iterations += todo
        self.num_tokens += n * todo
        if n > self.peak_batch:
            self.peak_batch = n
        busy = cum[todo - 1]
        # KV token-seconds: sum over iterations i of (ctx1 + n (i-1)) dt_i, by Abel summation
        # sum_i (i-1) dt_i = (todo-1) cum[todo-1] - sum(cum[:todo-1])
        kv_s = (
            ctx1 * busy + n * ((todo - 1) * busy - sum(cum[: todo - 1]))
            if todo > 1
            else ctx1 * busy
        )
        self.busy_s += busy
        self.batch_s += n * busy
        self.kv_tokens_s += kv_s
        self.batch_time[n] += busy
        nf = 0
        if fresh is not None:
            end = t0 + cum[0]
            gaps = self.fresh_gaps
            for r in fresh:
                gaps.append(end - r.last_token_at)
            nf = len(fresh)
        self.log_t0.append(t0)
        self.log_busy.append(busy)
        self.log_kv.append(kv_s)
        self.log_n.append(n)
        self.log_todo.append(todo)
        self.log_dt0.append(cum[0])
        self.log_dt1.append(busy - cum[todo - 2] if todo > 1 else busy)
        self.log_fresh.append(nf)

    # -- distributions, computed once after the simulation ------------------------------
    def _log(self) -> dict[str, np.ndarray]:
        return {
            k: np.frombuffer(
                getattr(self, "log_" + k),
                dtype=float if k in ("t0", "busy", "kv", "dt0", "dt1") else np.int64,
            )
            for k in ("t0", "busy", "kv", "n", "todo", "dt0", "dt1", "fresh")
        }

    def timeline(self, bin_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Busy seconds, batch-size x seconds and KV token-seconds per time bin of ``bin_s``
        seconds; a run of iterations spanning bins is split in proportion to its time in each
        (iterations of one run have nearly equal length)."""
        g = self._log()
        t0, busy = g["t0"], g["busy"]
        if len(t0) == 0:
            z = np.zeros(0)
            return z, z, z
        batch = g["n"] * busy
        kv = g["kv"]
        b0 = np.floor(t0 / bin_s).astype(np.int64)
        b1 = np.floor((t0 + busy) / bin_s).astype(np.int64)
        nb = int(b1.max()) + 1
        out = [np.zeros(nb), np.zeros(nb), np.zeros(nb)]
        one = b0 == b1
        for o, w in zip(out, (busy, batch, kv)):
            o += np.bincount(b0[one], weights=w[one], minlength=nb)
        for i in np.nonzero(~one)[0]:  # runs crossing bin edges
            start, d = t0[i], busy[i]
            for b in range(b0[i], b1[i] + 1):
                lo = max(start, b * bin_s)
                hi = min(start + d, (b + 1) * bin_s)
                if hi > lo and d > 0:
                    f = (hi - lo) / d
                    out[0][b] += f * busy[i]
                    out[1][b] += f * batch[i]
                    out[2][b] += f * kv[i]
        return out[0], out[1], out[2]

    def kv_time(self) -> np.ndarray:
        """Seconds per KV token occupancy percent bin 0..100 (each run at its time-weighted
        mean occupancy)."""
        g = self._log()
        busy = g["busy"]
        h = np.zeros(101)
        if len(busy):
            mean_ctx = np.divide(g["kv"], busy, out=np.zeros_like(busy), where=busy > 0)
            occ = np.minimum((100 * mean_ctx / self.capacity_tokens).astype(np.int64), 100)
            h += np.bincount(occ, weights=busy, minlength=101)
        return h

    def itl_hist(self) -> np.ndarray:
        """Tokens per ITL bin (see :func:`itl_bin`): every iteration's tokens at its length
        (within a run, iteration lengths are interpolated linearly between the first and the
        last, exact when the step time is linear in context, as the roofline is), except a
        request's first token after (re)admission, counted at its gap since its previous
        token."""
        g = self._log()
        h = np.zeros(ITL_NUM_BINS, dtype=np.int64)
        todo = g["todo"]
        if len(todo):
            idx = np.repeat(np.arange(len(todo)), todo)
            first = np.concatenate(([0], np.cumsum(todo)[:-1]))
            m = np.arange(len(idx)) - np.repeat(first, todo)  # iteration within its run
            span = np.maximum(todo - 1, 1)[idx]
            dt = g["dt0"][idx] + (g["dt1"][idx] - g["dt0"][idx]) * (m / span)
            w = g["n"][idx].copy()
            w[first] -= g["fresh"]
            h += np.bincount(_itl_bins(dt), weights=w, minlength=ITL_NUM_BINS).astype(np.int64)
        if len(self.fresh_gaps):
            gaps = np.frombuffer(self.fresh_gaps, dtype=float)
            h += np.bincount(_itl_bins(gaps), minlength=ITL_NUM_BINS).astype(np.int64)
        return h


def _itl_bins(dt: np.ndarray) -> np.ndarray:
    """Vectorised :func:`itl_bin`."""
    with np.errstate(divide="ignore", invalid="ignore"):
        i = np.floor(np.log10(np.maximum(dt, ITL_MIN_S) / ITL_MIN_S) * ITL_BINS_PER_DECADE)
    return np.clip(i, 0, ITL_NUM_BINS - 1).astype(np.int64)
