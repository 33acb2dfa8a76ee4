"""Which figures a report holds, made from a :class:`~sunsim.runs.RunData` and its
:class:`~sunsim.report.answer.Answer`.

:func:`build_figures` returns ``(name, caption, Figure)`` in :data:`FIGURES` order, and only
the figures the directory has data for: no placeholders (a replay has no sweep, a plan
without ``--sweep`` no latency-against-load curve, ``--no-replays`` no per-request figures).
Drawing is :mod:`sunsim.report.figures` and :mod:`sunsim.report.planner_figures`' job.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from sunsim.report import figures as F
from sunsim.report import planner_figures as P
from sunsim.report import prefix as PC
from sunsim.report import prefix_figures as PF
from sunsim.report.answer import Answer
from sunsim.report.tables import models_order, per_model_frame, reference_point, slo_bounds
from sunsim.runs import RunData

#: Every figure a report can hold, in order: (name, caption). Each is left out when the
#: directory lacks its data.
FIGURES = (
    ("gpus_cost", "GPUs (prefill grey, decode in the design's colour) and cost per design"),
    ("latency_load", "TTFT and TPOT p50/p90/p99 against load, each design at its planned size"),
    ("capacity", "GPUs needed to meet the SLO against load (rate sweep)"),
    ("skew_gpus", "GPUs needed to meet the SLO against skew (Zipf sweep)"),
    ("skew", "Throughput per GPU against skew (Zipf sweep)"),
    ("goodput", "SLO attainment against load at the scenario's own worker counts"),
    ("pareto", "Throughput per GPU against TPOT p90 over every configuration simulated"),
    ("latency_breakdown", "Mean time per request in each stage, from the records' timestamps"),
    ("decode_time", "Decode batch size and KV-cache use over time (mean over decode workers)"),
    ("prefix_hits", "Prefix cache: token hit rate and prefill tokens saved per design"),
    (
        "prefix_kv",
        "Cached KV memory by model (prefix cache): over time, at the end of the run and at its "
        "highest time bin, with each design's evictions",
    ),
    ("ttft_cdf", "TTFT distribution per design (dashed: the SLO bound)"),
    ("tpot_cdf", "TPOT distribution per design (dashed: the SLO bound)"),
    ("per_model", "Per-model SLO attainment, TTFT p90 and TPOT p90"),
)
#: Figures only a run with prefix caching on has (``enable_prefix_caching`` and ``hash_ids``).
PREFIX_FIGURES = tuple(f for f in FIGURES if f[0].startswith("prefix_"))
#: Figures a replay run without prefix caching can have (with caching it adds
#: :data:`PREFIX_FIGURES`), and a plan (its sweeps add the others).
REPLAY_FIGURES = tuple(
    f
    for f in FIGURES
    if f[0] not in ("latency_load", "capacity", "skew_gpus", "skew", "goodput")
    and f not in PREFIX_FIGURES
)
PLAN_FIGURES = FIGURES


def build_figures(run: RunData, answer: Answer) -> list[tuple[str, str, Any]]:
    """The report's figures with data: ``(name, caption, Figure)`` in :data:`FIGURES` order;
    every caption ends with the step-time method."""
    method = short_method(run)
    out = []
    for name, caption in FIGURES:
        fig = _figure(run, answer, name, method)
        if fig is not None:
            out.append((name, f"{caption} ({run.method} step times).", fig))
    return out


def short_method(run: RunData) -> str:
    """``measured``, ``analytic`` or ``analytic + measured``: the step-time methods of the
    run's designs without their sources (figure titles; captions carry the full label)."""
    words = sorted({s.method.split(" (")[0] for s in run.summaries.values()})
    return " + ".join(words) or run.method.split(" (")[0]


