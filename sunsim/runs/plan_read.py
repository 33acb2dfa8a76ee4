"""Reading a plan directory for the report: :func:`sunsim.runs.plan_dir.read_plan_dir` checks the
plan's own files (``plan.json``, ``plan.csv``, ``sweep.csv``, ``goodput.csv``,
``scenario.toml``); each ``replay_<mode>/`` is read as a replay run, with the same validation.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from sunsim.metrics import RunSummary
from sunsim.runs.layout import PLAN
from sunsim.runs.plan_dir import read_plan_dir
from sunsim.runs.read import RunData, read_replay, read_summary


def read_plan_run(d: Path) -> RunData:
    """Read the plan directory ``d`` into a :class:`RunData` of kind ``plan``.

    Summaries and per-mode frames come from the ``replay_<mode>/`` runs (in ``plan.csv``'s
    mode order); without them (``--no-replays``) the summaries come from ``plan.json``'s
    reference point. Raises :class:`~sunsim.errors.SunsimError` (one line naming the file)
    for a damaged file.
    """
    plan = read_plan_dir(d)
    parts = [read_replay(rd) for rd in plan.replay_dirs]
    summaries: dict[str, RunSummary] = {}
    for part in parts:
        summaries.update(part.summaries)
    if not summaries:
        p = d / "plan.json"
        i = plan.meta["reference_point"]
        for mode, s in plan.reference_summaries().items():
            summaries[str(mode)] = read_summary(s, p, f"points[{i}].modes.{mode}.summary")

    def merged(attr: str) -> dict[str, pd.DataFrame]:
        out: dict[str, pd.DataFrame] = {}
        for part in parts:
            out.update(getattr(part, attr))
        return out

    sweep = plan.sweep if plan.sweep is not None and len(plan.sweep) else None
    goodput = plan.goodput if plan.goodput is not None and len(plan.goodput) else None
    return RunData(
        path=d,
        kind=PLAN,
        meta=plan.meta,
        scenario_toml=plan.scenario_toml or "",
        summaries=summaries,
        records=merged("records"),
        decode_workers=merged("decode_workers"),
        prefill_workers=merged("prefill_workers"),
        timelines=merged("timelines"),
        batch_time=merged("batch_time"),
        kv_time=merged("kv_time"),
        itl=merged("itl"),
        prefix_kv=merged("prefix_kv"),
        plan_table=plan.table,
        sweep=sweep,
        goodput=goodput,
    )
