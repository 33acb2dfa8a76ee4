"""Report figures: a DataFrame in, a :class:`matplotlib.figure.Figure` out.

Figures are built with :class:`matplotlib.figure.Figure` directly (no pyplot state, Agg canvas
when saved), so they are safe in any process. Every function takes ``method`` (``measured`` or
``analytic``) and says in the title which step times the simulation used.

Columns each function expects are in its docstring; times are seconds unless a name says ms.
"""

from __future__ import annotations

import io
from collections.abc import Iterable

import matplotlib

matplotlib.use("Agg", force=False)

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

#: One colour per mode, the same in every figure.
MODE_COLORS = {"partitioned": "#1f77b4", "sun": "#d62728", "qsun": "#2ca02c"}
#: One line style per mode, so that identical curves (e.g. TTFT, which prefill alone sets)
#: stay visible on top of each other.
MODE_STYLES = {"partitioned": "-", "sun": "--", "qsun": ":"}
MODE_MARKERS = {"partitioned": "o", "sun": "^", "qsun": "v"}
_FALLBACK = ["#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]


def mode_color(mode: str, i: int = 0) -> str:
    return MODE_COLORS.get(mode, _FALLBACK[i % len(_FALLBACK)])


def _steps(method: str) -> str:
    return f"{method} step times"


def _fig(w: float = 7.5, h: float = 4.2) -> Figure:
    return Figure(figsize=(w, h), dpi=100, layout="constrained")


def log_axes(ax: object, subs: tuple[float, ...] = (1.0, 2.0, 5.0)) -> None:
    """Log x and y axes on ``ax`` (a matplotlib Axes) ticked at ``subs`` per decade (1, 2
    and 5), with plain numbers (``0.5``, ``20``, ``1000``), not powers of ten."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_xscale("log")  # type: ignore[attr-defined]
    ax.set_yscale("log")  # type: ignore[attr-defined]
    for axis in (ax.xaxis, ax.yaxis):  # type: ignore[attr-defined]
        axis.set_major_locator(LogLocator(subs=subs))
        axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
        axis.set_minor_formatter(NullFormatter())


def to_png(fig: Figure, dpi: int = 100) -> bytes:
    """PNG bytes of ``fig``."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def to_svg(fig: Figure) -> bytes:
    """SVG bytes of ``fig`` (text as paths, so it looks the same without the fonts)."""
    buf = io.BytesIO()
    with matplotlib.rc_context({"svg.fonttype": "path", "svg.hashsalt": "sunsim"}):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    return buf.getvalue()


def latency_cdf(df: pd.DataFrame, metric: str, method: str, slo_s: float | None = None) -> Figure:
    """Empirical CDF of one latency per mode.

    ``df``: columns ``mode``, ``value`` (seconds; NaN dropped). ``metric``: ``TTFT`` or
    ``TPOT`` (label). ``slo_s`` draws the bound as a dashed line. Drawn in milliseconds.
    """
    fig = _fig()
    ax = fig.add_subplot()
    scale, unit = 1e3, "ms"
    for i, (mode, g) in enumerate(df.groupby("mode", sort=False)):
        v = np.sort(g["value"].dropna().to_numpy(dtype=float)) * scale
        if len(v) == 0:
            continue
        y = np.arange(1, len(v) + 1) / len(v)
        ax.plot(
            v,
            y,
            label=f"{mode} (p90 {np.percentile(v, 90):.3g} {unit})",
            color=mode_color(mode, i),
            lw=1.8,
            ls=MODE_STYLES.get(mode, "-"),
        )
    if slo_s is not None:
        ax.axvline(slo_s * scale, color="k", ls="--", lw=1, label=f"SLO {slo_s * scale:g} {unit}")
    ax.axhline(0.9, color="grey", ls=":", lw=0.8)
    ax.set_xlabel(f"{metric} ({unit})")
    ax.set_ylabel("requests (cumulative fraction; dotted: 90%)")
    ax.set_ylim(0, 1.01)
    if ax.lines:
        ax.set_xscale("log")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(f"{metric} CDF per mode ({_steps(method)})", fontsize=11)
    return fig


def capacity_curve(
    df: pd.DataFrame, method: str, x_label: str = "load (requests/s)", against: str = "load"
) -> Figure:
    """GPUs needed against load (a rate sweep) or skew (a Zipf sweep), per mode.

    ``df``: columns ``sweep_value`` (the load in req/s, or the Zipf alpha), ``mode``,
    ``num_decode_gpus`` and, optional, ``num_gpus`` (drawn dashed: prefill + decode; a co-located
    mode, which has no decode workers, is drawn by this line alone).
    """
    fig = _fig()
    ax = fig.add_subplot()
    for i, (mode, g) in enumerate(df.groupby("mode", sort=False)):
        g = g.sort_values("sweep_value")
        c = mode_color(mode, i)
        if g["num_decode_gpus"].any() or "num_gpus" not in g:
            ax.plot(g["sweep_value"], g["num_decode_gpus"], "o-", color=c, label=f"{mode} decode")
        if "num_gpus" in g:
            ax.plot(
                g["sweep_value"], g["num_gpus"], "s--", color=c, alpha=0.5, label=f"{mode} all GPUs"
            )
    ax.set_xlabel(x_label)
    ax.set_ylabel("GPUs needed to meet the SLO")
    ax.set_ylim(0, None)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    ax.set_title(f"GPUs needed to meet the SLO against {against} ({_steps(method)})", fontsize=11)
    return fig


def skew_curve(df: pd.DataFrame, method: str) -> Figure:
    """Throughput per GPU against skew (a Zipf sweep), per mode: left, output tokens/s per GPU
    (all GPUs) at the planned size; right, relative to partitioned at the same skew -- solid:
    all GPUs (partitioned's GPUs / the mode's, every mode serving the same trace), dashed:
    decode GPUs only.

    ``df``: columns ``sweep_value`` (Zipf alpha), ``mode``, ``throughput_per_gpu``,
    ``num_gpus``, ``num_decode_gpus``.
    """
    fig = Figure(figsize=(10, 4.0), dpi=100, layout="constrained")
    ax, ax2 = fig.subplots(1, 2)
    part = df[df["mode"] == "partitioned"].set_index("sweep_value")
    for i, (mode, g) in enumerate(df.groupby("mode", sort=False)):
        g = g.sort_values("sweep_value")
        c = mode_color(mode, i)
        ax.plot(g["sweep_value"], g["throughput_per_gpu"], "o-", color=c, label=mode)
        if len(part):
            x = g["sweep_value"].to_numpy()
            pg = part.reindex(x)
            mk = MODE_MARKERS.get(mode, "o")
            ax2.plot(
                x,
                pg["num_gpus"].to_numpy() / g["num_gpus"].to_numpy(),
                marker=mk,
                ls="-",
                color=c,
                label=f"{mode}, all GPUs",
                ms=7 - 1.5 * i,
            )
            ax2.plot(
                x,
                pg["num_decode_gpus"].to_numpy() / g["num_decode_gpus"].to_numpy(),
                marker=mk,
                ls="--",
                color=c,
                alpha=0.6,
                label=f"{mode}, decode GPUs",
                ms=7 - 1.5 * i,
            )
    for a in (ax, ax2):
        a.set_xlabel("Zipf alpha of model popularity (0 = uniform)")
        a.grid(alpha=0.3)
        a.legend(fontsize=7)
    ax.set_ylabel("output tokens/s per GPU (planned size)")
    ax2.set_ylabel("throughput per GPU / partitioned's")
    ax2.axhline(2.0, color="k", ls=":", lw=0.8)
    ax2.text(ax2.get_xlim()[0], 2.0, " paper: up to 2.0x", va="bottom", fontsize=7)
    fig.suptitle(f"Throughput per GPU against skew at equal SLO ({_steps(method)})", fontsize=11)
    return fig


def goodput_curve(df: pd.DataFrame, method: str, target: float) -> Figure:
    """SLO attainment (%) against load (req/s) at fixed workers, per mode, goodput marked.

    ``df``: columns ``mode``, ``rate_rps`` (load, req/s), ``attainment`` and, drawn instead
    when present, ``min_model_attainment`` (the worst model's: the plan's criterion is per
    model), fractions; ``attrs['goodput_rps']`` = {mode: highest load meeting the SLO}.
    """
    fig = _fig()
    ax = fig.add_subplot()
    gp = df.attrs.get("goodput_rps", {})
    for i, (mode, g) in enumerate(df.groupby("mode", sort=False)):
        g = g.sort_values("rate_rps")
        c = mode_color(mode, i)
        lab = mode + (f" (goodput {gp[mode]:.3g} req/s)" if mode in gp else "")
        col = "min_model_attainment" if "min_model_attainment" in g else "attainment"
        ax.plot(
            g["rate_rps"],
            g[col] * 100,
            marker="o",
            color=c,
            label=lab,
            ls=MODE_STYLES.get(mode, "-"),
        )
        if mode in gp and gp[mode] > 0:
            ax.axvline(gp[mode], color=c, ls=":", lw=1)
    ax.axhline(target * 100, color="k", ls="--", lw=1, label=f"target {target:.0%}")
    ax.set_xlabel("load (requests/s)")
    worst = "min_model_attainment" in df
    ax.set_ylabel("SLO attainment, worst model (%)" if worst else "SLO attainment (%)")
    ax.set_ylim(-2, 102)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"Goodput at fixed workers ({_steps(method)})", fontsize=11)
    return fig


