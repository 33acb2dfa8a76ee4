"""The report's answer: one sentence and one table (design, GPUs by pool, $/h, $/M output
tokens, SLO attainment, TTFT/TPOT p90, saving against partitioned), and the context beside
it (SLO, trace, load in req/s, step-time provenance, price per GPU-hour).

Costs come from :func:`sunsim.metrics.cost.design_costs`, with the GPU and the ``[cost]``
prices of the run's ``scenario.toml`` (defaults: :mod:`sunsim.specs.pricing`).
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from typing import Any

import pandas as pd

from sunsim.metrics.cost import DesignCost, design_costs, gpus_by_type_text, saving_text
from sunsim.metrics.summary import RunSummary
from sunsim.report.tables import reference_point, slo_bounds
from sunsim.runs import RunData


@dataclass(frozen=True)
class Answer:
    """``sentence``: the answer in one sentence; ``table``: one row per design (display
    strings, see :func:`answer_table`); ``context``: (label, value) rows shown beside it;
    ``costs``: design -> :class:`DesignCost`; ``gpu``: the GPU priced."""

    sentence: str
    table: pd.DataFrame
    context: list[tuple[str, str]]
    costs: dict[str, DesignCost]
    gpu: str


def scenario_gpu_prices(run: RunData) -> tuple[str, dict[str, float]]:
    """The run's GPU and its ``[cost] gpu_hour_usd`` table from ``scenario.toml`` (``h100``
    and no overrides when the file is missing or unreadable)."""
    try:
        data = tomllib.loads(run.scenario_toml) if run.scenario_toml else {}
    except tomllib.TOMLDecodeError:
        data = {}
    gpu = str((data.get("cluster") or {}).get("gpu", "h100"))
    prices = (data.get("cost") or {}).get("gpu_hour_usd") or {}
    return gpu, {str(k): float(v) for k, v in prices.items() if isinstance(v, (int, float))}


def load_rps(run: RunData) -> float:
    """The offered load in requests per second (the trace's arrivals over its span, after
    ``rate_scale``); NaN when unknown."""
    src = reference_point(run) if run.kind == "plan" else run.meta
    trace = src.get("trace") if isinstance(src.get("trace"), dict) else {}
    try:
        return float(trace.get("mean_rate"))
    except (TypeError, ValueError):
        return math.nan


def _ms(x: float) -> str:
    return "-" if x != x else f"{x * 1e3:.3g}"


def _gpus(s: RunSummary) -> str:
    g = s.gpus
    if g.colocated:  # one count per co-located pool, no prefill or decode pools
        per = ",".join(map(str, g.colocated_per_pool))
        kind = f" {g.decode_gpu.upper()}" if g.decode_gpu else ""
        return f"co-located{kind} {per} = {g.total}"
    pre = ",".join(map(str, g.prefill_per_model))
    dec = ",".join(map(str, g.decode_per_pool))
    if g.prefill_gpu:  # heterogeneous pools: each pool's GPU type
        pre, dec = f"{pre} {g.prefill_gpu.upper()}", f"{dec} {g.decode_gpu.upper()}"
    return f"{pre} + {dec} = {g.total}"


def answer_table(summaries: dict[str, RunSummary], costs: dict[str, DesignCost]) -> pd.DataFrame:
    """One row per design: ``design``, ``GPUs (prefill per model + decode per pool)``,
    ``$/hour``, ``$/M output tokens``, ``SLO attainment``, ``TTFT p90 (ms)``,
    ``TPOT p90 (ms)``, ``saving vs partitioned`` -- display strings."""
    rows = []
    for mode, s in summaries.items():
        c = costs[mode]
        rows.append(
            {
                "design": mode,
                "GPUs (prefill per model + decode per pool)": _gpus(s),
                "$/hour": f"{c.usd_per_hour:,.2f}",
                "$/M output tokens": (
                    "-"
                    if c.usd_per_million_output_tokens != c.usd_per_million_output_tokens
                    else f"{c.usd_per_million_output_tokens:,.2f}"
                ),
                "SLO attainment": f"{s.slo.attainment:.1%}",
                "TTFT p90 (ms)": _ms(s.latency_s.ttft_s_p90),
                "TPOT p90 (ms)": _ms(s.latency_s.tpot_s_p90),
                "saving vs partitioned": saving_text(c, mode),
            }
        )
    return pd.DataFrame(rows)


def _cheapest(summaries: dict[str, RunSummary], costs: dict[str, DesignCost]) -> list[str]:
    """Designs meeting the SLO, cheapest first ($/h, then $/M tokens)."""
    ok = [m for m, s in summaries.items() if s.slo.met]

    def key(m: str) -> tuple[float, float]:
        c = costs[m]
        per_m = c.usd_per_million_output_tokens
        return c.usd_per_hour, per_m if per_m == per_m else math.inf

    return sorted(ok, key=key)


def _sentence(run: RunData, summaries: dict[str, RunSummary], costs: dict[str, DesignCost],
              gpu: str) -> str:  # fmt: skip
    rate = load_rps(run)
    at = f" at {rate:.3g} req/s" if rate == rate else ""
    ranked = _cheapest(summaries, costs)
    missed = [m for m in summaries if m not in ranked]
    miss = (
        "; " + ", ".join(f"{m} misses it ({summaries[m].slo.attainment:.1%})" for m in missed)
        if missed
        else ""
    )
    if not ranked:
        return (
            f"No design meets the SLO{at} with these GPUs"
            + miss
            + "; `sunsim plan` finds the GPUs each design needs."
        )
    best = ranked[0]
    c, s = costs[best], summaries[best]
    sizes = {tuple(sorted(x.gpus_by_type.items())) for x in costs.values()}  # GPUs by type
    if run.kind == "replay" and len(sizes) == 1:
        return _same_size(summaries, costs, ranked, missed, gpu, at)
    head = (
        f"Cheapest design meeting the SLO{at}: {best}, with {gpus_by_type_text(c.gpus_by_type)} "
        f"GPUs at ${c.usd_per_hour:,.2f}/h (${c.usd_per_million_output_tokens:,.2f} per "
        "million output tokens)"
    )
    base = costs.get("partitioned")
    if best != "partitioned" and base is not None and c.saving_pct == c.saving_pct:
        part = (
            f"partitioned ({summaries['partitioned'].gpus.total} GPUs, ${base.usd_per_hour:,.2f}/h"
        )
        part += f", ${base.usd_per_million_output_tokens:,.2f}/M tokens)"
        if abs(c.saving_pct) < 0.05:
            head += f", the same GPUs and $/h as {part}"
        else:
            word = "less" if c.saving_pct > 0 else "more"
            head += f", {abs(c.saving_pct):.0f}% {word} per hour than {part}"
    if run.kind == "replay":
        head += " (each design at the replay's worker counts, not sized)"
    base_s = summaries.get("partitioned")
    if base_s is not None and best != "partitioned" and s.method != base_s.method:
        head += (
            f" (not like for like: {best}'s step times are {s.method.split(' (')[0]}, "
            f"partitioned's {base_s.method.split(' (')[0]})"
        )
    return head + miss + "."


def _same_size(
    summaries: dict[str, RunSummary],
    costs: dict[str, DesignCost],
    ranked: list[str],
    missed: list[str],
    gpu: str,
    at: str,
) -> str:
    """The answer of a replay whose designs all have the same GPUs: who meets the SLO, and
    the cheapest per million output tokens among them."""
    first = next(iter(costs.values()))
    per_h = first.usd_per_hour
    who = ", ".join(ranked[:-1]) + (" and " if len(ranked) > 1 else "") + ranked[-1]
    verb = "meets" if len(ranked) == 1 else "meet"
    gpus = gpus_by_type_text(first.gpus_by_type)
    out = f"With {gpus} GPUs per design (${per_h:,.2f}/h){at}, {who} {verb} the SLO"
    if missed:
        out += " and " + ", ".join(
            f"{m} does not ({summaries[m].slo.attainment:.1%} within it)" for m in missed
        )
    by_token = sorted(ranked, key=lambda m: costs[m].usd_per_million_output_tokens)
    best = by_token[0]
    out += (
        f"; the lowest cost per million output tokens is {best}'s, "
        f"${costs[best].usd_per_million_output_tokens:,.2f}"
    )
    if "partitioned" in costs and best != "partitioned":
        out += f" (partitioned ${costs['partitioned'].usd_per_million_output_tokens:,.2f})"
    return out + ". Same GPUs for every design: `sunsim plan` sizes each one."


def _prices(costs: dict[str, DesignCost]) -> str:
    """Every priced GPU type: ``$3.95 per H100-hour, $5.04 per H200-hour (source)``."""
    prices: dict[str, float] = {}
    for c in costs.values():
        prices.update(c.gpu_hour_usd)
    src = "; ".join(dict.fromkeys(c.price_source for c in costs.values()))
    each = ", ".join(f"${v:g} per {g.upper()}-hour" for g, v in prices.items())
    return f"{each} ({src})"


def _provenance(summaries: dict[str, RunSummary]) -> str:
    """Step-time methods by design: ``partitioned, sun: measured (...); qsun: analytic``."""
    by: dict[str, list[str]] = {}
    for mode, s in summaries.items():
        by.setdefault(s.method, []).append(mode)
    return "; ".join(f"{', '.join(ms)}: {method}" for method, ms in by.items())


def build_answer(run: RunData) -> Answer:
    """The :class:`Answer` of a replay run or plan directory."""
    gpu, prices = scenario_gpu_prices(run)
    costs = design_costs(run.summaries, gpu, prices)
    ttft, tpot, target = slo_bounds(run)
    rate = load_rps(run)
    src = reference_point(run) if run.kind == "plan" else run.meta
    trace: dict[str, Any] = src.get("trace") if isinstance(src.get("trace"), dict) else {}
    price = next(iter(costs.values()), None)
    context = [
        (
            "SLO",
            f"TTFT <= {(ttft or math.nan) * 1e3:g} ms and TPOT <= {(tpot or math.nan) * 1e3:g}"
            f" ms for {target:.0%} of requests",
        ),
        (
            "trace",
            f"{trace.get('path', '?')} ({trace.get('num_requests', '?')} requests over "
            f"{float(trace.get('span_s') or math.nan):,.0f} s)",
        ),
        ("load", f"{rate:.3g} req/s" if rate == rate else "?"),
        ("step times", _provenance(run.summaries) or run.method),
        ("price", _prices(costs) if price else "?"),
    ]
    return Answer(
        sentence=_sentence(run, run.summaries, costs, gpu),
        table=answer_table(run.summaries, costs),
        context=context,
        costs=costs,
        gpu=gpu,
    )
