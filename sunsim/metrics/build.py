"""``summarize``: one run's records and worker frames -> :class:`RunSummary`.

Reads only the frames of a :class:`~sunsim.engine.cluster.SimResult` (records, decode and
prefill worker rows, the ITL histogram) and the description of its cluster; it never touches
the engine's objects.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from sunsim.metrics.columns import RecordColumns, RecordStats, record_stats
from sunsim.metrics.latency import PERCENTILES, itl_percentiles
from sunsim.metrics.summary import (
    DecodeUtilisation,
    GpuCounts,
    LatencyModels,
    LatencyPercentiles,
    ModelSummary,
    PrefillUtilisation,
    PrefixCacheSummary,
    RequestCounts,
    RunSummary,
    SimStats,
    SloResult,
    Throughput,
)
from sunsim.specs import SloSpec

if TYPE_CHECKING:
    from sunsim.engine.cluster import SimResult

NAN = float("nan")


def summarize(
    result: SimResult, slo: SloSpec, records: pd.DataFrame | RecordColumns | None = None
) -> RunSummary:
    """Everything one run reports, as a :class:`RunSummary` (``to_dict()`` is the per-mode
    object of ``summary.json``).

    ``records``: the run's records when they are not ``result.records`` (e.g. streamed to a
    Parquet file: :class:`sunsim.runs.stream.ParquetColumns`); they are read one column at a
    time (:func:`~sunsim.metrics.columns.record_stats`).

    Definitions (docs and :mod:`sunsim.metrics`): the measured window runs from the first
    arrival to the last finish; throughput counts output tokens of finished requests; SLO
    attainment counts rejected requests as misses; the decode batch size is weighted by busy
    time; GPU counts are workers x their pool's tensor parallel size, and throughput per GPU
    divides by all of them.
    """
    st = record_stats(result.records if records is None else records, slo)
    cl = result.cluster
    window = st.window_s
    tput = st.output_tokens / window if window and window > 0 else NAN
    overall = _percentile_fields(st)
    overall.update(itl_percentiles(result.itl_hist))
    attainment = st.slo_met / st.total if st.total else NAN
    return RunSummary(
        mode=cl.design.name,
        method=result.method,
        latency=LatencyModels(prefill=result.prefill_latency, decode=result.decode_latency),
        gpus=_gpus(result),
        requests=RequestCounts(
            total=st.total,
            finished=st.finished,
            rejected=st.rejected,
            rejected_by_reason=dict(st.rejected_by_reason),
            preempted_requests=st.preempted_requests,
            preemptions=st.preemptions,
        ),
        latency_s=LatencyPercentiles(**overall),
        per_model=_per_model(st),
        throughput=Throughput(
            window_s=window,
            output_tokens=st.output_tokens,
            output_tokens_per_s=tput,
            output_tokens_per_s_per_gpu=tput / cl.num_gpus,
            requests_per_s=st.finished / window if window and window > 0 else NAN,
        ),
        slo=SloResult(
            ttft_s=slo.ttft_s,
            tpot_s=slo.tpot_s,
            target=slo.attainment,
            attainment=attainment,
            met=bool(attainment >= slo.attainment),
        ),
        decode=_decode(result),
        prefill=PrefillUtilisation(
            busy_frac_mean=float(result.prefill_workers["busy_frac"].mean())
        ),
        sim=SimStats(
            events=int(result.num_events),
            wall_s=float(result.wall_s),
            sim_end_s=float(result.sim_end_s),
        ),
        prefix_cache=_prefix_cache(result),
    )


def _gpus(result: SimResult) -> GpuCounts:
    """The GPUs and workers of the run's cluster (GPU types only when a pool has its own)."""
    cl = result.cluster
    hetero = cl.prefill_gpu is not None or cl.decode_gpu is not None  # a pool's own GPU
    return GpuCounts(
        prefill=int(cl.num_prefill_gpus),
        decode=int(cl.num_decode_gpus),
        total=int(cl.num_gpus),
        decode_per_pool=tuple(int(x) for x in cl.decode_workers),
        prefill_per_model=tuple(int(x) for x in cl.prefill_workers),
        prefill_tensor_parallel_size=int(cl.prefill_tensor_parallel_size or 1),
        decode_tensor_parallel_size=int(cl.decode_tensor_parallel_size or 1),
        colocated=int(cl.num_colocated_gpus),
        colocated_per_pool=tuple(int(x) for x in cl.colocated_workers),
        prefill_gpu=cl.prefill_gpu_name if hetero else "",
        decode_gpu=cl.decode_gpu_name if hetero else "",
    )


def _percentile_fields(st: RecordStats, model: str | None = None) -> dict[str, float]:
    """``ttft_s_p50`` ... ``e2e_s_p99``: of all finished requests, or of ``model``'s."""
    return {
        f"{col}_p{p}": v
        for col, ls in st.latency.items()
        for p, v in zip(
            PERCENTILES, ls.percentiles if model is None else ls.per_model[model], strict=True
        )
    }


def _prefix_cache(result: SimResult) -> PrefixCacheSummary | None:
    """The run's prefix-cache figures, or None when caching was off."""
    pc = result.extra.get("prefix_cache")
    if pc is None:
        return None
    return PrefixCacheSummary(
        **{**pc, "cached_kv_bytes_by_model": dict(pc["cached_kv_bytes_by_model"])}
    )


def _per_model(st: RecordStats) -> dict[str, ModelSummary]:
    out = {}
    for m, n in st.model_requests.items():
        out[m] = ModelSummary(
            num_finished=st.model_finished[m],
            num_requests=n,
            slo_attainment=st.model_slo_met[m] / n if n else NAN,
            **_percentile_fields(st, m),
        )
    return out


def _decode(result: SimResult) -> DecodeUtilisation:
    dw = result.decode_workers
    busy = dw["busy_s"].sum()
    return DecodeUtilisation(
        kv_capacity_tokens=int(result.kv_capacity_tokens),
        busy_frac_mean=float(dw["busy_frac"].mean()),
        batch_size_mean=float((dw["mean_batch"] * dw["busy_s"]).sum() / busy) if busy > 0 else 0.0,
        kv_occupancy_mean=float(dw["kv_occupancy"].mean()),
        peak_batch=int(dw["peak_batch"].max()),
    )
