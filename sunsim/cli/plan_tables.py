"""The tables ``sunsim plan`` prints: the plan per design and the sweep."""

from __future__ import annotations

from typing import Any

from sunsim.cli.format import console, print_table


def print_plan_table(df: Any, s: Any, popts: Any, r: Any) -> None:
    """The plan of the reference point: workers, GPUs, attainment, latency per design."""
    import pandas as pd

    method = ", ".join(sorted(set(df["method"])))
    t = pd.DataFrame(
        {
            "decode workers (per pool)": [
                d or f"co-located {c}"
                for d, c in zip(df["decode_workers"], df["colocated_workers"])
            ],
            "prefill workers (per model)": df["prefill_workers"].tolist(),
            "GPUs (prefill+decode)": [
                f"{a}+{b} = {a + b}" if a + b == n else f"{n} co-located"
                for a, b, n in zip(df["num_prefill_gpus"], df["num_decode_gpus"], df["num_gpus"])
            ],
            "SLO attainment": [f"{x:.1%}" for x in df["slo_attainment"]],
            "TTFT p90 (s)": [f"{x:.3f}" for x in df["ttft_s_p90"]],
            "TPOT p50 / p90 (ms)": [
                f"{a * 1e3:.1f} / {b * 1e3:.1f}" for a, b in zip(df["tpot_s_p50"], df["tpot_s_p90"])
            ],
            "throughput per GPU (tok/s)": [f"{x:.1f}" for x in df["throughput_per_gpu"]],
        },
        index=df["mode"].tolist(),
    )
    if "gpus_saved_vs_partitioned" in df:
        t["saving vs partitioned"] = [
            f"{g} GPUs ({p:.0f}%), x{x:.2f} tok/s/GPU"
            for g, p, x in zip(
                df["gpus_saved_vs_partitioned"],
                df["saving_pct_vs_partitioned"],
                df["throughput_per_gpu_vs_partitioned"],
            )
        ]
    tp = sorted(set(zip(df["prefill_tensor_parallel_size"], df["decode_tensor_parallel_size"])))
    tp_note = "".join(f", {p} GPUs per prefill worker, {d} per decode worker" for p, d in tp)
    if tp == [(1, 1)]:
        tp_note = ""
    sweep = ""
    if popts.sweep is not None:
        sweep = f" at {popts.sweep[0]} = {r.points[r.reference].sweep_value:g}"
    print_table(
        t.T,
        f"sunsim plan on {s.gpu}{tp_note} ({method} step times){sweep}: SLO TTFT <= "
        f"{s.slo_ttft_s} s, TPOT <= {s.slo_tpot_s} s, {popts.slo_kind} "
        f"{s.slo_attainment:.0%} per model",
    )


def print_sweep(r: Any) -> None:
    """GPUs and throughput per GPU per design over the sweep, and goodput per design."""
    df = r.table()
    key = r.options.sweep[0]
    piv = df.pivot(index="sweep_value", columns="mode", values="num_gpus")
    dec = df.pivot(index="sweep_value", columns="mode", values="num_decode_gpus")
    tpg = df.pivot(index="sweep_value", columns="mode", values="throughput_per_gpu")
    cols = {}
    for m in piv.columns:
        cols[f"{m} decode / all GPUs"] = [f"{d} / {a}" for d, a in zip(dec[m], piv[m])]
        cols[f"{m} tok/s/GPU"] = [f"{x:.0f}" for x in tpg[m]]
    import pandas as pd

    print_table(pd.DataFrame(cols, index=[f"{key} {v:g}" for v in piv.index]), f"sweep over {key}")
    if r.goodput is not None:
        gp = r.goodput.attrs.get("goodput", {})
        w = r.goodput.attrs.get("workers", {})
        for m, v in gp.items():
            at = (
                f"co-located {w[m]['colocated']}"
                if w[m].get("colocated")
                else f"prefill {w[m]['prefill']}, decode {w[m]['decode']}"
            )
            console.print(f"goodput {m} ({at}): rate scale {v:.3g}", highlight=False)
