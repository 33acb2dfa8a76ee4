"""Writing a replay run directory (the layout is in :mod:`sunsim.runs.layout`)."""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import tomli_w

from sunsim import __version__
from sunsim.config import scenario_to_toml_dict
from sunsim.data import default_trace
from sunsim.engine.cluster import itl_bin_edges
from sunsim.errors import ConfigError
from sunsim.metrics import RunSummary, as_summary
from sunsim.metrics.benchmark import SCHEMA_VERSION, metrics_frame
from sunsim.runs.layout import (
    COMPARISON_CSV,
    RECORDS_FORMATS,
    REPLAY,
    SCENARIO_TOML,
    SUMMARY_JSON,
    RunDirError,
)
from sunsim.serialize import jsonable

if TYPE_CHECKING:
    from sunsim.replay import ReplayResult


def scenario_toml_text(r: ReplayResult, path: Path) -> str:
    """The resolved scenario of ``r`` as TOML, headed by the command that repeats it; the
    trace path is absolute (the bundled default trace when the scenario named none), so the
    file reproduces the run from any directory."""
    s = r.scenario
    toml = scenario_to_toml_dict(s)
    if not s.closed_loop:  # a closed-loop workload (max_concurrency) has no trace
        trace = Path(s.trace) if s.trace is not None else default_trace()
        toml["trace"]["path"] = str(trace.resolve())
    return (
        "# sunsim replay scenario; repeat with: sunsim replay --scenario "
        f"{path.resolve()}\n" + tomli_w.dumps(toml)
    )


def summary_json(
    r: ReplayResult, summaries: Mapping[str, RunSummary], command: str | None
) -> dict[str, Any]:
    """The JSON-ready contents of ``summary.json``: ``kind`` (``"replay"``), sunsim version,
    creation time, command, trace facts, model counts, labelling, latency sources and
    ``modes`` (mode -> ``RunSummary.to_dict()``, NaN as null); ``schema_version`` and
    ``results`` (:func:`sunsim.runs.results_json.replay_results`, what ``--json`` prints)."""
    from sunsim.runs.results_json import replay_results

    return {
        "kind": REPLAY,
        "schema_version": SCHEMA_VERSION,
        "sunsim_version": __version__,
        "created": _dt.datetime.now().isoformat(timespec="seconds"),
        "command": command,
        "trace": jsonable(r.workload.info),
        "model_counts": r.workload.model_counts,
        "labelling": r.workload.labelling,
        "latency_sources": r.latency_notes,
        "modes": jsonable({m: s.to_dict() for m, s in summaries.items()}),
        "results": replay_results(r),
    }


def write_run(
    r: ReplayResult, out: Path, records_format: str = "parquet", command: str | None = None
) -> list[Path]:
    """Write the run directory ``out`` (created if missing); returns the files written.

    Files: ``scenario.toml`` (the resolved scenario with an absolute trace path:
    ``sunsim replay --scenario`` repeats the run), ``summary.json`` (see
    :func:`summary_json`), ``comparison.csv`` (one row per design, the numbers of
    ``results.designs``: vLLM's metric names, costs), and per mode
    ``records_<mode>.parquet|csv`` (one row per request), ``decode_workers_<mode>.csv``,
    ``prefill_workers_<mode>.csv``, ``timeline_<mode>.csv``, ``batch_time_<mode>.csv``,
    ``kv_time_<mode>.csv``, ``itl_<mode>.csv`` (non-empty ITL bins: ``lo_s``, ``hi_s``,
    ``tokens``), and with prefix caching ``prefix_kv_<mode>.csv`` (cached KV by model over
    time). Records streamed into ``out`` during the run (``run_replay(...,
    records_dir=out)``) are already there and are not written again.

    It does not check whether ``out`` already holds a run: call
    :func:`~sunsim.runs.layout.prepare_run_dir` first. Raises :class:`ConfigError` for an
    unknown ``records_format`` and :class:`RunDirError` when a file cannot be written.
    """
    if records_format not in RECORDS_FORMATS:
        raise ConfigError(f"records format must be parquet or csv, got '{records_format}'")
    out = Path(out)
    summaries = {m: as_summary(s) for m, s in r.summaries.items()}
    try:
        return _write(r, out, summaries, records_format, command)
    except OSError as e:
        raise RunDirError(
            f"{getattr(e, 'filename', None) or out}: cannot write ({e.strerror or e}); "
            "choose another --out"
        ) from None


def _write(
    r: ReplayResult,
    out: Path,
    summaries: dict[str, RunSummary],
    records_format: str,
    command: str | None,
) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    files = []
    p = out / SCENARIO_TOML
    p.write_text(scenario_toml_text(r, p))
    files.append(p)
    p = out / SUMMARY_JSON
    summ = summary_json(r, summaries, command)
    p.write_text(json.dumps(summ, indent=2))
    files.append(p)
    p = out / COMPARISON_CSV
    metrics_frame(summ["results"]["designs"]).to_csv(p, index=False)
    files.append(p)
    edges = itl_bin_edges()
    for mode, res in r.results.items():
        p = out / f"records_{mode}.{records_format}"
        if "records_path" in res.extra:  # streamed during the run (run_replay records_dir)
            if Path(res.extra["records_path"]).resolve() != p.resolve():
                raise ConfigError(f"records of {mode} were streamed to another directory")
        elif records_format == "parquet":
            res.records.to_parquet(p, index=False)
        else:
            res.records.to_csv(p, index=False)
        files.append(p)
        for name, frame in (
            ("decode_workers", res.decode_workers),
            ("prefill_workers", res.prefill_workers),
            ("timeline", res.timeline),
            ("batch_time", res.batch_time),
            ("kv_time", res.kv_time),
        ):
            p = out / f"{name}_{mode}.csv"
            frame.to_csv(p, index=False)
            files.append(p)
        if "prefix_kv_timeline" in res.extra:  # prefix caching: cached KV by model over time
            p = out / f"prefix_kv_{mode}.csv"
            res.extra["prefix_kv_timeline"].to_csv(p, index=False)
            files.append(p)
        nz = np.nonzero(res.itl_hist)[0]
        p = out / f"itl_{mode}.csv"
        itl = pd.DataFrame({"lo_s": edges[nz], "hi_s": edges[nz + 1], "tokens": res.itl_hist[nz]})
        itl.to_csv(p, index=False)
        files.append(p)
    return files
