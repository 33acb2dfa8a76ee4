"""What one sweep point does where it runs (a Dask worker, or any executor's process):
:func:`run_point` replays or plans the point's scenario and returns its rows of the results
table. Everything it needs comes in its arguments; it reads the trace from the scenario's path
(on a cluster, a path every worker can read) and never imports dask."""

from __future__ import annotations

import json
import time
from typing import Any

from sunsim.config import Scenario
from sunsim.errors import SunsimError


def summary_row(summary: Any) -> dict[str, Any]:
    """One replay mode's headline figures (a :class:`~sunsim.metrics.RunSummary`) as flat
    columns: GPUs, request counts, TTFT/TPOT/ITL/E2E percentiles (seconds), throughput
    (output tokens/s, per GPU, requests/s), SLO attainment and whether it met the target,
    decode and prefill utilisation, and the simulator's event count and simulated end time
    (seconds). Wall-clock time is left out: the table holds results, which repeat exactly."""
    s = summary
    lat = s.latency_s
    row: dict[str, Any] = {
        "mode": s.mode,
        "num_prefill_gpus": s.gpus.prefill,
        "num_decode_gpus": s.gpus.decode,
        "num_gpus": s.gpus.total,
        "decode_workers": ",".join(map(str, s.gpus.decode_per_pool)),
        "prefill_workers": ",".join(map(str, s.gpus.prefill_per_model)),
        "requests": s.requests.total,
        "finished": s.requests.finished,
        "rejected": s.requests.rejected,
        "preemptions": s.requests.preemptions,
    }
    for k in ("ttft", "tpot", "itl", "e2e"):
        for q in (50, 90, 99):
            name = f"{k}_s_p{q}"
            row[name] = getattr(lat, name)
    row.update(
        {
            "throughput_tok_s": s.throughput.output_tokens_per_s,
            "throughput_per_gpu": s.throughput.output_tokens_per_s_per_gpu,
            "requests_per_s": s.throughput.requests_per_s,
            "slo_attainment": s.slo.attainment,
            "slo_met": s.slo.met,
            "decode_busy_frac": s.decode.busy_frac_mean,
            "decode_batch_mean": s.decode.batch_size_mean,
            "kv_occupancy_mean": s.decode.kv_occupancy_mean,
            "prefill_busy_frac": s.prefill.busy_frac_mean,
            "sim_events": s.sim.events,
            "sim_end_s": s.sim.sim_end_s,
            "method": s.method,
        }
    )
    return row


#: The cost columns every sweep row carries (US dollars).
COST_KEYS = ("usd_per_hour", "usd_per_million_output_tokens", "gpu_hour_usd")


def cost_columns(summaries: dict[str, Any], s: Scenario) -> dict[str, dict[str, Any]]:
    """Mode -> ``usd_per_hour``, ``usd_per_million_output_tokens``, ``gpu_hour_usd`` and
    ``request_rate`` (req/s offered) of each run, at ``s``'s GPU and ``[cost]`` prices
    (:func:`sunsim.metrics.cost.design_costs`); NaN for a GPU without a price."""
    from sunsim.errors import ConfigError
    from sunsim.metrics.cost import design_costs

    try:
        costs = design_costs(summaries, s.gpu, s.gpu_prices)
    except ConfigError:  # no price for this GPU: the figures stand, the cost is unknown
        nan = float("nan")
        return {m: dict.fromkeys(COST_KEYS, nan) for m in summaries}
    return {
        m: {
            "usd_per_hour": c.usd_per_hour,
            "usd_per_million_output_tokens": c.usd_per_million_output_tokens,
            "gpu_hour_usd": c.gpu_hour_usd[s.gpu],
        }
        for m, c in costs.items()
    }


def _plain(o: Any) -> Any:
    return o.item() if hasattr(o, "item") and callable(o.item) else str(o)


def _replay(s: Scenario) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    from sunsim.replay import run_replay

    r = run_replay(s)
    cost = cost_columns(dict(r.summaries), s)
    rate = r.workload.info.get("mean_rate")
    rows = [
        {**summary_row(r.summaries[mode]), **cost[mode], "request_rate": rate} for mode in s.modes
    ]
    return rows, {"simulations": len(s.modes), "cached_simulations": 0}


def _plan(
    s: Scenario, plan_table: dict[str, Any], cache_dir: str | None
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    import dataclasses

    from sunsim.planner import plan, plan_options_from_dict

    opts = plan_options_from_dict(plan_table, source="[plan]")
    opts = dataclasses.replace(opts, jobs=1, cache_dir=cache_dir)
    r = plan(s, opts)
    rows = []
    for i, pp in enumerate(r.points):
        cost = cost_columns({m: mp.summary for m, mp in pp.modes.items()}, pp.scenario)
        rate = pp.workload_info.get("mean_rate")
        for row in r.table(i).to_dict(orient="records"):
            rows.append({**row, **cost[str(row["mode"])], "request_rate": rate})
    return rows, {"simulations": r.num_simulations, "cached_simulations": r.num_cached}


def run_point(
    kind: str, scenario: Scenario, plan_table: dict[str, Any], cache_dir: str | None
) -> dict[str, Any]:
    """Run one point: ``kind`` ``replay`` (every mode of ``scenario``, one row per mode:
    :func:`summary_row`) or ``plan`` (:func:`sunsim.planner.plan` with the ``[plan]`` table,
    serially in this process, its simulations cached in ``cache_dir``; one row per mode (and
    inner sweep value): :meth:`~sunsim.planner.PlanResult.table`).

    Every row also holds :data:`COST_KEYS` (:func:`cost_columns`) and ``request_rate``
    (req/s offered at that point).

    Returns ``{"rows": [...], "error": None | message, "wall_s": seconds, "simulations":
    n, "cached_simulations": n}``; rows hold plain JSON values. A
    :class:`~sunsim.errors.SunsimError` (an SLO no worker count meets, a trace this worker
    cannot read) is returned as ``error`` with no rows, not raised: one point failing does
    not stop a sweep. Anything else (a bug) is raised.
    """
    t0 = time.perf_counter()
    try:
        if kind == "replay":
            rows, stats = _replay(scenario)
        else:
            rows, stats = _plan(scenario, plan_table, cache_dir)
    except SunsimError as e:
        return {"rows": [], "error": str(e), "wall_s": time.perf_counter() - t0}
    plain = json.loads(json.dumps(rows, default=_plain))
    return {"rows": plain, "error": None, "wall_s": time.perf_counter() - t0, **stats}
