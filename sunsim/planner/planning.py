""":func:`plan`: load the workloads and latency models, check the SLO is reachable, run every
point's searches (and a rate sweep's goodput) through one driver, and gather the result."""

from __future__ import annotations

import concurrent.futures as cf
import os
import time
from typing import Any

import pandas as pd

from sunsim.cache import Fingerprints, ResultCache
from sunsim.config import Scenario
from sunsim.errors import ConfigError
from sunsim.planner.bounds import check_feasible
from sunsim.planner.driver import Chain, Driver, OnEvent, pick_executor
from sunsim.planner.goodput import goodput_chain, goodput_frame
from sunsim.planner.options import PlanOptions, scenario_with
from sunsim.planner.points import PlanContext, PointPlanner
from sunsim.planner.results import PlanResult, PointPlan

#: Per sweep point: (workload key, time factor on its arrival times, its Workload).
_WorkloadMeta = tuple[str, float, Any]


def _point_scenarios(s: Scenario, options: PlanOptions) -> list[tuple[float | None, Scenario]]:
    """(sweep value, scenario) per point; one (None, s) without a sweep."""
    if options.sweep is None:
        return [(None, s)]
    key, values = options.sweep
    if key == "request_rate":  # the load in req/s replaces any rate scale, and vice versa
        return [(v, scenario_with(s, request_rate=float(v), rate_scale=1.0)) for v in values]
    if key == "rate_scale":
        return [(v, scenario_with(s, rate_scale=float(v), request_rate=None)) for v in values]
    return [(v, scenario_with(s, **{key: float(v)})) for v in values]


def point_rate_scale(ps: Scenario, native_rate: float) -> float:
    """The factor point ``ps`` multiplies the trace's own rate by: its ``rate_scale``, or its
    ``request_rate`` (req/s) / ``native_rate`` (the trace's mean rate at rate scale 1)."""
    if ps.request_rate is not None:
        return float(ps.request_rate) / native_rate
    return float(ps.rate_scale)


def _reference_index(s: Scenario, options: PlanOptions, n: int) -> int:
    """The point at the scenario's own sweep value (else the last of ``n``)."""
    if options.sweep is None:
        return 0
    key, values = options.sweep
    own = getattr(s, key)
    for i, v in enumerate(values):
        if own is not None and abs(float(v) - float(own)) < 1e-12:
            return i
    return n - 1


def _load_workloads(
    s: Scenario, options: PlanOptions, points: list[tuple[float | None, Scenario]]
) -> tuple[dict[str, pd.DataFrame], list[_WorkloadMeta]]:
    """One labelled frame per distinct labelling, and per point which one it uses.

    Rate points share one (the rate is applied last by the reader and labelling does not
    depend on arrival times, so a rate point's requests are the trace's frame at rate scale 1
    with ``arrival_s`` times 1 / its rate scale, :func:`point_rate_scale`).
    """
    from sunsim.replay import load_workload

    workloads: dict[str, pd.DataFrame] = {}
    meta: list[_WorkloadMeta] = []
    if options.rate_sweep:
        base = load_workload(native_scenario(s))
        workloads["base"] = base.requests
        native = native_rate(base.info)
        for _, ps in points:
            meta.append(("base", 1.0 / point_rate_scale(ps, native), base))
    else:
        for i, (_, ps) in enumerate(points):
            w = load_workload(ps)
            workloads[f"p{i}"] = w.requests
            meta.append((f"p{i}", 1.0, w))
    return workloads, meta


def native_scenario(s: Scenario) -> Scenario:
    """``s`` at the trace's own rate (rate scale 1, no request rate)."""
    return scenario_with(s, rate_scale=1.0, request_rate=None)


def native_rate(info: dict[str, Any]) -> float:
    """The mean rate (req/s) of trace info read at rate scale 1; ConfigError without one."""
    rate = float(info.get("mean_rate") or float("nan"))
    if not rate > 0:
        raise ConfigError(
            "a sweep over load needs a trace whose arrivals span some time; this one has "
            f"{info.get('num_requests')} requests at one instant"
        )
    return rate


def _resolve_latencies(s: Scenario) -> tuple[dict[str, tuple[Any, Any]], list[str]]:
    """Per mode of ``s``: (prefill, decode) latency models; and the distinct notes on them."""
    from sunsim.replay import resolve_latency

    notes: list[str] = []
    lat: dict[str, tuple[Any, Any]] = {}
    for mode in s.modes:
        cl = s.cluster(mode, [1.0] * len(s.served_models))
        pl, pnote = resolve_latency(s, s.prefill_precision, "prefill")
        dl, dnote = resolve_latency(s, str(cl.decode_precision), "decode")
        lat[mode] = (pl, dl)
        for n in (pnote, dnote):
            if n not in notes:
                notes.append(n)
    return lat, notes


def _latency_by_precision(s: Scenario, lat: dict[str, tuple[Any, Any]]) -> dict[str, Any]:
    """(prefill, decode) latency models by decode precision, from the per-mode ones."""
    return {
        str(s.cluster(mode, [1.0] * len(s.served_models)).decode_precision): lat[mode]
        for mode in s.modes
    }


