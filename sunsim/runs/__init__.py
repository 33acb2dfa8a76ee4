"""Run and plan directories: written and read in one place.

Owns the on-disk layout of what ``sunsim replay`` and ``sunsim plan`` write and everything
that reads it back (the report reads run directories only through this package):

* :mod:`~sunsim.runs.layout`: file names, the columns each file must have, which kind a
  directory is (:func:`detect_kind`), and :func:`prepare_run_dir` (create ``--out``, refuse a
  directory holding another run unless ``force``, check it is writable -- before simulating);
* :mod:`~sunsim.runs.write`: :func:`write_run` (``scenario.toml`` with an absolute trace
  path, ``summary.json`` with ``"kind": "replay"``, ``comparison.csv``, per-mode records and
  worker/timeline CSVs);
* :mod:`~sunsim.runs.read`: :func:`read_run` -> :class:`RunData`, validating every file;
  a damaged one is a one-line :class:`RunDirError` (a :class:`~sunsim.errors.SunsimError`);
* :mod:`~sunsim.runs.plan_read`: the read side of plan directories (until ``plan_dir``,
  the planner's writer and reader of plan directories, is merged).

Summaries are :class:`sunsim.metrics.RunSummary` objects; their ``to_dict()`` is what
``summary.json`` holds per mode.
"""

from sunsim.runs.layout import (
    PLAN,
    REPLAY,
    RunDirError,
    default_run_dir,
    detect_kind,
    holds_run,
    prepare_run_dir,
)
from sunsim.runs.read import RunData, read_replay, read_run
from sunsim.runs.write import write_run

__all__ = [
    "PLAN",
    "REPLAY",
    "RunData",
    "RunDirError",
    "default_run_dir",
    "detect_kind",
    "holds_run",
    "prepare_run_dir",
    "read_replay",
    "read_run",
    "write_run",
]