def per_model_breakdown(df: pd.DataFrame, method: str) -> Figure:
    """Per-model SLO attainment, TTFT p90 and TPOT p90, bars grouped by model, one per mode.

    ``df``: columns ``mode``, ``model``, ``slo_attainment`` (0..1, drawn in %), ``ttft_s_p90``,
    ``tpot_s_p90`` (seconds), ``num_requests``.
    """
    fig = Figure(figsize=(10, 4.2), dpi=100, layout="constrained")
    axes = fig.subplots(1, 3)
    models = list(dict.fromkeys(df["model"]))
    modes = list(dict.fromkeys(df["mode"]))
    width = 0.8 / max(len(modes), 1)
    x = np.arange(len(models))
    for k, (col, lab, scale) in enumerate(
        (
            ("slo_attainment", "SLO attainment (%)", 100.0),
            ("ttft_s_p90", "TTFT p90 (ms)", 1e3),
            ("tpot_s_p90", "TPOT p90 (ms)", 1e3),
        )
    ):
        ax = axes[k]
        for i, mode in enumerate(modes):
            g = df[df["mode"] == mode].set_index("model").reindex(models)
            ax.bar(
                x + (i - (len(modes) - 1) / 2) * width,
                g[col].to_numpy(dtype=float) * scale,
                width,
                color=mode_color(mode, i),
                label=mode,
            )
        counts = df.drop_duplicates("model").set_index("model")["num_requests"].reindex(models)
        ax.set_xticks(x, [f"{m}\n({int(c)} req)" for m, c in zip(models, counts)], fontsize=8)
        ax.set_title(lab, fontsize=10)
        ax.grid(alpha=0.3, axis="y")
    axes[0].set_ylim(0, 105)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, loc="outside lower center", ncol=max(1, len(modes)))
    fig.suptitle(f"Per-model breakdown ({_steps(method)})", fontsize=11)
    return fig


def close(figs: Iterable[Figure]) -> None:
    """Drop figures' canvases (Figure objects are garbage-collected; nothing global to free)."""
    for f in figs:
        f.clear()