def _goodput_chains(
    s: Scenario, options: PlanOptions, base_req: pd.DataFrame, served: list[str], native: float
) -> list[Chain]:
    """A rate sweep's goodput chain per mode at the scenario's own worker counts (the decode
    workers split by each model's share of output tokens)."""
    col = base_req["model"].astype(str)
    out_tok = [float(base_req.loc[col == m, "output_tokens"].sum()) for m in served]
    return [
        goodput_chain(s, mode, s.cluster(mode, out_tok), options, served, native)
        for mode in s.modes
    ]


def plan(
    s: Scenario,
    options: PlanOptions = PlanOptions(),
    *,
    on_event: OnEvent | None = None,
    executor: cf.Executor | None = None,
    cache: ResultCache | None = None,
) -> PlanResult:
    """Find, for each mode of ``s`` (and each sweep value), the fewest workers meeting the SLO.

    Args:
        s: the scenario (trace, rate scale, models and labelling, GPU, latency source, SLO,
            seed; its ``prefill_workers``/``decode_workers`` are used only for goodput).
        options: see :class:`~sunsim.planner.options.PlanOptions`.
        on_event: called with ``("submit" | "done", info)`` per simulation, ``("phase",
            {...})`` as searches finish.
        executor: where simulations run: any :class:`concurrent.futures.Executor` (a process
            pool, Dask's ``Client.get_executor()``); it is used, never shut down, and
            ``options.jobs`` is ignored. None: a process pool of ``options.jobs`` processes
            (default: the CPUs), or serially in this process when ``jobs`` is 1 or this is a
            daemon process (a pool or Dask worker) -- so ``plan`` is safe inside a worker.
        cache: where evaluations are looked up and stored (None: a
            :class:`~sunsim.cache.ResultCache` on ``options.cache_dir``, memory only when
            that is None).

    Returns:
        a :class:`~sunsim.planner.results.PlanResult`; its ``jobs`` is the processes the plan
        ran on (1: serially; 0: an executor handed in, whose size it does not know).

    Raises:
        ConfigError: bad options, an SLO no number of workers can meet (message says what
            limits), or the errors of :func:`sunsim.replay.load_workload`.
        TraceError: an unreadable trace.
    """
    _check_plannable(s)
    t0 = time.perf_counter()
    goal = options.prefill_goal(s.slo)
    points = _point_scenarios(s, options)
    ref = _reference_index(s, options, len(points))
    workloads, wl_meta = _load_workloads(s, options, points)
    lat, notes = _resolve_latencies(s)
    for (_, _, w), (_, ps) in zip(wl_meta, points):
        for mode in s.modes:
            check_feasible(w.requests, ps, mode, options.slo_kind, goal, *lat[mode])

    if cache is None:
        cache = ResultCache(options.cache_dir, "plan")
    served = list(s.served_models)
    ctx = PlanContext(options, served, goal, lat, workloads, on_event, ref)
    roots = [
        PointPlanner(ctx, i, ps, wkey, factor, w).chain()
        for i, ((_, ps), (wkey, factor, w)) in enumerate(zip(points, wl_meta))
    ]
    gp_chains = []
    native = native_rate(wl_meta[0][2].info) if options.rate_sweep else float("nan")
    if options.rate_sweep:
        gp_chains = _goodput_chains(s, options, workloads["base"], served, native)
    jobs = options.jobs or os.cpu_count() or 1
    pool, owned = pick_executor(executor, jobs)
    by_precision = _latency_by_precision(s, lat)
    driver = Driver(workloads, by_precision, pool, cache, Fingerprints(), on_event)
    try:
        out = driver.run(roots + gp_chains)
    finally:
        if owned and pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    pps: list[PointPlan] = out[: len(roots)]
    gp = goodput_frame(list(out[len(roots) :])) if gp_chains else None
    wall = time.perf_counter() - t0
    procs = _processes(executor, pool, jobs)
    sims = (driver.num_sims, driver.num_cached, driver.sim_wall_s)
    return PlanResult(s, options, pps, ref, gp, notes, wall, *sims, procs, native)


def _check_plannable(s: Scenario) -> None:
    """Refuse the workloads ``plan`` cannot size (:class:`ConfigError`, one line)."""
    if s.closed_loop:
        raise ConfigError(
            "sunsim plan sizes pools for a trace's arrival rate; closed-loop clients "
            "(--max-concurrency) set their own rate: use sunsim replay for them"
        )
    if s.session_arrivals != "timestamp":
        raise ConfigError(
            "sunsim plan replays traces at their timestamps; session_arrivals = "
            "after_previous is for sunsim replay (drop --session-arrivals)"
        )


def _processes(given: cf.Executor | None, pool: cf.Executor | None, jobs: int) -> int:
    """Processes the plan ran on: 0 for an executor handed in, 1 serially, else ``jobs``."""
    if given is not None:
        return 0
    return 1 if pool is None else jobs
