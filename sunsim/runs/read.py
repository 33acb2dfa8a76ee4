"""Reading run directories with validation: every damaged, truncated or foreign file is one
:class:`~sunsim.runs.layout.RunDirError` line naming the file and how to fix it.

:func:`read_run` reads a replay run or a plan directory into a :class:`RunData`; the checks:
``summary.json`` / ``plan.json`` must be UTF-8 JSON objects, every mode's summary must have
the shape of :class:`~sunsim.metrics.RunSummary`; every mode needs its records file, readable,
with the columns of :data:`~sunsim.runs.layout.RECORDS_COLUMNS` (latencies numeric) and one
row per request of its summary; the per-mode CSVs may be missing (an empty frame is read) but
when present must parse and have the columns of :data:`~sunsim.runs.layout.RUN_CSVS`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from sunsim.metrics import RunSummary, SummaryFormatError
from sunsim.runs.layout import (
    PLAN,
    RECORDS_COLUMNS,
    REPLAY,
    RUN_CSVS,
    SCENARIO_TOML,
    SUMMARY_JSON,
    RunDirError,
    detect_kind,
    records_path,
)

#: Columns that hold labels, not numbers (everything else a reader checks must be numeric).
_LABELS = frozenset({"model", "status", "pool", "worker", "mode", "sweep_key", "method"})
_RERUN = "re-run the command that wrote it (its scenario.toml repeats it)"


@dataclass(frozen=True)
class RunData:
    """A replay run or a plan directory as read by :func:`read_run`.

    ``kind``: ``"replay"`` or ``"plan"``; ``meta``: the contents of ``summary.json`` without
    ``modes`` (replay) or of ``plan.json`` (plan); ``scenario_toml``: its text (empty if
    missing); ``summaries``: mode -> :class:`~sunsim.metrics.RunSummary`, in the run's order.
    Per mode (empty dicts for a plan written with ``--no-replays``): ``records`` (one row per
    request), ``decode_workers``, ``prefill_workers``, ``timelines`` (``worker``, ``t_s``,
    ``busy_frac``, ...), ``batch_time``, ``kv_time``, ``itl`` -- the frames of
    :func:`~sunsim.runs.write_run`, empty where a CSV is missing. Plans only: ``plan_table``
    (``plan.csv``), ``sweep`` (``sweep.csv``) and ``goodput`` (``goodput.csv``, with
    ``attrs['goodput']`` = mode -> highest rate scale met), None when absent.
    """

    path: Path
    kind: str
    meta: dict[str, Any]
    scenario_toml: str
    summaries: dict[str, RunSummary]
    records: dict[str, pd.DataFrame] = field(default_factory=dict)
    decode_workers: dict[str, pd.DataFrame] = field(default_factory=dict)
    prefill_workers: dict[str, pd.DataFrame] = field(default_factory=dict)
    timelines: dict[str, pd.DataFrame] = field(default_factory=dict)
    batch_time: dict[str, pd.DataFrame] = field(default_factory=dict)
    kv_time: dict[str, pd.DataFrame] = field(default_factory=dict)
    itl: dict[str, pd.DataFrame] = field(default_factory=dict)
    #: cached KV by model over time (``prefix_kv_<mode>.csv``; runs with prefix caching)
    prefix_kv: dict[str, pd.DataFrame] = field(default_factory=dict)
    plan_table: pd.DataFrame | None = None
    sweep: pd.DataFrame | None = None
    goodput: pd.DataFrame | None = None

    @property
    def method(self) -> str:
        """``measured``, ``analytic`` or both comma-joined: how the step times were made."""
        ms = sorted({s.method for s in self.summaries.values()})
        if not ms and self.kind == PLAN:
            ms = [str(self.meta.get("method", "analytic"))]
        return ",".join(ms) if ms else "analytic"


def read_run(path: Path) -> RunData:
    """Read the replay run or plan directory ``path`` (see the module docstring).

    Raises :class:`RunDirError` (one line: the file, what is wrong, how to fix it) when
    ``path`` is neither kind or any of its files is damaged.
    """
    d = Path(path)
    if detect_kind(d) == PLAN:
        from sunsim.runs.plan_read import read_plan_run

        return read_plan_run(d)
    return read_replay(d)


def read_replay(d: Path) -> RunData:
    """Read a replay run directory ``d`` (``summary.json`` + per-mode files)."""
    p = d / SUMMARY_JSON
    meta = read_json(p)
    kind = meta.get("kind", REPLAY)
    if kind != REPLAY:
        raise RunDirError(f"{p}: \"kind\" is {kind!r}, not 'replay'; {_RERUN}")
    check_meta(meta, p, _REPLAY_META)
    modes = meta.pop("modes", None)
    if not isinstance(modes, dict) or not modes:
        raise RunDirError(f'{p}: no "modes" with per-mode summaries; {_RERUN}')
    summaries = {str(m): read_summary(s, p, f"modes.{m}") for m, s in modes.items()}
    frames: dict[str, dict[str, pd.DataFrame]] = {n: {} for n in RUN_CSVS}
    records = {}
    for mode, s in summaries.items():
        records[mode] = read_records(d, mode, s.requests.total)
        for name, cols in RUN_CSVS.items():
            frames[name][mode] = read_csv(d / f"{name}_{mode}.csv", cols, required=False)
    return RunData(
        path=d,
        kind=REPLAY,
        meta=meta,
        scenario_toml=read_text(d / SCENARIO_TOML),
        summaries=summaries,
        records=records,
        decode_workers=frames["decode_workers"],
        prefill_workers=frames["prefill_workers"],
        timelines=frames["timeline"],
        batch_time=frames["batch_time"],
        kv_time=frames["kv_time"],
        itl=frames["itl"],
        prefix_kv=frames["prefix_kv"],
    )


def read_text(p: Path) -> str:
    """The UTF-8 text of ``p``, empty if it does not exist; :class:`RunDirError` if unreadable."""
    if not p.exists():
        return ""
    try:
        return p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise RunDirError(f"{p}: cannot read ({_short(e)}); {_RERUN}") from None


def read_json(p: Path) -> dict[str, Any]:
    """The JSON object in ``p``; :class:`RunDirError` when it is missing, not UTF-8, not JSON
    (e.g. truncated) or not an object."""
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RunDirError(f"{p}: missing; {_RERUN}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise RunDirError(f"{p}: cannot read ({_short(e)}); {_RERUN}") from None
    try:
        data = json.loads(text)
    except ValueError as e:
        raise RunDirError(
            f"{p}: not valid JSON, the file is truncated or damaged ({_short(e)}); {_RERUN}"
        ) from None
    if not isinstance(data, dict):
        raise RunDirError(f"{p}: expected a JSON object, got {type(data).__name__}; {_RERUN}")
    return data


#: Top-level keys of summary.json other than ``modes`` -> the JSON type they must have.
_REPLAY_META: dict[str, type] = {
    "trace": dict,
    "model_counts": dict,
    "labelling": str,
    "latency_sources": list,
}


def check_meta(meta: dict[str, Any], p: Path, types: dict[str, type]) -> None:
    """:class:`RunDirError` when a key of ``types`` is in ``meta`` (read from ``p``) with
    another JSON type (null is allowed)."""
    names = {dict: "an object", list: "a list", str: "a string", int: "an integer"}
    for key, tp in types.items():
        v = meta.get(key)
        if v is not None and not isinstance(v, tp):
            raise RunDirError(
                f'{p}: "{key}" should be {names.get(tp, tp.__name__)}, got '
                f"{type(v).__name__}; {_RERUN}"
            )


def read_summary(data: Any, p: Path, key: str) -> RunSummary:
    """``data`` (found at ``key`` in the file ``p``) as a :class:`RunSummary`."""
    try:
        return RunSummary.from_dict(data)
    except SummaryFormatError as e:
        raise RunDirError(f"{p}: {key}.{e} (not a sunsim run summary); {_RERUN}") from None


def read_records(d: Path, mode: str, num_requests: int | None = None) -> pd.DataFrame:
    """``records_<mode>.parquet|csv`` of ``d``, checked for the report's columns and, when
    ``num_requests`` is given, for one row per request."""
    p = records_path(d, mode)
    if p is None:
        raise RunDirError(
            f"{d}: records_{mode}.parquet/.csv missing (summary.json lists mode '{mode}'); {_RERUN}"
        )
    try:
        df = pd.read_parquet(p) if p.suffix == ".parquet" else pd.read_csv(p)
    except Exception as e:  # noqa: BLE001 - pyarrow/pandas raise many kinds for damaged files
        raise RunDirError(
            f"{p}: cannot read records, the file is truncated or damaged ({_short(e)}); {_RERUN}"
        ) from None
    check_columns(df, p, RECORDS_COLUMNS)
    if num_requests is not None and len(df) != num_requests:
        raise RunDirError(
            f"{p}: {len(df)} rows but summary.json counts {num_requests} requests "
            f"(truncated, or from another run); {_RERUN}"
        )
    return df


def read_csv(
    p: Path, columns: tuple[str, ...], required: bool = True, empty_ok: bool = False
) -> pd.DataFrame:
    """The CSV ``p`` checked for ``columns`` (numbers except labels such as ``worker``).

    A missing file is :class:`RunDirError` when ``required``, else an empty frame with
    ``columns``. An empty file (no header) is an empty frame when ``empty_ok``, else a
    :class:`RunDirError` (truncated).
    """
    if not p.exists():
        if required:
            raise RunDirError(f"{p}: missing; {_RERUN}")
        return pd.DataFrame(columns=list(columns))
    try:
        df = pd.read_csv(p)
    except pd.errors.EmptyDataError as e:
        if empty_ok:
            return pd.DataFrame()
        raise RunDirError(f"{p}: cannot read ({_short(e)}); {_RERUN}") from None
    except Exception as e:  # noqa: BLE001 - ParserError, UnicodeDecodeError...
        raise RunDirError(f"{p}: cannot read ({_short(e)}); {_RERUN}") from None
    check_columns(df, p, columns)
    return df


def check_columns(df: pd.DataFrame, p: Path, columns: tuple[str, ...]) -> None:
    """:class:`RunDirError` unless ``df`` (read from ``p``) has ``columns``, the non-label
    ones numeric."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        have = ", ".join(map(str, df.columns[:8])) + (", ..." if len(df.columns) > 8 else "")
        raise RunDirError(
            f"{p}: missing column(s) {', '.join(missing)} (it has {have}); "
            f"not a file sunsim wrote, {_RERUN}"
        )
    for c in columns:
        if c not in _LABELS and len(df) and not pd.api.types.is_numeric_dtype(df[c]):
            bad = df[c][pd.to_numeric(df[c], errors="coerce").isna() & df[c].notna()]
            row = int(bad.index[0]) + 1 if len(bad) else "?"
            raise RunDirError(
                f"{p}: row {row}, column '{c}': not a number ({str(bad.iloc[0])[:30]!r}); {_RERUN}"
                if len(bad)
                else f"{p}: column '{c}' is not numeric; {_RERUN}"
            )


def _short(e: BaseException) -> str:
    """The first line of an exception's message, at most 120 characters."""
    msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return msg[:120]
