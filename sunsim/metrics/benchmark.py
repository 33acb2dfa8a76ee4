"""Per-design metrics for scripts, named and scaled as vLLM's serving benchmark writes them.

:func:`design_metrics` flattens one run (its :class:`RunSummary`, optionally its records and
ITL histogram, and its :class:`~sunsim.metrics.cost.DesignCost`) into one flat dict of
numbers. Where sunsim and ``vllm bench serve`` (``benchmarks/benchmark_serving.py``, its
``--save-result`` JSON) measure the same thing the key is vLLM's: ``duration`` (s),
``completed``, ``failed``, ``total_input_tokens``, ``total_output_tokens``,
``request_throughput`` (req/s), ``request_goodput`` (req/s meeting the SLO),
``output_throughput`` and ``total_token_throughput`` (tok/s), and for ``ttft``, ``tpot``,
``itl`` and ``e2el``: ``mean_*_ms``, ``median_*_ms``, ``std_*_ms``, ``p90_*_ms``,
``p99_*_ms`` (milliseconds). sunsim's own keys carry their unit in the name
(``usd_per_hour``, ``slo_attainment_pct``, ``output_throughput_per_gpu``).

Sources of each value: percentiles come from the summary (records, ITL from the decode
workers' histogram, 1.2% bins); means and standard deviations need the records
(``mean_itl_ms`` is the token-weighted mean, exact: decode time over decode tokens;
``std_itl_ms`` comes from the histogram's bin centres); without records they are NaN.
``failed`` counts rejected requests. The whole summary carries :data:`SCHEMA_VERSION`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from sunsim.metrics.columns import RecordColumns, RecordStats, record_stats
from sunsim.metrics.cost import DesignCost
from sunsim.metrics.summary import RunSummary
from sunsim.specs import SloSpec

#: Version of the machine-readable summary (``--json``, ``summary.json``/``plan.json``
#: ``designs``, ``comparison.csv`` columns). Bump it when a key changes meaning or goes.
SCHEMA_VERSION = 1
NAN = float("nan")
#: vLLM's metric stems -> sunsim's seconds columns/summary keys.
_STEMS = {"ttft": "ttft_s", "tpot": "tpot_s", "itl": "itl_s", "e2el": "e2e_s"}


def design_metrics(
    s: RunSummary,
    cost: DesignCost | None = None,
    records: pd.DataFrame | RecordColumns | None = None,
    itl_hist: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, Any]:
    """One design's flat metrics (see the module docstring for every key and unit).

    ``records``: the run's per-request records (one row per request; a frame, or
    :class:`~sunsim.metrics.columns.RecordColumns` such as records streamed to Parquet) for
    means, standard deviations, input tokens and goodput (read one column at a time,
    :func:`~sunsim.metrics.columns.record_stats`); ``itl_hist``: (token counts per bin, bin
    edges in seconds) for ``std_itl_ms``.
    """
    st = None if records is None else record_stats(records, _slo(s))
    window = s.throughput.window_s
    row: dict[str, Any] = {
        "design": s.mode,
        "method": s.method,
        "num_gpus": s.gpus.total,
        "num_prefill_gpus": s.gpus.prefill,
        "num_decode_gpus": s.gpus.decode,
        "decode_workers_per_pool": ",".join(map(str, s.gpus.decode_per_pool)),
        "prefill_workers_per_model": ",".join(map(str, s.gpus.prefill_per_model)),
    }
    if cost is not None:
        (gpu,) = cost.gpus_by_type if len(cost.gpus_by_type) == 1 else ("mixed",)
        row |= {
            "gpu": gpu,
            "gpu_hour_usd": next(iter(cost.gpu_hour_usd.values()), NAN),
            "usd_per_hour": cost.usd_per_hour,
            "usd_per_million_output_tokens": cost.usd_per_million_output_tokens,
            "saving_usd_per_hour_vs_partitioned": cost.saving_usd_per_hour,
            "saving_pct_vs_partitioned": cost.saving_pct,
        }
    in_tokens = float(st.input_tokens) if st is not None else NAN
    out_tokens = float(s.throughput.output_tokens)
    good = NAN
    if st is not None and window and window > 0:
        good = float(st.slo_met) / window
    row |= {
        "duration": window,
        "completed": s.requests.finished,
        "failed": s.requests.rejected,
        "total_input_tokens": in_tokens,
        "total_output_tokens": out_tokens,
        "request_throughput": s.throughput.requests_per_s,
        "request_goodput": good,
        "output_throughput": s.throughput.output_tokens_per_s,
        "total_token_throughput": (in_tokens + out_tokens) / window if window else NAN,
        "output_throughput_per_gpu": s.throughput.output_tokens_per_s_per_gpu,
        "slo_attainment_pct": 100.0 * s.slo.attainment,
        "slo_met": bool(s.slo.met),
        "preemptions": s.requests.preemptions,
    }
    for stem, col in _STEMS.items():
        row |= _latency_stats(s, stem, col, st, itl_hist)
    return row


def _slo(s: RunSummary) -> SloSpec:
    return SloSpec(s.slo.ttft_s, s.slo.tpot_s, s.slo.target)


def _latency_stats(
    s: RunSummary,
    stem: str,
    col: str,
    st: RecordStats | None,
    itl_hist: tuple[np.ndarray, np.ndarray] | None,
) -> dict[str, float]:
    """``mean/median/std/p90/p99_<stem>_ms`` of one latency."""
    lat = s.latency_s
    pct = {p: getattr(lat, f"{col}_p{p}") * 1e3 for p in (50, 90, 99)}
    mean = std = NAN
    if st is not None and stem != "itl":
        mean, std = st.latency[col].mean_ms, st.latency[col].std_ms
    elif st is not None:
        if st.decode_steps > 0:
            mean = st.decode_s / st.decode_steps * 1e3
        if itl_hist is not None:
            std = _hist_std_ms(*itl_hist)
    return {
        f"mean_{stem}_ms": mean,
        f"median_{stem}_ms": pct[50],
        f"std_{stem}_ms": std,
        f"p90_{stem}_ms": pct[90],
        f"p99_{stem}_ms": pct[99],
    }


def _hist_std_ms(counts: np.ndarray, edges: np.ndarray) -> float:
    """Standard deviation (ms) of a histogram: ``counts`` per bin, ``edges`` (seconds; one
    more than ``counts``), each bin at its geometric centre."""
    counts = np.asarray(counts, dtype=float)
    if counts.sum() <= 0:
        return NAN
    mid = np.sqrt(edges[:-1] * edges[1:]) if edges[0] > 0 else (edges[:-1] + edges[1:]) / 2
    mean = float(np.average(mid, weights=counts))
    return math.sqrt(float(np.average((mid - mean) ** 2, weights=counts))) * 1e3


def metrics_frame(designs: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """One row per design (``design`` first), numbers as numbers (``comparison.csv``)."""
    return pd.DataFrame([dict(d) for d in designs.values()])
