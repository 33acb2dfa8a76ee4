"""``summarize``: one run's records and worker frames -> :class:`RunSummary`.

Reads only the frames of a :class:`~sunsim.engine.cluster.SimResult` (records, decode and
prefill worker rows, the ITL histogram) and the description of its cluster; it never touches
the engine's objects.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

from sunsim.metrics.latency import itl_percentiles, latency_percentiles, slo_met
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


def summarize(result: SimResult, slo: SloSpec) -> RunSummary:
    """Everything one run reports, as a :class:`RunSummary` (``to_dict()`` is the per-mode
    object of ``summary.json``).

    Definitions (docs and :mod:`sunsim.metrics`): the measured window runs from the first
    arrival to the last finish; throughput counts output tokens of finished requests; SLO
    attainment counts rejected requests as misses; the decode batch size is weighted by busy
    time; GPU counts are workers x their pool's tensor parallel size, and throughput per GPU
    divides by all of them.
    """
    rec = result.records
    cl = result.cluster
    fin = rec[rec["status"] == "finished"]
    rejected = rec[rec["status"] == "rejected"]
    met = slo_met(rec, slo)
    window = float(fin["finished_at"].max() - rec["arrived_at"].min()) if len(fin) else NAN
    out_tokens = int(fin["output_tokens"].sum())
    tput = out_tokens / window if window and window > 0 else NAN
    overall = latency_percentiles(rec).iloc[0].to_dict()
    overall.pop("num_finished", None)
    overall.update(itl_percentiles(result.itl_hist))
    attainment = float(met.mean()) if len(rec) else NAN
    hetero = cl.prefill_gpu is not None or cl.decode_gpu is not None  # a pool's own GPU
    return RunSummary(
        mode=cl.design.name,
        method=result.method,
        latency=LatencyModels(prefill=result.prefill_latency, decode=result.decode_latency),
        gpus=GpuCounts(
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
        ),
        requests=RequestCounts(
            total=int(len(rec)),
            finished=int(len(fin)),
            rejected=int(len(rejected)),
            rejected_by_reason={
                str(k): int(v) for k, v in rejected["reject_reason"].value_counts().items()
            },
            preempted_requests=int((rec["num_preemptions"] > 0).sum()),
            preemptions=int(rec["num_preemptions"].sum()),
        ),
        latency_s=LatencyPercentiles(**{k: float(v) for k, v in overall.items()}),
        per_model=_per_model(rec, met),
        throughput=Throughput(
            window_s=window,
            output_tokens=out_tokens,
            output_tokens_per_s=tput,
            output_tokens_per_s_per_gpu=tput / cl.num_gpus,
            requests_per_s=len(fin) / window if window and window > 0 else NAN,
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


def _prefix_cache(result: SimResult) -> PrefixCacheSummary | None:
    """The run's prefix-cache figures, or None when caching was off."""
    pc = result.extra.get("prefix_cache")
    if pc is None:
        return None
    return PrefixCacheSummary(
        **{**pc, "cached_kv_bytes_by_model": dict(pc["cached_kv_bytes_by_model"])}
    )


def _per_model(rec: pd.DataFrame, met: pd.Series) -> dict[str, ModelSummary]:
    pm = latency_percentiles(rec, by="model")
    out = {}
    for model, g in rec.groupby("model", observed=False, sort=False):
        d: dict[str, Any] = (
            pm.loc[str(model)].to_dict() if str(model) in pm.index else {"num_finished": 0}
        )
        d = {k: float(v) for k, v in d.items()}
        d["num_finished"] = int((g["status"] == "finished").sum())
        d["num_requests"] = int(len(g))
        d["slo_attainment"] = float(met[g.index].mean()) if len(g) else NAN
        for f in ModelSummary.__dataclass_fields__:
            d.setdefault(f, NAN)
        out[str(model)] = ModelSummary(**d)
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
