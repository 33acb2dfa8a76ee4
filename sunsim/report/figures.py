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


def to_png(fig: Figure, dpi: int = 100) -> bytes:
    """PNG bytes of ``fig``."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def latency_cdf(df: pd.DataFrame, metric: str, method: str, slo_s: float | None = None) -> Figure:
    """Empirical CDF of one latency per mode.

    ``df``: columns ``mode``, ``value`` (seconds; NaN dropped). ``metric``: ``TTFT`` or
    ``TPOT`` (label). ``slo_s`` draws the bound as a dashed line. TPOT in milliseconds.
    """
    fig = _fig()
    ax = fig.add_subplot()
    scale, unit = (1e3, "ms") if metric.upper() == "TPOT" else (1.0, "s")
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
    ax.set_ylabel("fraction of requests")
    ax.set_ylim(0, 1.01)
    if ax.lines and metric.upper() == "TTFT":
        ax.set_xscale("log")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(f"{metric} CDF per mode ({_steps(method)})", fontsize=11)
    return fig


def capacity_curve(
    df: pd.DataFrame, method: str, x_label: str = "rate scale (x trace rate)"
) -> Figure:
    """Decode workers needed against load, per mode (a rate sweep).

    ``df``: columns ``sweep_value`` (rate scale), ``mode``, ``num_decode_gpus`` and, optional,
    ``num_gpus`` (drawn dashed: prefill + decode; a co-located mode, which has no decode
    workers, is drawn by this line alone).
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
    ax.set_ylabel("workers (GPUs) needed to meet the SLO")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"Decode workers needed against load ({_steps(method)})", fontsize=11)
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
    """SLO attainment against rate at fixed workers, per mode, with the goodput marked.

    ``df``: columns ``mode``, ``rate_scale``, ``attainment`` and, drawn instead when present,
    ``min_model_attainment`` (the worst model's: the plan's criterion is per model);
    ``df.attrs['goodput']`` optional {mode: rate scale}.
    """
    fig = _fig()
    ax = fig.add_subplot()
    gp = df.attrs.get("goodput", {})
    for i, (mode, g) in enumerate(df.groupby("mode", sort=False)):
        g = g.sort_values("rate_scale")
        c = mode_color(mode, i)
        lab = mode + (f" (goodput x{gp[mode]:.3g})" if mode in gp else "")
        col = "min_model_attainment" if "min_model_attainment" in g else "attainment"
        ax.plot(
            g["rate_scale"], g[col], marker="o", color=c, label=lab, ls=MODE_STYLES.get(mode, "-")
        )
        if mode in gp and gp[mode] > 0:
            ax.axvline(gp[mode], color=c, ls=":", lw=1)
    ax.axhline(target, color="k", ls="--", lw=1, label=f"target {target:.0%}")
    ax.set_xlabel("rate scale (x trace rate)")
    ax.set_ylabel(
        "SLO attainment (worst model)" if "min_model_attainment" in df else "SLO attainment"
    )
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"Goodput at fixed workers ({_steps(method)})", fontsize=11)
    return fig


def utilisation_heatmap(
    timelines: dict[str, pd.DataFrame], method: str, value: str = "busy_frac"
) -> Figure:
    """Decode utilisation over time per worker, one panel per mode.

    ``timelines``: mode -> frame with columns ``worker``, ``t_s`` (bin start, seconds) and
    ``value`` (``busy_frac`` 0..1 by default) -- :attr:`SimResult.timeline` -- and optional
    ``pool``.
    """
    modes = [m for m, t in timelines.items() if len(t)]
    n = max(1, len(modes))
    rows = [max(1, int(timelines[m]["worker"].nunique())) for m in modes] or [1]
    fig = Figure(
        figsize=(8, 1.2 + sum(min(r, 40) * 0.22 + 0.7 for r in rows)), dpi=100, layout="constrained"
    )
    axes = fig.subplots(n, 1, squeeze=False, height_ratios=[min(r, 40) + 3 for r in rows])[:, 0]
    im = None
    for ax, mode in zip(axes, modes):
        t = timelines[mode]
        piv = t.pivot_table(index="worker", columns="t_s", values=value, aggfunc="mean")
        if piv.shape[0] > 64:  # many workers: keep the figure legible
            piv = piv.iloc[:64]
        t0, t1 = float(piv.columns.min()), float(piv.columns.max())
        step = (t1 - t0) / max(piv.shape[1] - 1, 1) if piv.shape[1] > 1 else 1.0
        im = ax.imshow(
            piv.to_numpy(dtype=float),
            aspect="auto",
            cmap="viridis",
            vmin=0,
            vmax=1,
            interpolation="nearest",
            extent=(t0, t1 + step, piv.shape[0] - 0.5, -0.5),
        )
        labels = [str(w) for w in piv.index]
        if "pool" in t:
            pool = t.drop_duplicates("worker").set_index("worker")["pool"]
            labels = [f"{w} {pool.get(w, '')}" for w in piv.index]
        if len(labels) <= 24:
            ax.set_yticks(range(len(labels)), labels, fontsize=7)
        ax.set_ylabel("decode worker")
        ax.set_title(f"{mode}", fontsize=10, loc="left")
    if not modes:
        axes[0].text(0.5, 0.5, "no decode timeline", ha="center", va="center")
    axes[-1].set_xlabel("simulated time (s)")
    if im is not None:
        fig.colorbar(im, ax=list(axes), label="busy fraction", shrink=0.8)
    fig.suptitle(f"Decode utilisation over time per worker ({_steps(method)})", fontsize=11)
    return fig


