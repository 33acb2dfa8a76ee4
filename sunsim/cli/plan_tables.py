"""The tables ``sunsim plan`` prints: the plan per design and the sweep."""

from __future__ import annotations

from typing import Any

from sunsim.cli.format import console, print_table


def print_plan_table(df: Any, s: Any, popts: Any, r: Any) -> None:
    """The plan of the reference point: GPUs, cost, attainment, latency per design (compact:
    three designs fit 80 columns)."""
    from sunsim.cli.result_tables import as_costs, plan_frame, print_compact

    ref = r.points[r.reference]
    costs = as_costs({m: mp.summary for m, mp in ref.modes.items()}, ref.scenario)
    method = ", ".join(sorted({str(m).split(" (")[0] for m in df["method"]}))
    price = next(iter(costs.values()))
    sweep = ""
    if popts.sweep is not None:
        sweep = f" at {popts.sweep[0]} = {ref.sweep_value:g}"
    print_compact(
        plan_frame(df, costs),
        f"sunsim plan on {s.gpu} ({method} step times; "
        f"${price.gpu_hour_usd[s.gpu]:g}/GPU-hour){sweep}: SLO TTFT <= "
        f"{s.slo_ttft_s * 1e3:g} ms, TPOT <= {s.slo_tpot_s * 1e3:g} ms, {popts.slo_kind} "
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
            console.print(
                f"goodput {m} (prefill {w[m]['prefill']}, decode {w[m]['decode']}): "
                f"rate scale {v:.3g}",
                highlight=False,
            )
