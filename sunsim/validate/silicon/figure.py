"""The figure of ``sunsim validate silicon``: simulated against measured mean TTFT and mean
TPOT, one point per simulated row, one colour per (GPU, backend, model) class, on log axes,
with y = x and the issue's error targets (TTFT +-15%, TPOT +-10%) shaded around it. Built on
a :class:`matplotlib.figure.Figure` directly (no pyplot state), like :mod:`sunsim.report.
figures`."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from sunsim.report.figures import log_axes
from sunsim.validate.silicon.summary import GROUP, error_table

#: The shaded band around y = x per metric: the median |error| the validation aims at.
TARGETS = {"ttft": 0.15, "tpot": 0.10}
_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf"]  # fmt: skip
_MARKERS = ["o", "^", "s", "v", "D", "P", "X", "<", ">", "*"]


def _label(key: tuple[str, ...]) -> str:
    system, backend, model = key
    return f"{system.removesuffix('_sxm')} {backend} {str(model).rsplit('/', 1)[-1]}"


def steps_label(res: pd.DataFrame) -> str:
    """Where the simulated rows' step times came from, in one line, from their ``method``
    column: the measured kernel sets (``measured (aiconfigurator-core 0.12.0: sglang 0.5.14,
    trtllm 1.3.0rc20 kernels)``), ``analytic`` if any row used a roofline, and the fitted
    terms on top (engine overhead, decode scale, request latency)."""
    ok = res[res["status"] == "ok"]
    methods = " ; ".join(ok["method"].dropna().astype(str))
    found = sorted(set(re.findall(r"measured \(([^,()]+), ([^,()]+)", methods)))
    parts = []
    for pkg in sorted({p for p, _ in found}):
        kernels = ", ".join(sorted({k for p, k in found if p == pkg}))
        parts.append(f"measured ({pkg}: {kernels} kernels)")
    if "analytic" in methods:
        parts.append("analytic (roofline)")
    fitted = [
        name
        for name, there in (
            ("engine overhead", "engine overhead (fitted)" in methods),
            ("decode scale", "(fitted)" in methods and "decode x" in methods),
            ("request latency", bool((ok.get("request_latency_ms", pd.Series()) > 0).any())),
        )
        if there
    ]
    if fitted:
        parts.append(f"+ {', '.join(fitted)} fitted on the fit set")
    return " ".join(parts) or "unknown"


def figure(res: pd.DataFrame, source: str, steps: str) -> Figure:
    """Two scatters (TTFT, TPOT, ms) of a :func:`~.run.validate_silicon` result's ``ok``
    rows (columns ``silicon_{ttft,tpot}_ms``, ``sim_{ttft,tpot}_ms`` and :data:`~.summary.
    GROUP`); each panel's title gives the median and p90 |error| over all of them. ``source``
    names the measured file, ``steps`` where the step times came from (the title says both).

    Raises:
        ValueError: no simulated row to plot.
    """
    ok = res[res["status"] == "ok"]
    if not len(ok):
        raise ValueError("no simulated row to plot")
    total = error_table(res).iloc[-1]
    fig = Figure(figsize=(13, 5.6))
    axes = fig.subplots(1, 2)
    classes = list(ok.groupby(list(GROUP), sort=True))
    for ax, what in zip(axes, ("ttft", "tpot"), strict=True):
        x_all, y_all = ok[f"silicon_{what}_ms"], ok[f"sim_{what}_ms"]
        lo = float(min(x_all.min(), y_all.min())) * 0.8
        hi = float(max(x_all.max(), y_all.max())) * 1.25
        band = TARGETS[what]
        ax.fill_between([lo, hi], [lo * (1 - band), hi * (1 - band)],
                        [lo * (1 + band), hi * (1 + band)], color="0.9",
                        label=f"within {band:.0%}")  # fmt: skip
        ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="y = x")
        for i, (key, g) in enumerate(classes):
            ax.scatter(g[f"silicon_{what}_ms"], g[f"sim_{what}_ms"], s=14, alpha=0.75,
                       color=_COLORS[i % len(_COLORS)], marker=_MARKERS[i % len(_MARKERS)],
                       label=f"{_label(key)} ({len(g)})")  # fmt: skip
        log_axes(ax, (1.0,) if hi / lo > 1000 else (1.0, 2.0, 5.0))  # labels that fit
        ax.set_aspect("equal")
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        name = what.upper()
        ax.set_xlabel(f"measured mean {name} (ms)")
        ax.set_ylabel(f"simulated mean {name} (ms)")
        ax.set_title(
            f"{name}: |err| median {total[f'{what}_median_abs']:.1%}, "
            f"p90 {total[f'{what}_p90_abs']:.1%} ({len(ok)} rows)",
            fontsize=10,
        )
    for ax in axes:  # TTFT: the band and y = x; TPOT: those and the classes
        handles, labels = ax.get_legend_handles_labels()
        n = len(handles) if ax is axes[1] else 2
        ax.legend(handles[:n], labels[:n], loc="upper left", fontsize=7, markerscale=1.2)
    fig.suptitle(f"sunsim validate silicon: {source}\nstep times: {steps}", fontsize=10)
    fig.tight_layout()
    return fig


def write_figure(res: pd.DataFrame, path: Path, source: str, steps: str) -> Path:
    """:func:`figure` saved as a PNG at ``path`` (120 dpi); returns ``path``."""
    fig = figure(res, source, steps)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    return path
