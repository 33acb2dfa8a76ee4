"""The report's tables, as DataFrames or (label, value) rows, from a
:class:`~sunsim.runs.RunData`: the headline table, the per-model table, the sweep table, the
goodput line and the provenance. Rendering them is :mod:`sunsim.report.html` and
:mod:`sunsim.report.markdown`'s job."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from sunsim import __version__
from sunsim.metrics import RunSummary, comparison_table
from sunsim.runs import RunData


def _obj(x: Any) -> dict[str, Any]:
    """``x`` if it is a dict, else ``{}`` (the run's files were validated; this guards
    optional keys)."""
    return x if isinstance(x, dict) else {}


def reference_point(run: RunData) -> dict[str, Any]:
    """A plan's reference point in ``plan.json`` (``{}`` for replays or no points)."""
    pts = run.meta.get("points") or []
    i = run.meta.get("reference_point", 0)
    if run.kind != "plan" or not pts or not isinstance(i, int) or not 0 <= i < len(pts):
        return {}
    return _obj(pts[i])


def slo_bounds(run: RunData) -> tuple[float | None, float | None, float]:
    """The SLO's TTFT and TPOT bounds (seconds) and its attainment target."""
    for s in run.summaries.values():
        return s.slo.ttft_s, s.slo.tpot_s, s.slo.target
    slo = _obj(run.meta.get("slo"))
    return slo.get("ttft_s"), slo.get("tpot_s"), slo.get("attainment", 0.9)


def models_order(run: RunData) -> list[str]:
    """Served models in their configured order (from the model counts)."""
    counts = reference_point(run).get("model_counts") if run.kind == "plan" else None
    return list(_obj(counts if counts is not None else run.meta.get("model_counts")))


def per_model_frame(
    summaries: Mapping[str, RunSummary], models: list[str] | None = None
) -> pd.DataFrame:
    """Rows ``mode``, ``model``, ``num_requests``, ``num_finished``, ``slo_attainment``,
    ``ttft_s_p50``, ``ttft_s_p90``, ``tpot_s_p50``, ``tpot_s_p90`` (seconds) from summaries
    (models in ``models`` order when given, then the others)."""
    rows = []
    for mode, s in summaries.items():
        pm = s.per_model
        names = [m for m in (models or []) if m in pm] + [m for m in pm if m not in (models or [])]
        for model in names:
            d = pm[model]
            rows.append(
                {
                    "mode": mode,
                    "model": model,
                    "num_requests": d.num_requests,
                    "num_finished": d.num_finished,
                    "slo_attainment": d.slo_attainment,
                    "ttft_s_p50": d.ttft_s_p50,
                    "ttft_s_p90": d.ttft_s_p90,
                    "tpot_s_p50": d.tpot_s_p50,
                    "tpot_s_p90": d.tpot_s_p90,
                }
            )
    return pd.DataFrame(rows)


_PLAN_LABELS = {
    "decode_workers": "decode workers (per pool)",
    "prefill_workers": "prefill workers (per model)",
    "colocated_workers": "co-located workers (per model)",
    "num_gpus": "GPUs (all)",
    "slo_attainment": "SLO attainment (%)",
    "ttft_s_p90": "TTFT p90 (ms)",
    "tpot_s_p50": "TPOT p50 (ms)",
    "tpot_s_p90": "TPOT p90 (ms)",
    "throughput_per_gpu": "throughput per GPU (tok/s, measured window)",
    "load_tok_s_per_gpu": "trace load per GPU (tok/s)",
    "gpus_saved_vs_partitioned": "GPUs saved vs partitioned",
    "saving_pct_vs_partitioned": "saving vs partitioned (%)",
    "throughput_per_gpu_vs_partitioned": "throughput per GPU / partitioned's",
    "tpot_p50_vs_partitioned_pct": "TPOT p50 vs partitioned (%)",
    "method": "step times",
}

_SWEEP_LABELS = {
    "mode": "mode",
    "decode_workers": "decode workers",
    "prefill_workers": "prefill workers",
    "colocated_workers": "co-located workers",
    "num_gpus": "GPUs",
    "slo_attainment": "attainment (%)",
    "tpot_s_p90": "TPOT p90 (ms)",
    "throughput_per_gpu": "tok/s per GPU",
    "throughput_per_gpu_vs_partitioned": "x partitioned",
}


def headline_table(run: RunData) -> pd.DataFrame:
    """The report's summary table: replay: metrics x modes (as ``sunsim replay`` prints);
    plan: (workers, GPUs, attainment, throughput per GPU, p90s, saving) x modes."""
    if run.kind == "replay":
        t = comparison_table(run.summaries)
        for key, label in (("ttft_s", "TTFT p50 / p90 / p99 (s)"), ("e2e_s", "E2E p50 / p99 (s)")):
            if label in t.index:
                qs = (50, 90, 99) if key == "ttft_s" else (50, 99)
                t.loc[label] = [
                    " / ".join(f"{getattr(s.latency_s, f'{key}_p{q}') * 1e3:.3g}" for q in qs)
                    for s in run.summaries.values()
                ]
                t = t.rename(index={label: label.replace("(s)", "(ms)")})
        return t
    t = run.plan_table
    if t is None or t.empty:
        return pd.DataFrame()
    keep = [c for c in _PLAN_LABELS if c in t.columns]
    return _in_ms(t).set_index("mode")[keep].rename(columns=_PLAN_LABELS).T


