"""One simulation the planner asks for (:class:`SimTask`), how an executor runs it
(:func:`run_task`, from its arguments alone) and its content-addressed cache key
(:func:`task_key`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import pandas as pd

from sunsim.cache import Fingerprints, content_key
from sunsim.config import Scenario
from sunsim.engine.cluster import SimResult, simulate
from sunsim.engine.spec import ClusterSpec
from sunsim.planner.criteria import evaluate


@dataclass(frozen=True)
class SimTask:
    """One simulation: ``workload`` key (which labelled frame of the plan), a time
    factor applied to ``arrival_s`` (rate scale relative to the workload's), a model filter
    (None: all requests), ``prefill_only`` (outputs cut to one token), the cluster, the
    scenario whose latency settings and SLO apply, whether to return the
    :class:`~sunsim.engine.cluster.SimResult` (``keep``; else only the evaluation) and whether
    to simulate even when the evaluation is cached (``fresh``)."""

    workload: str
    time_factor: float
    model: str | None
    prefill_only: bool
    cluster: ClusterSpec
    scenario: Scenario
    keep: bool = False
    fresh: bool = False


def task_latency(task: SimTask) -> tuple[Any, Any]:
    """The (prefill, decode) latency models of a task, resolved from its scenario (prefill at
    its ``prefill_precision``, decode at the cluster's decode precision)."""
    from sunsim.replay import resolve_latency

    s = task.scenario
    pl, _ = resolve_latency(s, s.prefill_precision, "prefill")
    dl, _ = resolve_latency(s, str(task.cluster.decode_precision), "decode")
    return pl, dl


def task_requests(task: SimTask, workloads: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The requests a task simulates: ``workloads[task.workload]`` filtered to its model,
    arrival times multiplied by its time factor, outputs cut to one token for
    ``prefill_only``."""
    req = workloads[task.workload]
    if task.model is not None:
        req = req[req["model"].astype(str) == task.model]
    if task.time_factor != 1.0:
        req = req.assign(arrival_s=req["arrival_s"] * task.time_factor)
    if task.prefill_only:
        req = req.assign(output_tokens=1)
    return req


def run_task(
    task: SimTask, requests: pd.DataFrame, latency: tuple[Any, Any] | None = None
) -> tuple[dict[str, Any], SimResult | None]:
    """Simulate one task (the work function handed to an executor: everything it needs is in
    its arguments, nothing in module state, so it runs the same in this process, a process
    pool or a Dask worker).

    ``requests``: :func:`task_requests`; ``latency``: (prefill, decode) latency models
    (None: :func:`task_latency`). Returns :func:`~sunsim.planner.criteria.evaluate`'s dict
    plus ``wall_s`` (seconds of simulation) and ``method`` (latency source), and the
    SimResult when ``task.keep``.
    """
    pl, dl = latency if latency is not None else task_latency(task)
    res = simulate(requests, task.cluster, pl, dl, seed=task.scenario.seed)
    ev = evaluate(res.records, task.scenario.slo, task.cluster.served_models)
    ev["wall_s"] = res.wall_s
    ev["method"] = res.method
    return ev, (res if task.keep else None)


def describe(task: SimTask) -> str:
    """One line for progress: ``<design|prefill>[ model] x<factor>: prefill .. decode ..``."""
    cl = task.cluster
    what = "prefill" if task.prefill_only else cl.design.name
    pool = f" {task.model}" if task.model else ""
    return (
        f"{what}{pool} x{task.time_factor:g}: prefill {','.join(map(str, cl.prefill_workers))}"
        f" decode {','.join(map(str, cl.decode_workers))}"
        + (f" co-located {','.join(map(str, cl.colocated_workers))}" * bool(cl.colocated_workers))
    )


def task_key(task: SimTask, fingerprints: Fingerprints, latency: tuple[Any, Any]) -> str:
    """Content-addressed cache key of a task (:func:`sunsim.cache.content_key`): the scenario
    by content (trace bytes, profile bytes; less its worker counts and modes, which the
    cluster carries), the (prefill, decode) latency models' fingerprints, the workload key,
    time factor, model filter, prefill-only flag and the cluster."""
    d = fingerprints.scenario(task.scenario)
    for k in ("prefill_workers", "decode_workers", "colocated_workers", "modes"):
        d["cluster"].pop(k, None)
    return content_key(
        "plan-sim",
        {
            "scenario": d,
            "latency": [fingerprints.latency_model(m) for m in latency],
            "workload": task.workload,
            "factor": task.time_factor,
            "model": task.model,
            "prefill_only": task.prefill_only,
            "cluster": dataclasses.asdict(task.cluster),
        },
    )
