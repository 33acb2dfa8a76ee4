"""Co-located (aggregated) workers: prefill and decode in one continuous batch with chunked
prefill under a token budget, as vLLM V1's default scheduler runs them.

One co-located worker is one GPU holding a whole model (its task model's, for the
``colocated`` design). There is no prefill pool and no KV transfer: a request is queued at a
worker of its model's pool (the ``--router`` policy; ``central`` acts as ``least_loaded``
here, since each worker keeps its own waiting queue) and stays there until it finishes.

Each step (``vllm/v1/core/sched/scheduler.py``, ``Scheduler.schedule``; the policy the vLLM
docs describe for chunked prefill, "Optimization and Tuning", v0.8: all decodes first, then
prefills within ``max_num_batched_tokens``, chunking a prompt that does not fit;
Sarathi-Serve, Agrawal et al., OSDI'24), with a token budget of ``max_num_batched_tokens``:

1. **running requests, oldest first**: every decoding request gets one token; the request
   whose prompt is partly computed (at most one: it is always the newest) gets
   ``min(tokens left, budget left)``. A request's KV blocks are allocated for its tokens
   after this step (paged KV cache, ``block_size`` tokens a block); when they do not fit,
   the newest running request is preempted (its KV dropped; ``num_computed_tokens = 0``; it
   goes to the front of the waiting queue and is recomputed later), as V1 does;
2. **waiting requests, FCFS**, only if nothing was preempted in this step: while budget is
   left and fewer than ``max_num_seqs`` requests run, admit the head with a chunk of
   ``min(tokens to compute, budget left)`` tokens if its blocks fit (else stop: head-of-line
   blocking). A fresh request computes its prompt; a preempted one its prompt and every
   token it had generated (``prompt + generated``), as V1 recomputes.
3. the step costs :meth:`~sunsim.latency.base.LatencyModel.mixed_step_time` (decodes,
   their context, the chunks); a request whose last chunk ran emits a token at the step's
   end (its first token: ``first_token_at``; after a recompute, the next one) and decodes
   from the next step; a decoding request emits one token per step.

Not modelled: speculative decoding and the per-step CPU overhead. Prefix caching (on by default
in V1) only with ``enable_prefix_caching``: the worker's ``prefix`` component
(:class:`~sunsim.engine.prefix_hooks.WorkerPrefix`, None without caching) is told when requests
are admitted, prefilled, preempted and finished.

Records: ``kv_ready_at`` = ``decode_started_at`` = ``first_token_at`` (``docs/metrics.md``).
Decode-only steps with nothing to admit run as planned runs of iterations, as
:class:`~sunsim.engine.decode.DecodeWorker` does; an arrival cuts a run at its next boundary.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import deque
from collections.abc import Callable
from heapq import heappop, heappush
from typing import TYPE_CHECKING, Any

from sunsim.engine.decode import MAX_MACRO_ITERATIONS
from sunsim.engine.decode_stats import DecodeStats
from sunsim.engine.kv_cache import PagedKvCache
from sunsim.engine.request import Request, RequestStatus
from sunsim.engine.scheduler import DecodePolicy
from sunsim.latency.base import LatencyModel

if TYPE_CHECKING:  # pragma: no cover
    import simpy

    from sunsim.engine.cluster import ClusterSim
    from sunsim.engine.prefix_hooks import WorkerPrefix

__all__ = ["ColocatedWorker"]

_INF = float("inf")
_QUEUED = RequestStatus.QUEUED
_PREFILLING = RequestStatus.PREFILLING
_RUNNING = RequestStatus.RUNNING

#: A scheduled prefill chunk: (request, tokens computed in this step, tokens computed before).
Chunk = tuple[Request, int, int]


def tokens_to_compute(r: Request) -> int:
    """Tokens whose KV a (re)admitted request computes: its prompt and the tokens it has
    generated (V1 recomputes them all; the step computing the last one emits the next)."""
    return r.prompt_tokens + r.num_generated_tokens


class ColocatedWorker:
    """Co-located worker ``wid`` of pool ``pool_idx`` (see the module docstring).

    Args:
        sim: the cluster (counters, callbacks); latency: the module's latency model;
        policy: ``max_num_seqs``, KV blocks and block size; max_num_batched_tokens: the
        token budget per step.

    Router view: ``load`` = requests assigned and not finished; ``load_tokens`` = their
    prompt tokens. ``stats`` is a :class:`~sunsim.engine.decode_stats.DecodeStats` (its
    ``batch_time``/``mean_batch`` count decoding requests per step).
    """

    def __init__(
        self,
        sim: ClusterSim,
        wid: int,
        pool_idx: int,
        latency: LatencyModel,
        policy: DecodePolicy,
        max_num_batched_tokens: int,
    ) -> None:
        self.sim = sim
        self.env: simpy.Environment = sim.env
        self.next_admission_id = sim.next_admission_id
        self.wid = wid
        self.pool_idx = pool_idx
        self.decode_run = latency.decode_run
        self.mixed_step_time = latency.mixed_step_time
        self.max_num_seqs = policy.max_num_seqs
        self.token_budget = max_num_batched_tokens
        self.block_size = policy.block_size
        self.kv = PagedKvCache(policy.capacity_blocks, policy.block_size)  # decoding requests
        self.stats = DecodeStats(policy.max_num_seqs, self.kv.capacity_tokens)
        self.load = 0
        self.load_tokens = 0
        self.waiting: deque[Request] = deque()
        self.running: dict[int, Request] = {}  # decoding: admission_id -> request, oldest first
        self.finish_heap: list[tuple[int, int, Request]] = []  # (iteration, admission_id, r)
        self.partial: Request | None = None  # the request whose prompt is partly computed
        self.partial_done = 0  # its tokens whose KV is computed
        self.iteration = 0  # steps completed
        self.busy = False
        self.timer: simpy.Event | None = None
        self.timer_at = _INF
        self.num_events = 0
        self.run_t0 = 0.0
        self.run_cum: list[float] = []
        self.run_todo = 0
        self.run_n = 0
        self.run_ctx = 0
        self.run_chunks: list[Chunk] | None = None  # the chunks of a mixed step in progress
        self.run_decodes = True  # whether the step in progress advances the decodes
        self.plan_cap = 64
        #: the prefix cache's hooks (:class:`~sunsim.engine.prefix_hooks.WorkerPrefix`),
        #: attached before the run with ``enable_prefix_caching``; None: caching off
        self.prefix: WorkerPrefix | None = None

    @property
    def capacity_tokens(self) -> int:
        """KV tokens the worker's cache holds."""
        return self.kv.capacity_tokens

    # -- arrivals and the timer ------------------------------------------------------------
    def submit(self, r: Request, front: bool = False, defer: bool = True) -> None:
        """Queue ``r`` (FCFS). An idle worker starts at once through a zero-delay timer, or,
        with ``defer=False``, when the caller calls :meth:`start_if_idle`; a planned run of
        decode iterations is cut at the first boundary at or after now."""
        r.status = _QUEUED
        if front:
            self.waiting.appendleft(r)
        else:
            self.waiting.append(r)
        self.load += 1
        self.load_tokens += r.prompt_tokens
        now = self.env.now
        if not self.busy:
            if defer and self.timer_at > now:
                self._set_timer(now)
        elif self.run_todo > 1:
            cum = self.run_cum
            j = bisect_left(cum, now - self.run_t0) + 1
            if j < self.run_todo:
                self.run_todo = j
                self._set_timer(max(self.run_t0 + cum[j - 1], now))

    def start_if_idle(self) -> None:
        """Start now if the worker is idle and has work (after ``submit(defer=False)``)."""
        if not self.busy and self.waiting:
            self.timer = None  # a zero-delay start timer, if any, is now stale
            self.timer_at = _INF
            self._boundary()

    def _set_timer(self, at: float) -> None:
        self.timer_at = at
        self.num_events += 1
        ev = self.env.timeout(at - self.env.now)
        ev.callbacks.append(self._on_timer)
        self.timer = ev

    def _on_timer(self, ev: Any) -> None:
        if ev is not self.timer:
            return  # superseded
        self.timer_at = _INF
        if self.busy:
            self._end_step()
        self._boundary()

    # -- preemption ----------------------------------------------------------------------------
    def _requeue(self, r: Request) -> None:
        if self.prefix is not None:  # its cached blocks stay cached, evictable
            self.prefix.release(r)
        r.num_preemptions += 1
        self.stats.num_preemptions += 1
        r.status = _QUEUED
        self.waiting.appendleft(r)  # popped newest first, so the oldest ends up in front

    def _preempt_partial(self) -> None:
        r = self.partial
        assert r is not None
        self.partial = None
        self.partial_done = 0
        self._requeue(r)

    def _preempt_newest(self, k: int) -> None:
        """Drop the newest decoding request's KV before step ``k``; it is recomputed."""
        _aid, r = self.running.popitem()
        self.kv.remove(r.kv_offset)
        r.num_generated_tokens = r.kv_offset - r.prompt_tokens + k
        r.last_token_at = self.env.now
        self._requeue(r)

    # -- a step boundary -------------------------------------------------------------------------
    def _boundary(self) -> None:
        """Schedule the next step (module docstring): allocate and preempt, admit, then run
        a mixed step, plan a run of decode iterations, or go idle."""
        k = self.iteration + 1
        kv = self.kv
        bs = self.block_size
        cap = kv.capacity_blocks
        used = kv.blocks_at(k) if kv.num_seqs else 0
        held = -(-self.partial_done // bs) if self.partial is not None else 0
        preempted = False
        if used + held > cap:  # the decodes' new tokens do not fit: preempt from the newest
            preempted = True
            if self.partial is not None:
                self._preempt_partial()
            while used > cap:
                self._preempt_newest(k)
                used = kv.blocks_at(k) if kv.num_seqs else 0
        budget = self.token_budget - kv.num_seqs
        chunks: list[Chunk] = []
        p = self.partial
        if p is not None:
            done = self.partial_done
            c = min(tokens_to_compute(p) - done, budget)
            blocks = -(-(done + c) // bs)
            if c > 0 and used + blocks > cap:  # its chunk does not fit: it preempts itself
                self._preempt_partial()
                preempted = True
            else:
                used += blocks
                if c > 0:
                    budget -= c
                    chunks.append((p, c, done))
        if not preempted:
            self._admit(chunks, used, budget)
        n = kv.num_seqs
        if chunks:
            self._start_mixed(n, chunks)
        elif n:
            self._plan_decode(n, preempted)
        elif preempted and self.waiting:
            self._boundary()  # everything was preempted: an empty step, then admit
        else:
            self.busy = False

    def _admit(self, chunks: list[Chunk], used: int, budget: int) -> None:
        """Admit waiting requests FCFS into ``chunks`` while the budget, ``max_num_seqs`` and
        the KV blocks (``used`` of them taken) allow; stop at the first that does not fit."""
        waiting = self.waiting
        bs = self.block_size
        cap = self.kv.capacity_blocks
        k0 = len(chunks)
        running = self.kv.num_seqs + (self.partial is not None)
        now = self.env.now
        allow = self._admission_filter(chunks)
        skipped: list[Request] = []
        while waiting and budget > 0 and running < self.max_num_seqs:
            r = waiting[0]
            if allow is not None and not allow(r):  # skipped this step, keeps its place
                skipped.append(waiting.popleft())
                continue
            hit = self.prefix.lookup(r, tokens_to_compute(r)) if self.prefix else 0
            c = min(tokens_to_compute(r) - hit, budget)
            blocks = -(-(hit + c) // bs)  # a prefix-cache hit's blocks are its own too
            if used + blocks > cap:
                break
            waiting.popleft()
            used += blocks
            budget -= c
            running += 1
            r.status = _PREFILLING
            if r.prefill_started_at < 0:
                r.prefill_started_at = now
                r.prefill_worker = self.wid
            chunks.append((r, c, hit))
        if skipped:
            waiting.extendleft(reversed(skipped))
        if self.prefix is not None:  # pin the hits, evict down to the room left
            self.prefix.admitted(chunks[k0:], cap - used)

    def _admission_filter(self, chunks: list[Chunk]) -> Callable[[Request], bool] | None:
        """A predicate a waiting request must pass to be admitted in this step (``chunks``:
        the step's chunks so far), or None (every request may be). A request it refuses is
        skipped and keeps its place in the queue, as vLLM V1 skips a request whose LoRA
        adapter does not fit the batch (:mod:`sunsim.engine.lora`)."""
        return None

    def _start_mixed(self, n: int, chunks: list[Chunk]) -> None:
        """One step of ``n`` decodes and these prefill chunks."""
        ctx = self.kv.context_tokens_at(self.iteration + 1) if n else 0
        dt = self.mixed_step_time(n, ctx, [(c, b) for _, c, b in chunks])
        self._start(n, ctx + sum(c + b for _, c, b in chunks), [dt], chunks)

    def _plan_decode(self, n: int, preempted: bool) -> None:
        """A run of decode-only iterations: up to the first finish, a possible KV overflow or
        ``plan_cap`` iterations (one iteration after a preemption, or while a prompt is
        partly computed, so that the next boundary can admit)."""
        base = self.iteration
        last = self.finish_heap[0][0] - base
        cap_it = min(self.plan_cap, MAX_MACRO_ITERATIONS)
        if last > cap_it:
            last = cap_it
        if preempted or self.partial is not None:
            last = 1
        else:
            i_max = self.kv.last_safe_iteration(base)
            if last > i_max:
                last = i_max if i_max > 1 else 1
        ctx1 = self.kv.context_tokens_at(base + 1)
        self._start(n, ctx1, self.decode_run(n, ctx1, last), None)

    def _start(self, n: int, ctx: int, cum: list[float], chunks: list[Chunk] | None) -> None:
        self.busy = True
        self.run_t0 = self.env.now
        self.run_cum = cum
        self.run_todo = len(cum)
        self.run_n = n
        self.run_ctx = ctx
        self.run_chunks = chunks
        self._set_timer(self.run_t0 + cum[-1])

    # -- the end of a step or run -------------------------------------------------------------
    def _end_step(self) -> None:
        """The step (or run, possibly cut short) ended now: account it, finish requests that
        emitted their last token, and advance the prefill chunks."""
        todo = self.run_todo
        self.run_todo = 0
        chunks = self.run_chunks
        self.run_chunks = None
        if chunks is None:  # adapt the run length to how often runs get cut
            if todo < len(self.run_cum):
                self.plan_cap = max(32, 8 * todo)
            elif self.plan_cap < MAX_MACRO_ITERATIONS:
                self.plan_cap = min(MAX_MACRO_ITERATIONS, 2 * self.plan_cap)
        self.iteration += todo if self.run_decodes else 0
        self.stats.commit(self.run_t0, self.run_cum, todo, self.run_n, self.run_ctx, None)
        k = self.iteration
        end = self.env.now
        fheap = self.finish_heap
        while fheap and fheap[0][0] <= k:
            _fin, aid, r = heappop(fheap)
            if r.admission_id != aid or r.status is not _RUNNING:
                continue  # preempted since
            del self.running[aid]
            self.kv.remove(r.kv_offset)
            r.num_generated_tokens = r.output_tokens
            self._finish(r, end)
        if chunks:
            self.partial = None
            for r, c, before in chunks:
                done = before + c
                if done < tokens_to_compute(r):
                    self.partial, self.partial_done = r, done
                else:
                    self._prefilled(r, end)

    def _finish(self, r: Request, end: float) -> None:
        if self.prefix is not None:
            self.prefix.release(r)
        self.load -= 1
        self.load_tokens -= r.prompt_tokens
        self.sim.finish(r, end)

    def _prefilled(self, r: Request, end: float) -> None:
        """``r``'s last chunk ran: it emits a token now, then decodes from the next step."""
        if self.prefix is not None:  # its prompt's blocks are cached, pinned to it
            self.prefix.computed(r, self.kv.capacity_blocks)
        g = r.num_generated_tokens
        if g == 0:
            r.first_token_at = end
        else:  # a recompute: its token's ITL is the gap since the token before preemption
            self.stats.fresh_gaps.append(end - r.last_token_at)
        g += 1
        r.num_generated_tokens = g
        r.last_token_at = end
        if g >= r.output_tokens:
            self._finish(r, end)
            return
        if r.kv_ready_at < 0:
            r.kv_ready_at = end
            r.decode_worker = self.wid
            r.decode_started_at = end
        base = self.iteration
        aid = self.next_admission_id()
        a = r.prompt_tokens + g - (base + 1)  # step base + 1 stores prompt + g tokens
        r.kv_offset = a
        r.admission_id = aid
        r.status = _RUNNING
        self.kv.add(a)
        self.running[aid] = r
        heappush(self.finish_heap, (base + r.output_tokens - g, aid, r))
