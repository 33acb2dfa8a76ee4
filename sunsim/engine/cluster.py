"""The SimPy model of a prefill/decode-disaggregated multi-LLM cluster.

A request's life (ARCHITECTURE.md; simulated seconds):
``arrived_at`` -> its model's prefill queue (router) -> ``prefill_started_at`` ->
``first_token_at`` (the prefill emits token 1; a 1-token request finishes here) ->
KV transfer on the prefill worker's FIFO link to the decode worker the decode router chose
-> ``kv_ready_at`` -> decode waiting queue -> ``decode_started_at`` (admitted into the running
batch) -> one token per iteration -> ``finished_at``.

Modes differ only in the decode pools: ``partitioned`` has one pool per model (a request is
decoded by its own model's workers); ``sun`` and ``qsun`` have one shared pool (any worker
decodes any model's request; qsun's decode latency model is a low-bit one, with smaller
weights and so more KV cache).

Every request ends exactly once, ``finished`` or ``rejected`` with a reason:
``exceeds_max_model_len`` (prompt + output tokens > the model's context) or
``exceeds_kv_capacity`` (its full context can never fit one decode worker's KV cache).
Preempted requests are recomputed, counted in ``num_preemptions``, never lost.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import simpy

from sunsim.engine.decode import ITL_BINS_PER_DECADE, ITL_MIN_S, ITL_NUM_BINS, DecodeWorker
from sunsim.engine.kv_link import KvLink
from sunsim.engine.prefill import PrefillWorker
from sunsim.engine.records import RecordTable
from sunsim.engine.request import DONE, Request
from sunsim.engine.router import make_router
from sunsim.engine.spec import ClusterSpec
from sunsim.errors import ConfigError
from sunsim.latency.base import LatencyModel
from sunsim.specs import get_gpu


def kv_capacity_blocks(cluster: ClusterSpec, decode_latency: LatencyModel) -> int:
    """KV blocks per decode worker: (GPU memory x utilisation - decode weight bytes - reserve)
    / (KV bytes per token x block tokens), rounded down.

    Raises :class:`ConfigError` when the decode weights leave no room for a KV cache.
    """
    gpu = get_gpu(cluster.gpu)
    free = (
        gpu.memory_bytes * cluster.gpu_memory_utilization
        - decode_latency.weight_bytes
        - cluster.reserve_bytes
    )
    per_block = decode_latency.kv_bytes_per_token * cluster.block_size
    blocks = int(free // per_block) if per_block > 0 else 0
    if blocks < 1:
        raise ConfigError(
            f"decode weights ({decode_latency.weight_bytes / 1e9:.1f} GB) leave no KV cache on "
            f"{gpu.name} ({gpu.memory_bytes / 1e9:.0f} GB x {cluster.gpu_memory_utilization}, "
            f"{cluster.reserve_bytes / 1e9:.1f} GB reserve); use a larger GPU or a lower-bit decode"
        )
    return blocks


@dataclass
class SimResult:
    """What one simulated run produced.

    Attributes:
        cluster: the cluster simulated.
        records: one row per trace request, see :class:`RecordTable.to_frame`.
        decode_workers: one row per decode worker: ``worker``, ``pool``, ``capacity_tokens``,
            ``busy_s``, ``busy_frac``, ``mean_batch`` (time-weighted over busy time),
            ``kv_occupancy`` (time-weighted mean fraction of KV tokens held, over the run),
            ``num_iterations``, ``num_tokens``, ``num_preemptions``, ``peak_batch``.
        prefill_workers: ``worker``, ``model``, ``busy_s``, ``busy_frac``, ``num_batches``,
            ``num_tokens``, ``link_busy_s``, ``link_bytes``.
        timeline: long frame ``worker``, ``t_s`` (bin start), ``busy_frac``, ``mean_batch``,
            ``kv_occupancy`` per decode worker and time bin of ``timeline_bin_s`` seconds.
        batch_time: frame ``batch_size``, ``seconds`` summed over decode workers.
        kv_time: frame ``kv_occupancy_pct`` (0..100), ``seconds`` summed over decode workers.
        itl_hist: tokens per ITL bin (log-spaced, ``ITL_BINS_PER_DECADE`` per decade from
            ``ITL_MIN_S``); see :func:`itl_bin_edges`.
        kv_capacity_tokens: KV tokens per decode worker.
        prefill_latency, decode_latency: ``description`` of the latency models used.
        method: ``measured`` if both latency models are measured, else ``analytic``.
        sim_end_s: simulated time of the last event. wall_s: wall-clock seconds.
        num_events: SimPy events the model scheduled (timeouts and wake-ups).
    """

    cluster: ClusterSpec
    records: pd.DataFrame
    decode_workers: pd.DataFrame
    prefill_workers: pd.DataFrame
    timeline: pd.DataFrame
    batch_time: pd.DataFrame
    kv_time: pd.DataFrame
    itl_hist: np.ndarray
    kv_capacity_tokens: int
    prefill_latency: str
    decode_latency: str
    method: str
    timeline_bin_s: float
    sim_end_s: float
    wall_s: float
    num_events: int
    extra: dict = field(default_factory=dict)


def itl_bin_edges() -> np.ndarray:
    """Edges (seconds) of :attr:`SimResult.itl_hist` bins, length ``ITL_NUM_BINS + 1``."""
    return ITL_MIN_S * 10.0 ** (np.arange(ITL_NUM_BINS + 1) / ITL_BINS_PER_DECADE)


class ClusterSim:
    """Builds the workers of ``cluster`` in a fresh :class:`simpy.Environment`.

    Use :func:`simulate`; this class is the engine it drives.
    """

    def __init__(
        self,
        cluster: ClusterSpec,
        prefill_latency: LatencyModel,
        decode_latency: LatencyModel,
        num_requests: int,
        rng: np.random.Generator,
        timeline_bin_s: float = 1.0,
    ) -> None:
        if decode_latency.kv_bytes_per_token != prefill_latency.kv_bytes_per_token:
            raise ConfigError(
                "prefill and decode latency models disagree on KV bytes per token "
                f"({prefill_latency.kv_bytes_per_token} vs "
                f"{decode_latency.kv_bytes_per_token}): they are for different models"
            )
        self.cluster = cluster
        self.env = simpy.Environment()
        self.prefill_latency = prefill_latency
        self.decode_latency = decode_latency
        self.rng = rng
        self.timeline_bin_s = timeline_bin_s
        self.kv_bytes_per_token = decode_latency.kv_bytes_per_token
        self.capacity_blocks = kv_capacity_blocks(cluster, decode_latency)
        self.records = RecordTable(num_requests)
        self.num_done = 0
        self.num_events = 0
        self.seq = 0
        self.admit_seq = 0
        n_models = len(cluster.served_models)
        # prefill workers, per model, each with its own link
        self.prefill_workers: list[PrefillWorker] = []
        self.prefill_routers = []
        for m, count in enumerate(cluster.prefill_workers):
            ws = []
            for _ in range(count):
                w = PrefillWorker(self, len(self.prefill_workers), m, KvLink(cluster.link))
                self.prefill_workers.append(w)
                ws.append(w)
            self.prefill_routers.append(make_router(cluster.prefill_router, ws, rng, prefill=True))
        # decode pools
        self.decode_workers: list[DecodeWorker] = []
        pool_routers = []
        for p, count in enumerate(cluster.decode_workers):
            ws = []
            for _ in range(count):
                w = DecodeWorker(
                    self, len(self.decode_workers), p, decode_latency, self.capacity_blocks
                )
                self.decode_workers.append(w)
                ws.append(w)
            router = make_router(cluster.decode_router, ws, rng)
            pool_routers.append(router)
            held = getattr(router, "held", None)  # the pool's queue of a central router
            for w in ws:
                w.held = held
        self.pool_routers = pool_routers
        if not cluster.design.shares_decode:
            self.decode_router_of_model = pool_routers
        else:
            self.decode_router_of_model = [pool_routers[0]] * n_models

    # -- callbacks from workers --------------------------------------------------------
    def on_prefilled(self, r: Request, pw: PrefillWorker, num_tokens: int) -> None:
        """A prefill (or recompute) of ``num_tokens`` finished: transfer its KV to decode."""
        now = self.env.now
        if r.generated == 0:
            r.first_token_at = now
            r.last_token_at = now
            r.generated = 1
            if r.output_tokens == 1:
                self.finish(r, now)
                return
        router = self.decode_router_of_model[r.model_idx]
        dw = router.choose()
        if dw is None:  # central: every worker of the pool is full; wait in the pool's queue
            router.held.append((r, pw, num_tokens))
            return
        self._send(r, pw, num_tokens, dw)

    def on_slot_freed(self, dw: DecodeWorker) -> None:
        """Central routing: ``dw`` freed a slot while its pool holds requests: send the first."""
        r, pw, num_tokens = dw.held.popleft()
        self._send(r, pw, num_tokens, dw)

    def _send(self, r: Request, pw: PrefillWorker, num_tokens: int, dw: DecodeWorker) -> None:
        """Assign ``r`` to decode worker ``dw`` and transfer its KV over ``pw``'s link."""
        now = self.env.now
        r.routed_tokens = r.prompt_tokens + r.generated
        dw.load += 1
        dw.load_tokens += r.routed_tokens
        ready = pw.link.transfer(now, num_tokens * self.kv_bytes_per_token)
        if r.kv_ready_at < 0:
            r.kv_ready_at = ready
            r.decode_worker = dw.wid
        dw.deliver(r, ready)

    def on_preempted(self, r: Request) -> None:
        """A decode worker dropped ``r``'s KV: recompute on its model's prefill workers."""
        self.prefill_routers[r.model_idx].choose().submit(r, front=True)

    def finish(self, r: Request, at: float) -> None:
        r.state = DONE
        self.records.finish(r, at)
        self.num_done += 1

    # -- arrivals ------------------------------------------------------------------------
    def start_arrivals(self, arrival_s: list, model_idx: list, prompt: list, output: list) -> None:
        """Schedule the trace's arrivals: one timer per distinct arrival instant."""
        self._arrival = (arrival_s, model_idx, prompt, output)
        self._next = 0
        if arrival_s:
            self.num_events += 1
            self.env.timeout(max(arrival_s[0], 0.0)).callbacks.append(self._arrive)

    def _arrive(self, _ev) -> None:
        arrival_s, model_idx, prompt, output = self._arrival
        now = self.env.now
        max_len = self.decode_latency.max_model_len
        B = self.cluster.block_size
        cap = self.capacity_blocks
        routers = self.prefill_routers
        records = self.records
        i = self._next
        n = len(arrival_s)
        touched = []
        while i < n and arrival_s[i] <= now:
            t = arrival_s[i]
            p = prompt[i]
            o = output[i]
            if p + o > max_len:
                records.reject(i, t, "exceeds_max_model_len")
                self.num_done += 1
            elif -(-(p + o - 1) // B) > cap:
                records.reject(i, t, "exceeds_kv_capacity")
                self.num_done += 1
            else:
                m = model_idx[i]
                w = routers[m].choose()
                w.submit(Request(i, m, p, o, t), defer=False)
                if not w.busy:
                    touched.append(w)
            i += 1
        self._next = i
        for w in touched:  # all of this instant's arrivals are queued: start idle workers
            w.start_if_idle()
        if i < n:
            self.num_events += 1
            self.env.timeout(arrival_s[i] - now).callbacks.append(self._arrive)


def simulate(
    requests: pd.DataFrame,
    cluster: ClusterSpec,
    prefill_latency: LatencyModel,
    decode_latency: LatencyModel,
    *,
    seed: int = 0,
    on_progress: Callable[[float], None] | None = None,
    timeline_bins: int = 200,
) -> SimResult:
    """Replay ``requests`` through ``cluster``.

    Args:
        requests: columns ``arrival_s`` (seconds, sorted ascending), ``model`` (one of
            ``cluster.served_models``), ``prompt_tokens`` (>= 1), ``output_tokens`` (>= 1).
        cluster: the resolved cluster of one mode.
        prefill_latency: latency of the prefill module (all models share the base architecture).
        decode_latency: latency of the decode module (qsun: the low-bit one).
        seed: seeds the routers' randomness (``power_of_two``); same inputs and seed give
            identical records.
        on_progress: called with the fraction of requests ended, about 100 times.
        timeline_bins: number of time bins of the utilisation timeline over the trace span.

    Returns:
        a :class:`SimResult`.

    Raises:
        ConfigError: a request's model is not served, or the decode weights do not fit.
    """
    t0 = time.perf_counter()
    n = len(requests)
    served = list(cluster.served_models)
    models = requests["model"].astype(str)
    idx_of = {m: i for i, m in enumerate(served)}
    unknown = sorted(set(models.unique()) - set(served))
    if unknown:
        raise ConfigError(
            f"trace requests are labelled with models {unknown} that are not served "
            f"({', '.join(served)}); pass --models with those names"
        )
    arrival = requests["arrival_s"].to_numpy(dtype=float)
    if n and np.any(np.diff(arrival) < 0):
        raise ConfigError("requests must be sorted by arrival_s")
    span = float(arrival[-1]) if n else 0.0
    bin_s = max(span / timeline_bins, 1e-3) if span > 0 else 1.0
    sim = ClusterSim(
        cluster,
        prefill_latency,
        decode_latency,
        n,
        np.random.default_rng(seed),
        timeline_bin_s=bin_s,
    )
    model_idx = models.map(idx_of).to_numpy(dtype=np.int64)
    prompt = requests["prompt_tokens"].to_numpy(dtype=np.int64)
    output = requests["output_tokens"].to_numpy(dtype=np.int64)
    sim.records.set_inputs(arrival, model_idx, prompt, output)
    env = sim.env
    sim.start_arrivals(arrival.tolist(), model_idx.tolist(), prompt.tolist(), output.tolist())
    if on_progress is not None and n:
        step = max(span / 100, 1e-6)
        t = 0.0
        while sim.num_done < n and env.peek() != float("inf"):
            t = max(t + step, env.now)
            env.run(until=t)
            on_progress(sim.num_done / n)
        on_progress(1.0)
    env.run()
    if sim.num_done != n:  # pragma: no cover - engine invariant
        raise RuntimeError(f"simulation ended with {n - sim.num_done} of {n} requests unfinished")
    return _result(sim, served, time.perf_counter() - t0)


def _result(sim: ClusterSim, served: list[str], wall_s: float) -> SimResult:
    cl = sim.cluster
    end = sim.env.now
    span = end if end > 0 else 1.0
    pool_name = cl.decode_pool_names
    dws = sim.decode_workers
    decode = pd.DataFrame(
        {
            "worker": [w.wid for w in dws],
            "pool": [pool_name[w.pool_idx] for w in dws],
            "capacity_tokens": [w.capacity_tokens for w in dws],
            "busy_s": [w.busy_s for w in dws],
            "busy_frac": [w.busy_s / span for w in dws],
            "mean_batch": [w.batch_s / w.busy_s if w.busy_s > 0 else 0.0 for w in dws],
            "kv_occupancy": [w.kv_tokens_s / span / w.capacity_tokens for w in dws],
            "num_iterations": [w.num_iterations for w in dws],
            "num_tokens": [w.num_tokens for w in dws],
            "num_preemptions": [w.num_preemptions for w in dws],
            "peak_batch": [w.peak_batch for w in dws],
        }
    )
    pws = sim.prefill_workers
    prefill = pd.DataFrame(
        {
            "worker": [w.wid for w in pws],
            "model": [served[w.model_idx] for w in pws],
            "busy_s": [w.busy_s for w in pws],
            "busy_frac": [w.busy_s / span for w in pws],
            "num_batches": [w.num_batches for w in pws],
            "num_tokens": [w.num_tokens for w in pws],
            "link_busy_s": [w.link.busy_s for w in pws],
            "link_bytes": [w.link.bytes_sent for w in pws],
        }
    )
    bin_s = sim.timeline_bin_s
    parts = []
    for w in dws:
        busy, batch, kv = w.timeline(bin_s)
        if len(busy):
            parts.append(
                pd.DataFrame(
                    {
                        "worker": w.wid,
                        "t_s": np.arange(len(busy)) * bin_s,
                        "busy_frac": busy / bin_s,
                        "mean_batch": np.divide(
                            batch, busy, out=np.zeros_like(busy), where=busy > 0
                        ),
                        "kv_occupancy": kv / bin_s / w.capacity_tokens,
                    }
                )
            )
    timeline = (
        pd.concat(parts, ignore_index=True)
        if parts
        else pd.DataFrame(columns=["worker", "t_s", "busy_frac", "mean_batch", "kv_occupancy"])
    )
    bt = np.sum([w.batch_time for w in dws], axis=0)
    kt = np.sum([w.kv_time() for w in dws], axis=0)
    itl = np.sum([w.itl_hist() for w in dws], axis=0).astype(np.int64)
    method = (
        "measured"
        if sim.prefill_latency.method == "measured" and sim.decode_latency.method == "measured"
        else "analytic"
    )
    return SimResult(
        cluster=cl,
        records=sim.records.to_frame(served),
        decode_workers=decode,
        prefill_workers=prefill,
        timeline=timeline,
        batch_time=pd.DataFrame({"batch_size": np.arange(len(bt)), "seconds": bt}),
        kv_time=pd.DataFrame({"kv_occupancy_pct": np.arange(len(kt)), "seconds": kt}),
        itl_hist=itl,
        kv_capacity_tokens=sim.capacity_blocks * cl.block_size,
        prefill_latency=sim.prefill_latency.description,
        decode_latency=sim.decode_latency.description,
        method=method,
        timeline_bin_s=bin_s,
        sim_end_s=end,
        wall_s=wall_s,
        num_events=sim.num_events,
    )
