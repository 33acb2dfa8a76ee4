"""Plan directories, written and read in one place.

A plan directory (``sunsim plan --out DIR``) holds:

* ``scenario.toml``: the scenario plus a ``[plan]`` table of the plan options
  (:func:`plan_to_toml_dict`; ``sunsim plan --scenario DIR/scenario.toml`` repeats the plan,
  :func:`load_plan_toml` reads it); its trace path is absolute;
* ``plan.json``: :func:`plan_summary` plus ``command`` and ``created`` (ISO date);
* ``plan.csv``: :meth:`~sunsim.planner.PlanResult.table` at the reference point, one row per
  mode;
* ``evaluations.csv``: every simulation the searches ran (``sweep_value``, ``mode``,
  ``phase``, ``pool``, ``workers``, ``met``, ``attainment``, ...);
* sweeps: ``sweep.csv`` (all points); rate sweeps: ``goodput.csv``;
* ``replay_<mode>/``: each mode's final simulation at the reference point as a replay run
  directory (optional).

:func:`write_plan` writes one, :func:`read_plan_dir` reads and checks one. Errors are one
line naming the file: :class:`~sunsim.runs.layout.RunDirError` for a damaged plan directory,
:class:`~sunsim.errors.ConfigError` for a bad ``scenario.toml``.
"""

from __future__ import annotations

import datetime as _dt
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import tomli_w

from sunsim import __version__
from sunsim.config import Scenario, scenario_from_toml_dict, scenario_to_toml_dict
from sunsim.errors import ConfigError
from sunsim.runs.layout import RunDirError
from sunsim.runs.read import read_csv, read_json

if TYPE_CHECKING:
    from sunsim.planner.options import PlanOptions
    from sunsim.planner.results import PlanResult, PointPlan

#: Keys ``plan.json`` must hold for :func:`read_plan_dir`.
PLAN_JSON_KEYS = ("kind", "options", "slo", "reference_point", "table", "points")


# --- scenario.toml -------------------------------------------------------------------------


def _absolute_trace(trace: str | None) -> str:
    """The trace path as an absolute path (None: the bundled default trace)."""
    from sunsim.data import default_trace

    return str(default_trace().resolve() if trace is None else Path(trace).resolve())


def plan_to_toml_dict(r: PlanResult) -> dict[str, Any]:
    """The plan's scenario as TOML tables (trace path made absolute) plus a ``[plan]`` table
    of its options (what ``sunsim plan --scenario DIR/scenario.toml`` reads back)."""
    d: dict[str, Any] = scenario_to_toml_dict(r.scenario)
    d["trace"]["path"] = _absolute_trace(r.scenario.trace)
    d["plan"] = r.options.to_dict()
    return d


def load_plan_toml(path: Path) -> tuple[Scenario, PlanOptions]:
    """Read a scenario TOML with an optional ``[plan]`` table (what :func:`write_plan` writes
    as ``scenario.toml``). Raises :class:`~sunsim.errors.ConfigError` for a missing file, bad
    TOML, unknown sections or keys, or bad values."""
    from sunsim.planner.options import plan_options_from_dict

    data = _read_toml(Path(path))
    ptable = data.pop("plan", {})
    if not isinstance(ptable, dict):
        raise ConfigError(f"{path}: [plan] must be a table, got {ptable!r}")
    return (
        scenario_from_toml_dict(data, source=str(path)),
        plan_options_from_dict(ptable, source=str(path)),
    )


def _read_toml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"{path}: no such scenario file")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read: {e}") from None


# --- plan.json -----------------------------------------------------------------------------


