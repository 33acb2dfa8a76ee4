"""The tables ``sunsim plan`` prints: the plan per design and the sweep."""

from __future__ import annotations

from typing import Any

from sunsim.cli.format import console


def print_plan_table(df: Any, s: Any, popts: Any, r: Any) -> None:
    """The plan of the reference point: GPUs, cost, attainment, latency per design (compact:
    three designs fit 80 columns)."""
    from sunsim.cli.result_tables import as_costs, gpu_title, plan_frame, print_compact

    ref = r.points[r.reference]
    costs = as_costs({m: mp.summary for m, mp in ref.modes.items()}, ref.scenario)
    method = ", ".join(sorted({str(m).split(" (")[0] for m in df["method"]}))
    where, per_gpu_hour = gpu_title(s, costs)
    tp = sorted(set(zip(df["prefill_tensor_parallel_size"], df["decode_tensor_parallel_size"])))
    tp_note = "".join(f", {p} GPUs per prefill worker, {d} per decode worker" for p, d in tp)
    if tp == [(1, 1)]:
        tp_note = ""
    sweep = ""
    if popts.sweep is not None:
        sweep = f" at {popts.sweep[0]} = {ref.sweep_value:g}"
    print_compact(
        plan_frame(df, costs),
        f"sunsim plan on {where}{tp_note} ({method} step times; "
        f"{per_gpu_hour}){sweep}: SLO TTFT <= "
        f"{s.slo_ttft_s * 1e3:g} ms, TPOT <= {s.slo_tpot_s * 1e3:g} ms, {popts.slo_kind} "
        f"{s.slo_attainment:.0%} per model",
    )


def print_sweep(r: Any) -> None:
    """GPUs and throughput per GPU per design over the sweep, and goodput per design."""
    from sunsim.cli.result_tables import print_compact, sweep_frame

    print_compact(
        sweep_frame(r),
        f"sweep over {r.options.sweep[0]}: all GPUs (decode GPUs) and output tok/s per GPU "
        "at the planned size",
    )
    if r.goodput is not None:
        ref = r.points[r.reference]
        base = float(ref.workload_info.get("mean_rate") or 0) / ref.scenario.rate_scale
        gp = r.goodput.attrs.get("goodput", {})
        w = r.goodput.attrs.get("workers", {})
        for m, v in gp.items():
            at = (
                f"co-located {w[m]['colocated']}"
                if w[m].get("colocated")
                else f"prefill {w[m]['prefill']}, decode {w[m]['decode']}"
            )
            console.print(
                f"goodput {m} ({at}): {v * base:.3g} req/s (rate scale {v:.3g})",
                highlight=False,
            )
