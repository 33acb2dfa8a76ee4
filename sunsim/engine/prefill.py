"""Prefill workers: one model's prefill module on one GPU, FCFS batches under a token budget."""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

from sunsim.engine.clock import call_later, delay_pusher
from sunsim.engine.kv_link import KvLink
from sunsim.engine.request import Request, RequestStatus

if TYPE_CHECKING:  # pragma: no cover
    from sunsim.engine.cluster import ClusterSim
    from sunsim.engine.prefix_hooks import WorkerPrefix

_QUEUED = RequestStatus.QUEUED
_PREFILLING = RequestStatus.PREFILLING


class PrefillWorker:
    """A prefill worker of model ``model_idx``.

    It takes requests first come, first served and batches them while the batch's prompt
    tokens stay within ``max_num_batched_tokens`` (a longer prompt runs alone). A batch costs
    ``latency.prefill_time(prompt_lens)``. A fresh request prefills its prompt and emits its
    first token; a request coming back after a decode preemption recomputes the KV of its
    prompt and the tokens it had generated (``prompt + num_generated_tokens - 1`` tokens) and
    emits none.
    Preempted requests go to the front of the queue, as vLLM does.

    Router view: ``load`` = requests queued or in the running batch; ``load_tokens`` = their
    prompt tokens.
    """

    def __init__(self, sim: ClusterSim, wid: int, model_idx: int, link: KvLink) -> None:
        self.sim = sim
        self.env = sim.env
        self.wid = wid
        self.model_idx = model_idx
        self.link = link
        self.queue: deque[Request] = deque()
        self.load = 0
        self.load_tokens = 0
        self.busy = False
        self.start_scheduled = False
        self.batch: list[Request] | None = None
        self.batch_lens: list[int] | None = None
        self.busy_s = 0.0
        self.num_batches = 0
        self.num_tokens = 0
        self.num_events = 0  # timers scheduled (the cluster sums them)
        self.budget = sim.cluster.max_num_batched_tokens
        self.prefill_time = sim.prefill_latency.prefill_time
        #: schedules the running batch's end (now + its duration)
        self._push = delay_pusher(self.env, self._done)
        #: the prefix cache (:mod:`sunsim.engine.prefix_hooks`); None: caching off
        self.prefix: WorkerPrefix | None = None

    @staticmethod
    def tokens_to_prefill(r: Request) -> int:
        """Tokens whose KV a prefill of ``r`` computes: its prompt, plus the tokens it had
        generated before a preemption except the last (which the recompute emits again)."""
        g = r.num_generated_tokens
        return r.prompt_tokens + (g - 1 if g > 1 else 0)

    def submit(self, r: Request, front: bool = False, defer: bool = True) -> None:
        """Queue ``r`` (at the front for a preempted request). An idle worker starts a batch
        once the requests arriving at this same instant have been queued: through a zero-delay
        timer, or, with ``defer=False``, when the caller calls :meth:`start_if_idle` after
        queueing them all."""
        r.status = _QUEUED
        if front:
            self.queue.appendleft(r)
        else:
            self.queue.append(r)
        self.load += 1
        g = r.num_generated_tokens  # tokens_to_prefill(r), inlined
        self.load_tokens += r.prompt_tokens + (g - 1 if g > 1 else 0)
        if defer and not self.busy and not self.start_scheduled:
            self.start_scheduled = True
            self.num_events += 1
            call_later(self.env, 0, self._start)

    def start_if_idle(self) -> None:
        """Start a batch now if the worker is idle and has work (after ``defer=False``)."""
        if not self.busy and not self.start_scheduled and self.queue:
            self._start()

    def _start(self, _ev: Any = None) -> None:
        """Form the next FCFS batch under the token budget and schedule its end."""
        self.start_scheduled = False
        q = self.queue
        if not q:
            self.busy = False
            return
        if self.prefix is not None:
            batch, lens, tokens, dt = self._cached_batch()
        else:
            now = self.env._now
            budget = self.budget
            wid = self.wid
            batch = []
            lens = []
            tokens = 0
            while q:
                r = q[0]
                g = r.num_generated_tokens  # tokens_to_prefill(r), inlined
                n = r.prompt_tokens + (g - 1 if g > 1 else 0)
                if batch and tokens + n > budget:
                    break
                q.popleft()
                batch.append(r)
                lens.append(n)
                tokens += n
                r.status = _PREFILLING
                if r.prefill_started_at < 0:
                    r.prefill_started_at = now
                    r.prefill_worker = wid
            dt = self.prefill_time(lens)
        self.busy = True
        self.batch = batch
        self.batch_lens = lens
        self.busy_s += dt
        self.num_batches += 1
        self.num_tokens += tokens
        self.num_events += 1
        self._push(dt)

    def _cached_batch(self) -> tuple[list[Request], list[int], int, float]:
        """The next batch with the prefix cache on: each request's cached blocks are not
        computed (they count neither in the budget nor in the step time)."""
        pc = self.prefix
        assert pc is not None
        q = self.queue
        now = self.env._now
        budget = self.budget
        batch: list[Request] = []
        lens: list[int] = []
        tokens = 0
        hits: list[int] = []
        while q:
            r = q[0]
            n = self.tokens_to_prefill(r)
            hit = pc.lookup(r, n)
            if batch and tokens + n - hit > budget:
                break
            q.popleft()
            batch.append(r)
            lens.append(n)
            tokens += n - hit
            pc.admit(r, hit)
            hits.append(hit)
            r.status = _PREFILLING
            if r.prefill_started_at < 0:
                r.prefill_started_at = now
                r.prefill_worker = self.wid
        return batch, lens, tokens, pc.start_batch(lens, hits)

    def _done(self, _ev: Any) -> None:
        batch, lens = self.batch, self.batch_lens
        assert batch is not None and lens is not None
        self.batch = self.batch_lens = None
        on_prefilled = self.sim.on_prefilled
        pc = self.prefix
        if pc is not None:  # the KV is computed: cache it, then it leaves for decode
            for r in batch:
                pc.computed(r, pc.cache.capacity_blocks)
                pc.release(r)
        for r, n in zip(batch, lens):
            self.load -= 1
            self.load_tokens -= n
            on_prefilled(r, self, n)
        if self.queue:
            self._start()
        else:
            self.start_scheduled = False
            self.busy = False
