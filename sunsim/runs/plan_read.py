"""Reading a plan directory for the report, with the same validation as replay runs.

The planner's own module (``sunsim/runs/plan_dir.py``, write_plan and its reader) takes this
over when it is merged; until then this is the report's one way into a plan directory:
``plan.json`` (a JSON object), ``plan.csv`` (one row per mode), optional ``sweep.csv`` and
``goodput.csv``, and each ``replay_<mode>/`` read as a replay run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from sunsim.metrics import RunSummary
from sunsim.runs.layout import (
    PLAN,
    PLAN_CSVS,
    PLAN_JSON,
    SCENARIO_TOML,
    SUMMARY_JSON,
    RunDirError,
)
from sunsim.runs.read import (
    _RERUN,
    RunData,
    check_meta,
    read_csv,
    read_json,
    read_replay,
    read_summary,
    read_text,
)

#: Top-level keys of plan.json the report reads -> the JSON type they must have.
_PLAN_META: dict[str, type] = {
    "options": dict,
    "slo": dict,
    "stats": dict,
    "goodput": dict,
    "latency_sources": list,
    "points": list,
}


def read_plan_run(d: Path) -> RunData:
    """Read the plan directory ``d`` into a :class:`RunData` of kind ``plan``.

    Summaries and per-mode frames come from the ``replay_<mode>/`` runs (in ``plan.csv``'s
    mode order); without them (``--no-replays``) the summaries come from ``plan.json``'s
    reference point. Raises :class:`RunDirError` for a damaged file.
    """
    p = d / PLAN_JSON
    meta = read_json(p)
    kind = meta.get("kind", PLAN)
    if kind != PLAN:
        raise RunDirError(f"{p}: \"kind\" is {kind!r}, not 'plan'; {_RERUN}")
    check_meta(meta, p, _PLAN_META)
    table = read_csv(d / "plan.csv", PLAN_CSVS["plan"])
    order = [str(m) for m in table["mode"]]
    dirs = sorted(
        (rd for rd in d.glob("replay_*") if (rd / SUMMARY_JSON).exists()),
        key=lambda rd: (order.index(rd.name[7:]) if rd.name[7:] in order else len(order), rd.name),
    )
    parts = [read_replay(rd) for rd in dirs]
    summaries: dict[str, RunSummary] = {}
    for part in parts:
        summaries.update(part.summaries)
    if not summaries:
        summaries = _reference_summaries(meta, p)
    sweep = _optional(d / "sweep.csv", PLAN_CSVS["sweep"])
    goodput = _optional(d / "goodput.csv", PLAN_CSVS["goodput"])
    if goodput is not None:
        gp = meta.get("goodput", {})
        goodput.attrs["goodput"] = gp.get("rate_scale", {}) if isinstance(gp, dict) else {}

    def merged(attr: str) -> dict[str, pd.DataFrame]:
        out: dict[str, pd.DataFrame] = {}
        for part in parts:
            out.update(getattr(part, attr))
        return out

    return RunData(
        path=d,
        kind=PLAN,
        meta=meta,
        scenario_toml=read_text(d / SCENARIO_TOML),
        summaries=summaries,
        records=merged("records"),
        decode_workers=merged("decode_workers"),
        prefill_workers=merged("prefill_workers"),
        timelines=merged("timelines"),
        batch_time=merged("batch_time"),
        kv_time=merged("kv_time"),
        itl=merged("itl"),
        plan_table=table,
        sweep=sweep,
        goodput=goodput,
    )


def reference_point(meta: dict[str, Any], p: Path) -> dict[str, Any]:
    """The reference point of ``plan.json`` (``points[reference_point]``), ``{}`` when the
    plan lists no points; :class:`RunDirError` when they are malformed."""
    points = meta.get("points", [])
    ref = meta.get("reference_point", 0)
    if not isinstance(points, list) or not all(isinstance(x, dict) for x in points):
        raise RunDirError(f'{p}: "points" is not a list of objects; {_RERUN}')
    if not points:
        return {}
    if isinstance(ref, bool) or not isinstance(ref, int) or not 0 <= ref < len(points):
        raise RunDirError(
            f'{p}: "reference_point" {ref!r} is not an index into its {len(points)} '
            f"points; {_RERUN}"
        )
    point: dict[str, Any] = points[ref]
    return point


def _reference_summaries(meta: dict[str, Any], p: Path) -> dict[str, RunSummary]:
    ref = reference_point(meta, p)
    i = meta.get("reference_point", 0)
    modes = ref.get("modes", {})
    if not isinstance(modes, dict):
        raise RunDirError(f"{p}: points[{i}].modes is not an object; {_RERUN}")
    out = {}
    for mode, m in modes.items():
        key = f"points[{i}].modes.{mode}.summary"
        out[str(mode)] = read_summary(m.get("summary") if isinstance(m, dict) else m, p, key)
    return out


def _optional(p: Path, cols: tuple[str, ...]) -> pd.DataFrame | None:
    """The CSV ``p`` when present and non-empty, else None."""
    if not p.exists():
        return None
    df = read_csv(p, cols)
    return df if len(df) else None