def time_distribution(df: pd.DataFrame, x: str, method: str, x_label: str, title: str) -> Figure:
    """Time-weighted distribution per mode (batch size or KV occupancy).

    ``df``: columns ``mode``, ``x`` (the value: ``batch_size`` or ``kv_occupancy_pct``),
    ``seconds`` (time spent at that value, summed over decode workers). Drawn as the fraction
    of decode busy time at each value (step histogram; zero-batch idle time left out for batch
    sizes).
    """
    fig = _fig()
    ax = fig.add_subplot()
    xmax = 0.0
    for i, (mode, g) in enumerate(df.groupby("mode", sort=False)):
        g = g.sort_values(x)
        if x == "batch_size":
            g = g[g[x] > 0]
        nz = g[g["seconds"] > 0]
        if len(nz):
            xmax = max(xmax, float(nz[x].max()))
        tot = g["seconds"].sum()
        if tot <= 0:
            continue
        frac = g["seconds"].to_numpy(dtype=float) / tot
        xs = g[x].to_numpy(dtype=float)
        mean = float((xs * frac).sum())
        ax.step(
            xs,
            frac,
            where="mid",
            color=mode_color(mode, i),
            lw=1.5,
            ls=MODE_STYLES.get(mode, "-"),
            label=f"{mode} (mean {mean:.1f})",
        )
    if xmax > 0:
        ax.set_xlim(0, xmax * 1.05 + 1)
    ax.set_xlabel(x_label)
    ax.set_ylabel("fraction of decode time")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"{title} ({_steps(method)})", fontsize=11)
    return fig


def per_model_breakdown(df: pd.DataFrame, method: str) -> Figure:
    """Per-model SLO attainment, TTFT p90 and TPOT p90, bars grouped by model, one per mode.

    ``df``: columns ``mode``, ``model``, ``slo_attainment`` (0..1), ``ttft_s_p90``,
    ``tpot_s_p90`` (seconds), ``num_requests``.
    """
    fig = Figure(figsize=(10, 3.8), dpi=100, layout="constrained")
    axes = fig.subplots(1, 3)
    models = list(dict.fromkeys(df["model"]))
    modes = list(dict.fromkeys(df["mode"]))
    width = 0.8 / max(len(modes), 1)
    x = np.arange(len(models))
    for k, (col, lab, scale) in enumerate(
        (
            ("slo_attainment", "SLO attainment", 1.0),
            ("ttft_s_p90", "TTFT p90 (s)", 1.0),
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
    axes[0].set_ylim(0, 1.05)
    axes[0].legend(fontsize=8, loc="lower left")
    fig.suptitle(f"Per-model breakdown ({_steps(method)})", fontsize=11)
    return fig


def plan_gpus(df: pd.DataFrame, method: str) -> Figure:
    """GPUs per mode at the planned size: prefill and decode stacked (co-located workers,
    which run both, hatched), throughput per GPU written above each bar.

    ``df``: columns ``mode``, ``num_prefill_gpus``, ``num_decode_gpus``,
    ``throughput_per_gpu``; optional ``num_colocated_gpus``.
    """
    fig = _fig(6.5, 4.0)
    ax = fig.add_subplot()
    x = np.arange(len(df))
    pre = df["num_prefill_gpus"].to_numpy(dtype=float)
    dec = df["num_decode_gpus"].to_numpy(dtype=float)
    colors = [mode_color(m, i) for i, m in enumerate(df["mode"])]
    ax.bar(x, pre, color="lightgrey", edgecolor="grey", label="prefill")
    ax.bar(x, dec, bottom=pre, color=colors, label="decode")
    if "num_colocated_gpus" in df:
        col = df["num_colocated_gpus"].fillna(0).to_numpy(dtype=float)
        ax.bar(x, col, bottom=pre + dec, color=colors, hatch="//", label="co-located")
        dec = dec + col
    for xi, (p, d, t) in enumerate(zip(pre, dec, df["throughput_per_gpu"])):
        ax.text(
            xi, p + d, f"{int(p + d)} GPUs\n{t:.0f} tok/s/GPU", ha="center", va="bottom", fontsize=8
        )
    ax.set_xticks(x, list(df["mode"]))
    ax.set_ylabel("GPUs at the planned size")
    ax.set_ylim(0, max(1.0, float((pre + dec).max())) * 1.3)
    ax.grid(alpha=0.3, axis="y")
    ax.set_title(f"Planned GPUs per mode ({_steps(method)})", fontsize=11)
    return fig


def no_data(title: str, message: str, method: str) -> Figure:
    """A placeholder figure saying why a figure has no data (e.g. no rate sweep in a plan)."""
    fig = _fig(6.5, 2.0)
    ax = fig.add_subplot()
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True, fontsize=10)
    ax.set_title(f"{title} ({_steps(method)})", fontsize=11)
    return fig


def close(figs: Iterable[Figure]) -> None:
    """Drop figures' canvases (Figure objects are garbage-collected; nothing global to free)."""
    for f in figs:
        f.clear()