def _in_ms(t: pd.DataFrame) -> pd.DataFrame:
    """``t`` with ``*_s_p*`` latencies in ms and ``slo_attainment`` in % (for display)."""
    t = t.copy()
    for c in t.columns:
        if c.startswith(("ttft_s_p", "tpot_s_p", "e2e_s_p")):
            t[c] = t[c].astype(float) * 1e3
    if "slo_attainment" in t:
        t["slo_attainment"] = t["slo_attainment"].astype(float) * 100
    return t


def per_model_display(pm: pd.DataFrame) -> pd.DataFrame:
    """:func:`per_model_frame` for people: attainment in %, latencies in ms, short names."""
    if pm.empty:
        return pm
    return _in_ms(pm).rename(
        columns={
            "mode": "design",
            "num_requests": "requests",
            "num_finished": "finished",
            "slo_attainment": "SLO attainment (%)",
            "ttft_s_p50": "TTFT p50 (ms)",
            "ttft_s_p90": "TTFT p90 (ms)",
            "tpot_s_p50": "TPOT p50 (ms)",
            "tpot_s_p90": "TPOT p90 (ms)",
        }
    )


def sweep_table(run: RunData) -> tuple[str, pd.DataFrame] | None:
    """The swept key and the sweep's rows (value, mode, workers, GPUs, attainment, ...), or
    None without a sweep."""
    if run.sweep is None:
        return None
    sw = run.sweep
    key = str(sw["sweep_key"].iloc[0]) if "sweep_key" in sw else "value"
    labels = {"sweep_value": key, **_SWEEP_LABELS}
    cols = [c for c in labels if c in sw.columns]
    return key, _in_ms(sw[cols]).rename(columns=labels)


def goodput_text(run: RunData) -> tuple[str, str] | None:
    """(the goodput per mode, the worker counts it was measured at), or None."""
    gp = _obj(run.meta.get("goodput")) if run.kind == "plan" else {}
    rates = _obj(gp.get("rate_scale"))
    if not rates:
        return None
    rps = _obj(gp.get("request_rate"))
    line = ", ".join(
        f"{m}: {float(rps[m]):.3g} req/s (x{float(v):.3g})"
        if isinstance(rps.get(m), (int, float))
        else f"{m}: x{float(v):.3g}"
        for m, v in rates.items()
    )
    workers = "; ".join(
        f"{m} co-located {','.join(map(str, x['colocated']))}"
        if x.get("colocated")
        else f"{m} prefill {','.join(map(str, x.get('prefill', [])))} + decode "
        f"{','.join(map(str, x.get('decode', [])))}"
        for m, x in _obj(gp.get("workers")).items()
        if isinstance(x, dict)
    )
    return line, workers


def provenance(run: RunData) -> list[tuple[str, str]]:
    """(label, value) rows: kind, directory, sunsim version (of the run and of the report),
    command, created, seed, trace (path, format, requests, span, rate, CV), labelling, model
    counts, latency sources, method; plans add the SLO and the planner's figures."""
    m = run.meta
    src = reference_point(run) if run.kind == "plan" else m
    trace = _obj(src.get("trace"))
    counts = _obj(src.get("model_counts"))
    seed = m.get("seed")
    if seed is None:
        for line in run.scenario_toml.splitlines():
            if line.strip().startswith("seed"):
                seed = line.split("=", 1)[1].strip()
    rows = [
        ("kind", f"{run.kind} ({'sunsim plan' if run.kind == 'plan' else 'sunsim replay'})"),
        ("directory", str(run.path)),
        ("sunsim version", f"{m.get('sunsim_version', '?')} (report by {__version__})"),
        ("command", str(m.get("command") or "")),
        ("created", str(m.get("created") or "")),
        ("seed", str(seed)),
        ("trace", f"{trace.get('path', '?')} ({trace.get('format', '?')})"),
        (
            "trace facts",
            (
                f"{trace.get('num_requests', '?')} requests over "
                f"{_num(trace.get('span_s'))} s, {_num(trace.get('mean_rate'), 3)} req/s, "
                f"inter-arrival CV {_num(trace.get('interarrival_cv'))}"
            ),
        ),
        ("model labelling", str(src.get("labelling") or "")),
        ("requests per model", ", ".join(f"{k} {v}" for k, v in counts.items())),
        (
            "step times",
            run.method
            + (
                " (roofline: an analytic model, not a measurement)"
                if "analytic" in run.method
                else " (fitted to a measured profile)"
            ),
        ),
    ]
    rows += [("latency source", str(n)) for n in (m.get("latency_sources") or [])]
    if run.kind == "plan":
        rows += _plan_provenance(m)
    return rows


def _plan_provenance(m: dict[str, Any]) -> list[tuple[str, str]]:
    slo, st = _obj(m.get("slo")), _obj(m.get("stats"))
    return [
        (
            "SLO",
            f"TTFT <= {slo.get('ttft_s')} s, TPOT <= {slo.get('tpot_s')} s, "
            f"{slo.get('kind')} >= {slo.get('attainment')} per model; prefill "
            f"sized for TTFT-only attainment {slo.get('prefill_target')}",
        ),
        (
            "planner",
            f"{st.get('simulations')} simulations ({st.get('cached')} cached), "
            f"{_num(st.get('wall_s'))} s wall with {st.get('jobs')} processes",
        ),
    ]


def _num(x: Any, digits: int = 1) -> str:
    try:
        return f"{float(x):,.{digits}f}"
    except (TypeError, ValueError):
        return "?"


def fmt(v: Any) -> str:
    """A table cell: floats with 4 significant digits (thousands separators from 100 up),
    NaN empty."""
    if isinstance(v, float):
        if v != v:
            return ""
        if abs(v) >= 100:
            return f"{v:,.1f}"
        return f"{v:.4g}"
    return str(v)
