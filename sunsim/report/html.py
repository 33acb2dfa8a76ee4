"""Render a replay run or a plan directory as one self-contained HTML file and a Markdown summary.

``write_report(DIR)`` detects what ``DIR`` holds:

* a **replay run** (``sunsim replay``): ``summary.json`` and ``records_<mode>.parquet|csv``
  (plus the per-mode ``timeline_``, ``decode_workers_``, ``batch_time_``, ``kv_time_`` CSVs);
* a **plan** (``sunsim plan``): ``plan.json``, ``plan.csv``, optional ``sweep.csv`` and
  ``goodput.csv``, and ``replay_<mode>/`` (each mode's final simulation as a replay run).

It writes ``DIR/report.html`` (figures embedded as base64 PNG, no external resources),
``DIR/report.md`` (summary tables, provenance, the figures linked as
``report_figures/<name>.png``) and those PNG files. Every figure's title and caption say whether
the step times were ``measured`` or ``analytic``.

Figures (see :data:`REPLAY_FIGURES` and :data:`PLAN_FIGURES`): TTFT and TPOT CDFs per mode,
decode utilisation per worker over time (heatmap), batch-size and KV-occupancy distributions,
the per-model breakdown; for plans also the planned GPUs per mode, decode workers against load
(rate sweep), throughput per GPU against skew (Zipf sweep) and goodput (rate sweep) -- a figure
whose sweep was not run says so in its place.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from sunsim import __version__
from sunsim.errors import ConfigError
from sunsim.report import figures as F

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


@dataclass
class RunData:
    """What a report is made from (see :func:`load_run`).

    ``kind``: ``replay`` or ``plan``; ``summaries``: mode -> summary dict
    (:func:`sunsim.metrics.summarize`); ``records``/``timelines``/``batch_time``/``kv_time``:
    mode -> frame as written by :func:`sunsim.replay.write_run`; ``table``: the headline table
    (replay: metrics as rows, modes as columns; plan: ``plan.csv``); ``sweep``/``goodput``:
    frames or None; ``meta``: summary.json / plan.json contents; ``scenario_toml``: text.
    """

    path: Path
    kind: str
    summaries: dict[str, dict[str, Any]]
    records: dict[str, pd.DataFrame]
    timelines: dict[str, pd.DataFrame]
    batch_time: dict[str, pd.DataFrame]
    kv_time: dict[str, pd.DataFrame]
    table: pd.DataFrame
    meta: dict[str, Any]
    scenario_toml: str
    sweep: pd.DataFrame | None = None
    goodput: pd.DataFrame | None = None
    replay_meta: dict[str, Any] = field(default_factory=dict)

    @property
    def method(self) -> str:
        ms = sorted({s.get("method", "analytic") for s in self.summaries.values()})
        if self.kind == "plan" and not ms:
            ms = [self.meta.get("method", "analytic")]
        return ",".join(ms) if ms else "analytic"


def detect(d: Path) -> str:
    """``plan`` or ``replay``; raises :class:`ConfigError` if ``d`` is neither."""
    d = Path(d)
    if not d.is_dir():
        raise ConfigError(
            f"{d}: no such directory (give a `sunsim replay` or `sunsim plan` output directory)"
        )
    if (d / "plan.json").exists():
        return "plan"
    if (d / "summary.json").exists() and (
        list(d.glob("records_*.parquet")) or list(d.glob("records_*.csv"))
    ):
        return "replay"
    raise ConfigError(
        f"{d}: neither a replay run (summary.json + records_<mode>.*) nor a plan (plan.json)"
    )


def _read_records(d: Path, mode: str) -> pd.DataFrame:
    p = d / f"records_{mode}.parquet"
    if p.exists():
        return pd.read_parquet(p)
    p = d / f"records_{mode}.csv"
    if p.exists():
        return pd.read_csv(p)
    raise ConfigError(f"{d}: records_{mode}.parquet/.csv missing")


def _read_csv(p: Path) -> pd.DataFrame:
    return pd.read_csv(p) if p.exists() else pd.DataFrame()


def _load_replay(d: Path, data: dict[str, Any]) -> None:
    try:
        meta = json.loads((d / "summary.json").read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"{d / 'summary.json'}: cannot read: {e}") from None
    for mode, summ in meta.get("modes", {}).items():
        data["summaries"][mode] = summ
        data["records"][mode] = _read_records(d, mode)
        tl = _read_csv(d / f"timeline_{mode}.csv")
        dw = _read_csv(d / f"decode_workers_{mode}.csv")
        if len(tl) and len(dw) and "pool" in dw:
            tl = tl.merge(dw[["worker", "pool"]], on="worker", how="left")
        data["timelines"][mode] = tl
        data["batch_time"][mode] = _read_csv(d / f"batch_time_{mode}.csv")
        data["kv_time"][mode] = _read_csv(d / f"kv_time_{mode}.csv")
        data["replay_meta"][mode] = meta


def load_run(d: Path) -> RunData:
    """Read a replay run or plan directory (see module docstring).

    Raises :class:`ConfigError` when ``d`` is neither or its files are unreadable.
    """
    from sunsim.metrics import comparison_table

    d = Path(d)
    kind = detect(d)
    data: dict[str, Any] = {
        "summaries": {},
        "records": {},
        "timelines": {},
        "batch_time": {},
        "kv_time": {},
        "replay_meta": {},
    }
    toml = (d / "scenario.toml").read_text() if (d / "scenario.toml").exists() else ""
    if kind == "replay":
        _load_replay(d, data)
        meta = data["replay_meta"][next(iter(data["replay_meta"]))] if data["replay_meta"] else {}
        table = comparison_table(data["summaries"])
        return RunData(
            d,
            kind,
            data["summaries"],
            data["records"],
            data["timelines"],
            data["batch_time"],
            data["kv_time"],
            table,
            meta,
            toml,
            replay_meta=data["replay_meta"],
        )
    try:
        meta = json.loads((d / "plan.json").read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"{d / 'plan.json'}: cannot read: {e}") from None
    table = _read_csv(d / "plan.csv")
    order = list(table["mode"]) if "mode" in table else []
    dirs = sorted(
        d.glob("replay_*"),
        key=lambda p: (order.index(p.name[7:]) if p.name[7:] in order else len(order), p.name),
    )
    for rd in dirs:
        if (rd / "summary.json").exists():
            _load_replay(rd, data)
    if not data["summaries"]:
        # no replays written (--no-replays): summaries from plan.json's reference point
        ref = meta.get("points", [{}])[meta.get("reference_point", 0)]
        for mode, m in ref.get("modes", {}).items():
            data["summaries"][mode] = m.get("summary", {})
    sweep = _read_csv(d / "sweep.csv")
    goodput = _read_csv(d / "goodput.csv")
    if len(goodput):
        goodput.attrs["goodput"] = meta.get("goodput", {}).get("rate_scale", {})
    return RunData(
        d,
        kind,
        data["summaries"],
        data["records"],
        data["timelines"],
        data["batch_time"],
        data["kv_time"],
        table,
        meta,
        toml,
        sweep if len(sweep) else None,
        goodput if len(goodput) else None,
        data["replay_meta"],
    )


# --- figures -------------------------------------------------------------------------------


def _slo(run: RunData) -> tuple[float | None, float | None, float]:
    for s in run.summaries.values():
        slo = s.get("slo", {})
        return slo.get("ttft_s"), slo.get("tpot_s"), slo.get("target", 0.9)
    slo = run.meta.get("slo", {})
    return slo.get("ttft_s"), slo.get("tpot_s"), slo.get("attainment", 0.9)


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


def per_model_frame(
    summaries: dict[str, dict[str, Any]], models: list[str] | None = None
) -> pd.DataFrame:
    """Rows ``mode``, ``model``, ``num_requests``, ``num_finished``, ``slo_attainment``,
    ``ttft_s_p50``, ``ttft_s_p90``, ``tpot_s_p50``, ``tpot_s_p90`` from summaries (models in
    ``models`` order when given)."""
    rows = []
    for mode, s in summaries.items():
        pm = s.get("per_model", {})
        names = [m for m in (models or []) if m in pm] + [m for m in pm if m not in (models or [])]
        for model in names:
            d = pm[model]
            rows.append(
                {
                    "mode": mode,
                    "model": model,
                    "num_requests": d.get("num_requests"),
                    "num_finished": d.get("num_finished"),
                    "slo_attainment": d.get("slo_attainment"),
                    "ttft_s_p50": d.get("ttft_s_p50"),
                    "ttft_s_p90": d.get("ttft_s_p90"),
                    "tpot_s_p50": d.get("tpot_s_p50"),
                    "tpot_s_p90": d.get("tpot_s_p90"),
                }
            )
    return pd.DataFrame(rows)


def build_figures(run: RunData) -> list[tuple[str, str, Any]]:
    """The report's figures: ``(name, caption, Figure)`` in :data:`PLAN_FIGURES` or
    :data:`REPLAY_FIGURES` order."""
    method = run.method
    ttft, tpot, target = _slo(run)
    names = PLAN_FIGURES if run.kind == "plan" else REPLAY_FIGURES
    out = []
    for name, caption in names:
        fig = _figure(run, name, method, ttft, tpot, target)
        out.append((name, f"{caption} ({method} step times).", fig))
    return out


def _figure(run: RunData, name: str, method: str, ttft, tpot, target):
    sweep_key = (
        run.meta.get("options", {}).get("sweep", {}).get("key") if run.kind == "plan" else None
    )
    if name == "plan_gpus":
        return F.plan_gpus(run.table, method)
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
            return F.goodput_curve(run.goodput, method, target)
        return F.no_data(
            "Goodput at fixed workers",
            "goodput comes with a rate sweep: `sunsim plan ... --sweep rate=...`",
            method,
        )
    if not run.records and name in (
        "ttft_cdf",
        "tpot_cdf",
        "decode_utilisation",
        "batch_size",
        "kv_occupancy",
    ):
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
        return F.utilisation_heatmap(run.timelines, method)
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
        return F.per_model_breakdown(per_model_frame(run.summaries, _models(run)), method)
    raise ValueError(name)  # pragma: no cover


def _models(run: RunData) -> list[str]:
    """Served models in their configured order (from the model counts)."""
    m = run.meta
    if run.kind == "plan" and m.get("points"):
        return list(m["points"][m.get("reference_point", 0)].get("model_counts", {}))
    return list(m.get("model_counts", {}))


# --- provenance --------------------------------------------------------------------------


def provenance(run: RunData) -> list[tuple[str, str]]:
    """(label, value) rows: kind, directory, sunsim version (of the run and of the report),
    command, created, seed, trace (path, format, requests, span, rate, CV), labelling, model
    counts, latency sources, method."""
    m = run.meta
    if run.kind == "plan":
        ref = m.get("points", [{}])[m.get("reference_point", 0)] if m.get("points") else {}
        trace = ref.get("trace", {})
        labelling = ref.get("labelling", "")
        counts = ref.get("model_counts", {})
    else:
        trace = m.get("trace", {})
        labelling = m.get("labelling", "")
        counts = m.get("model_counts", {})
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
        ("model labelling", labelling),
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
    notes = m.get("latency_sources") or []
    for n in notes:
        rows.append(("latency source", n))
    if run.kind == "plan":
        slo = m.get("slo", {})
        rows.append(
            (
                "SLO",
                f"TTFT <= {slo.get('ttft_s')} s, TPOT <= {slo.get('tpot_s')} s, "
                f"{slo.get('kind')} >= {slo.get('attainment')} per model; prefill "
                f"sized for TTFT-only attainment {slo.get('prefill_target')}",
            )
        )
        st = m.get("stats", {})
        rows.append(
            (
                "planner",
                f"{st.get('simulations')} simulations ({st.get('cached')} cached), "
                f"{_num(st.get('wall_s'))} s wall with {st.get('jobs')} processes",
            )
        )
    return rows


def _num(x: Any, digits: int = 1) -> str:
    try:
        return f"{float(x):,.{digits}f}"
    except (TypeError, ValueError):
        return "?"


# --- writers ---------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;
max-width:1100px;color:#222;line-height:1.4;padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;font-size:.85em;margin:.6em 0}
th,td{border:1px solid #ccc;padding:.25em .55em;text-align:right;vertical-align:top}
th{background:#f3f3f3}td.l,th.l{text-align:left}
figure{margin:1.2em 0;text-align:center}figure img{max-width:100%;border:1px solid #eee}
figcaption{font-size:.85em;color:#555;margin-top:.3em}
.badge{display:inline-block;padding:.1em .5em;border-radius:.4em;font-size:.85em;color:#fff;
background:#b36b00}.badge.measured{background:#2a7d2a}
pre{background:#f7f7f7;padding:.8em;overflow-x:auto;font-size:.8em;text-align:left}
.note{color:#555;font-size:.9em}.tw{overflow-x:auto}
"""


