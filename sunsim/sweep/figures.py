"""Figures of a plan sweep: planned GPUs per design against each axis of the grid (load, skew,
SLO bound, number of models), written beside ``sweep.md`` as SVG with a PNG fallback.

For an axis, each design's line is the median over the grid's other axes of the GPUs planned
at each value of that axis (one value per other-axes combination; the median keeps the line a
plain "GPUs against this axis" when the grid has only that axis). Points that failed are left
out; an axis with fewer than two values, or a sweep that is not a plan sweep, draws nothing.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from sunsim.sweep.run import SweepResult

#: Axis labels by scenario key (section, key), for the x axis.
AXIS_LABELS = {
    ("trace", "request_rate"): "offered load (requests/s)",
    ("trace", "rate_scale"): "load (x the trace's rate)",
    ("models", "zipf"): "skew (Zipf alpha of model popularity)",
    ("models", "num_models"): "number of served models",
    ("slo", "tpot_s"): "TPOT SLO (s)",
    ("slo", "ttft_s"): "TTFT SLO (s)",
}


def gpus_by_axis(r: SweepResult) -> dict[str, pd.DataFrame]:
    """Axis name -> a frame indexed by the axis values, one column per design: the median
    planned GPUs (``num_gpus``) over the other axes. Plan sweeps only; axes with at least two
    values; empty without plan results."""
    t = r.table
    if r.grid.kind != "plan" or "num_gpus" not in t.columns or "mode" not in t.columns:
        return {}
    if "error" in t.columns:
        t = t[t["error"].isna()]
    out = {}
    for a in r.grid.axes:
        if a.name not in t.columns or t[a.name].nunique() < 2:
            continue
        df = t.groupby([a.name, "mode"], sort=True)["num_gpus"].median().unstack("mode")
        out[a.name] = df
    return out


def write_figures(r: SweepResult, out: Path) -> list[Path]:
    """Write ``gpus_vs_<axis>.svg`` and ``.png`` into ``out`` for each axis of
    :func:`gpus_by_axis`; returns the SVG paths (none when there is nothing to draw)."""
    frames = gpus_by_axis(r)
    if not frames:
        return []
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from sunsim.report.figures import mode_color

    methods = sorted(set(r.table["method"].dropna().astype(str))) if "method" in r.table else []
    steps = "; ".join(m.split(" (")[0] for m in methods) or "unknown"
    labels = {a.name: AXIS_LABELS.get((a.section, a.key), a.name) for a in r.grid.axes}
    paths = []
    for name, df in frames.items():
        fig = Figure(figsize=(6.5, 4.0), layout="constrained")
        ax = fig.add_subplot()
        for i, mode in enumerate(df.columns):
            s = df[mode].dropna()
            ax.plot(s.index, s.to_numpy(), "o-", color=mode_color(str(mode), i), label=mode)
        ax.set_xlabel(labels[name])
        ax.set_ylabel("GPUs at the planned size (median)")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        ax.set_title(f"Planned GPUs against {name} ({steps} step times)", fontsize=10)
        svg = Path(out) / f"gpus_vs_{name}.svg"
        fig.savefig(svg)
        fig.savefig(svg.with_suffix(".png"), dpi=110)
        paths.append(svg)
    return paths
