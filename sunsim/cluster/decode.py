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
from collections import deque
from bisect import bisect_left
from heapq import heappop, heappush
from typing import TYPE_CHECKING

from sunsim.latency.base import LatencyModel
from sunsim.workload import RUNNING, TRANSFERRING, WAITING, Request

if TYPE_CHECKING:  # pragma: no cover
    from sunsim.cluster.simulation import ClusterSim

_INF = float("inf")

#: ITL histogram: log-spaced bins, 200 per decade from 1 microsecond (about 1.2% wide).
ITL_BINS_PER_DECADE = 200
ITL_MIN_S = 1e-6
ITL_NUM_BINS = ITL_BINS_PER_DECADE * 10  # 1 us .. 10^4 s

#: The longest run of iterations planned at once (each run is one or two SimPy events).
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
    size b; ``kv_time[p]`` = seconds with KV token occupancy in percent bin p (0..100);
    ``timeline_*`` per time bin of ``sim.timeline_bin_s``; ``itl_hist`` = tokens per ITL bin.
    """

    def __init__(self, sim: "ClusterSim", wid: int, pool_idx: int, latency: LatencyModel,
                 capacity_blocks: int) -> None:
        cl = sim.cluster
        self.sim = sim
        self.env = sim.env
        self.wid = wid
        self.pool_idx = pool_idx
        self.latency = latency
        self.block_tokens = cl.kv_block_tokens
        self.capacity_blocks = capacity_blocks
        self.capacity_tokens = capacity_blocks * cl.kv_block_tokens
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
        self.wake = None
        self.kick_at = _INF
        self.cut_ev = None
        self.cut_at = _INF
        self.macro_end = -1.0
        # statistics
        self.busy_s = 0.0
        self.batch_s = 0.0
        self.kv_tokens_s = 0.0
        self.num_iterations = 0
        self.num_tokens = 0
        self.num_preemptions = 0
        self.peak_batch = 0
        self.batch_time = [0.0] * (self.max_num_seqs + 1)
        self.kv_time = [0.0] * 101
        self.timeline_busy: list[float] = []
        self.timeline_batch: list[float] = []
        self.timeline_kv: list[float] = []
        self.itl_hist = [0] * ITL_NUM_BINS
        self.env.process(self.run())

    # -- arrivals ---------------------------------------------------------------------
    def deliver(self, r: Request, ready_at: float) -> None:
        """The KV of ``r`` arrives at ``ready_at`` (>= now); then ``r`` waits for admission."""
        r.state = TRANSFERRING
        self.sim.seq += 1
        heappush(self.pending, (ready_at, self.sim.seq, r))
        if self.wake is not None and ready_at < self.kick_at:
            self._schedule_kick(ready_at)
        elif ready_at < self.macro_end:
            # arrives during a planned run of iterations: end the run at the next boundary
            if ready_at < self.cut_at:
                self.cut_at = ready_at
            ev = self.cut_ev
            if not ev.triggered:
                ev.succeed(False)

    def _schedule_kick(self, t: float) -> None:
        self.kick_at = t
        self.sim.num_events += 1
        ev = self.env.timeout(t - self.env.now)
        ev.callbacks.append(self._kick)

    def _kick(self, _ev) -> None:
        if self.env.now >= self.kick_at:
            self.kick_at = _INF
        w = self.wake
        if w is not None and not w.triggered:
            w.succeed()

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

    def _preempt_newest(self) -> None:
        _aid, r = self.running.popitem()
        self._remove(r)
        # tokens emitted so far: a - prompt + 1 + K
        r.generated = r.kv_offset - r.prompt_tokens + 1 + self.iteration
        r.last_token_at = self.env.now
        r.num_preemptions += 1
        self.num_preemptions += 1
        self.sim.on_preempted(r)

    # -- the loop ---------------------------------------------------------------------
    def run(self):
        env = self.env
        sim = self.sim
        B = self.block_tokens
        cap = self.capacity_blocks
        max_seqs = self.max_num_seqs
        pending = self.pending
        waiting = self.waiting
        running = self.running
        fheap = self.finish_heap
        step_time = self.latency.decode_step_time
        max_macro = MAX_MACRO_ITERATIONS
        while True:
            now = env.now
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
            # admission, FCFS, when nothing was preempted
            fresh = None
            if waiting and self.n < max_seqs and not preempted:
                n = self.n
                blocks = (self.sum_offset + n * k + n * (B - 1)) // B  # upper bound
                exact = False
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
                self.wake = env.event()
                if pending and pending[0][0] < self.kick_at:
                    self._schedule_kick(pending[0][0])
                yield self.wake
                self.wake = None
                continue
            # Plan a run of iterations with this batch: up to the first finish, the first
            # iteration boundary after a known KV arrival, or a possible KV overflow.
            sum_a = self.sum_offset
            base = self.iteration
            last = fheap[0][0] - base
            if last > max_macro:
                last = max_macro
            if preempted:
                last = 1  # admission was skipped at this boundary; try at the next one
            t_stop = pending[0][0] - now if pending else _INF
            cum = []
            t = 0.0
            i = 1
            while True:
                t += step_time(n, sum_a + n * (base + i))
                cum.append(t)
                if i >= last or t >= t_stop:
                    break
                i += 1
                if (sum_a + n * (base + i) + n * (B - 1)) // B > cap:
                    break
            todo = len(cum)
            if todo == 1:
                sim.num_events += 1
                yield env.timeout(t)
            else:
                # Wait for the planned end; a KV arrival before it (deliver) cuts the run
                # short at the first iteration boundary at or after its arrival.
                self.cut_at = _INF
                while True:
                    end = now + cum[todo - 1]
                    ev = env.event()
                    self.cut_ev = ev
                    self.macro_end = end
                    sim.num_events += 2
                    tm = env.timeout(end - env.now, ev)
                    tm.callbacks.append(_fire)
                    if (yield ev) is not False:
                        break
                    j = bisect_left(cum, self.cut_at - now) + 1
                    if j < todo:
                        todo = j
                self.cut_ev = None
                self.macro_end = -1.0
            self._commit(now, cum, todo, n, sum_a + n * base, fresh)
            k = self.iteration
            end = env.now
            while fheap and fheap[0][0] <= k:
                _fin, aid, r = heappop(fheap)
                if r.admit_id != aid or r.state != RUNNING:
                    continue  # preempted since
                del running[aid]
                self._remove(r)
                r.generated = r.output_tokens
                sim.finish(r, end)

    def _commit(self, t0: float, cum: list, todo: int, n: int, ctx0: int, fresh) -> None:
        """Account ``todo`` iterations of batch ``n`` that started at ``t0``; iteration ``m``
        (1-based) ended at ``t0 + cum[m-1]`` with ``ctx0 + n m`` context tokens."""
        self.iteration += todo
        self.num_iterations += todo
        self.num_tokens += n * todo
        if n > self.peak_batch:
            self.peak_batch = n
        cap_tokens = self.capacity_tokens
        bin_s = self.sim.timeline_bin_s
        tl_busy, tl_batch, tl_kv = self.timeline_busy, self.timeline_batch, self.timeline_kv
        kv_time = self.kv_time
        itl_hist = self.itl_hist
        log10 = math.log10
        busy = 0.0
        kv_s = 0.0
        prev = 0.0
        ctx = ctx0
        for m in range(todo):
            c = cum[m]
            dt = c - prev
            ctx += n
            start = t0 + prev
            prev = c
            busy += dt
            kv_s += ctx * dt
            occ = (100 * ctx) // cap_tokens
            kv_time[occ if occ < 100 else 100] += dt
            b = int(start / bin_s)
            if b >= len(tl_busy):
                grow = b + 1 - len(tl_busy)
                tl_busy.extend([0.0] * grow)
                tl_batch.extend([0.0] * grow)
                tl_kv.extend([0.0] * grow)
            tl_busy[b] += dt
            tl_batch[b] += n * dt
            tl_kv[b] += ctx * dt
            # ITL: a token continuing the batch waited dt; a request's first decode token
            # (or its first after a recompute) waited since its previous token.
            cont = n
            if m == 0 and fresh is not None:
                end = t0 + c
                for r in fresh:
                    itl_hist[itl_bin(end - r.last_token_at)] += 1
                cont = n - len(fresh)
            if cont:
                i = int(log10(dt / ITL_MIN_S) * ITL_BINS_PER_DECADE) if dt > ITL_MIN_S else 0
                itl_hist[i if i < ITL_NUM_BINS else ITL_NUM_BINS - 1] += cont
        self.busy_s += busy
        self.batch_s += n * busy
        self.kv_tokens_s += kv_s
        self.batch_time[n] += busy


def _fire(tm) -> None:
    """Timer callback of a planned run: trigger its event with True unless a cut came first."""
    ev = tm.value
    if not ev.triggered:
        ev.succeed(True)
