"""The layout of run directories: file names, the columns each file must have, which kind of
directory a path is, and preparing an output directory.

A **replay run** (``sunsim replay``; also each ``replay_<mode>/`` of a plan) holds
``scenario.toml``, ``summary.json`` (``"kind": "replay"``), ``comparison.csv`` and per mode
``records_<mode>.parquet|csv`` and the CSVs of :data:`RUN_CSVS`. A **plan** (``sunsim plan``)
holds ``plan.json`` (``"kind": "plan"``), ``plan.csv`` and optional ``sweep.csv``,
``goodput.csv``, ``replay_<mode>/``.
"""

from __future__ import annotations

import datetime as _dt
import shutil
import tempfile
from pathlib import Path

from sunsim.errors import SunsimError

SUMMARY_JSON = "summary.json"
PLAN_JSON = "plan.json"
SCENARIO_TOML = "scenario.toml"
COMPARISON_CSV = "comparison.csv"
#: The two kinds of run directory, as recorded under ``"kind"`` in summary.json / plan.json.
REPLAY, PLAN = "replay", "plan"
RECORDS_FORMATS = ("parquet", "csv")

#: Columns the report needs in ``records_<mode>.*`` (the engine writes more).
RECORDS_COLUMNS = ("model", "status", "ttft_s", "tpot_s", "e2e_s")
#: Per-mode CSVs of a replay run (``<name>_<mode>.csv``) -> the columns they must have.
RUN_CSVS: dict[str, tuple[str, ...]] = {
    "decode_workers": ("worker", "pool", "busy_frac", "mean_batch", "kv_occupancy"),
    "prefill_workers": ("worker", "busy_frac"),
    "timeline": ("worker", "t_s", "busy_frac"),
    "batch_time": ("batch_size", "seconds"),
    "kv_time": ("kv_occupancy_pct", "seconds"),
    "itl": ("lo_s", "hi_s", "tokens"),
    # prefix caching only: cached KV by model over time (sunsim.engine.prefix_timeline)
    "prefix_kv": ("t_s", "model", "cached_kv_bytes"),
}
#: Plan files -> the columns they must have (when present).
PLAN_CSVS: dict[str, tuple[str, ...]] = {
    "plan": ("mode", "num_prefill_gpus", "num_decode_gpus", "num_gpus", "throughput_per_gpu"),
    "sweep": ("sweep_value", "mode", "num_gpus", "num_decode_gpus", "throughput_per_gpu"),
    "goodput": ("mode", "rate_scale"),
}
#: Files of a run written next to it by ``sunsim report``.
REPORT_FILES = ("report.html", "report.md")


class RunDirError(SunsimError):
    """A run or plan directory that cannot be written or read: one line naming the file, what
    is wrong and how to fix it."""


def records_path(d: Path, mode: str) -> Path | None:
    """``records_<mode>.parquet`` or ``.csv`` in ``d`` (parquet first), None if neither."""
    for fmt in RECORDS_FORMATS:
        p = d / f"records_{mode}.{fmt}"
        if p.exists():
            return p
    return None


def detect_kind(d: Path) -> str:
    """:data:`PLAN` if ``d`` holds ``plan.json``, :data:`REPLAY` if it holds ``summary.json``.

    Raises :class:`RunDirError` if ``d`` is not a directory or holds neither.
    """
    d = Path(d)
    if not d.is_dir():
        raise RunDirError(
            f"{d}: no such directory (give a `sunsim replay` or `sunsim plan` output directory)"
        )
    if (d / PLAN_JSON).exists():
        return PLAN
    if (d / SUMMARY_JSON).exists():
        return REPLAY
    raise RunDirError(
        f"{d}: neither a replay run (summary.json + records_<mode>.*) nor a plan (plan.json); "
        "give a `sunsim replay` or `sunsim plan` output directory"
    )


def holds_run(d: Path) -> bool:
    """Whether ``d`` already holds a replay run or a plan."""
    return (d / SUMMARY_JSON).exists() or (d / PLAN_JSON).exists()


def default_run_dir(prefix: str = "replay") -> Path:
    """``runs/<prefix>-YYYYmmdd-HHMMSS`` under the current directory."""
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{prefix}-{stamp}"


def prepare_run_dir(out: Path, force: bool = False) -> Path:
    """Create ``out`` for a new run and check it can be written; returns ``out``.

    Call it before simulating, so a bad ``--out`` fails in a second, not after the run.
    Refuses a directory that already holds a run (``summary.json`` or ``plan.json``) unless
    ``force``; with ``force`` it removes that run's own files (the names sunsim writes:
    summary/plan/scenario/report files, ``records_*``, the per-mode CSVs, ``report_figures/``,
    ``replay_<mode>/`` run directories) so runs never mix, and keeps anything else.

    Raises :class:`RunDirError` (one line) when ``out`` is a file, holds a run without
    ``force``, or cannot be created or written.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RunDirError(f"--out {out}: exists and is not a directory; choose another --out")
    if out.is_dir() and holds_run(out) and not force:
        raise RunDirError(
            f"--out {out}: already holds a run (summary.json or plan.json); choose another "
            "--out, or pass --force to replace it"
        )
    try:
        if out.is_dir() and holds_run(out):
            clear_run(out)
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".sunsim-write-check-"):
            pass
    except OSError as e:
        raise RunDirError(
            f"--out {out}: cannot write there ({e.strerror or e}); choose another --out"
        ) from None
    return out


def clear_run(d: Path) -> None:
    """Remove the files a run or plan wrote into ``d`` (see :func:`prepare_run_dir`)."""
    names = [SUMMARY_JSON, PLAN_JSON, SCENARIO_TOML, COMPARISON_CSV, *REPORT_FILES]
    names += [f"{n}.csv" for n in ("plan", "sweep", "goodput", "evaluations")]
    patterns = ["records_*.parquet", "records_*.csv"] + [f"{n}_*.csv" for n in RUN_CSVS]
    files = [d / n for n in names] + [p for pat in patterns for p in d.glob(pat)]
    for p in files:
        if p.is_file():
            p.unlink()
    figs = d / "report_figures"
    if figs.is_dir():
        shutil.rmtree(figs)
    for sub in d.glob("replay_*"):
        if sub.is_dir() and (sub / SUMMARY_JSON).exists():
            shutil.rmtree(sub)
