"""The tables ``sunsim plan`` prints: the plan per design and the sweep."""

from __future__ import annotations

from typing import Any

from sunsim.cli.format import console


def print_plan_table(df: Any, s: Any, popts: Any, r: Any) -> None:
    """The plan of the reference point: GPUs, cost, attainment, latency per design (compact:
    three designs fit 80 columns)."""
    from sunsim.cli.result_tables import (
        as_costs,
        gpu_title,
        plan_frame,
        print_compact,
        step_time_sources,
    )

    ref = r.points[r.reference]
    costs = as_costs({m: mp.summary for m, mp in ref.modes.items()}, ref.scenario)
    method = ", ".join(sorted({str(m).split(" (")[0] for m in df["method"]}))
    where, per_gpu_hour = gpu_title(s, costs)
    tp = sorted(set(zip(df["prefill_tensor_parallel_size"], df["decode_tensor_parallel_size"])))
    tp_note = "".join(f", {p} GPUs per prefill worker, {d} per decode worker" for p, d in tp)
    if tp == [(1, 1)]:
        tp_note = ""
    load = ref.workload_info.get("mean_rate")
    sweep = f" at {load:.3g} req/s" if load else ""
    if popts.sweep is not None and popts.sweep[0] != "request_rate":
        sweep += f" ({popts.sweep[0]} = {ref.sweep_value:g})"
    print_compact(
        plan_frame(df, costs),
        f"sunsim plan on {where}{tp_note} ({method} step times; "
        f"{per_gpu_hour}){sweep}: SLO TTFT <= "
        f"{s.slo_ttft_s * 1e3:g} ms, TPOT <= {s.slo_tpot_s * 1e3:g} ms, {popts.slo_kind} "
        f"{s.slo_attainment:.0%} per model",
    )
    sources = dict(zip(df["mode"].astype(str), df["method"].astype(str), strict=True))
    console.print(step_time_sources(sources), highlight=False, soft_wrap=True, markup=False)


def print_sweep(r: Any) -> None:
    """GPUs and throughput per GPU per design over the sweep, and goodput per design."""
    from sunsim.cli.result_tables import print_compact, sweep_frame

    print_compact(
        sweep_frame(r),
        f"sweep over {r.options.sweep[0]}: all GPUs (decode GPUs) and output tok/s per GPU "
        "at the planned size",
    )
    if r.goodput is not None:
        base = r.native_rate
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


def ranking_frame(best: Any) -> Any:
    """Rows of the ranking table (strings, one per design, best first) from
    :meth:`~sunsim.planner.GpuPlans.ranking` rows at one point: GPU, GPUs (prefill+decode or
    co-located), $/hour, $/M output tokens, saving against partitioned, p90 TTFT/TPOT in ms."""
    import pandas as pd

    from sunsim.cli.result_tables import money, ms

    rows = {}
    for r in best.to_dict(orient="records"):
        gpus = (
            f"{r['num_gpus']} co-loc"
            if r.get("num_colocated_gpus")
            else f"{r['num_prefill_gpus']}+{r['num_decode_gpus']}"
        )
        pct = r.get("saving_pct_vs_partitioned")
        saving = "-" if r["mode"] == "partitioned" or pct != pct else f"{pct:.0f}%"
        rows[f"{int(r['rank'])} {r['mode']}"] = {
            "GPU": r["gpu"],
            "GPUs": gpus,
            "$/hour": money(r["usd_per_hour"]),
            "$/M tok": money(r["usd_per_million_output_tokens"]),
            "saving": saving,
            "p90 TTFT/TPOT ms": ms(r["ttft_s_p90"], r["tpot_s_p90"]),
        }
    return pd.DataFrame(rows).T


def gpu_matrix_frame(table: Any, gpus: tuple[str, ...], failures: dict) -> Any:
    """Rows design, columns GPU: ``GPUs $/hour`` of each planned configuration (``*`` marks
    the design's cheapest), ``-`` where the design cannot meet the SLO on that GPU."""
    import pandas as pd

    cells: dict[str, dict[str, str]] = {}
    for r in table.to_dict(orient="records"):
        mark = "*" if r["cheapest"] else ""
        cells.setdefault(str(r["mode"]), {})[r["gpu"]] = (
            f"{r['num_gpus']} ${r['usd_per_hour']:,.1f}{mark}"
        )
    for g, by in failures.items():
        for m in by:
            cells.setdefault(m, {})[g] = "-"
    return pd.DataFrame(cells).T.reindex(columns=list(gpus)).fillna("-")


def print_gpu_plans(gp: Any) -> None:
    """The ranking per point (cheapest configuration per design) and the design x GPU
    matrix, each under a title saying the SLO, the load in req/s and the prices' source."""
    from sunsim.cli.result_tables import print_compact, step_time_sources

    s = gp.scenario
    table = gp.table()
    ranking = gp.ranking()
    slo = (
        f"SLO TTFT <= {s.slo_ttft_s * 1e3:g} ms, TPOT <= {s.slo_tpot_s * 1e3:g} ms, "
        f"{gp.options.slo_kind} {s.slo_attainment:.0%} per model"
    )
    groups = (
        ranking.groupby("sweep_value", sort=True) if "sweep_value" in ranking else [(None, ranking)]
    )
    for _, best in groups:
        rate = best["request_rate"].iloc[0]
        methods = ", ".join(sorted({str(m).split(" (")[0] for m in best["method"]}))
        console.print(
            f"cheapest configuration per design on {', '.join(gp.gpus)} at {rate:.3g} req/s "
            f"({methods} step times): {slo}",
            highlight=False,
            soft_wrap=True,
            markup=False,
        )
        print_compact(ranking_frame(best), "")
        sources = {f"{r['mode']} on {r['gpu']}": r["method"] for r in best.to_dict("records")}
        console.print(step_time_sources(sources), highlight=False, soft_wrap=True, markup=False)
    ref = (
        table
        if "sweep_value" not in table
        else table[table["sweep_value"] == table["sweep_value"].max()]
    )
    print_compact(
        gpu_matrix_frame(ref, gp.gpus, gp.failures),
        "GPUs and $/hour per design and GPU (* cheapest; - SLO not met)"
        + ("" if "sweep_value" not in table else " at the highest sweep value"),
    )
    for g, by in gp.failures.items():
        for m, why in by.items():
            console.print(f"{m} on {g}: {why}", highlight=False, markup=False)