def _figure(run: RunData, answer: Answer, name: str, method: str) -> Any:
    ttft, tpot, target = slo_bounds(run)
    sweep_key = _sweep_key(run)
    if name == "gpus_cost":
        return P.gpus_and_cost(cost_frame(run, answer), method, answer.gpu)
    if name == "latency_load" and sweep_key in LOAD_KEYS:
        df = load_frame(run)
        return (
            P.latency_vs_load(df, method, ((ttft or 0) * 1e3, (tpot or 0) * 1e3))
            if len(df)
            else None
        )
    if name == "capacity" and sweep_key in LOAD_KEYS and run.sweep is not None:
        rates = _rates(run)
        sw = run.sweep.assign(sweep_value=run.sweep["sweep_value"].map(rates))
        return F.capacity_curve(sw.dropna(subset=["sweep_value"]), method)
    if name == "skew_gpus" and sweep_key == "zipf" and run.sweep is not None:
        x = "Zipf alpha of model popularity (0 = uniform)"
        return F.capacity_curve(run.sweep, method, x, against="skew")
    if name == "skew" and sweep_key == "zipf" and run.sweep is not None:
        return F.skew_curve(run.sweep, method)
    if name == "goodput" and run.goodput is not None:
        return F.goodput_curve(goodput_frame(run), method, target)
    if name == "pareto":
        df = configurations(run)
        return P.pareto_front(df, method) if len(df) >= 2 else None
    if name == "latency_breakdown":
        df = breakdown_frame(run.records)
        return P.latency_breakdown(df, method) if len(df) else None
    if name == "decode_time":
        df = decode_time_frame(run.timelines)
        return P.decode_over_time(df, method) if len(df) else None
    if name in ("prefix_hits", "prefix_kv"):
        return _prefix_figure(run, name, method)
    if name in ("ttft_cdf", "tpot_cdf"):
        col = name[:4] + "_s"
        df = _long(run.records, col)
        bound = ttft if col == "ttft_s" else tpot
        return F.latency_cdf(df, col[:4].upper(), method, bound) if len(df) else None
    if name == "per_model":
        pm = per_model_frame(run.summaries, models_order(run))
        return F.per_model_breakdown(pm, method) if pm["model"].nunique() > 1 else None
    return None


def _prefix_figure(run: RunData, name: str, method: str) -> Any:
    """The prefix-cache figures, only for runs with caching on (:mod:`sunsim.report.prefix`)."""
    df = PC.prefix_frame(run)
    if not len(df):
        return None
    if name == "prefix_hits":
        return PF.prefix_hits(df, method)
    ev = df.set_index("mode")["evictions"]
    return PF.prefix_kv(PC.kv_by_model_frame(run), PC.kv_time_frame(run), ev, method)


#: Sweep keys over load (``--sweep rate=`` in req/s, ``rate_scale=`` a factor).
LOAD_KEYS = ("rate_scale", "request_rate")


def _sweep_key(run: RunData) -> str | None:
    options = run.meta.get("options") or {}
    sweep = options.get("sweep") if isinstance(options, dict) else None
    key = sweep.get("key") if isinstance(sweep, dict) else None
    return str(key) if key else None


def _points(run: RunData) -> list[dict[str, Any]]:
    pts = run.meta.get("points") if run.kind == "plan" else None
    return [p for p in pts or [] if isinstance(p, dict)]


def _rates(run: RunData) -> dict[float, float]:
    """Sweep value -> offered load (req/s) of each plan point."""
    out = {}
    for p in _points(run):
        rate = (p.get("trace") or {}).get("mean_rate")
        if p.get("sweep_value") is not None and rate is not None:
            out[float(p["sweep_value"])] = float(rate)
    return out


def cost_frame(run: RunData, answer: Answer) -> pd.DataFrame:
    """Rows ``mode``, ``num_prefill_gpus``, ``num_decode_gpus``, ``num_colocated_gpus``,
    ``usd_per_hour``,
    ``usd_per_million_output_tokens``."""
    rows = []
    for mode, s in run.summaries.items():
        c = answer.costs[mode]
        rows.append(
            {
                "mode": mode,
                "num_prefill_gpus": s.gpus.prefill,
                "num_decode_gpus": s.gpus.decode,
                "num_colocated_gpus": s.gpus.colocated,
                "usd_per_hour": c.usd_per_hour,
                "usd_per_million_output_tokens": c.usd_per_million_output_tokens,
            }
        )
    return pd.DataFrame(rows)


