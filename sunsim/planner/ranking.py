"""The planner's question across GPU types: for each design, the cheapest configuration that
meets the SLO, and the designs ranked by what it costs.

:func:`plan_gpus` plans every design of the scenario on every GPU type given (one
:func:`~sunsim.planner.plan` per GPU and design, so that a GPU on which one design cannot
meet the SLO -- a TPOT bound below its decode step, a model that does not fit -- still
ranks the others; simulations the designs share, such as the prefill searches, come from
the one result cache). Each planned configuration is by construction the fewest workers
meeting the SLO on that GPU; its cost is :func:`sunsim.metrics.cost.design_costs` at that
GPU's price per GPU-hour. Per design (and sweep point) the **cheapest** is the one with the
lowest ``usd_per_hour`` (ties: lower ``usd_per_million_output_tokens``, then the GPU named
first in ``gpus``); the designs are **ranked** by that ``usd_per_hour`` (same ties), and
each is compared with ``partitioned`` at *its* cheapest GPU (``saving_pct_vs_partitioned``
= 100 x (partitioned's $/hour - the design's) / partitioned's; NaN without partitioned).
Since every design serves the same trace at the same load, ranking by $/hour and by $ per
million output tokens agree up to the throughput each measured window gives.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import time
from dataclasses import dataclass
from typing import Any

import pandas as pd

from sunsim.cache import ResultCache
from sunsim.config import Scenario
from sunsim.errors import ConfigError, SunsimError
from sunsim.planner.driver import OnEvent, pick_executor
from sunsim.planner.options import PlanOptions, scenario_with
from sunsim.planner.planning import plan
from sunsim.planner.results import PlanResult

#: The design savings are measured against.
BASELINE = "partitioned"


def parse_gpus(text: str, option: str = "--gpus") -> tuple[str, ...]:
    """``h100,h200,a100`` -> GPU names (sunsim names, aliases resolved, order kept, no
    repeats). Raises :class:`~sunsim.errors.ConfigError` naming ``option`` for an empty list
    or an unknown GPU."""
    from sunsim.specs.hardware import GPU_ALIASES, GPUS

    names: list[str] = []
    for item in text.split(","):
        raw = item.strip().lower()
        if not raw:
            continue
        name = GPU_ALIASES.get(raw, raw)
        if name not in GPUS:
            raise ConfigError(f"{option}: unknown GPU '{item.strip()}'; known: {', '.join(GPUS)}")
        if name not in names:
            names.append(name)
    if not names:
        raise ConfigError(f"{option}: no GPU named; e.g. {option} h100,h200,a100")
    return tuple(names)


@dataclass
class GpuPlans:
    """What :func:`plan_gpus` returns: the scenario and options, the GPUs tried (in order),
    ``plans[gpu][design]`` (each a :class:`~sunsim.planner.PlanResult` of that design
    alone), ``failures[gpu][design]`` (the one-line reason a design has no plan on a GPU),
    and the seconds it took."""

    scenario: Scenario
    options: PlanOptions
    gpus: tuple[str, ...]
    plans: dict[str, dict[str, PlanResult]]
    failures: dict[str, dict[str, str]]
    wall_s: float

    @property
    def num_simulations(self) -> int:
        """Simulations run over every plan."""
        return sum(r.num_simulations for by in self.plans.values() for r in by.values())

    @property
    def num_cached(self) -> int:
        """Simulations answered from the cache over every plan."""
        return sum(r.num_cached for by in self.plans.values() for r in by.values())

    def table(self) -> pd.DataFrame:
        """One row per (GPU, design, sweep point) planned: ``gpu``, ``request_rate`` (req/s
        offered), the :meth:`~sunsim.planner.PlanResult.table` columns (less the savings,
        which need both designs on one GPU), ``usd_per_hour``,
        ``usd_per_million_output_tokens``, ``gpu_hour_usd`` (price used), ``price_source``,
        ``method`` (step-time provenance); then ``cheapest`` (the design's cheapest GPU at
        that point) and ``rank`` (of the design at that point; NaN when not cheapest)."""
        rows = []
        for gpu in self.gpus:
            for r in self.plans.get(gpu, {}).values():
                rows.extend(_plan_rows(gpu, r))
        df = pd.DataFrame(rows)
        if not len(df):
            return df
        return _mark_cheapest(df, self.gpus)

    def ranking(self) -> pd.DataFrame:
        """The cheapest configuration of each design, ranked (per sweep point): the rows of
        :meth:`table` with ``cheapest``, sorted by ``sweep_value`` (sweeps) and ``rank``, with
        ``saving_usd_per_hour_vs_partitioned`` and ``saving_pct_vs_partitioned`` against
        partitioned's cheapest configuration at the same point."""
        df = self.table()
        if not len(df):
            return df
        best = df[df["cheapest"]].copy()
        keys = ["sweep_value", "rank"] if "sweep_value" in best else ["rank"]
        best = best.sort_values(keys, ignore_index=True)
        return _with_savings(best)


