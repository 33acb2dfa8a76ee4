"""The planner's figures: GPUs and cost per design, latency against load, the Pareto front
of throughput per GPU against TPOT, the per-request latency breakdown, and decode batch size
and KV use over time. A DataFrame in, a :class:`matplotlib.figure.Figure` out; every figure
has a legend and says which step times made it. Latencies in ms, load in req/s."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from sunsim.report.figures import MODE_MARKERS, MODE_STYLES, mode_color

#: Per-request stages of the latency breakdown: (label, start column, end column).
STAGES = (
    ("prefill queue", "arrived_at", "prefill_started_at"),
    ("prefill", "prefill_started_at", "first_token_at"),
    ("KV transfer", "first_token_at", "kv_ready_at"),
    ("decode queue", "kv_ready_at", "decode_started_at"),
    ("decode", "decode_started_at", "finished_at"),
)
_STAGE_COLORS = ("#c7c7c7", "#9ecae1", "#fdae6b", "#fdd0a2", "#3182bd")
_PCT_STYLES = {50: ":", 90: "-", 99: "--"}


def _fig(w: float = 7.5, h: float = 4.2) -> Figure:
    return Figure(figsize=(w, h), dpi=100, layout="constrained")


def gpus_and_cost(df: pd.DataFrame, method: str, gpu: str) -> Figure:
    """Left: GPUs per design, prefill and decode stacked; right: dollars per hour and per
    million output tokens.

    ``df``: columns ``mode``, ``num_prefill_gpus``, ``num_decode_gpus``, ``usd_per_hour``,
    ``usd_per_million_output_tokens``; optional ``num_colocated_gpus`` (stacked, hatched).
    """
    fig = _fig(10, 4.0)
    ax, ax2 = fig.subplots(1, 2)
    x = np.arange(len(df))
    pre = df["num_prefill_gpus"].to_numpy(dtype=float)
    dec = df["num_decode_gpus"].to_numpy(dtype=float)
    colors = [mode_color(m, i) for i, m in enumerate(df["mode"])]
    ax.bar(x, pre, color="lightgrey", edgecolor="grey", label="prefill GPUs")
    ax.bar(x, dec, bottom=pre, color=colors, edgecolor="grey", label="decode GPUs (design colour)")
    if "num_colocated_gpus" in df and df["num_colocated_gpus"].any():
        col = df["num_colocated_gpus"].fillna(0).to_numpy(dtype=float)
        ax.bar(x, col, bottom=pre + dec, color=colors, hatch="//", label="co-located GPUs")
        dec = dec + col
    for xi, total in enumerate(pre + dec):
        ax.text(xi, total, f"{int(total)}", ha="center", va="bottom", fontsize=9)
    ax.set_xticks(x, list(df["mode"]))
    ax.set_ylabel(f"{gpu.upper()} GPUs")
    ax.set_ylim(0, max(1.0, float((pre + dec).max())) * 1.2)
    ax.legend(fontsize=8, loc="upper right")
    ax.grid(alpha=0.3, axis="y")
    ax.set_title("GPUs per design", fontsize=10)
    w = 0.38
    ax2.bar(x - w / 2, df["usd_per_hour"], w, color=colors, edgecolor="k", label="$ per hour")
    ax3 = ax2.twinx()
    ax3.bar(
        x + w / 2,
        df["usd_per_million_output_tokens"],
        w,
        color=colors,
        alpha=0.45,
        hatch="//",
        edgecolor="k",
        label="$ per million output tokens",
    )
    ax2.set_xticks(x, list(df["mode"]))
    ax2.set_ylabel("$ per hour (solid)")
    ax3.set_ylabel("$ per million output tokens (hatched)")
    handles = [ax2.patches[0], ax3.patches[0]] if len(df) else []
    ax2.legend(
        handles, ["$ per hour", "$ per million output tokens"], fontsize=8, loc="upper left", ncol=2
    )
    ax2.set_ylim(0, float(df["usd_per_hour"].max() or 1) * 1.3)
    ax3.set_ylim(0, float(np.nan_to_num(df["usd_per_million_output_tokens"].max()) or 1) * 1.3)
    ax2.set_title("Cost per design", fontsize=10)
    fig.suptitle(f"GPUs and cost per design ({method} step times)", fontsize=11)
    return fig


def latency_vs_load(df: pd.DataFrame, method: str, slo_ms: tuple[float, float]) -> Figure:
    """TTFT (left) and TPOT (right) p50/p90/p99 against load, one colour per design, one line
    style per percentile; dashed grey: the SLO.

    ``df``: columns ``mode``, ``rate_rps`` (load, req/s), ``ttft_ms_p50/p90/p99``,
    ``tpot_ms_p50/p90/p99``.
    """
    fig = _fig(10, 4.2)
    axes = fig.subplots(1, 2)
    modes = list(dict.fromkeys(df["mode"]))
    for ax, metric, slo in zip(axes, ("ttft", "tpot"), slo_ms):
        for i, mode in enumerate(modes):
            g = df[df["mode"] == mode].sort_values("rate_rps")
            for p, ls in _PCT_STYLES.items():
                ax.plot(
                    g["rate_rps"],
                    g[f"{metric}_ms_p{p}"],
                    ls=ls,
                    marker=MODE_MARKERS.get(mode, "o"),
                    color=mode_color(mode, i),
                    ms=4,
                )
        ax.axhline(slo, color="grey", ls="--", lw=1)
        ax.set_xlabel("load (requests/s)")
        ax.set_ylabel(f"{metric.upper()} (ms)")
        ax.set_yscale("log")
        ax.grid(alpha=0.3, which="both")
        ax.set_title(f"{metric.upper()} against load", fontsize=10)
    design = [Line2D([], [], color=mode_color(m, i), marker=MODE_MARKERS.get(m, "o"), label=m)
              for i, m in enumerate(modes)]  # fmt: skip
    pct = [Line2D([], [], color="k", ls=ls, label=f"p{p}") for p, ls in _PCT_STYLES.items()]
    pct.append(Line2D([], [], color="grey", ls="--", label="SLO"))
    axes[0].legend(handles=design, fontsize=8, loc="upper left", title="design")
    axes[1].legend(handles=pct, fontsize=8, loc="upper left", title="percentile")
    fig.suptitle(
        f"Latency against load, each design at its planned size ({method} step times)",
        fontsize=11,
    )
    return fig


def pareto_front(df: pd.DataFrame, method: str) -> Figure:
    """Output tokens/s per GPU against TPOT p90 for every configuration simulated; the
    front (no other configuration has both lower TPOT and more throughput per GPU) joined.

    ``df``: columns ``mode``, ``tpot_ms_p90``, ``tok_s_per_gpu``, ``label``.
    """
    fig = _fig()
    ax = fig.add_subplot()
    for i, (mode, g) in enumerate(df.groupby("mode", sort=False)):
        ax.scatter(
            g["tpot_ms_p90"],
            g["tok_s_per_gpu"],
            color=mode_color(mode, i),
            marker=MODE_MARKERS.get(mode, "o"),
            s=45,
            label=mode,
            zorder=3,
        )
        for _, r in g.iterrows():
            ax.annotate(str(r["label"]), (r["tpot_ms_p90"], r["tok_s_per_gpu"]), fontsize=7,
                        xytext=(4, 3), textcoords="offset points")  # fmt: skip
    front = pareto(df)
    ax.plot(front["tpot_ms_p90"], front["tok_s_per_gpu"], "k-", lw=1, label="Pareto front")
    ax.set_xlabel("TPOT p90 (ms)")
    ax.set_ylabel("output tokens/s per GPU")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"Throughput per GPU against TPOT ({method} step times)", fontsize=11)
    return fig


def pareto(df: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``df`` no other row dominates (lower or equal ``tpot_ms_p90`` and higher
    or equal ``tok_s_per_gpu``, one of them strictly), sorted by TPOT."""
    d = df.sort_values(["tpot_ms_p90", "tok_s_per_gpu"], ascending=[True, False])
    best, keep = -np.inf, []
    for idx, r in d.iterrows():
        if r["tok_s_per_gpu"] > best:
            keep.append(idx)
            best = r["tok_s_per_gpu"]
    return d.loc[keep]


