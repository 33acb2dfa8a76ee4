"""The directory of ``sunsim plan --gpus``: every design planned on every GPU type, and the
ranking of the designs by their cheapest configuration meeting the SLO.

``DIR/`` holds:

* ``plan.csv``: :meth:`~sunsim.planner.GpuPlans.table`, one row per (GPU, design, sweep
  point) planned, numbers only (GPU counts, $/hour, $ per million output tokens, seconds);
  ``cheapest`` marks each design's cheapest GPU, ``rank`` its place;
* ``ranking.csv``: :meth:`~sunsim.planner.GpuPlans.ranking`, the cheapest configuration of
  each design, best first, with the saving against partitioned's cheapest;
* ``plan.json``: :func:`gpu_plans_summary` plus ``command`` and ``created``;
* ``<gpu>/<design>/``: that plan's own directory (:func:`sunsim.runs.plan_dir.write_plan`),
  which ``sunsim report`` reads.
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sunsim import __version__
from sunsim.serialize import jsonable

if TYPE_CHECKING:
    from sunsim.planner.ranking import GpuPlans

#: What ``plan.json`` of a ``--gpus`` plan says it is.
KIND = "plan-gpus"


def gpu_plans_summary(gp: GpuPlans) -> dict[str, Any]:
    """The ``--gpus`` plan as a JSON-ready dict (what ``--json`` prints): ``schema_version``,
    ``kind`` ("plan-gpus"), ``sunsim_version``, ``gpus``, ``designs``, ``slo`` (ms, percent),
    ``trace`` (path, format, requests, span), ``options``, ``ranking`` (rows of
    ``ranking.csv``), ``configurations`` (rows of ``plan.csv``), ``failures`` ({gpu: {design:
    reason}}). Numbers stay numbers; NaN is null."""
    from sunsim.metrics.benchmark import SCHEMA_VERSION
    from sunsim.runs.results_json import slo_json, trace_json

    s = gp.scenario
    first = next(iter(next(iter(gp.plans.values())).values()))
    info = first.points[first.reference].workload_info
    out = {
        "schema_version": SCHEMA_VERSION,
        "kind": KIND,
        "sunsim_version": __version__,
        "gpus": list(gp.gpus),
        "designs": list(s.modes),
        "slo": {**slo_json(s), "kind": gp.options.slo_kind},
        "trace": trace_json(info),
        "options": gp.options.to_dict(),
        "ranking": gp.ranking().to_dict(orient="records"),
        "configurations": gp.table().to_dict(orient="records"),
        "failures": gp.failures,
    }
    result: dict[str, Any] = jsonable(out)
    return result


def write_gpu_plans(
    gp: GpuPlans, out: Path, command: str | None = None, replays: bool = True
) -> dict[str, Any]:
    """Write the ``--gpus`` plan directory ``out`` (module docstring; created if missing);
    returns :func:`gpu_plans_summary`."""
    from sunsim.runs.plan_dir import write_plan

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    gp.table().to_csv(out / "plan.csv", index=False)
    gp.ranking().to_csv(out / "ranking.csv", index=False)
    summary = gpu_plans_summary(gp)
    doc = {
        **summary,
        "command": command,
        "created": _dt.datetime.now().isoformat(timespec="seconds"),
    }
    (out / "plan.json").write_text(json.dumps(doc, indent=2, allow_nan=False))
    for gpu, by in gp.plans.items():
        for mode, r in by.items():
            write_plan(r, out / gpu / mode, command=command, replays=replays)
    return summary