def _html_table(df: pd.DataFrame, index: bool = True) -> str:
    cols = list(df.columns)
    head = ("<th class='l'></th>" if index else "") + "".join(
        f"<th>{html.escape(str(c))}</th>" for c in cols
    )
    body = []
    for idx, row in df.iterrows():
        cells = (f"<th class='l'>{html.escape(str(idx))}</th>" if index else "") + "".join(
            f"<td>{html.escape(_fmt(v))}</td>" for v in row.tolist()
        )
        body.append(f"<tr>{cells}</tr>")
    return (
        f"<div class='tw'><table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}"
        "</tbody></table></div>"
    )


def _md_table(df: pd.DataFrame, index: bool = True) -> str:
    cols = ([""] if index else []) + [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for idx, row in df.iterrows():
        vals = ([str(idx)] if index else []) + [_fmt(v) for v in row.tolist()]
        lines.append("| " + " | ".join(v.replace("|", "\\|") for v in vals) + " |")
    return "\n".join(lines)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if v != v:
            return ""
        if abs(v) >= 100:
            return f"{v:,.1f}"
        return f"{v:.4g}"
    return str(v)


def headline_table(run: RunData) -> pd.DataFrame:
    """The report's summary table: replay: metrics x modes (as ``sunsim replay`` prints);
    plan: modes x (workers, GPUs, attainment, throughput per GPU, p90s, saving)."""
    if run.kind == "replay":
        return run.table
    t = run.table
    if t.empty:
        return t
    labels = {
        "decode_workers": "decode workers (per pool)",
        "prefill_workers": "prefill workers (per model)",
        "num_gpus": "GPUs (all)",
        "slo_attainment": "SLO attainment",
        "ttft_s_p90": "TTFT p90 (s)",
        "tpot_s_p50": "TPOT p50 (s)",
        "tpot_s_p90": "TPOT p90 (s)",
        "throughput_per_gpu": "throughput per GPU (tok/s, measured window)",
        "load_tok_s_per_gpu": "trace load per GPU (tok/s)",
        "gpus_saved_vs_partitioned": "GPUs saved vs partitioned",
        "saving_pct_vs_partitioned": "saving vs partitioned (%)",
        "throughput_per_gpu_vs_partitioned": "throughput per GPU / partitioned's",
        "tpot_p50_vs_partitioned_pct": "TPOT p50 vs partitioned (%)",
        "method": "step times",
    }
    keep = [
        c
        for c in (
            "decode_workers",
            "prefill_workers",
            "num_gpus",
            "slo_attainment",
            "ttft_s_p90",
            "tpot_s_p50",
            "tpot_s_p90",
            "throughput_per_gpu",
            "load_tok_s_per_gpu",
            "gpus_saved_vs_partitioned",
            "saving_pct_vs_partitioned",
            "throughput_per_gpu_vs_partitioned",
            "tpot_p50_vs_partitioned_pct",
            "method",
        )
        if c in t.columns
    ]
    return t.set_index("mode")[keep].rename(columns=labels).T


def write_report(d: Path, command: str | None = None) -> dict[str, Any]:
    """Write ``report.html``, ``report.md`` and ``report_figures/*.png`` into ``d``.

    Returns ``{"html": Path, "markdown": Path, "figures": [Path, ...], "kind": str,
    "method": str}``. Raises :class:`ConfigError` when ``d`` is not a run or plan directory.
    """
    d = Path(d)
    run = load_run(d)
    figs = build_figures(run)
    fig_dir = d / "report_figures"
    fig_dir.mkdir(exist_ok=True)
    pngs: list[tuple[str, str, bytes, Path]] = []
    for name, caption, fig in figs:
        data = F.to_png(fig)
        p = fig_dir / f"{name}.png"
        p.write_bytes(data)
        pngs.append((name, caption, data, p))
    F.close(f for _, _, f in figs)
    method = run.method
    title = "sunsim plan report" if run.kind == "plan" else "sunsim replay report"
    head = headline_table(run)
    pm = per_model_frame(run.summaries, _models(run))
    if len(pm):
        for c in ("num_requests", "num_finished"):
            pm[c] = pm[c].astype("Int64")
    pm_t = pm
    prov = provenance(run)
    sweep_html = sweep_md = ""
    if run.sweep is not None:
        key = str(run.sweep["sweep_key"].iloc[0]) if "sweep_key" in run.sweep else "value"
        short = {
            "sweep_value": key,
            "mode": "mode",
            "decode_workers": "decode workers",
            "prefill_workers": "prefill workers",
            "num_gpus": "GPUs",
            "slo_attainment": "attainment",
            "tpot_s_p90": "TPOT p90 (s)",
            "throughput_per_gpu": "tok/s per GPU",
            "throughput_per_gpu_vs_partitioned": "x partitioned",
        }
        cols = [c for c in short if c in run.sweep.columns]
        sw = run.sweep[cols].rename(columns=short)
        sweep_html = f"<h2>Sweep over {html.escape(key)}</h2>" + _html_table(sw, index=False)
        sweep_md = f"\n## Sweep over {key}\n\n" + _md_table(sw, index=False) + "\n"
    gp = run.meta.get("goodput", {}).get("rate_scale") if run.kind == "plan" else None
    gp_html = gp_md = ""
    if gp:
        line = ", ".join(f"{m}: x{v:.3g}" for m, v in gp.items())
        w = run.meta.get("goodput", {}).get("workers", {})
        wl = "; ".join(
            f"{m} prefill {','.join(map(str, x['prefill']))} + decode "
            f"{','.join(map(str, x['decode']))}"
            for m, x in w.items()
        )
        gp_html = (
            f"<p><b>Goodput</b> (highest rate scale meeting the SLO at the scenario's own "
            f"workers: {html.escape(wl)}): {html.escape(line)}</p>"
        )
        gp_md = f"\n**Goodput** (highest rate scale meeting the SLO at fixed workers): {line}\n"
    notes = ""
    if run.kind == "replay":
        from sunsim.metrics import sun_vs_partitioned

        notes = " ".join(sun_vs_partitioned(run.summaries))
    badge = "measured" if method == "measured" else ""
    created = _dt.datetime.now().isoformat(timespec="seconds")
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}: {html.escape(d.name)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}: {html.escape(d.name)}</h1>",
        f"<p><span class='badge {badge}'>{html.escape(method)} step times</span> "
        f"<span class='note'>modes: {html.escape(', '.join(run.summaries) or '-')}; "
        f"rendered {created} by sunsim {__version__}</span></p>",
    ]
    if "analytic" in method:
        parts.append(
            "<p class='note'>Step times come from the analytic roofline model "
            "(max of FLOPs / achieved FLOP/s and bytes / achieved bandwidth), not from "
            "a measured profile: absolute latencies are estimates.</p>"
        )
    parts += ["<h2>Summary</h2>", _html_table(head)]
    if notes:
        parts.append(f"<p>{html.escape(notes)}</p>")
    parts += [gp_html, sweep_html]
    if len(pm):
        parts += ["<h2>Per model</h2>", _html_table(pm_t, index=False)]
    parts.append("<h2>Figures</h2>")
    for name, caption, data, _ in pngs:
        b64 = base64.b64encode(data).decode("ascii")
        parts.append(
            f"<figure id='fig-{name}'><img src=\"data:image/png;base64,{b64}\" "
            f'alt="{html.escape(name)}"/><figcaption>{html.escape(caption)}'
            f"</figcaption></figure>"
        )
    parts.append("<h2 id='provenance'>Provenance</h2><table>")
    for k, v in prov:
        parts.append(
            f"<tr><th class='l'>{html.escape(k)}</th><td class='l'>{html.escape(v)}</td></tr>"
        )
    parts.append("</table>")
    if run.scenario_toml:
        parts.append(f"<h3>scenario.toml</h3><pre>{html.escape(run.scenario_toml)}</pre>")
    if command:
        parts.append(f"<p class='note'>report command: <code>{html.escape(command)}</code></p>")
    parts.append("</body></html>")
    html_path = d / "report.html"
    html_path.write_text("\n".join(parts), encoding="utf-8")

    md = [
        f"# {title}: {d.name}",
        "",
        f"Step times: **{method}**"
        + (" (analytic roofline model, not a measurement)" if "analytic" in method else "")
        + ".",
        "",
        "## Summary",
        "",
        _md_table(head),
        "",
    ]
    if notes:
        md += [notes, ""]
    md.append(gp_md + sweep_md)
    if len(pm):
        md += ["## Per model", "", _md_table(pm_t, index=False), ""]
    md += ["## Figures", ""]
    for name, caption, _, p in pngs:
        md += [f"![{name}]({fig_dir.name}/{p.name})", "", f"*{caption}*", ""]
    md += ["## Provenance", "", "| | |", "|---|---|"]
    md += [f"| {k} | {v.replace('|', '/')} |" for k, v in prov]
    if run.scenario_toml:
        md += ["", "```toml", run.scenario_toml.rstrip(), "```"]
    if command:
        md += ["", f"Report made with `{command}`."]
    md_path = d / "report.md"
    md_path.write_text("\n".join(md) + "\n", encoding="utf-8")
    return {
        "html": html_path,
        "markdown": md_path,
        "figures": [p for *_, p in pngs],
        "kind": run.kind,
        "method": method,
    }