def latency_breakdown(df: pd.DataFrame, method: str) -> Figure:
    """Mean time per request in each stage (prefill queue, prefill, KV transfer, decode
    queue, decode), stacked per design.

    ``df``: columns ``mode``, ``stage`` (:data:`STAGES` labels), ``mean_ms``.
    """
    fig = _fig(8, 1.6 + 0.55 * df["mode"].nunique())
    ax = fig.add_subplot()
    modes = list(dict.fromkeys(df["mode"]))
    y = np.arange(len(modes))
    left = np.zeros(len(modes))
    for (label, _, _), color in zip(STAGES, _STAGE_COLORS):
        v = df[df["stage"] == label].set_index("mode")["mean_ms"].reindex(modes).fillna(0.0)
        ax.barh(y, v.to_numpy(), left=left, color=color, edgecolor="grey", label=label)
        left += v.to_numpy()
    for yi, total in zip(y, left):
        ax.text(total, yi, f" {total:,.0f} ms", va="center", fontsize=8)
    ax.set_yticks(y, modes)
    ax.invert_yaxis()
    ax.set_xlim(0, max(1.0, float(left.max())) * 1.18)
    ax.set_xlabel("mean time per finished request (ms)")
    ax.legend(fontsize=8, ncol=5, loc="upper center", bbox_to_anchor=(0.5, -0.25))
    ax.grid(alpha=0.3, axis="x")
    ax.set_title(f"Where a request's time goes ({method} step times)", fontsize=11)
    return fig


def decode_over_time(df: pd.DataFrame, method: str) -> Figure:
    """Mean decode batch size per worker (top) and KV-cache use (bottom, % of capacity)
    over simulated time, one line per design.

    ``df``: columns ``mode``, ``t_s``, ``mean_batch``, ``kv_pct`` (averaged over the
    design's decode workers in each time bin).
    """
    fig = _fig(9, 5.0)
    ax, ax2 = fig.subplots(2, 1, sharex=True)
    for i, (mode, g) in enumerate(df.groupby("mode", sort=False)):
        c, ls = mode_color(mode, i), MODE_STYLES.get(mode, "-")
        ax.plot(g["t_s"], g["mean_batch"], color=c, ls=ls, lw=1.2, label=mode)
        ax2.plot(g["t_s"], g["kv_pct"], color=c, ls=ls, lw=1.2, label=mode)
    ax.set_ylabel("decode batch\n(sequences per worker)")
    ax2.set_ylabel("KV cache used (%)")
    ax2.set_xlabel("simulated time (s)")
    for a in (ax, ax2):
        a.grid(alpha=0.3)
        a.legend(fontsize=8, loc="upper right")
    ax.set_title(f"Decode batch size and KV use over time ({method} step times)", fontsize=11)
    return fig
