"""The report's prefix-cache section (runs with ``enable_prefix_caching`` and ``hash_ids``):
one table per design and the frames its figures draw.

Figures of a run come from each design's :class:`~sunsim.metrics.summary.PrefixCacheSummary`
(``summary.json``), its records (p95 latencies: the summaries keep p50/p90/p99 only, so the
95th percentiles are computed here from the finished requests' ``ttft_s`` and ``e2e_s``) and,
when the run wrote one, ``prefix_kv_<mode>.csv`` (cached KV bytes by model over time,
:func:`sunsim.engine.prefix_timeline.kv_timeline_frame`). A run without caching has none of
these: :func:`has_prefix_cache` is False and the report shows no prefix section.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from sunsim.runs import RunData

__all__ = ["has_prefix_cache", "prefix_display", "prefix_frame", "kv_by_model_frame"]

GIB = float(1 << 30)
#: The heading of the prefix-cache table in both renderers.
PREFIX_TITLE = (
    "Prefix cache (hit rate in prompt tokens, prefill tokens saved, evictions, cached KV; "
    "p95 latencies from the records)"
)


def has_prefix_cache(run: RunData) -> bool:
    """Whether some design of ``run`` ran with prefix caching on."""
    return any(s.prefix_cache is not None for s in run.summaries.values())


def _p95(rec: pd.DataFrame | None, col: str) -> float:
    """The 95th percentile of ``col`` over finished requests (NaN without records)."""
    if rec is None or not len(rec) or col not in rec or "status" not in rec:
        return math.nan
    v = rec.loc[rec["status"] == "finished", col].to_numpy(dtype=float)
    v = v[np.isfinite(v)]
    return float(np.percentile(v, 95)) if len(v) else math.nan


def prefix_frame(run: RunData) -> pd.DataFrame:
    """One row per design with caching on: ``mode``, ``query_tokens`` (prompt tokens looked
    up), ``hit_tokens``, ``hit_rate`` (fraction), ``prefill_tokens_saved``, ``evictions``
    (hash blocks), ``evicted_blocks`` (KV blocks), ``peak_cached_blocks``,
    ``cached_kv_gib`` (at the end of the run, all models), ``kv_shared`` (content-only keys),
    ``ttft_s_p95``, ``e2e_s_p95`` (seconds, from the records), ``output_tokens_per_s``,
    ``output_tokens_per_s_per_gpu``, ``num_gpus``. Empty when no design cached."""
    rows = []
    for mode, s in run.summaries.items():
        pc = s.prefix_cache
        if pc is None:
            continue
        rec = run.records.get(mode)
        rows.append(
            {
                "mode": mode,
                "query_tokens": pc.query_tokens,
                "hit_tokens": pc.hit_tokens,
                "hit_rate": pc.hit_rate,
                "prefill_tokens_saved": pc.prefill_tokens_saved,
                "evictions": pc.evictions,
                "evicted_blocks": pc.evicted_blocks,
                "peak_cached_blocks": pc.peak_cached_blocks,
                "cached_kv_gib": sum(pc.cached_kv_bytes_by_model.values()) / GIB,
                "kv_shared": pc.kv_shared_across_models,
                "ttft_s_p95": _p95(rec, "ttft_s"),
                "e2e_s_p95": _p95(rec, "e2e_s"),
                "output_tokens_per_s": s.throughput.output_tokens_per_s,
                "output_tokens_per_s_per_gpu": s.throughput.output_tokens_per_s_per_gpu,
                "num_gpus": s.gpus.total,
            }
        )
    return pd.DataFrame(rows)


def _count(s: pd.Series) -> list[str]:
    return [f"{int(v):,}" for v in s]


def prefix_display(df: pd.DataFrame) -> pd.DataFrame:
    """:func:`prefix_frame` for people: rates in %, latencies in ms / s, short headers."""
    if df.empty:
        return df
    return pd.DataFrame(
        {
            "design": df["mode"],
            "KV keys": np.where(df["kv_shared"], "content only", "per model"),
            "token hit rate (%)": df["hit_rate"].astype(float) * 100,
            "prompt tokens looked up": _count(df["query_tokens"]),
            "prefill tokens saved": _count(df["prefill_tokens_saved"]),
            "evictions (hash blocks)": _count(df["evictions"]),
            "evicted KV blocks": _count(df["evicted_blocks"]),
            "peak cached KV blocks": _count(df["peak_cached_blocks"]),
            "cached KV at end (GiB)": df["cached_kv_gib"].astype(float),
            "TTFT p95 (ms)": df["ttft_s_p95"].astype(float) * 1e3,
            "E2E p95 (s)": df["e2e_s_p95"].astype(float),
            "output tok/s": df["output_tokens_per_s"].astype(float),
            "tok/s per GPU": df["output_tokens_per_s_per_gpu"].astype(float),
            "GPUs": _count(df["num_gpus"]),
        }
    )


def kv_by_model_frame(run: RunData) -> pd.DataFrame:
    """Rows ``mode``, ``model``, ``end_gib`` (cached KV each model's requests inserted, still
    cached at the end of the run; ``summary.json``) and ``peak_gib`` (the highest time-bin
    mean of the run's ``prefix_kv_<mode>.csv``, NaN when the run has none)."""
    rows = []
    for mode, s in run.summaries.items():
        pc = s.prefix_cache
        if pc is None:
            continue
        tl = run.prefix_kv.get(mode)
        peak = (
            tl.groupby("model")["cached_kv_bytes"].max()
            if tl is not None and len(tl)
            else pd.Series(dtype=float)
        )
        for model, b in pc.cached_kv_bytes_by_model.items():
            rows.append(
                {
                    "mode": mode,
                    "model": model,
                    "end_gib": b / GIB,
                    "peak_gib": float(peak.get(model, math.nan)) / GIB,
                }
            )
    return pd.DataFrame(rows, columns=["mode", "model", "end_gib", "peak_gib"])


def kv_time_frame(run: RunData) -> pd.DataFrame:
    """Rows ``mode``, ``t_s``, ``model``, ``gib``: cached KV by model over time (time-bin
    means summed over a design's caching workers), from ``prefix_kv_<mode>.csv``; empty when
    the run wrote none."""
    parts = []
    for mode, tl in run.prefix_kv.items():
        if tl is None or not len(tl):
            continue
        parts.append(
            pd.DataFrame(
                {
                    "mode": mode,
                    "t_s": tl["t_s"].astype(float),
                    "model": tl["model"].astype(str),
                    "gib": tl["cached_kv_bytes"].astype(float) / GIB,
                }
            )
        )
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
