"""The machine-readable summary of a replay or a plan: what ``--json`` prints, and what
``summary.json`` / ``plan.json`` hold under ``designs`` and ``comparison.csv`` holds as rows.

Shape (schema :data:`~sunsim.metrics.benchmark.SCHEMA_VERSION`)::

    {"schema_version": 1, "kind": "replay" | "plan", "sunsim_version": "...",
     "gpu": "h100", "price_source": "...",
     "trace": {"path", "format", "num_requests", "span_s"},
     "request_rate": <offered req/s>,
     "slo": {"ttft_ms", "tpot_ms", "attainment_pct"},
     "designs": {<design>: {<metric>: <number>, ...}},        # vLLM names, see benchmark
     "step_times": {<design>: {"method", "prefill", "decode"}},  # where step times came from
     "sweep": [{"key", "value", "request_rate", "designs"}]}  # plans with --sweep only

Every metric of ``designs`` is a number (or null: not measured), never a display string.
``step_times`` says where each design's step times came from: ``method`` the full label
(``measured (aiconfigurator-core 0.12.0, vllm 0.24.0, h100_sxm)``, ``derived (...)``,
``analytic (calibrated on ...)``; ``...; prefill <label>`` when prefill's differs) and the
description of each role's latency model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sunsim import __version__
from sunsim.metrics.benchmark import SCHEMA_VERSION, design_metrics
from sunsim.metrics.cost import design_costs
from sunsim.runs.stream import result_records
from sunsim.serialize import jsonable
from sunsim.specs.pricing import price_source

if TYPE_CHECKING:
    from sunsim.config import Scenario
    from sunsim.engine.cluster import SimResult
    from sunsim.metrics import RunSummary
    from sunsim.planner.results import PlanResult, PointPlan
    from sunsim.replay import ReplayResult


def _itl(res: SimResult | None) -> Any:
    if res is None:
        return None
    from sunsim.engine.cluster import itl_bin_edges

    return res.itl_hist, itl_bin_edges()


def designs_metrics(
    s: Scenario, summaries: dict[str, RunSummary], results: dict[str, SimResult | None]
) -> dict[str, dict[str, Any]]:
    """Design -> :func:`~sunsim.metrics.benchmark.design_metrics` with cost, from the runs'
    summaries and (where kept) their simulation results."""
    costs = design_costs(summaries, s.gpu, s.gpu_prices)
    out = {}
    for mode, summ in summaries.items():
        res = results.get(mode)
        rec = result_records(res) if res is not None else None
        out[mode] = design_metrics(summ, costs[mode], rec, _itl(res))
    return out


def step_times(summaries: dict[str, RunSummary]) -> dict[str, dict[str, str]]:
    """Design -> ``{"method", "prefill", "decode"}``: the full step-time label and each role's
    latency model description (module docstring)."""
    return {
        mode: {"method": x.method, "prefill": x.latency.prefill, "decode": x.latency.decode}
        for mode, x in summaries.items()
    }


def trace_json(info: dict[str, Any]) -> dict[str, Any]:
    """The ``trace`` object of a machine-readable summary: ``path``, ``format``,
    ``num_requests``, ``span_s`` of the workload's ``info`` (None where it has none)."""
    return {k: info.get(k) for k in ("path", "format", "num_requests", "span_s")}


def slo_json(s: Scenario) -> dict[str, Any]:
    """The ``slo`` object of a machine-readable summary: ``ttft_ms``, ``tpot_ms`` and
    ``attainment_pct`` of the scenario's SLO."""
    return {
        "ttft_ms": s.slo_ttft_s * 1e3,
        "tpot_ms": s.slo_tpot_s * 1e3,
        "attainment_pct": s.slo_attainment * 100,
    }


def _head(kind: str, s: Scenario, info: dict[str, Any]) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": kind,
        "sunsim_version": __version__,
        "gpu": s.gpu,
        "price_source": price_source(s.gpu, s.gpu_prices),
        "trace": trace_json(info),
        "request_rate": info.get("mean_rate"),
        "slo": slo_json(s),
    }


def replay_results(r: ReplayResult) -> dict[str, Any]:
    """The machine-readable summary of a replay (module docstring), JSON-ready."""
    out = _head("replay", r.scenario, r.workload.info)
    out["designs"] = designs_metrics(r.scenario, r.summaries, dict(r.results))
    out["step_times"] = step_times(r.summaries)
    result: dict[str, Any] = jsonable(out)
    return result


def _point(pp: PointPlan) -> dict[str, dict[str, Any]]:
    sums = {m: mp.summary for m, mp in pp.modes.items()}
    return designs_metrics(pp.scenario, sums, {m: mp.result for m, mp in pp.modes.items()})


def plan_results(r: PlanResult) -> dict[str, Any]:
    """The machine-readable summary of a plan (module docstring): ``designs`` at the
    reference point (each design at its planned size), ``sweep`` over every point."""
    ref = r.points[r.reference]
    out = _head("plan", ref.scenario, ref.workload_info)
    out["designs"] = _point(ref)
    out["step_times"] = step_times({m: mp.summary for m, mp in ref.modes.items()})
    if r.options.sweep is not None:
        out["sweep"] = [
            {
                "key": r.options.sweep[0],
                "value": pp.sweep_value,
                "request_rate": pp.workload_info.get("mean_rate"),
                "designs": _point(pp),
            }
            for pp in r.points
        ]
    result: dict[str, Any] = jsonable(out)
    return result