def _point_dict(pp: PointPlan) -> dict[str, Any]:
    modes = {
        mode: {
            "prefill_workers": list(mp.prefill_workers),
            "decode_workers": list(mp.decode_workers),
            **({"colocated_workers": list(mp.colocated_workers)} if mp.colocated_workers else {}),
            "num_gpus": mp.num_gpus,
            "summary": mp.summary.to_dict(),
            "evaluations": mp.evaluations,
        }
        for mode, mp in pp.modes.items()
    }
    return {
        "sweep_value": pp.sweep_value,
        "trace": pp.workload_info,
        "model_counts": pp.model_counts,
        "labelling": pp.labelling,
        "rate_scale": pp.rate_scale if pp.rate_scale is not None else pp.scenario.rate_scale,
        "request_rate": pp.scenario.request_rate,
        "zipf": pp.scenario.zipf,
        "modes": modes,
    }


def plan_summary(r: PlanResult) -> dict[str, Any]:
    """The plan as a JSON-ready dict (what ``plan.json`` holds, less command and date): keys
    ``sunsim_version``, ``kind`` ("plan"), ``options``, ``slo``, ``method``,
    ``latency_sources``, ``seed``, ``reference_point``, ``table`` (rows of ``plan.csv``),
    ``points`` (per point: trace info, model counts, per mode counts, summary, evaluations),
    ``stats`` (seconds, simulations, cache hits, processes), ``schema_version`` and
    ``results`` (:func:`sunsim.runs.results_json.plan_results`, what ``--json`` prints) and,
    for rate sweeps, ``goodput``.
    """
    from sunsim.serialize import jsonable

    methods = sorted({mp.summary.method for pp in r.points for mp in pp.modes.values()})
    out: dict[str, Any] = {
        "sunsim_version": __version__,
        "kind": "plan",
        "options": r.options.to_dict(),
        "slo": {
            "ttft_s": r.scenario.slo_ttft_s,
            "tpot_s": r.scenario.slo_tpot_s,
            "attainment": r.scenario.slo_attainment,
            "kind": r.options.slo_kind,
            "prefill_target": r.options.prefill_goal(r.scenario.slo),
        },
        "method": methods[0] if len(methods) == 1 else ",".join(methods),
        "latency_sources": r.latency_notes,
        "seed": r.scenario.seed,
        "reference_point": r.reference,
        "table": r.table(r.reference).to_dict(orient="records"),
        "points": [_point_dict(pp) for pp in r.points],
        "stats": {
            "wall_s": r.wall_s,
            "simulations": r.num_simulations,
            "cached": r.num_cached,
            "simulation_wall_s": r.sim_wall_s,
            "jobs": r.jobs,
        },
    }
    from sunsim.metrics.benchmark import SCHEMA_VERSION
    from sunsim.runs.results_json import plan_results

    out["schema_version"] = SCHEMA_VERSION
    out["results"] = plan_results(r)
    if r.goodput is not None:
        out["goodput"] = {
            "rate_scale": r.goodput.attrs.get("goodput", {}),
            "request_rate": {
                m: v * r.native_rate for m, v in r.goodput.attrs.get("goodput", {}).items()
            },
            "workers": r.goodput.attrs.get("workers", {}),
            "evaluations": r.goodput.to_dict(orient="records"),
        }
    result: dict[str, Any] = jsonable(out)
    return result


# --- writing -------------------------------------------------------------------------------


def _evaluation_rows(r: PlanResult) -> list[dict[str, Any]]:
    """Rows of ``evaluations.csv``; prefill searches are shared by the modes: listed once,
    under mode ``all``."""
    rows = []
    for pp in r.points:
        first = next(iter(pp.modes))
        for mode, mp in pp.modes.items():
            for e in mp.evaluations:
                if e["phase"] == "prefill" and mode != first:
                    continue
                shown = "all" if e["phase"] == "prefill" else mode
                rows.append({"sweep_value": pp.sweep_value, "mode": shown, **e})
    return rows


