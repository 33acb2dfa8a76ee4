"""One simulation the planner asks for (:class:`SimTask`), how a worker process runs it
(:func:`run_task`), its cache key (:func:`task_key`) and the JSON cache file of evaluations."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from sunsim import __version__
from sunsim.config import Scenario, scenario_to_toml_dict
from sunsim.engine.cluster import SimResult, simulate
from sunsim.engine.spec import ClusterSpec
from sunsim.planner.criteria import evaluate


@dataclass(frozen=True)
class SimTask:
    """One simulation: ``workload`` key (requests handed to the process pool once), a time
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


#: The labelled requests of this process, by workload key (set by :func:`init_worker`).
_WORKLOADS: dict[str, pd.DataFrame] = {}
#: Latency models resolved in this process, by (model, GPU, source, profile, precision, role,
#: tensor parallel size).
_LATENCY: dict[tuple[Any, ...], Any] = {}


def init_worker(workloads: dict[str, pd.DataFrame]) -> None:
    """Process-pool initializer: keep the labelled requests for the process's lifetime."""
    _WORKLOADS.clear()
    _WORKLOADS.update(workloads)


def _latency_models(s: Scenario, decode_precision: str) -> list[Any]:
    from sunsim.replay import resolve_latency

    out = []
    for precision, role in (("bf16", "prefill"), (decode_precision, "decode")):
        tp = s.pool_tensor_parallel_size(role)
        key = (s.base_model, s.gpu, s.latency, s.profile, precision, role, tp)
        if key not in _LATENCY:
            _LATENCY[key] = resolve_latency(s, precision, role)
        out.append(_LATENCY[key])
    return out


def task_requests(task: SimTask, workloads: dict[str, pd.DataFrame] | None = None) -> pd.DataFrame:
    """The requests a task simulates (filtered to its model, arrival times multiplied by its
    time factor, outputs cut to one token for ``prefill_only``), from ``workloads`` or this
    process's (:func:`init_worker`)."""
    req = (workloads or _WORKLOADS)[task.workload]
    if task.model is not None:
        req = req[req["model"].astype(str) == task.model]
    if task.time_factor != 1.0:
        req = req.assign(arrival_s=req["arrival_s"] * task.time_factor)
    if task.prefill_only:
        req = req.assign(output_tokens=1)
    return req


def run_task(task: SimTask) -> tuple[dict[str, Any], SimResult | None]:
    """Simulate one task in this process (the pool's work function).

    Returns :func:`~sunsim.planner.criteria.evaluate`'s dict plus ``wall_s`` (seconds of
    simulation) and ``method`` (latency source), and the SimResult when ``task.keep``.
    """
    req = task_requests(task)
    (pl, _), (dl, _) = _latency_models(task.scenario, str(task.cluster.decode_precision))
    res = simulate(req, task.cluster, pl, dl, seed=task.scenario.seed)
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


def _trace_stamp(trace: str | None) -> tuple[int, int] | None:
    """(size in bytes, mtime in whole seconds) of the trace file, or None."""
    if not trace:
        return None
    try:
        st = os.stat(trace)
    except OSError:
        return None
    return (st.st_size, int(st.st_mtime))


def task_key(task: SimTask) -> str:
    """Cache key of a task: a SHA-1 of everything its evaluation depends on (the scenario less
    its worker counts and modes, the trace file's size and mtime, the workload key, factor,
    model filter, prefill-only flag, the cluster and the sunsim version)."""
    s = task.scenario
    d = scenario_to_toml_dict(s)
    for k in ("prefill_workers", "decode_workers", "colocated_workers", "modes"):
        d["cluster"].pop(k, None)
    payload = json.dumps(
        {
            "scenario": d,
            "trace_stamp": _trace_stamp(s.trace),
            "workload": task.workload,
            "factor": task.time_factor,
            "model": task.model,
            "prefill_only": task.prefill_only,
            "cluster": dataclasses.asdict(task.cluster),
            "v": __version__,
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha1(payload.encode()).hexdigest()


def load_cache(path: str | None) -> dict[str, Any]:
    """Cached evaluations by :func:`task_key` from the JSON file ``path`` (empty when None,
    missing or unreadable: a cache is only ever a shortcut)."""
    if not path or not Path(path).exists():
        return {}
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def save_cache(path: str | None, cache: dict[str, Any]) -> None:
    """Write ``cache`` to ``path`` (JSON); an unwritable path is skipped (a cache is optional)."""
    if not path:
        return
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(cache))
    except OSError:
        pass
