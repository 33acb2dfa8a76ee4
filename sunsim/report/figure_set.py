"""Which figures a report holds, made from a :class:`~sunsim.runs.RunData`.

:func:`build_figures` returns ``(name, caption, Figure)`` in :data:`REPLAY_FIGURES` or
:data:`PLAN_FIGURES` order; a figure whose data the directory lacks (no sweep, no replays)
is a placeholder that says how to get it. Drawing is :mod:`sunsim.report.figures`' job.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from sunsim.report import figures as F
from sunsim.report.tables import models_order, per_model_frame, slo_bounds
from sunsim.runs import RunData

#: Figures of a replay-run report, in order: (name, caption).
REPLAY_FIGURES = (
    ("ttft_cdf", "TTFT CDF per mode (dashed: the SLO bound)"),
    ("tpot_cdf", "TPOT CDF per mode (dashed: the SLO bound)"),
    ("decode_utilisation", "Decode busy fraction per worker over simulated time"),
    ("batch_size", "Distribution of decode batch size over decode busy time"),
    ("kv_occupancy", "Distribution of KV-cache occupancy over decode time"),
    ("per_model", "Per-model SLO attainment, TTFT p90 and TPOT p90"),
)
#: Figures of a plan report, in order.
PLAN_FIGURES = (
    ("plan_gpus", "GPUs per mode at the planned size (prefill grey, decode coloured)"),
    ("capacity", "Decode workers needed against load (rate sweep)"),
    ("skew", "Throughput per GPU against skew (Zipf sweep)"),
    ("goodput", "SLO attainment against rate at the scenario's own worker counts (rate sweep)"),
) + REPLAY_FIGURES

_RECORD_FIGURES = ("ttft_cdf", "tpot_cdf", "decode_utilisation", "batch_size", "kv_occupancy")


def build_figures(run: RunData) -> list[tuple[str, str, Any]]:
    """The report's figures: ``(name, caption, Figure)`` in :data:`PLAN_FIGURES` or
    :data:`REPLAY_FIGURES` order; every caption ends with the step-time method."""
    method = run.method
    names = PLAN_FIGURES if run.kind == "plan" else REPLAY_FIGURES
    out = []
    for name, caption in names:
        fig = _plan_figure(run, name, method) or _replay_figure(run, name, method)
        out.append((name, f"{caption} ({method} step times).", fig))
    return out


def _plan_figure(run: RunData, name: str, method: str) -> Any:
    """The plan-only figures (None for the others)."""
    options = run.meta.get("options") or {}
    sweep = options.get("sweep") if isinstance(options, dict) else None
    sweep_key = sweep.get("key") if isinstance(sweep, dict) else None
    if name == "plan_gpus":
        table = run.plan_table if run.plan_table is not None else pd.DataFrame()
        return F.plan_gpus(table, method)
    if name == "capacity":
        if run.sweep is not None and sweep_key == "rate_scale":
            return F.capacity_curve(run.sweep, method)
        return F.no_data(
            "Decode workers needed against load",
            "no rate sweep in this plan: run `sunsim plan ... --sweep rate=1,2,4,8`",
            method,
        )
    if name == "skew":
        if run.sweep is not None and sweep_key == "zipf":
            return F.skew_curve(run.sweep, method)
        return F.no_data(
            "Throughput per GPU against skew",
            "no Zipf sweep in this plan: run `sunsim plan ... --sweep zipf=0,1,2`",
            method,
        )
    if name == "goodput":
        if run.goodput is not None:
            return F.goodput_curve(run.goodput, method, slo_bounds(run)[2])
        return F.no_data(
            "Goodput at fixed workers",
            "goodput comes with a rate sweep: `sunsim plan ... --sweep rate=...`",
            method,
        )
    return None


def _replay_figure(run: RunData, name: str, method: str) -> Any:
    """The figures of every report (made from the per-mode records and frames)."""
    ttft, tpot, _ = slo_bounds(run)
    if not run.records and name in _RECORD_FIGURES:
        return F.no_data(
            name.replace("_", " "),
            "this plan was written with --no-replays: no per-request records",
            method,
        )
    if name == "ttft_cdf":
        return F.latency_cdf(_long(run.records, "ttft_s"), "TTFT", method, ttft)
    if name == "tpot_cdf":
        return F.latency_cdf(_long(run.records, "tpot_s"), "TPOT", method, tpot)
    if name == "decode_utilisation":
        return F.utilisation_heatmap(timelines_with_pools(run), method)
    if name == "batch_size":
        return F.time_distribution(
            _stack(run.batch_time),
            "batch_size",
            method,
            "decode batch size (requests)",
            "Decode batch size",
        )
    if name == "kv_occupancy":
        return F.time_distribution(
            _stack(run.kv_time),
            "kv_occupancy_pct",
            method,
            "KV-cache occupancy (% of capacity)",
            "KV-cache occupancy",
        )
    if name == "per_model":
        return F.per_model_breakdown(per_model_frame(run.summaries, models_order(run)), method)
    raise ValueError(name)  # pragma: no cover


def timelines_with_pools(run: RunData) -> dict[str, pd.DataFrame]:
    """Per mode, the decode timeline (``worker``, ``t_s``, ``busy_frac``, ...) with each
    worker's ``pool`` from ``decode_workers_<mode>.csv`` when both are there."""
    out = {}
    for mode, tl in run.timelines.items():
        dw = run.decode_workers.get(mode, pd.DataFrame())
        if len(tl) and len(dw) and "pool" in dw:
            tl = tl.merge(dw[["worker", "pool"]], on="worker", how="left")
        out[mode] = tl
    return out


def _long(frames: dict[str, pd.DataFrame], col: str) -> pd.DataFrame:
    parts = [
        pd.DataFrame({"mode": m, "value": f[col].to_numpy()})
        for m, f in frames.items()
        if len(f) and col in f
    ]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["mode", "value"])


def _stack(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    parts = [f.assign(mode=m) for m, f in frames.items() if len(f)]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