def _write_tables(r: PlanResult, out: Path, command: str | None) -> list[Path]:
    """``scenario.toml``, ``plan.json``, ``plan.csv``, ``evaluations.csv``, ``sweep.csv``,
    ``goodput.csv``."""
    files = []
    p = out / "scenario.toml"
    p.write_text(
        f"# sunsim plan scenario; repeat with: sunsim plan --scenario {p}\n"
        + tomli_w.dumps(plan_to_toml_dict(r))
    )
    files.append(p)
    summ = plan_summary(r)
    summ["command"] = command
    summ["created"] = _dt.datetime.now().isoformat(timespec="seconds")
    p = out / "plan.json"
    p.write_text(json.dumps(summ, indent=2))
    files.append(p)
    p = out / "plan.csv"
    r.table(r.reference).to_csv(p, index=False)
    files.append(p)
    p = out / "evaluations.csv"
    pd.DataFrame(_evaluation_rows(r)).to_csv(p, index=False)
    files.append(p)
    if r.options.sweep is not None:
        p = out / "sweep.csv"
        r.table().to_csv(p, index=False)
        files.append(p)
    if r.goodput is not None:
        p = out / "goodput.csv"
        g = r.goodput.copy()
        g["goodput_rate_scale"] = g["mode"].map(r.goodput.attrs.get("goodput", {}))
        g.to_csv(p, index=False)
        files.append(p)
    return files


def _write_replays(
    r: PlanResult, out: Path, command: str | None, records_format: str
) -> list[Path]:
    """``replay_<mode>/`` per mode whose final simulation was kept (reference point); its
    ``scenario.toml`` holds the planned counts as scenario keys
    (:func:`~sunsim.config.cluster_of.scenario_counts`: a shared pool's count as per-model
    parts), so ``sunsim replay --scenario`` rebuilds the planned cluster."""
    from sunsim.config.cluster_of import scenario_counts
    from sunsim.planner.options import scenario_with
    from sunsim.replay import ReplayResult, Workload
    from sunsim.runs.write import write_run

    files: list[Path] = []
    pp = r.points[r.reference]
    for mode, mp in pp.modes.items():
        if mp.result is None:
            continue
        n = len(pp.scenario.served_models)
        counts = scenario_counts(
            mode, n, mp.prefill_workers, mp.decode_workers, mp.colocated_workers
        )
        ms = scenario_with(pp.scenario, modes=(mode,), **counts)
        wl = Workload(pd.DataFrame(), pp.workload_info, pp.model_counts, pp.labelling)
        rr = ReplayResult(ms, wl, {mode: mp.result}, {mode: mp.summary}, r.latency_notes)
        files += write_run(
            rr,
            out / f"replay_{mode}",
            records_format,
            command=(command or "sunsim plan") + f"  [final {mode} simulation]",
        )
    return files


