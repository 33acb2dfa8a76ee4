"""Trace info: size, span, rate, burstiness and token-length percentiles of a trace."""

from __future__ import annotations

from typing import Any

import numpy as np

from sunsim.traces.read import Trace

__all__ = ["trace_info", "prefix_reuse"]


def _pcts(x: np.ndarray) -> dict[str, float]:
    if len(x) == 0:
        return {k: float("nan") for k in ("mean", "p50", "p90", "p99", "max")}
    q = np.percentile(x, [50, 90, 99])
    return {
        "mean": float(np.mean(x)),
        "p50": float(q[0]),
        "p90": float(q[1]),
        "p99": float(q[2]),
        "max": float(np.max(x)),
    }


def prefix_reuse(hash_ids: Any, prompt: np.ndarray, block_tokens: int) -> float:
    """Share of prompt tokens in blocks whose whole prefix (that block and every block before
    it) appeared in an earlier request, in row order: the token hit rate of a prefix cache with
    unbounded memory, keyed by content only (an upper bound for any real cache). A full block
    counts ``block_tokens``, a partial last block its own tokens. NaN for no requests."""
    seen: set[int] = set()
    hit = 0
    for ids, p in zip(hash_ids, prompt.tolist(), strict=True):
        k = 0
        while k < len(ids) and ids[k] in seen:
            k += 1
        hit += min(k * block_tokens, p)
        seen.update(ids)
    total = int(prompt.sum())
    return hit / total if total else float("nan")


def trace_info(trace: Trace) -> dict[str, Any]:
    """Summary statistics of a trace's kept requests.

    Returns a dict with: ``path``, ``format``, ``num_rows`` (data rows in the file),
    ``num_requests`` (kept), ``num_failed``, ``num_failed_excluded``, ``num_zero_output``,
    ``num_reordered`` (rows out of time order in the file, re-sorted), ``span_s`` (last
    arrival - first, seconds), ``mean_rate`` (requests/s: num_requests / span_s; NaN when the
    span is 0), ``interarrival_cv`` (std / mean of the inter-arrival times, population std; NaN
    with fewer than 2 gaps or zero mean), ``prompt_tokens`` and ``output_tokens`` (each a dict of
    ``mean``, ``p50``, ``p90``, ``p99``, ``max``, tokens), ``source_models`` (name -> count),
    and, only when the trace has session columns: ``num_sessions`` (0 without ``session_id``),
    ``num_context_resets``, ``hash_ids_source`` (``"trace"`` or ``"session structure"``),
    ``hash_block_tokens`` and ``prefix_reuse`` (:func:`prefix_reuse`).
    """
    df = trace.requests
    t = df["arrival_s"].to_numpy(dtype=np.float64)
    span = float(t[-1] - t[0]) if len(t) else 0.0
    gaps = np.diff(t)
    cv = (
        float(np.std(gaps) / np.mean(gaps))
        if len(gaps) >= 2 and np.mean(gaps) > 0
        else float("nan")
    )
    info: dict[str, Any] = {
        "path": trace.path,
        "format": trace.format,
        "num_rows": trace.num_rows,
        "num_requests": len(df),
        "num_failed": trace.num_failed,
        "num_failed_excluded": trace.num_failed_excluded,
        "num_zero_output": trace.num_zero_output,
        "num_reordered": trace.num_reordered,
        "span_s": span,
        "mean_rate": len(df) / span if span > 0 else float("nan"),
        "interarrival_cv": cv,
        "prompt_tokens": _pcts(df["prompt_tokens"].to_numpy()),
        "output_tokens": _pcts(df["output_tokens"].to_numpy()),
        "source_models": dict(trace.source_models),
    }
    if trace.sessions.num_sessions or trace.hash_block_tokens is not None:
        info |= {
            "num_sessions": trace.sessions.num_sessions,
            "num_context_resets": trace.sessions.num_context_resets,
            "hash_ids_source": trace.sessions.hash_ids_source,
            "hash_block_tokens": trace.hash_block_tokens,
            "prefix_reuse": (
                prefix_reuse(
                    df["hash_ids"], df["prompt_tokens"].to_numpy(), trace.hash_block_tokens
                )
                if trace.hash_block_tokens is not None
                else float("nan")
            ),
        }
    return info
