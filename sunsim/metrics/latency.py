"""Per-request latency metrics: SLO checks, TTFT/TPOT/E2E percentiles, ITL percentiles.

Every function reads the records frame of one run (one row per request, the columns of
:meth:`sunsim.engine.records.RecordTable.to_frame`: ``model``, ``status``, ``ttft_s``,
``tpot_s``, ``e2e_s``, ...) or the token-weighted ITL histogram of the decode workers.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from sunsim.engine.cluster import itl_bin_edges
from sunsim.specs import SloSpec

#: The percentiles every summary reports.
PERCENTILES = (50, 90, 99)
#: The per-request latency columns (seconds) that percentiles are taken of.
LATENCIES = ("ttft_s", "tpot_s", "e2e_s")


def slo_met(records: pd.DataFrame, slo: SloSpec) -> pd.Series:
    """Boolean per request: finished, TTFT within ``slo.ttft_s`` and TPOT within ``slo.tpot_s``
    (requests with one output token have no TPOT and need only the TTFT)."""
    met = slo_met_values(
        (records["status"] == "finished").to_numpy(dtype=bool),
        records["ttft_s"].to_numpy(dtype=float),
        records["tpot_s"].to_numpy(dtype=float),
        slo,
    )
    return pd.Series(met, index=records.index)


def slo_met_values(
    finished: np.ndarray, ttft_s: np.ndarray, tpot_s: np.ndarray, slo: SloSpec
) -> np.ndarray:
    """:func:`slo_met` on arrays (one value per request): ``finished`` (bool), ``ttft_s`` and
    ``tpot_s`` (seconds, NaN where there is none). The one definition of meeting the SLO."""
    with np.errstate(invalid="ignore"):
        ok_tpot = np.isnan(tpot_s) | (tpot_s <= slo.tpot_s)
        ok_tpot &= ttft_s <= slo.ttft_s
    ok_tpot &= finished
    return np.asarray(ok_tpot, dtype=bool)


def percentiles_of(values: np.ndarray, percentiles: Iterable[int] = PERCENTILES) -> list[float]:
    """The ``percentiles`` (linear interpolation, ``numpy.percentile``) of the non-NaN
    ``values``; NaN each when there is none. Works on a copy, never on ``values``."""
    vals = values[~np.isnan(values)]
    if not len(vals):
        return [float("nan") for _ in percentiles]
    return [float(np.percentile(vals, p, overwrite_input=True)) for p in percentiles]


def slo_attainment(records: pd.DataFrame, slo: SloSpec) -> float:
    """Fraction of all requests (rejected ones count as misses) meeting both SLOs; NaN for
    no requests."""
    if len(records) == 0:
        return float("nan")
    return float(slo_met(records, slo).mean())


def latency_percentiles(
    records: pd.DataFrame, by: str | None = None, percentiles: Iterable[int] = PERCENTILES
) -> pd.DataFrame:
    """p50/p90/p99 (seconds) of TTFT, TPOT and E2E over finished requests.

    Returns a frame with one row per group (``by`` column values, or one row ``all``) and
    columns ``num_finished`` (float), ``ttft_s_p50``, ``ttft_s_p90``, ..., ``e2e_s_p99``
    (NaN where a group has no value). Percentiles interpolate linearly (``numpy.percentile``).
    """
    ps = tuple(percentiles)
    fin = records[records["status"] == "finished"]
    groups = (
        [("all", fin)]
        if by is None
        else [(str(k), g) for k, g in fin.groupby(by, observed=False, sort=False)]
    )
    rows = {}
    for key, g in groups:
        row: dict[str, float] = {"num_finished": float(len(g))}
        for col in LATENCIES:
            qs = percentiles_of(g[col].to_numpy(dtype=float), ps)
            row |= {f"{col}_p{p}": q for p, q in zip(ps, qs, strict=True)}
        rows[key] = row
    return pd.DataFrame.from_dict(rows, orient="index")


def itl_percentiles(
    itl_hist: np.ndarray, percentiles: Iterable[int] = PERCENTILES
) -> dict[str, float]:
    """ITL percentiles (seconds) ``itl_s_p50``... from a token-weighted histogram over
    :func:`sunsim.engine.cluster.itl_bin_edges`; each value is its bin's geometric centre,
    within 0.6% of the exact token percentile. NaN when the histogram is empty."""
    total = int(itl_hist.sum())
    edges = itl_bin_edges()
    out = {}
    cum = np.cumsum(itl_hist)
    for p in percentiles:
        if total == 0:
            out[f"itl_s_p{p}"] = float("nan")
            continue
        i = int(np.searchsorted(cum, p / 100 * total, side="left"))
        out[f"itl_s_p{p}"] = float(np.sqrt(edges[i] * edges[i + 1]))
    return out
