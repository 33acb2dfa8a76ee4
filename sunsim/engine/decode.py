"""Decode workers: continuous batching over a paged KV cache, advanced in planned runs.

One decode worker is one GPU running a decode module (a model's own in ``partitioned``,
the shared frozen one in ``sun``/``qsun``). Its loop, per iteration (Orca, OSDI'22;
vLLM, SOSP'23):

1. requests whose KV has arrived join the waiting queue (FCFS);
2. the :class:`~sunsim.engine.scheduler.DecodePolicy` preempts the newest running request
   while the running requests' KV would outgrow the cache at this iteration (it goes back to
   its model's prefill queue for recompute; counted, never lost), or else admits waiting
   requests in order while ``running < max_num_seqs`` and the cache has room;
3. one iteration costs ``decode_step_time(batch_size, total_context_tokens)`` and gives every
   running request one token.

This module only advances time. Block accounting is :class:`~sunsim.engine.kv_cache.PagedKvCache`
(O(block_size) per exact count), the rules are :mod:`sunsim.engine.scheduler`, statistics
are :class:`~sunsim.engine.decode_stats.DecodeStats`. Between two boundaries where something
can change, the batch is fixed, so the worker plans a **run** of iterations at once
(``latency.decode_run``, one SimPy timer for the whole run): up to the first finish, a
possible KV overflow, or ``plan_cap`` iterations; a run is cut at the first boundary at or
after a KV arrival. Finishing iterations sit in a heap; preempted requests' stale heap
entries are skipped by admission id. Planned runs give the same records as stepping each
iteration (``MAX_MACRO_ITERATIONS = 1``), with far fewer events.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import deque
from collections.abc import Callable
from heapq import heappop, heappush
from typing import TYPE_CHECKING

from sunsim.engine.clock import Timer, cancel, timer_pusher
from sunsim.engine.decode_stats import (
    ITL_BINS_PER_DECADE,
    ITL_MIN_S,
    ITL_NUM_BINS,
    DecodeStats,
    itl_bin,
)
from sunsim.engine.kv_cache import PagedKvCache
from sunsim.engine.request import Request, RequestStatus
from sunsim.engine.scheduler import DecodePolicy
from sunsim.latency.base import LatencyModel

if TYPE_CHECKING:  # pragma: no cover
    import simpy

    from sunsim.engine.cluster import ClusterSim
    from sunsim.engine.router import Central

__all__ = [
    "ITL_BINS_PER_DECADE",
    "ITL_MIN_S",
    "ITL_NUM_BINS",
    "MAX_MACRO_ITERATIONS",
    "DecodeWorker",
    "itl_bin",
]

_INF = float("inf")
_RUNNING = RequestStatus.RUNNING
_WAITING = RequestStatus.WAITING
_TRANSFERRING = RequestStatus.TRANSFERRING

#: The longest run of iterations planned at once (a run is one SimPy timer event; 1 steps
#: every iteration as its own event, which gives the same records).
MAX_MACRO_ITERATIONS = 4096


class DecodeWorker:
    """Decode worker ``wid`` of pool ``pool_idx`` (a model's pool, or 0 for the shared pool).

    Args:
        sim: the cluster it belongs to (its counters, event scheduling and callbacks).
        wid: global decode worker index.
        pool_idx: which decode pool.
        latency: the decode module's latency model.
        policy: the scheduling policy (``max_num_seqs``, KV capacity and block size).
        loads: the load list of the worker's pool (None: a list of its own).

    Router view: ``load`` = requests assigned (in transfer, waiting or running), kept at
    ``loads[slot]``, a list the workers of a pool share (``loads``: the pool's list, grown by
    one slot per worker; the routers read it whole); ``load_tokens`` = their KV tokens when
    they were assigned; ``max_num_seqs``.
    ``central`` is the pool's :class:`~sunsim.engine.router.Central` router when there is
    one (the worker tells the cluster when it frees a slot while that router holds requests).
    """

    def __init__(
        self,
        sim: ClusterSim,
        wid: int,
        pool_idx: int,
        latency: LatencyModel,
        policy: DecodePolicy,
        loads: list[int] | None = None,
    ) -> None:
        self.sim = sim
        self.env: simpy.Environment = sim.env
        self.next_seq = sim.next_seq
        self.next_admission_id = sim.next_admission_id
        self.wid = wid
        self.pool_idx = pool_idx
        self.decode_run = latency.decode_run
        self.policy = policy
        self.max_num_seqs = policy.max_num_seqs
        self.kv = PagedKvCache(policy.capacity_blocks, policy.block_size)
        bin_s = None if sim.defer_timeline else sim.timeline_bin_s
        self.stats = DecodeStats(policy.max_num_seqs, self.kv.capacity_tokens, bin_s)
        self.central: Central[DecodeWorker] | None = None
        self.loads: list[int] = [] if loads is None else loads
        self.slot = len(self.loads)
        self.loads.append(0)
        self.load_tokens = 0
        # requests: KV in flight, waiting, running; finishing iterations
        self.pending: list[tuple[float, int, Request]] = []  # heap (kv_ready_at, seq, r)
        self.waiting: deque[Request] = deque()
        self.running: dict[int, Request] = {}  # admission_id -> request, in admission order
        self.finish_heap: list[tuple[int, int, Request]] = []  # (iteration, admission_id, r)
        self.iteration = 0  # iterations completed
        # time: the one timer, and the planned run of iterations in progress (see _plan)
        self.idle = True
        self.timer: Timer | None = None  # the live timer; an older one that fires is stale
        self.timer_at = _INF  # when it fires (idle: the next KV arrival)
        self._push: Callable[[float], Timer] = timer_pusher(self.env, self._on_timer)
        self._commit = self.stats.commit
        self.num_events = 0  # timers scheduled (the cluster sums them)
        self.run_t0 = 0.0
        self.run_cum: list[float] = []  # cumulative seconds at the end of each iteration
        self.run_ctx1 = 0  # context tokens of the run's first iteration
        self.run_todo = 0
        self.run_n = 0
        self.run_fresh: list[Request] | None = None
        self.plan_cap = min(64, MAX_MACRO_ITERATIONS)

    @property
    def load(self) -> int:
        """Requests assigned to the worker and not yet gone."""
        return self.loads[self.slot]

    @property
    def capacity_tokens(self) -> int:
        """KV tokens the worker's cache holds."""
        return self.kv.capacity_tokens

    # -- arrivals and the timer ------------------------------------------------------
    def deliver(self, r: Request, ready_at: float) -> None:
        """The KV of ``r`` arrives at ``ready_at`` (>= now); then ``r`` waits for admission.

        An idle worker wakes at ``ready_at``; a busy one admits ``r`` at the first iteration
        boundary at or after ``ready_at`` (its planned run is cut short there).
        """
        r.status = _TRANSFERRING
        heappush(self.pending, (ready_at, self.next_seq(), r))
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
        """(Re)schedule the worker's one timer; the one it replaces does nothing when it fires."""
        self.timer_at = at
        self.num_events += 1
        cancel(self.timer)
        self.timer = self._push(at)

    def _on_timer(self, ev: Timer) -> None:
        if ev is not self.timer:
            return  # superseded
        self.timer_at = _INF
        if not self.idle:
            self._end_run()
        self._boundary()

    # -- leaving the batch ----------------------------------------------------------------
    def _remove(self, r: Request) -> None:
        """``r`` leaves the running batch (finished or preempted): its blocks and slot free."""
        self.kv.remove(r.kv_offset)
        self.loads[self.slot] -= 1
        self.load_tokens -= r.routed_tokens
        central = self.central
        if central is not None and central.held:  # the pool holds requests for a free slot
            self.sim.on_slot_freed(self)

    def _preempt_newest(self) -> None:
        _aid, r = self.running.popitem()
        self._remove(r)
        # tokens emitted so far: a - prompt + 1 + K
        r.num_generated_tokens = r.kv_offset - r.prompt_tokens + 1 + self.iteration
        r.last_token_at = self.env.now
        r.num_preemptions += 1
        self.stats.num_preemptions += 1
        self.sim.on_preempted(r)

    # -- iteration boundaries -----------------------------------------------------------
    def _boundary(self) -> None:
        """At an iteration boundary (or on waking): take arrived KV, apply the policy
        (preempt, else admit FCFS), then plan the next run of iterations (up to the first
        finish, the first boundary at or after a known KV arrival, a possible KV overflow,
        or ``plan_cap`` iterations, adapted to how often runs get cut) and set the timer to
        its end; or go idle."""
        now = self.env._now  # the property's value, without the call
        pending = self.pending
        waiting = self.waiting
        while pending and pending[0][0] <= now:
            r = heappop(pending)[2]
            r.status = _WAITING
            waiting.append(r)
        base = self.iteration
        k = base + 1
        kv = self.kv
        # growth: preempt the newest until this iteration's KV fits (the O(1) upper bound
        # rules it out at most boundaries: blocks_upper_bound(k) <= capacity exactly when
        # last_safe_iteration(base) >= 1, a figure the run's plan reuses)
        preempted = False
        safe = kv.last_safe_iteration(base) if kv.num_seqs else 0
        if kv.num_seqs and safe < 1:
            preempted = self._preempt_to_fit(k)
        # admission, FCFS, when nothing was preempted (vLLM)
        fresh = None
        if waiting and kv.num_seqs < self.max_num_seqs and not preempted:
            fresh = self._admit(now, k)
        n = kv.num_seqs
        if n == 0:
            self.idle = True
            if pending and pending[0][0] < self.timer_at:
                self._set_timer(pending[0][0])
            return
        self.idle = False
        # the run: up to the first finish, at most plan_cap iterations
        last = self.finish_heap[0][0] - base
        cap_it = self.plan_cap
        if last > cap_it:
            last = cap_it
        if preempted:
            last = 1  # admission was skipped at this boundary; try at the next one
        else:
            # the last iteration whose KV surely fits (the batch as checked above, unless
            # requests were admitted since)
            i_max = kv.last_safe_iteration(base) if fresh else safe
            if last > i_max:
                last = i_max if i_max > 1 else 1
        t_stop = pending[0][0] - now if pending else _INF
        ctx1 = kv.sum_offset + n * k
        cum = self.decode_run(n, ctx1, last, t_stop)
        self.run_t0 = now
        self.run_cum = cum
        self.run_ctx1 = ctx1
        self.run_todo = len(cum)
        self.run_n = n
        self.run_fresh = fresh or None
        at = now + cum[-1]
        self.timer_at = at
        self.num_events += 1
        self.timer = self._push(at)

    def _preempt_to_fit(self, k: int) -> bool:
        """Preempt the newest running requests while iteration ``k``'s KV does not fit;
        True if any was."""
        kv = self.kv
        must_preempt = self.policy.must_preempt
        preempted = False
        blocks = kv.blocks_at(k)
        while must_preempt(blocks):
            self._preempt_newest()
            preempted = True
            blocks = kv.blocks_at(k)
        return preempted

    def _admit(self, now: float, k: int) -> list[Request]:
        """Admit waiting requests in FCFS order while the policy allows, before iteration
        ``k``; return those admitted (possibly none). The block count starts from the O(1)
        upper bound and is made exact only when the bound would refuse a request."""
        kv = self.kv
        policy = self.policy
        waiting = self.waiting
        max_seqs = self.max_num_seqs
        running = self.running
        fheap = self.finish_heap
        base = self.iteration
        next_aid = self.next_admission_id
        blocks = kv.blocks_upper_bound(k)
        exact = False
        fresh: list[Request] = []
        while waiting and kv.num_seqs < max_seqs:
            r = waiting[0]
            gen = r.num_generated_tokens
            need = policy.admission_blocks(r.prompt_tokens, gen)
            if not policy.can_admit(kv.num_seqs, blocks, need):
                if exact:
                    break
                blocks = kv.blocks_at(k)  # includes those admitted just now
                exact = True
                if not policy.can_admit(kv.num_seqs, blocks, need):
                    break
            waiting.popleft()
            blocks += need
            aid = next_aid()
            a = r.prompt_tokens + gen - k
            r.kv_offset = a
            r.admission_id = aid
            r.status = _RUNNING
            kv.add(a)
            running[aid] = r
            heappush(fheap, (base + r.output_tokens - gen, aid, r))
            if r.decode_started_at < 0:
                r.decode_started_at = now
            fresh.append(r)
        return fresh

    def _end_run(self) -> None:
        """The planned run (possibly cut short) ended now: account it, finish requests."""
        todo = self.run_todo
        self.run_todo = 0  # no run in progress: a delivery during this boundary cuts nothing
        cum = self.run_cum
        if todo < len(cum):  # cut short: plan shorter runs (plan_cap <= MAX_MACRO_ITERATIONS)
            self.plan_cap = min(MAX_MACRO_ITERATIONS, 8 * todo if todo > 4 else 32)
        elif self.plan_cap < MAX_MACRO_ITERATIONS:
            self.plan_cap = min(MAX_MACRO_ITERATIONS, 2 * self.plan_cap)
        k = self.iteration + todo
        self.iteration = k
        self._commit(self.run_t0, cum, todo, self.run_n, self.run_ctx1, self.run_fresh)
        self.run_fresh = None
        fheap = self.finish_heap
        if not fheap or fheap[0][0] > k:
            return
        running = self.running
        end = self.env._now
        finish = self.sim.finish
        while fheap and fheap[0][0] <= k:
            _fin, aid, r = heappop(fheap)
            if r.admission_id != aid or r.status is not _RUNNING:
                continue  # preempted since
            del running[aid]
            self._remove(r)
            r.num_generated_tokens = r.output_tokens
            finish(r, end)
