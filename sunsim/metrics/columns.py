"""Every figure a summary takes from the per-request records, read one column at a time.

:func:`record_stats` computes, from a :class:`RecordColumns` (the records of one run, one
row per request), the counts, the measured window, token totals, SLO attainment and goodput
counts, and the TTFT/TPOT/E2E percentiles, means and standard deviations (overall and per
model) that :func:`sunsim.metrics.summarize` and
:func:`sunsim.metrics.benchmark.design_metrics` report. It holds at most a few columns at
once (a bool mask per request, the model codes and one float column), so the same code
serves an in-memory frame (:class:`FrameColumns`) and records streamed to a Parquet file of
millions of rows (:class:`sunsim.runs.stream.ParquetColumns`), with identical results: both
give the same arrays to the same formulas (:func:`~sunsim.metrics.latency.slo_met_values`,
:func:`~sunsim.metrics.latency.percentiles_of`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd

from sunsim.metrics.latency import LATENCIES, percentiles_of, slo_met_values
from sunsim.specs import SloSpec

NAN = float("nan")


class RecordColumns(Protocol):
    """Read access to one run's records, column by column (the columns of
    :meth:`sunsim.engine.records.RecordTable.to_frame`), rows in trace order."""

    def __len__(self) -> int: ...

    def values(self, name: str, rows: np.ndarray | None = None) -> np.ndarray:
        """Numeric column ``name`` as a NumPy array (NaN where missing), only the rows where
        the bool mask ``rows`` is True when given."""
        ...

    def labels(self, name: str) -> pd.Series:
        """Text column ``name`` (``model``, ``status``, ``reject_reason``) as a Series,
        categorical or of strings, with a default index."""
        ...


class FrameColumns:
    """:class:`RecordColumns` over a records DataFrame held in memory."""

    def __init__(self, records: pd.DataFrame) -> None:
        self.records = records

    def __len__(self) -> int:
        return len(self.records)

    def values(self, name: str, rows: np.ndarray | None = None) -> np.ndarray:
        v: np.ndarray = self.records[name].to_numpy()
        return v if rows is None else v[rows]

    def labels(self, name: str) -> pd.Series:
        return self.records[name].reset_index(drop=True)


@dataclass(frozen=True)
class LatencyStats:
    """One latency column (seconds) over finished requests: ``percentiles`` (p50/p90/p99, s),
    ``mean_ms`` and ``std_ms`` (milliseconds, population std), and ``per_model`` (model ->
    p50/p90/p99 in seconds)."""

    percentiles: tuple[float, ...]
    mean_ms: float
    std_ms: float
    per_model: dict[str, tuple[float, ...]]


@dataclass(frozen=True)
class RecordStats:
    """What the records of one run give a summary (see :func:`record_stats`).

    Counts: ``total``, ``finished``, ``rejected``, ``rejected_by_reason``,
    ``preempted_requests``, ``preemptions``, ``slo_met`` (requests meeting the SLO; rejected
    requests never do). ``window_s``: first arrival to last finish (NaN if none finished).
    Tokens of finished requests: ``input_tokens``, ``output_tokens``; ``decode_steps`` and
    ``decode_s``: output tokens after the first and the seconds from first token to finish,
    over finished requests of more than one output token (the token-weighted mean ITL is
    ``decode_s / decode_steps``). ``latency``: ``ttft_s``/``tpot_s``/``e2e_s`` ->
    :class:`LatencyStats`. Per model, in the order ``groupby(sort=False)`` gives (first
    appearance, then models without requests): ``model_requests``, ``model_finished``,
    ``model_slo_met``.
    """

    total: int
    finished: int
    rejected: int
    rejected_by_reason: dict[str, int]
    preempted_requests: int
    preemptions: int
    slo_met: int
    window_s: float
    input_tokens: int
    output_tokens: int
    decode_steps: int
    decode_s: float
    latency: dict[str, LatencyStats]
    model_requests: dict[str, int]
    model_finished: dict[str, int]
    model_slo_met: dict[str, int]


def record_stats(cols: RecordColumns | pd.DataFrame, slo: SloSpec) -> RecordStats:
    """:class:`RecordStats` of one run's records (a frame or any :class:`RecordColumns`).

    Definitions (:mod:`sunsim.metrics`): percentiles, means and standard deviations are
    over finished requests with a value (TPOT: more than one output token); SLO attainment
    counts rejected requests as misses; the window runs from the first arrival to the last
    finish. Peak memory: about four bytes per request plus two float columns.

    Column readers that keep a ``stats_memo`` dict (:class:`sunsim.runs.stream.ParquetColumns`,
    whose every read goes through the file) get the stats computed once per pair of SLO
    bounds and reused: :func:`sunsim.metrics.summarize` and
    :func:`sunsim.metrics.benchmark.design_metrics` of a streamed run read the file once.
    """
    if isinstance(cols, pd.DataFrame):
        cols = FrameColumns(cols)
    memo: dict[tuple[float, float], RecordStats] | None = getattr(cols, "stats_memo", None)
    key = (slo.ttft_s, slo.tpot_s)  # the only parts of the SLO the stats depend on
    if memo is not None and key in memo:
        return memo[key]
    st = _record_stats(cols, slo)
    if memo is not None:
        memo[key] = st
    return st


def _record_stats(cols: RecordColumns, slo: SloSpec) -> RecordStats:
    """:func:`record_stats`, computed."""
    n = len(cols)
    status = cols.labels("status")
    fin = (status == "finished").to_numpy(dtype=bool)
    rejected = (status == "rejected").to_numpy(dtype=bool)
    reasons = cols.labels("reject_reason")[rejected].astype(object).value_counts()
    del status
    codes, models = _model_codes(cols.labels("model"))
    ttft = cols.values("ttft_s")
    met = slo_met_values(fin, ttft, cols.values("tpot_s"), slo)
    del ttft
    finished_at = cols.values("finished_at", fin)
    window = float(finished_at.max() - cols.values("arrived_at").min()) if fin.any() else NAN
    out_fin = cols.values("output_tokens", fin)
    multi = out_fin > 1
    gap = cols.values("first_token_at", fin)  # becomes finished_at - first_token_at
    np.subtract(finished_at, gap, out=gap)
    del finished_at
    decode_s = float(np.nansum(gap[multi]))
    del gap
    preempt = cols.values("num_preemptions")
    k = len(models)
    return RecordStats(
        total=n,
        finished=int(fin.sum()),
        rejected=int(rejected.sum()),
        rejected_by_reason={str(r): int(c) for r, c in reasons.items()},
        preempted_requests=int((preempt > 0).sum()),
        preemptions=int(preempt.sum()),
        slo_met=int(met.sum()),
        window_s=window,
        input_tokens=int(cols.values("prompt_tokens", fin).sum()),
        output_tokens=int(out_fin.sum()),
        decode_steps=int((out_fin[multi] - 1).sum()),
        decode_s=decode_s,
        latency={c: _latency(cols.values(c, fin), codes[fin], models) for c in LATENCIES},
        model_requests=_per(models, np.bincount(codes, minlength=k)),
        model_finished=_per(models, np.bincount(codes[fin], minlength=k)),
        model_slo_met=_per(models, np.bincount(codes[met], minlength=k)),
    )


def _per(models: list[str], counts: np.ndarray) -> dict[str, int]:
    return {m: int(c) for m, c in zip(models, counts, strict=True)}


def _model_codes(model: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Each request's model as a code into the models, in the order of
    ``groupby(sort=False, observed=False)``: first appearance, then unused categories."""
    cat = model.astype("category") if not isinstance(model.dtype, pd.CategoricalDtype) else model
    codes = cat.cat.codes.to_numpy()
    if (codes < 0).any():
        raise ValueError("records: a request without a model")
    names = [str(c) for c in cat.cat.categories]
    used, first = np.unique(codes, return_index=True)
    order = [int(c) for c in used[np.argsort(first)]]
    order += sorted(set(range(len(names))) - set(order))
    remap = np.empty(len(names), dtype=codes.dtype)
    remap[order] = np.arange(len(names), dtype=codes.dtype)
    return remap[codes], [names[c] for c in order]


def _latency(vals: np.ndarray, codes: np.ndarray, models: list[str]) -> LatencyStats:
    """Stats of one latency column over the finished requests (``vals``, seconds, and their
    model ``codes``)."""
    has = ~np.isnan(vals)
    ms = vals[has] * 1e3
    mean, std = (float(ms.mean()), float(ms.std())) if len(ms) else (NAN, NAN)
    del ms, has
    per_model = {m: tuple(percentiles_of(vals[codes == i])) for i, m in enumerate(models)}
    return LatencyStats(tuple(percentiles_of(vals)), mean, std, per_model)


__all__ = ["FrameColumns", "LatencyStats", "RecordColumns", "RecordStats", "record_stats"]