def _plan_rows(gpu: str, r: PlanResult) -> list[dict[str, Any]]:
    """The rows of one design's plan on ``gpu``, with cost and load."""
    from sunsim.metrics.cost import design_costs

    out = []
    for i, pp in enumerate(r.points):
        summaries = {m: mp.summary for m, mp in pp.modes.items()}
        costs = design_costs(summaries, gpu, r.scenario.gpu_prices)
        tab = r.table(i)
        tab = tab.drop(columns=[c for c in tab.columns if "_vs_partitioned" in c])
        for row in tab.to_dict(orient="records"):
            c = costs[str(row["mode"])]
            out.append(
                {
                    "gpu": gpu,
                    "request_rate": pp.workload_info.get("mean_rate"),
                    **row,
                    "usd_per_hour": c.usd_per_hour,
                    "usd_per_million_output_tokens": c.usd_per_million_output_tokens,
                    "gpu_hour_usd": c.gpu_hour_usd[gpu],
                    "price_source": c.price_source,
                }
            )
    return out


def _mark_cheapest(df: pd.DataFrame, gpus: tuple[str, ...]) -> pd.DataFrame:
    """Add ``cheapest`` (per design and point: lowest $/hour, then $/M tokens, then GPU
    order) and ``rank`` (designs by their cheapest $/hour at each point, from 1)."""
    df = df.assign(_gpu_order=df["gpu"].map({g: i for i, g in enumerate(gpus)}))
    point = ["sweep_value"] if "sweep_value" in df else []
    order = ["usd_per_hour", "usd_per_million_output_tokens", "_gpu_order"]
    df = df.sort_values(point + ["mode"] + order, ignore_index=True, na_position="last")
    df["cheapest"] = ~df.duplicated(point + ["mode"], keep="first")
    best = df[df["cheapest"]].sort_values(point + order + ["mode"])
    ranks = (
        best.groupby(point, sort=False).cumcount() + 1
        if point
        else pd.Series(range(1, len(best) + 1), index=best.index)
    )
    df["rank"] = float("nan")
    df.loc[best.index, "rank"] = ranks.astype(float)
    return df.drop(columns="_gpu_order")


def _with_savings(best: pd.DataFrame) -> pd.DataFrame:
    """``best`` (cheapest rows) with the saving against partitioned's cheapest at the same
    point: dollars per hour and percent (NaN without partitioned)."""
    point = ["sweep_value"] if "sweep_value" in best else []
    base = best[best["mode"] == BASELINE]
    if point:
        ref = best[point].merge(base[point + ["usd_per_hour"]], on=point, how="left")
        ref_cost = ref["usd_per_hour"].to_numpy(dtype=float)
    else:
        v = float(base["usd_per_hour"].iloc[0]) if len(base) else float("nan")
        ref_cost = [v] * len(best)
    best["saving_usd_per_hour_vs_partitioned"] = ref_cost - best["usd_per_hour"].to_numpy(float)
    best["saving_pct_vs_partitioned"] = (
        100.0 * best["saving_usd_per_hour_vs_partitioned"] / ref_cost
    )
    return best


def plan_gpus(
    s: Scenario,
    gpus: tuple[str, ...],
    options: PlanOptions = PlanOptions(),
    *,
    on_event: OnEvent | None = None,
    executor: cf.Executor | None = None,
    cache: ResultCache | None = None,
) -> GpuPlans:
    """Plan every design of ``s`` on every GPU of ``gpus`` (module docstring).

    Args:
        s: the scenario (its ``gpu`` is replaced by each of ``gpus``; everything else,
            tensor parallel sizes and ``[cost]`` prices included, applies on every GPU).
        gpus: sunsim GPU names (:func:`parse_gpus`).
        options, on_event, executor, cache: as :func:`~sunsim.planner.plan`; one executor
            and one cache serve every plan.

    Returns:
        a :class:`GpuPlans`; a design that cannot meet the SLO on a GPU (a
        :class:`~sunsim.errors.SunsimError` from its plan) is in ``failures``.

    Raises:
        ConfigError: no design meets the SLO on any GPU (the message lists why per GPU),
            or the errors of :func:`~sunsim.planner.plan` that do not depend on the GPU.
    """
    t0 = time.perf_counter()
    cache = cache if cache is not None else ResultCache(options.cache_dir, "plan")
    pool, owned = pick_executor(executor, options.jobs or os.cpu_count() or 1)
    plans: dict[str, dict[str, PlanResult]] = {}
    failures: dict[str, dict[str, str]] = {}
    try:
        for gpu in gpus:
            for mode in s.modes:
                try:  # a GPU the scenario cannot run on (fp8 on the A100) is a failure too
                    one = scenario_with(s, gpu=gpu, modes=(mode,))
                    r = plan(one, options, on_event=on_event, executor=pool, cache=cache)
                except SunsimError as e:
                    failures.setdefault(gpu, {})[mode] = str(e)
                    continue
                plans.setdefault(gpu, {})[mode] = r
    finally:
        if owned and pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    if not plans:
        why = "; ".join(f"{g} {m}: {e}" for g, by in failures.items() for m, e in by.items())
        raise ConfigError(f"no design meets the SLO on any of {', '.join(gpus)}: {why}")
    return GpuPlans(s, options, tuple(gpus), plans, failures, time.perf_counter() - t0)
