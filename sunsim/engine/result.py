"""What a simulated run returns: :class:`SimResult`, built from the cluster's workers once
the simulation is over (the decode workers' statistics turned into frames and histograms)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from sunsim.engine.decode_stats import ITL_BINS_PER_DECADE, ITL_MIN_S, ITL_NUM_BINS
from sunsim.engine.spec import ClusterSpec

if TYPE_CHECKING:  # pragma: no cover
    from sunsim.engine.cluster import ClusterSim


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
        prefill_workers: ``worker``, ``model`` (``shared`` for one shared pool), ``busy_s``,
            ``busy_frac``, ``num_batches``, ``num_tokens``, ``link_busy_s``, ``link_bytes``.
        timeline: long frame ``worker``, ``t_s`` (bin start), ``busy_frac``, ``mean_batch``,
            ``kv_occupancy`` per decode worker and time bin of ``timeline_bin_s`` seconds.
        batch_time: frame ``batch_size``, ``seconds`` summed over decode workers.
        kv_time: frame ``kv_occupancy_pct`` (0..100), ``seconds`` summed over decode workers.
        itl_hist: tokens per ITL bin (log-spaced, ``ITL_BINS_PER_DECADE`` per decade from
            ``ITL_MIN_S``); see :func:`itl_bin_edges`.
        kv_capacity_tokens: KV tokens per decode worker.
        prefill_latency, decode_latency: ``description`` of the latency models used.
        method: ``measured`` (with its source for imported profiles, e.g. ``measured
            (aiconfigurator-core 0.12.0, vllm 0.24.0, h100_sxm)``) if both latency models
            are measured, else ``analytic``.
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
    extra: dict[str, Any] = field(default_factory=dict)


def itl_bin_edges() -> np.ndarray:
    """Edges (seconds) of :attr:`SimResult.itl_hist` bins, length ``ITL_NUM_BINS + 1``."""
    return ITL_MIN_S * 10.0 ** (np.arange(ITL_NUM_BINS + 1) / ITL_BINS_PER_DECADE)


def build_result(sim: ClusterSim, served: list[str], wall_s: float) -> SimResult:
    """The :class:`SimResult` of ``sim`` once its environment has run to the end."""
    cl = sim.cluster
    end = sim.env.now
    span = end if end > 0 else 1.0
    dws = sim.decode_workers
    stats = [w.stats for w in dws]
    bin_s = sim.timeline_bin_s
    bt = np.sum([s.batch_time for s in stats], axis=0)
    kt = np.sum([s.kv_time() for s in stats], axis=0)
    itl = np.sum([s.itl_hist() for s in stats], axis=0).astype(np.int64)
    pm, dm = sim.prefill_latency.method, sim.decode_latency.method
    if pm.startswith(("measured", "derived")) and dm.startswith(("measured", "derived")):
        method = dm if pm == dm else f"{dm}; prefill {pm}"
    else:  # the analytic one's label: "analytic" or "analytic (calibrated on ...)"
        method = dm if not dm.startswith("measured") else pm
    streamed = sim.records.sink is not None
    return SimResult(
        cluster=cl,
        records=pd.DataFrame() if streamed else sim.records.to_frame(served),
        decode_workers=_decode_frame(sim, span),
        prefill_workers=_prefill_frame(sim, served, span),
        timeline=_timeline_frame(sim, bin_s),
        batch_time=pd.DataFrame({"batch_size": np.arange(len(bt)), "seconds": bt}),
        kv_time=pd.DataFrame({"kv_occupancy_pct": np.arange(len(kt)), "seconds": kt}),
        itl_hist=itl,
        kv_capacity_tokens=sim.capacity_blocks * cl.block_size,
        prefill_latency=sim.prefill_latency.description,
        decode_latency=sim.decode_latency.description
        + (" + LoRA adapter cost (derived, sunsim/engine/lora_spec.py)" if cl.lora else ""),
        method=method,
        timeline_bin_s=bin_s,
        sim_end_s=end,
        wall_s=wall_s,
        num_events=sim.num_events,
        extra={"records_streamed": sim.records.rows_written} if streamed else {},
    )


def _decode_frame(sim: ClusterSim, span: float) -> pd.DataFrame:
    """:attr:`SimResult.decode_workers` over a run of ``span`` seconds."""
    pool_name = sim.cluster.decode_pool_names
    dws = sim.decode_workers
    st = [w.stats for w in dws]
    return pd.DataFrame(
        {
            "worker": [w.wid for w in dws],
            "pool": [pool_name[w.pool_idx] for w in dws],
            "capacity_tokens": [s.capacity_tokens for s in st],
            "busy_s": [s.busy_s for s in st],
            "busy_frac": [s.busy_s / span for s in st],
            "mean_batch": [s.batch_s / s.busy_s if s.busy_s > 0 else 0.0 for s in st],
            "kv_occupancy": [s.kv_tokens_s / span / s.capacity_tokens for s in st],
            "num_iterations": [s.num_iterations for s in st],
            "num_tokens": [s.num_tokens for s in st],
            "num_preemptions": [s.num_preemptions for s in st],
            "peak_batch": [s.peak_batch for s in st],
        }
    )


def _prefill_frame(sim: ClusterSim, served: list[str], span: float) -> pd.DataFrame:
    """:attr:`SimResult.prefill_workers` over a run of ``span`` seconds."""
    pws = sim.prefill_workers
    pools = sim.cluster.prefill_workers  # one count per model, or one shared pool
    return pd.DataFrame(
        {
            "worker": [w.wid for w in pws],
            "model": [served[w.model_idx] for w in pws] if len(pools) == len(served) else "shared",
            "busy_s": [w.busy_s for w in pws],
            "busy_frac": [w.busy_s / span for w in pws],
            "num_batches": [w.num_batches for w in pws],
            "num_tokens": [w.num_tokens for w in pws],
            "link_busy_s": [w.link.busy_s for w in pws],
            "link_bytes": [w.link.bytes_sent for w in pws],
        }
    )


def _timeline_frame(sim: ClusterSim, bin_s: float) -> pd.DataFrame:
    """:attr:`SimResult.timeline`: one row per decode worker and time bin of ``bin_s``."""
    parts = []
    for w in sim.decode_workers:
        busy, batch, kv = w.stats.timeline(bin_s)
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
                        "kv_occupancy": kv / bin_s / w.stats.capacity_tokens,
                    }
                )
            )
    if not parts:
        return pd.DataFrame(columns=["worker", "t_s", "busy_frac", "mean_batch", "kv_occupancy"])
    return pd.concat(parts, ignore_index=True)