def load_frame(run: RunData) -> pd.DataFrame:
    """Per plan point and design: ``mode``, ``rate_rps``, ``ttft_ms_p50/p90/p99``,
    ``tpot_ms_p50/p90/p99`` (from ``plan.json``'s summaries); empty with fewer than 2 loads."""
    rows = []
    for p in _points(run):
        rate = (p.get("trace") or {}).get("mean_rate")
        for mode, m in (p.get("modes") or {}).items():
            lat = ((m or {}).get("summary") or {}).get("latency_s") or {}
            row: dict[str, Any] = {"mode": mode, "rate_rps": rate}
            for metric in ("ttft", "tpot"):
                for q in (50, 90, 99):
                    v = lat.get(f"{metric}_s_p{q}")
                    row[f"{metric}_ms_p{q}"] = math.nan if v is None else float(v) * 1e3
            rows.append(row)
    df = pd.DataFrame(rows)
    return df if len(df) and df["rate_rps"].nunique() >= 2 else pd.DataFrame()


def goodput_frame(run: RunData) -> pd.DataFrame:
    """``goodput.csv`` with ``rate_rps`` (rate scale x the trace's own rate) and
    ``attrs['goodput_rps']``."""
    g = run.goodput.copy() if run.goodput is not None else pd.DataFrame()
    ref = reference_point(run)
    rate, scale = (ref.get("trace") or {}).get("mean_rate"), ref.get("rate_scale") or 1.0
    base = float(rate) / float(scale) if rate else math.nan
    g["rate_rps"] = g["rate_scale"].astype(float) * base
    gp = (run.goodput.attrs.get("goodput", {}) if run.goodput is not None else {}) or {}
    g.attrs["goodput_rps"] = {m: float(v) * base for m, v in gp.items() if v is not None}
    return g


def configurations(run: RunData) -> pd.DataFrame:
    """Every configuration with a full summary: ``mode``, ``tpot_ms_p90``,
    ``tok_s_per_gpu``, ``label`` (GPUs, and the load when a plan swept it)."""
    rows = []
    pts = _points(run)
    if pts:
        for p in pts:
            rate = (p.get("trace") or {}).get("mean_rate")
            for mode, m in (p.get("modes") or {}).items():
                s = (m or {}).get("summary") or {}
                tput = (s.get("throughput") or {}).get("output_tokens_per_s_per_gpu")
                tpot = (s.get("latency_s") or {}).get("tpot_s_p90")
                label = f"{(s.get('gpus') or {}).get('total')} GPUs"
                if len(pts) > 1 and rate is not None:
                    label += f", {float(rate):.3g} req/s"
                rows.append((mode, tpot, tput, label))
    else:
        for mode, s in run.summaries.items():
            rows.append(
                (
                    mode,
                    s.latency_s.tpot_s_p90,
                    s.throughput.output_tokens_per_s_per_gpu,
                    f"{s.gpus.total} GPUs",
                )
            )
    df = pd.DataFrame(rows, columns=["mode", "tpot_s", "tok_s_per_gpu", "label"]).dropna()
    df["tpot_ms_p90"] = df["tpot_s"].astype(float) * 1e3
    return df


def breakdown_frame(records: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Rows ``mode``, ``stage``, ``mean_ms``: each stage's mean over finished requests (a
    stage that did not happen, e.g. decode of a one-token request, counts as zero)."""
    rows = []
    cols = {c for _, a, b in P.STAGES for c in (a, b)}
    for mode, rec in records.items():
        if not len(rec) or not cols <= set(rec.columns):
            continue
        fin = rec[rec["status"] == "finished"]
        if not len(fin):
            continue
        for label, a, b in P.STAGES:
            d = (fin[b] - fin[a]).clip(lower=0).fillna(0.0)
            rows.append({"mode": mode, "stage": label, "mean_ms": float(d.mean()) * 1e3})
    return pd.DataFrame(rows)


def decode_time_frame(timelines: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Rows ``mode``, ``t_s``, ``mean_batch``, ``kv_pct``: the decode timeline averaged over
    each design's workers per time bin."""
    parts = []
    for mode, tl in timelines.items():
        if not len(tl) or not {"mean_batch", "kv_occupancy"} <= set(tl.columns):
            continue
        g = tl.groupby("t_s", as_index=False)[["mean_batch", "kv_occupancy"]].mean()
        parts.append(g.assign(mode=mode, kv_pct=g["kv_occupancy"] * 100))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def _long(frames: dict[str, pd.DataFrame], col: str) -> pd.DataFrame:
    parts = [
        pd.DataFrame({"mode": m, "value": f[col].to_numpy()})
        for m, f in frames.items()
        if len(f) and col in f
    ]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["mode", "value"])
