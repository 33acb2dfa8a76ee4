"""The rows, ratios, markdown and figure of ``run.py`` (one job each; no simulation here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

#: Each paper's design, the per-model-KV designs it is compared with here (the paper's own
#: baseline as close as sunsim has it: per-model disaggregated pools for PrefillShare; for
#: ICaRus one base with a LoRA adapter per model on shared GPUs, KV per model, and per-model
#: co-located pools) and the paper's figures (abstracts): p95 latency reduction and
#: throughput gain, x.
PAPERS = {
    "prefillshare": (("partitioned",), "PrefillShare (arXiv 2602.12029)", 4.5, 3.9),
    "icarus": (("lora", "colocated"), "ICaRus (arXiv 2603.13281), 8 models", 11.1, 3.8),
}


def _p95(x: pd.Series) -> float:
    v = x.dropna().to_numpy(dtype=float)
    return float(np.percentile(v, 95)) if len(v) else float("nan")


def fixed_row(workload: str, load: float, label: str, res: Any, s: Any,
              req: pd.DataFrame) -> dict[str, Any]:  # fmt: skip
    """One replay as a row: the workload, load factor and offered rate, the design and its
    workers, prefix-cache figures, p50/p95 TTFT and E2E (seconds, finished requests),
    throughput (req/s, output tok/s over first arrival to last finish), SLO attainment,
    step-time provenance."""
    rec = res.records
    fin = rec[rec["status"] == "finished"]
    span = float(req["arrival_s"].max() - req["arrival_s"].min())
    pc = s.prefix_cache
    g = s.gpus
    return {
        "workload": workload,
        "load": load,
        "offered_req_s": len(req) / span if span > 0 else float("nan"),
        "design": label,
        "mode": s.mode,
        "prefix_caching": res.cluster.enable_prefix_caching,
        "num_gpus": g.total,
        "prefill_workers": ",".join(map(str, res.cluster.prefill_workers)),
        "decode_workers": ",".join(map(str, res.cluster.decode_workers)),
        "colocated_workers": ",".join(map(str, res.cluster.colocated_workers)),
        "hit_rate": pc.hit_rate if pc else float("nan"),
        "prefill_tokens_saved": pc.prefill_tokens_saved if pc else 0,
        "query_tokens": pc.query_tokens if pc else float("nan"),
        "evicted_blocks": pc.evicted_blocks if pc else 0,
        "ttft_s_p50": float(fin["ttft_s"].median()),
        "ttft_s_p95": _p95(fin["ttft_s"]),
        "e2e_s_p50": float(fin["e2e_s"].median()),
        "e2e_s_p95": _p95(fin["e2e_s"]),
        "throughput_req_s": s.throughput.requests_per_s,
        "throughput_tok_s": s.throughput.output_tokens_per_s,
        "finished": len(fin),
        "rejected": s.requests.rejected,
        "slo_attainment": s.slo.attainment,
        "method": s.method,
    }


def ratios(fixed: pd.DataFrame, planned: pd.DataFrame | None) -> pd.DataFrame:
    """Per workload, load and paper design: its baseline (per-model KV with caching, and
    with caching off), p95 TTFT and E2E reductions (baseline / design), throughput gains
    (design / baseline, output tok/s) and, with ``planned``, the planned GPUs of both."""
    rows = []
    for (wl, load), g in fixed.groupby(["workload", "load"], sort=False):
        by = g.set_index("design")
        for design, (bases, paper, p95x, tputx) in PAPERS.items():
            for b in (*bases, *(f"{x}, no caching" for x in bases)):
                if design not in by.index or b not in by.index:
                    continue
                d, r = by.loc[design], by.loc[b]
                row = {
                    "workload": wl, "load": load, "design": design, "baseline": b,
                    "hit_rate": d["hit_rate"], "baseline_hit_rate": r["hit_rate"],
                    "ttft_p95_reduction": r["ttft_s_p95"] / d["ttft_s_p95"],
                    "e2e_p95_reduction": r["e2e_s_p95"] / d["e2e_s_p95"],
                    "throughput_gain": d["throughput_tok_s"] / r["throughput_tok_s"],
                    "paper": paper, "paper_p95_reduction": p95x, "paper_throughput_gain": tputx,
                }  # fmt: skip
                if planned is not None:
                    pl = planned[planned["workload"] == wl].set_index("design")["num_gpus"]
                    row["planned_gpus"] = pl.get(design, np.nan)
                    row["baseline_planned_gpus"] = pl.get(b, np.nan)
                rows.append(row)
    return pd.DataFrame(rows)


def write_figure(fixed: pd.DataFrame, path: Path) -> None:
    """p95 E2E latency and output throughput against load, one column per workload."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    wls = list(dict.fromkeys(fixed["workload"]))
    fig, axes = plt.subplots(2, len(wls), figsize=(4.2 * len(wls), 6.4), squeeze=False)
    for j, wl in enumerate(wls):
        g = fixed[fixed["workload"] == wl]
        for design, d in g.groupby("design", sort=False):
            style = "--" if "no caching" in design else "-"
            axes[0][j].plot(d["offered_req_s"], d["e2e_s_p95"], style, marker="o", label=design)
            axes[1][j].plot(d["offered_req_s"], d["throughput_tok_s"], style, marker="o")
        axes[0][j].set_title(f"{wl} ({int(g['num_gpus'].iloc[0])} H100)")
        axes[0][j].set_yscale("log")
        axes[0][j].set_ylabel("p95 E2E latency (s)")
        axes[1][j].set_ylabel("output tokens/s")
        axes[1][j].set_xlabel("offered load (req/s)")
    axes[0][0].legend(fontsize=7)
    method = str(fixed["method"].iloc[0]).split(";")[0]
    fig.suptitle(f"Prefix sharing across models, fixed GPUs; step times: {method}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _fmt(x: float, spec: str = ".2f") -> str:
    return "-" if x is None or (isinstance(x, float) and np.isnan(x)) else format(x, spec)


def write_markdown(fixed: pd.DataFrame, planned: pd.DataFrame | None, rat: pd.DataFrame,
                   meta: dict[str, Any], path: Path) -> None:  # fmt: skip
    """``results.md``: how it was made, the fixed-GPU table per workload, the planned GPUs and
    the ratios beside the papers'."""
    slo = meta["slo"]
    lines = [
        "# Prefix sharing across models (generated by run.py; do not edit)",
        "",
        f"Fixed runs: {meta['gpus']} H100 per design, loads x{meta['loads']} of each "
        f"workload's own rate. Plans: SLO TTFT <= {slo['slo_ttft_s']:g} s, TPOT <= "
        f"{slo['slo_tpot_s'] * 1e3:g} ms, {slo['slo_attainment']:.0%} per model, at "
        f"x{meta['plan_load']:g} the workload's own rate. Step times: {fixed['method'].iloc[0]}. "
        f"{meta['wall_s']:.0f} s wall-clock, {meta['cpu_s']:.0f} s CPU, {meta['jobs']} "
        "processes.",
        "",
        "Workloads:",
        "",
    ]
    lines += [f"- `{k}`: {v}" for k, v in meta["made"].items()]
    lines += ["", "## Fixed GPU count", ""]
    head = ["load", "req/s", "design", "hit rate", "prefill tok saved", "TTFT p95 s",
            "E2E p95 s", "req/s done", "out tok/s", "attainment"]  # fmt: skip
    for wl, g in fixed.groupby("workload", sort=False):
        lines += [f"### {wl}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in g.itertuples():
            lines.append(
                f"| x{r.load:g} | {r.offered_req_s:.2f} | {r.design} | {_fmt(r.hit_rate, '.3f')} "
                f"| {r.prefill_tokens_saved:,} | {_fmt(r.ttft_s_p95)} | {_fmt(r.e2e_s_p95)} "
                f"| {r.throughput_req_s:.2f} | {r.throughput_tok_s:,.0f} "
                f"| {r.slo_attainment:.1%} |"
            )
        lines.append("")
    if planned is not None:
        lines += ["## Planned GPUs (fewest meeting the SLO)", ""]
        head = ["workload", "design", "GPUs", "prefill", "decode", "co-located", "attainment",
                "TTFT p90 s", "TPOT p90 ms"]  # fmt: skip
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in planned.itertuples():
            if isinstance(getattr(r, "error", None), str):
                lines.append(f"| {r.workload} | {r.design} | no plan: {r.error} |||||||")
                continue
            lines.append(
                f"| {r.workload} | {r.design} | {r.num_gpus} | {r.prefill_workers or '-'} | "
                f"{r.decode_workers or '-'} | {r.colocated_workers or '-'} | "
                f"{r.slo_attainment:.1%} | {r.ttft_s_p90:.2f} | {r.tpot_s_p90 * 1e3:.1f} |"
            )
        lines.append("")
    lines += ["## Against the papers", ""]
    head = ["workload", "load", "design", "vs", "TTFT p95 x", "E2E p95 x", "throughput x",
            "planned GPUs", "paper p95 x", "paper throughput x"]  # fmt: skip
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rat.itertuples():
        gp = (
            f"{_fmt(r.planned_gpus, '.0f')} vs {_fmt(r.baseline_planned_gpus, '.0f')}"
            if hasattr(r, "planned_gpus")
            else "-"
        )
        lines.append(
            f"| {r.workload} | x{r.load:g} | {r.design} | {r.baseline} | "
            f"{_fmt(r.ttft_p95_reduction)} | {_fmt(r.e2e_p95_reduction)} | "
            f"{_fmt(r.throughput_gain)} | {gp} | {r.paper_p95_reduction:g} | "
            f"{r.paper_throughput_gain:g} |"
        )
    path.write_text("\n".join(lines) + "\n")
