"""Compact tables of designs side by side for ``sunsim replay`` and ``sunsim plan``: short
labels, latencies in ms, dollars, so that three designs fit an 80-column terminal or a CI
log."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from sunsim.cli.format import console, print_table
from sunsim.metrics import RunSummary
from sunsim.metrics.compare import gpus_text
from sunsim.metrics.cost import DesignCost, gpus_by_type_text, saving_text


def ms(*seconds: float) -> str:
    """Seconds as ``a/b/c`` milliseconds (3 significant digits, no unit)."""
    return "/".join("-" if x != x else f"{x * 1e3:.3g}" for x in seconds)


def money(x: float) -> str:
    """Dollars with two decimals (``-`` for NaN)."""
    return "-" if x != x else f"{x:,.2f}"


def cost_rows(costs: Mapping[str, DesignCost]) -> dict[str, dict[str, str]]:
    """Mode -> the cost cells: ``$/hour``, ``$/M output tok``, ``saving vs partitioned``; and
    ``GPUs by type`` (``2 H100 + 3 H200``) when some design runs on more than one GPU type
    (heterogeneous pools)."""
    hetero = any(len(c.gpus_by_type) > 1 for c in costs.values())
    return {
        m: {
            **({"GPUs by type": gpus_by_type_text(c.gpus_by_type)} if hetero else {}),
            "$/hour": money(c.usd_per_hour),
            "$/M output tok": money(c.usd_per_million_output_tokens),
            "saving vs partitioned": saving_text(c, m),
        }
        for m, c in costs.items()
    }


def replay_frame(
    summaries: Mapping[str, RunSummary], costs: Mapping[str, DesignCost]
) -> pd.DataFrame:
    """Rows of the ``sunsim replay`` table, one column per design (strings)."""
    money_rows = cost_rows(costs)
    cols = {}
    for mode, s in summaries.items():
        lat, g = s.latency_s, s.gpus
        cols[mode] = {
            "GPUs prefill+decode": gpus_text(g),
            "decode workers/pool": ",".join(map(str, g.decode_per_pool)),
            **money_rows.get(mode, {}),
            "finished/rejected": f"{s.requests.finished}/{s.requests.rejected}",
            "SLO attainment": f"{s.slo.attainment:.1%}",
            "TTFT p50/90/99 ms": ms(lat.ttft_s_p50, lat.ttft_s_p90, lat.ttft_s_p99),
            "TPOT p50/90/99 ms": ms(lat.tpot_s_p50, lat.tpot_s_p90, lat.tpot_s_p99),
            "ITL p50/99 ms": ms(lat.itl_s_p50, lat.itl_s_p99),
            "E2E p50/99 s": f"{lat.e2e_s_p50:.3g}/{lat.e2e_s_p99:.3g}",
            "tok/s per GPU": f"{s.throughput.output_tokens_per_s_per_gpu:.1f}",
            "preemptions": str(s.requests.preemptions),
            "decode busy/batch/KV": (
                f"{s.decode.busy_frac_mean:.0%}/{s.decode.batch_size_mean:.1f}/"
                f"{s.decode.kv_occupancy_mean:.0%}"
            ),
            **prefix_rows(s),
            "step times": s.method.split(" (")[0],
        }
    return pd.DataFrame(cols).fillna("-")  # prefix rows: "-" for a design without caching


def prefix_rows(s: RunSummary) -> dict[str, str]:
    """The prefix-cache cells of a design that ran with caching (none without): token hit
    rate, prefill tokens saved, evictions (hash blocks), cached KV at the end (GiB)."""
    pc = s.prefix_cache
    if pc is None:
        return {}
    kv = sum(pc.cached_kv_bytes_by_model.values()) / 2**30
    return {
        "prefix hit rate (tok)": "-" if pc.hit_rate != pc.hit_rate else f"{pc.hit_rate:.1%}",
        "prefill tok saved": f"{pc.prefill_tokens_saved:,}",
        "prefix evictions": f"{pc.evictions:,}",
        "cached KV at end GiB": f"{kv:.3g}",
    }


def plan_frame(table: pd.DataFrame, costs: Mapping[str, DesignCost]) -> pd.DataFrame:
    """Rows of the ``sunsim plan`` table from :meth:`~sunsim.planner.PlanResult.table` rows
    at one point, one column per design (strings)."""
    money_rows = cost_rows(costs)
    cols = {}
    for _, r in table.iterrows():
        mode = str(r["mode"])
        cols[mode] = {
            "GPUs prefill+decode": (
                f"{r['num_gpus']} co-located"
                if r.get("num_colocated_gpus")
                else f"{r['num_prefill_gpus']}+{r['num_decode_gpus']}={r['num_gpus']}"
            ),
            "decode workers/pool": str(
                r["decode_workers"] or f"co-located {r['colocated_workers']}"
            ),
            "prefill workers/pool": str(r["prefill_workers"]),
            **money_rows.get(mode, {}),
            "SLO attainment": f"{r['slo_attainment']:.1%}",
            "TTFT p90 ms": ms(r["ttft_s_p90"]),
            "TPOT p50/90 ms": ms(r["tpot_s_p50"], r["tpot_s_p90"]),
            "tok/s per GPU": f"{r['throughput_per_gpu']:.1f}",
            "step times": str(r["method"]).split(" (")[0],
        }
    return pd.DataFrame(cols)


def step_time_sources(methods: Mapping[str, str]) -> str:
    """Where each design's step times came from, in one line, designs with the same source
    together: ``step times: partitioned, sun: measured (aiconfigurator-core 0.12.0, vllm
    0.24.0, h100_sxm) | qsun: derived (...); prefill measured (...)``. ``methods``: design ->
    its :attr:`~sunsim.metrics.RunSummary.method` (the full label, never shortened)."""
    by: dict[str, list[str]] = {}
    for mode, method in methods.items():
        by.setdefault(str(method), []).append(mode)
    return "step times: " + " | ".join(f"{', '.join(ms)}: {m}" for m, ms in by.items())


def print_compact(df: pd.DataFrame, title: str) -> None:
    """Print ``df`` (rows x designs, strings), the title on its own line(s) above it (so a
    long title wraps instead of widening the table: :func:`sunsim.cli.format.print_table`)."""
    if title:
        console.print(title, highlight=False, soft_wrap=True, markup=False)
    print_table(df, "")


def sweep_frame(r: Any) -> pd.DataFrame:
    """Rows of the sweep table: per sweep point (value and load in req/s), per design
    ``GPUs (decode) tok/s/GPU``."""
    df = r.table()
    key = r.options.sweep[0]
    rates = {pp.sweep_value: pp.workload_info.get("mean_rate") for pp in r.points}
    rows = {}
    for v, g in df.groupby("sweep_value", sort=True):
        rate = rates.get(v)
        label = f"{key} {v:g}" + (f" ({rate:.3g} req/s)" if key == "rate_scale" and rate else "")
        if key == "request_rate":
            label = f"{v:g} req/s"
        rows[label] = {
            str(
                x["mode"]
            ): f"{x['num_gpus']} ({x['num_decode_gpus']}) {x['throughput_per_gpu']:.0f}"
            for _, x in g.iterrows()
        }
    return pd.DataFrame(rows).T


def as_costs(summaries: Mapping[str, Any], scenario: Any) -> dict[str, DesignCost]:
    """The designs' costs for ``scenario``'s GPU and ``[cost]`` prices."""
    from sunsim.metrics.cost import design_costs

    return design_costs(summaries, scenario.gpu, scenario.gpu_prices)


def gpu_title(scenario: Any, costs: Mapping[str, DesignCost]) -> tuple[str, str]:
    """(where, prices) for a table title: ``h100`` and ``$2.5/GPU-hour``, or with pools on
    their own GPUs ``prefill h100, decode h200`` and ``$2.5 H100, $3.2 H200 per GPU-hour``."""
    prices: dict[str, float] = {}
    for c in costs.values():
        prices.update(c.gpu_hour_usd)
    where = scenario.gpu
    if scenario.prefill_gpu is not None or scenario.decode_gpu is not None:
        where = f"prefill {scenario.pool_gpu('prefill')}, decode {scenario.pool_gpu('decode')}"
    if len(prices) == 1:
        return where, f"${next(iter(prices.values())):g}/GPU-hour"
    return where, ", ".join(f"${v:g} {g.upper()}" for g, v in prices.items()) + " per GPU-hour"
