"""Prefix-cache figures: a DataFrame in (:mod:`sunsim.report.prefix`), a
:class:`matplotlib.figure.Figure` out, in the style of :mod:`sunsim.report.figures` (the
design's colour, the step-time method in the title, the answer in the title's first words).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from sunsim.report.figures import MODE_STYLES, mode_color

_MODEL_HATCH = ("", "//", "..", "xx", "\\\\", "++", "oo", "--")


def _steps(method: str) -> str:
    return f"{method} step times"


def prefix_hits(df: pd.DataFrame, method: str) -> Figure:
    """Left: the prefix-cache token hit rate per design (%). Right: prompt tokens each design
    computed and the prefill tokens it saved (stacked, millions of tokens).

    ``df``: :func:`sunsim.report.prefix.prefix_frame` (``mode``, ``hit_rate``,
    ``query_tokens``, ``prefill_tokens_saved``, ``kv_shared``)."""
    fig = Figure(figsize=(10, 4.0), dpi=100, layout="constrained")
    ax, ax2 = fig.subplots(1, 2)
    modes = list(df["mode"])
    x = np.arange(len(modes))
    colors = [mode_color(m, i) for i, m in enumerate(modes)]
    rate = df["hit_rate"].to_numpy(dtype=float) * 100
    ax.bar(x, rate, color=colors)
    for xi, r in zip(x, rate):
        ax.text(xi, r, f"{r:.1f}%", ha="center", va="bottom", fontsize=8)
    labels = [
        f"{m}\n({'content' if s else 'per-model'}\nkeys)" for m, s in zip(modes, df["kv_shared"])
    ]
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_ylabel("prompt tokens found cached (%)")
    ax.set_ylim(0, max(105.0, float(np.nanmax(rate, initial=0)) + 8))
    ax.set_title("token hit rate", fontsize=10)
    saved = df["prefill_tokens_saved"].to_numpy(dtype=float) / 1e6
    computed = df["query_tokens"].to_numpy(dtype=float) / 1e6 - saved
    ax2.bar(x, computed, color="#bbbbbb", label="computed")
    ax2.bar(x, saved, bottom=computed, color=colors, label="saved (cached; design colour)")
    for xi, c, s in zip(x, computed, saved):
        ax2.text(xi, c + s, f"{s:.3g}M saved", ha="center", va="bottom", fontsize=8)
    ax2.set_xticks(x, modes, fontsize=8)
    ax2.set_ylabel("prompt tokens (millions)")
    ax2.set_title("prefill tokens computed and saved", fontsize=10)
    ax2.legend(fontsize=8, loc="lower right")
    for a in (ax, ax2):
        a.grid(alpha=0.3, axis="y")
    best = int(np.nanargmax(rate)) if len(rate) and np.isfinite(rate).any() else 0
    head = f"{modes[best]} reuses the most prompt tokens ({rate[best]:.0f}%)" if modes else ""
    fig.suptitle(f"Prefix cache: {head} ({_steps(method)})", fontsize=11)
    return fig


def prefix_kv(by_model: pd.DataFrame, over_time: pd.DataFrame, evictions: pd.Series,
              method: str) -> Figure:  # fmt: skip
    """Cached KV memory by model. Left (when ``over_time`` has rows): each design's cached KV
    over time, all models (GiB, time-bin means summed over its caching workers). Right: by
    model and design, at the end of the run (bars) and at its highest time bin (black ticks,
    when known); each design's evictions in its legend entry.

    ``by_model``: :func:`sunsim.report.prefix.kv_by_model_frame`; ``over_time``:
    :func:`sunsim.report.prefix.kv_time_frame`; ``evictions``: mode -> evicted hash blocks."""
    timed = len(over_time) > 0
    fig = Figure(figsize=(10 if timed else 7.5, 4.2), dpi=100, layout="constrained")
    axes = fig.subplots(1, 2) if timed else [fig.add_subplot()]
    modes = list(dict.fromkeys(by_model["mode"]))
    if timed:
        ax = axes[0]
        for i, mode in enumerate(modes):
            g = over_time[over_time["mode"] == mode].groupby("t_s", as_index=False)["gib"].sum()
            ax.plot(g["t_s"], g["gib"], color=mode_color(mode, i), lw=1.6, label=mode,
                    ls=MODE_STYLES.get(mode, "-"))  # fmt: skip
        ax.set_xlabel("simulated time (s)")
        ax.set_ylabel("cached KV, all models (GiB)")
        ax.set_ylim(0, None)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        ax.set_title("cached KV over time", fontsize=10)
    ax = axes[-1]
    models = list(dict.fromkeys(by_model["model"]))
    width = 0.8 / max(len(modes), 1)
    x = np.arange(len(models))
    for i, mode in enumerate(modes):
        g = by_model[by_model["mode"] == mode].set_index("model").reindex(models)
        xs = x + (i - (len(modes) - 1) / 2) * width
        ev = int(evictions.get(mode, 0))
        ax.bar(xs, g["end_gib"].to_numpy(dtype=float), width, color=mode_color(mode, i),
               label=f"{mode} ({ev:,} evictions)")  # fmt: skip
        peak = g["peak_gib"].to_numpy(dtype=float)
        if np.isfinite(peak).any():
            ax.scatter(xs, peak, marker="_", s=120, color="k", zorder=3)
    ax.set_xticks(x, models, fontsize=8)
    ax.set_ylabel("cached KV by the model's requests (GiB)")
    ticks = bool(np.isfinite(by_model["peak_gib"].to_numpy(dtype=float)).any())
    ax.set_title(
        "by model: at the end of the run" + (" (bars), highest bin (ticks)" if ticks else ""),
        fontsize=10,
    )
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=7)
    total = by_model.groupby("mode", sort=False)["end_gib"].sum()
    least = total.idxmin() if len(total) else ""
    head = f"least cached at the end: {least} ({total.get(least, 0):.3g} GiB)" if least else ""
    fig.suptitle(f"KV memory by model: {head} ({_steps(method)})", fontsize=11)
    return fig
