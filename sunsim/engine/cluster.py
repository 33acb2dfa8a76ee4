"""The SimPy model of a prefill/decode-disaggregated multi-LLM cluster: wiring and counters.

A request's life (ARCHITECTURE.md; simulated seconds):
``arrived_at`` -> its model's prefill queue (router) -> ``prefill_started_at`` ->
``first_token_at`` (the prefill emits token 1; a 1-token request finishes here) ->
KV transfer on the prefill worker's FIFO link to the decode worker the decode router chose
-> ``kv_ready_at`` -> decode waiting queue -> ``decode_started_at`` (admitted into the running
batch) -> one token per iteration -> ``finished_at``.

Designs (:mod:`sunsim.engine.designs`) differ in their pools: per-model or shared decode
pools, or co-located workers (:mod:`sunsim.engine.colocated`). Every request ends exactly once,
``finished`` or ``rejected`` with a reason (:class:`~sunsim.engine.scheduler.RejectReason`);
preempted requests are recomputed, counted in ``num_preemptions``, never lost.

:class:`ClusterSim` owns the pools, the routers, the records and the run's counters (event
count, requests ended, KV-arrival sequence numbers, admission ids); workers call its small
methods (:meth:`ClusterSim.finish`, :meth:`ClusterSim.next_seq`, ...) and never mutate them;
each worker counts the timers it schedules, and :attr:`ClusterSim.num_events` sums them.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import simpy

from sunsim.engine.arrivals import Arrivals
from sunsim.engine.capacity import kv_capacity_blocks
from sunsim.engine.clock import Timer, call_later
from sunsim.engine.clock import run as run_events
from sunsim.engine.colocated import ColocatedWorker
from sunsim.engine.colocated_pools import build_colocated_pools
from sunsim.engine.decode import DecodeWorker
from sunsim.engine.designs import PoolScope
from sunsim.engine.kv_link import KvLink
from sunsim.engine.prefill import PrefillWorker
from sunsim.engine.prefix_hooks import enable_prefix_caching, prefix_extras
from sunsim.engine.records import RecordSink, RecordTable
from sunsim.engine.request import Request, RequestStatus
from sunsim.engine.result import SimResult, build_result, itl_bin_edges
from sunsim.engine.router import Central, DecodeRouter, make_router
from sunsim.engine.scheduler import DecodePolicy
from sunsim.engine.spec import ClusterSpec
from sunsim.errors import ConfigError
from sunsim.latency.base import LatencyModel
from sunsim.latency.paired import design_decode_latency

__all__ = ["ClusterSim", "SimResult", "itl_bin_edges", "kv_capacity_blocks", "simulate"]

_DONE = RequestStatus.DONE
_INF = math.inf


class ClusterSim(Arrivals):
    """Builds the workers of ``cluster`` in a fresh :class:`simpy.Environment`.

    Use :func:`simulate`; this class is the engine it drives.

    Arrivals (:meth:`start_arrivals`) are :class:`~sunsim.engine.arrivals.Arrivals`'s.
    Counters: ``num_events`` (SimPy events scheduled), ``num_done`` (requests ended);
    ``next_seq()`` and ``next_admission_id()`` draw the cluster-wide increasing numbers that
    order KV arrivals and identify admissions into decode batches.
    """

    def __init__(
        self,
        cluster: ClusterSpec,
        prefill_latency: LatencyModel,
        decode_latency: LatencyModel,
        num_requests: int,
        rng: np.random.Generator,
        timeline_bin_s: float = 1.0,
        *,
        defer_timeline: bool = False,
    ) -> None:
        if decode_latency.kv_bytes_per_token != prefill_latency.kv_bytes_per_token:
            raise ConfigError(
                "prefill and decode latency models disagree on KV bytes per token "
                f"({prefill_latency.kv_bytes_per_token} vs "
                f"{decode_latency.kv_bytes_per_token}): they are for different models"
            )
        decode_latency = design_decode_latency(cluster.design.paired_decode, decode_latency)
        self.cluster = cluster
        self.env = simpy.Environment()
        self.prefill_latency = prefill_latency
        self.decode_latency = decode_latency
        self.rng = rng
        self.timeline_bin_s = timeline_bin_s
        #: the timeline's bin width is set after the run (a closed loop's span is not known
        #: before it); decode workers then keep their run logs until the result is built
        self.defer_timeline = defer_timeline
        self.kv_bytes_per_token = decode_latency.kv_bytes_per_token
        self.capacity_blocks = kv_capacity_blocks(cluster, decode_latency)
        self.policy = DecodePolicy(cluster.max_num_seqs, self.capacity_blocks, cluster.block_size)
        self.records = RecordTable(num_requests)
        self._record_finish = self.records.finish
        self.num_requests = num_requests
        self.num_done = 0
        self._num_events = 0  # the arrival timers; the workers count their own
        self.next_seq: Callable[[], int] = itertools.count(1).__next__
        self.next_admission_id: Callable[[], int] = itertools.count(1).__next__
        self._on_progress: Callable[[float], None] | None = None
        self._progress_at = _INF  # num_done at which to report progress next
        #: called with the simulated time and the request id each time a request ends
        #: (finished or rejected); closed loops (:mod:`sunsim.engine.closed_loop`,
        #: :mod:`~sunsim.engine.session_loop`) send their next request from it; None: none.
        self.on_request_end: Callable[[float, int], None] | None = None
        self._build_pools(rng)

    def _build_pools(self, rng: np.random.Generator) -> None:
        """Prefill workers per model (each with its own link) and the decode pools; or, for
        a co-located design, its co-located workers (:mod:`sunsim.engine.colocated_pools`)."""
        cluster = self.cluster
        if cluster.design.colocated:
            build_colocated_pools(self, rng)
            return
        self.prefill_workers: list[PrefillWorker] = []
        self.prefill_routers = []
        for m, count in enumerate(cluster.prefill_workers):
            ws = []
            for _ in range(count):
                w = PrefillWorker(self, len(self.prefill_workers), m, KvLink(cluster.link))
                self.prefill_workers.append(w)
                ws.append(w)
            self.prefill_routers.append(make_router(cluster.prefill_router, ws, rng, prefill=True))
        if cluster.design.prefill.scope is PoolScope.SHARED:  # one pool (prefillshare)
            shared = make_router(cluster.prefill_router, self.prefill_workers, rng, prefill=True)
            self.prefill_routers = [shared] * len(cluster.served_models)
        #: a co-located design's workers instead (statistics only; :mod:`.colocated_pools`)
        self.decode_workers: list[DecodeWorker | ColocatedWorker] = []
        self.pool_routers: list[DecodeRouter] = []
        for p, count in enumerate(cluster.decode_workers):
            dws = []
            loads: list[int] = []  # the pool's loads, one slot per worker
            for _ in range(count):
                dw = DecodeWorker(
                    self, len(self.decode_workers), p, self.decode_latency, self.policy, loads
                )
                self.decode_workers.append(dw)
                dws.append(dw)
            router = make_router(cluster.decode_router, dws, rng)
            self.pool_routers.append(router)
            if isinstance(router, Central):
                for dw in dws:
                    dw.central = router
        n_models = len(cluster.served_models)
        if not cluster.design.shares_decode:
            self.decode_router_of_model = self.pool_routers
        else:
            self.decode_router_of_model = [self.pool_routers[0]] * n_models

    # -- the counters ----------------------------------------------------------------------
    @property
    def num_events(self) -> int:
        """SimPy events the model scheduled: arrival timers and the workers' timers."""
        return (
            self._num_events
            + sum(w.num_events for w in self.prefill_workers)
            + sum(w.num_events for w in self.decode_workers)
        )

    def schedule(self, delay: float, callback: Callable[[Any], None]) -> Timer:
        """A timer of ``delay`` seconds that calls ``callback(timer)`` (the queue entry of a
        SimPy timeout, :func:`sunsim.engine.clock.call_later`); counted."""
        self._num_events += 1
        return call_later(self.env, delay, callback)

    def report_progress(self, on_progress: Callable[[float], None] | None) -> None:
        """Call ``on_progress(fraction of requests ended)`` each time that fraction crosses a
        whole percent (at most 100 calls, the last with 1.0). It only observes the run."""
        self._on_progress = on_progress
        n = self.num_requests
        self._progress_at = -(-n // 100) if on_progress is not None and n else _INF

    def _progress(self) -> None:
        n = self.num_requests
        done = self.num_done
        pct = done * 100 // n + 1  # the next whole percent
        self._progress_at = -(-n * pct // 100) if pct <= 100 else _INF
        assert self._on_progress is not None
        self._on_progress(done / n)

    # -- callbacks from workers --------------------------------------------------------
    def on_prefilled(self, r: Request, pw: PrefillWorker, num_tokens: int) -> None:
        """A prefill (or recompute) of ``num_tokens`` finished: transfer its KV to decode."""
        now = self.env._now  # the property's value, without the call (once per request)
        if r.num_generated_tokens == 0:
            r.first_token_at = now
            r.last_token_at = now
            r.num_generated_tokens = 1
            if r.output_tokens == 1:
                self.finish(r, now)
                return
        router = self.decode_router_of_model[r.model_idx]
        dw = router.choose()
        if dw is None:  # central: every worker of the pool is full; wait in the pool's queue
            assert isinstance(router, Central)
            router.hold((r, pw, num_tokens))
            return
        self._send(r, pw, num_tokens, dw)

    def on_slot_freed(self, dw: DecodeWorker) -> None:
        """Central routing: ``dw`` freed a slot while its pool holds requests: send the first."""
        assert dw.central is not None
        r, pw, num_tokens = dw.central.release()
        self._send(r, pw, num_tokens, dw)

    def _send(self, r: Request, pw: PrefillWorker, num_tokens: int, dw: DecodeWorker) -> None:
        """Assign ``r`` to decode worker ``dw`` and transfer its KV over ``pw``'s link."""
        now = self.env._now
        r.routed_tokens = r.prompt_tokens + r.num_generated_tokens
        dw.loads[dw.slot] += 1
        dw.load_tokens += r.routed_tokens
        ready = pw.link.transfer(now, num_tokens * self.kv_bytes_per_token)
        if r.kv_ready_at < 0:
            r.kv_ready_at = ready
            r.decode_worker = dw.wid
        dw.deliver(r, ready)

    def on_preempted(self, r: Request) -> None:
        """A decode worker dropped ``r``'s KV: recompute on its model's prefill workers."""
        w = self.prefill_routers[r.model_idx].choose_for(r)
        assert w is not None
        w.submit(r, front=True)

    def finish(self, r: Request, at: float) -> None:
        """``r`` finished at ``at`` (seconds): write its record."""
        r.status = _DONE
        self._record_finish(r, at)
        self.num_done += 1
        if self.num_done >= self._progress_at:
            self._progress()
        if self.on_request_end is not None:
            self.on_request_end(at, r.request_id)


def arrival_inputs(requests: pd.DataFrame, served: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """``arrival_s`` (float) and each request's served-model index (int64, from category codes:
    no string per request); ConfigError for a model not served or arrivals out of order."""
    cat = requests["model"].astype("category").cat
    codes, names = cat.codes.to_numpy(), [str(c) for c in cat.categories]
    unknown = sorted({names[c] if c >= 0 else "nan" for c in np.unique(codes)} - set(served))
    if unknown:
        raise ConfigError(
            f"trace requests are labelled with models {unknown} that are not served "
            f"({', '.join(served)}); pass --models with those names"
        )
    arrival = requests["arrival_s"].to_numpy(dtype=float)
    if len(arrival) and np.any(arrival[1:] < arrival[:-1]):
        raise ConfigError("requests must be sorted by arrival_s")
    return arrival, np.fromiter((served.index(n) if n in served else -1 for n in names), int)[codes]


def simulate(
    requests: pd.DataFrame,
    cluster: ClusterSpec,
    prefill_latency: LatencyModel,
    decode_latency: LatencyModel,
    *,
    seed: int = 0,
    on_progress: Callable[[float], None] | None = None,
    timeline_bins: int = 200,
    records_sink: RecordSink | None = None,
) -> SimResult:
    """Replay ``requests`` through ``cluster``.

    Args:
        requests: columns ``arrival_s`` (seconds, sorted ascending), ``model`` (one of
            ``cluster.served_models``), ``prompt_tokens`` (>= 1), ``output_tokens`` (>= 1);
            optional ``hash_ids`` (a tuple of block content hashes per request, blocks of
            ``attrs["hash_block_tokens"]`` tokens, default 512) for prefix caching when
            ``cluster.enable_prefix_caching`` (:mod:`sunsim.engine.prefix_hooks`).
        cluster: the resolved cluster of one design.
        prefill_latency: latency of the prefill module (all models share the base architecture).
        decode_latency: latency of the decode module (qsun: the low-bit one).
        seed: seeds the routers' randomness (``power_of_two``); same inputs and seed give
            identical records.
        on_progress: called with the fraction of requests ended each time it crosses a whole
            percent (at most 100 times, the last with 1.0); it observes the run and changes
            nothing in it (the result is the same with or without it).
        timeline_bins: number of time bins of the utilisation timeline over the trace span.
        records_sink: when given, the records stream to it as they complete, in frames of
            consecutive trace rows (:meth:`RecordTable.stream`), and the result's
            ``records`` is an empty frame (``extra["records_streamed"]`` counts the rows
            sent), so a long trace's records never sit in memory together.

    Returns:
        a :class:`SimResult`.

    Raises:
        ConfigError: a request's model is not served, the requests are not sorted by
            ``arrival_s``, or the decode weights do not fit.
    """
    t0 = time.perf_counter()
    n = len(requests)
    served = list(cluster.served_models)
    arrival, model_idx = arrival_inputs(requests, served)
    span = float(arrival[-1]) if n else 0.0
    bin_s = max(span / timeline_bins, 1e-3) if span > 0 else 1.0
    rng = np.random.default_rng(seed)
    sim = ClusterSim(cluster, prefill_latency, decode_latency, n, rng, timeline_bin_s=bin_s)
    prompt = requests["prompt_tokens"].to_numpy(dtype=np.int64)
    output = requests["output_tokens"].to_numpy(dtype=np.int64)
    sim.records.set_inputs(arrival, model_idx, prompt, output)
    caching = enable_prefix_caching(sim, requests, model_idx.tolist())
    if records_sink is not None:
        sim.records.stream(records_sink, served)
    sim.report_progress(on_progress)
    sim.start_arrivals(arrival, model_idx, prompt, output)
    run_events(sim.env)
    if sim.num_done != n:  # pragma: no cover - engine invariant
        raise RuntimeError(f"simulation ended with {n - sim.num_done} of {n} requests unfinished")
    if records_sink is not None:
        sim.records.close()
    result = build_result(sim, served, time.perf_counter() - t0)
    if caching:
        result.extra.update(prefix_extras(sim))
    return result