def write_plan(
    r: PlanResult,
    out: Path,
    command: str | None = None,
    replays: bool = True,
    records_format: str = "parquet",
) -> list[Path]:
    """Write the plan directory ``out`` (module docstring; created if missing); returns the
    files written. ``replays``: also write ``replay_<mode>/`` (replay run directories whose
    ``scenario.toml`` repeats them with ``sunsim replay``; records as ``records_format``,
    ``parquet`` or ``csv``)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = _write_tables(r, out, command)
    if replays:
        files += _write_replays(r, out, command, records_format)
    return files


# --- reading -------------------------------------------------------------------------------


@dataclass
class PlanDir:
    """A plan directory as read by :func:`read_plan_dir`.

    ``meta``: ``plan.json``; ``table``: ``plan.csv`` (one row per mode, columns of
    :meth:`~sunsim.planner.PlanResult.table`); ``evaluations``, ``sweep``, ``goodput``: their
    CSV files or None when absent (``goodput.attrs['goodput']`` = {mode: rate scale});
    ``scenario_toml``: the text of ``scenario.toml`` or None; ``replay_dirs``: the
    ``replay_<mode>/`` directories holding a ``summary.json``, in ``plan.csv``'s mode order.
    """

    path: Path
    meta: dict[str, Any]
    table: pd.DataFrame
    evaluations: pd.DataFrame | None = None
    sweep: pd.DataFrame | None = None
    goodput: pd.DataFrame | None = None
    scenario_toml: str | None = None
    replay_dirs: list[Path] = field(default_factory=list)

    def reference_summaries(self) -> dict[str, dict[str, Any]]:
        """{mode: run summary} of the reference point, from ``plan.json``."""
        ref = self.meta["points"][self.meta["reference_point"]]
        return {mode: m.get("summary", {}) for mode, m in ref.get("modes", {}).items()}


def _read_plan_json(p: Path) -> dict[str, Any]:
    if not p.is_file():
        raise RunDirError(f"{p}: missing; not a plan directory (sunsim plan --out writes one)")
    meta = read_json(p)  # unreadable, not JSON (truncated), not an object: one line each
    if meta.get("kind") != "plan":
        raise RunDirError(f'{p}: not a sunsim plan (no "kind": "plan")')
    missing = [k for k in PLAN_JSON_KEYS if k not in meta]
    if missing:
        raise RunDirError(f"{p}: missing key(s) {', '.join(missing)}; rewrite it with sunsim plan")
    points, ref = meta["points"], meta["reference_point"]
    if not isinstance(points, list) or not points or not all(isinstance(x, dict) for x in points):
        raise RunDirError(f"{p}: 'points' must be a non-empty list of objects")
    if not isinstance(ref, int) or isinstance(ref, bool) or not 0 <= ref < len(points):
        raise RunDirError(f"{p}: 'reference_point' must be an index into 'points', got {ref!r}")
    return meta


def _read_csv(
    p: Path, required: tuple[str, ...] = (), optional: bool = True
) -> pd.DataFrame | None:
    """The CSV ``p`` (None when absent and ``optional``; an empty frame for an empty file,
    e.g. ``evaluations.csv`` of a plan that searched nothing), checked as the run
    directory's CSVs are (:func:`sunsim.runs.read.read_csv`: ``required`` columns)."""
    if not p.is_file():
        if optional:
            return None
        raise RunDirError(f"{p}: missing; not a plan directory (sunsim plan --out writes one)")
    return read_csv(p, required, empty_ok=True)


def read_plan_dir(path: Path) -> PlanDir:
    """Read and check the plan directory ``path``.

    Raises :class:`~sunsim.runs.layout.RunDirError` (one line naming the file) when ``path``
    is not a directory, ``plan.json`` is missing, not JSON, not a plan or lacks its keys
    (:data:`PLAN_JSON_KEYS`), ``plan.csv`` is missing or lacks ``mode``, a CSV present is
    unreadable (``goodput.csv`` needs ``mode``, ``rate_scale``, ``met``);
    :class:`~sunsim.errors.ConfigError` when ``scenario.toml`` is not valid TOML.
    """
    d = Path(path)
    if not d.is_dir():
        raise RunDirError(f"{d}: no such plan directory")
    meta = _read_plan_json(d / "plan.json")
    table = _read_csv(d / "plan.csv", ("mode",), optional=False)
    assert table is not None
    goodput = _read_csv(d / "goodput.csv", ("mode", "rate_scale", "met"))
    if goodput is not None:
        rates = meta.get("goodput", {}).get("rate_scale", {})
        goodput.attrs["goodput"] = rates if isinstance(rates, dict) else {}
    toml_text = None
    if (d / "scenario.toml").is_file():
        _read_toml(d / "scenario.toml")
        toml_text = (d / "scenario.toml").read_text()
    order = [str(m) for m in table["mode"]]
    replays = sorted(
        (p for p in d.glob("replay_*") if (p / "summary.json").is_file()),
        key=lambda p: (order.index(p.name[7:]) if p.name[7:] in order else len(order), p.name),
    )
    return PlanDir(
        d,
        meta,
        table,
        evaluations=_read_csv(d / "evaluations.csv"),
        sweep=_read_csv(d / "sweep.csv"),
        goodput=goodput,
        scenario_toml=toml_text,
        replay_dirs=replays,
    )
