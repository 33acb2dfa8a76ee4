"""Replay a trace through each serving mode and write the run directory.

``run_replay(scenario)`` loads and labels the trace, resolves a latency model per module and
precision, simulates every mode of the scenario on the same labelled requests, and returns
the results with their summaries; ``write_run`` writes them. The CLI's ``sunsim replay`` is
a thin layer over these two.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import tomli_w

from sunsim import __version__
from sunsim.config import Scenario, scenario_to_toml_dict
from sunsim.data import default_trace, profiles_root
from sunsim.engine.cluster import SimResult, itl_bin_edges, simulate
from sunsim.errors import ConfigError, ProfileError
from sunsim.latency.base import LatencyModel
from sunsim.latency.roofline import RooflineLatency
from sunsim.metrics import comparison_table, summarize
from sunsim.serialize import jsonable
from sunsim.specs import get_gpu, get_model

#: The bundled default trace and measured profiles (package data).
DEFAULT_TRACE = default_trace()
PROFILES_ROOT = profiles_root()


@dataclass
class Workload:
    """A labelled trace: ``requests`` has ``arrival_s``, ``model``, ``prompt_tokens``,
    ``output_tokens`` (plus the reader's columns); ``info`` describes the trace."""

    requests: pd.DataFrame
    info: dict[str, Any]
    model_counts: dict[str, int]
    labelling: str


def load_workload(s: Scenario) -> Workload:
    """Read ``s.trace`` (or the bundled default), apply window/rate/max, label models.

    Raises :class:`~sunsim.errors.TraceError` for unreadable traces and
    :class:`~sunsim.errors.ConfigError` for bad labelling options.
    """
    from sunsim import traces  # the readers

    path = Path(s.trace) if s.trace else DEFAULT_TRACE
    if s.trace is None and not path.exists():
        raise ConfigError(
            f"the bundled default trace {path} is missing (install sunsim from a "
            "source checkout with `pip install -e .`, or pass a trace file)"
        )
    tr = traces.read_trace(
        path,
        s.trace_format,
        keep_failed=s.keep_failed,
        window=s.window_s,
        rate_scale=s.rate_scale,
        max_requests=s.max_requests,
    )
    df = tr.requests
    served = list(s.served_models)
    rng = np.random.default_rng(s.seed)
    explicit = s.zipf is not None or s.shares is not None or s.model_map is not None
    src = df["source_model"] if "source_model" in df.columns else None
    if (
        not explicit
        and src is not None
        and src.notna().all()
        and len(df)
        and set(src.astype(str).unique()) <= set(served)
    ):
        df = df.assign(model=src.astype(str))
        how = "the trace's own model column (names match the served models)"
    else:
        df = traces.label_models(
            df,
            served,
            zipf_alpha=s.zipf,
            shares=list(s.shares) if s.shares is not None else None,
            model_map=dict(s.model_map) if s.model_map else None,
            rng=rng,
        )
        if s.model_map:
            how = "the trace's model column through the model map"
        elif s.shares is not None:
            how = f"explicit shares {list(s.shares)} (seed {s.seed})"
        elif s.zipf is not None:
            how = f"Zipf alpha {s.zipf} (seed {s.seed})"
        elif src is not None and src.notna().any():
            how = "the trace's model column, by frequency rank"
        else:
            how = f"Zipf alpha 1.0 (default; seed {s.seed})"
    info = traces.trace_info(tr)
    counts = {m: int((df["model"] == m).sum()) for m in served}
    return Workload(df, info, counts, how)


def resolve_latency(s: Scenario, precision: str, role: str) -> tuple[LatencyModel, str]:
    """The latency model for ``role`` (``prefill``/``decode``) at ``precision``, and a note
    saying where it came from.

    ``s.latency``: ``roofline`` always uses :class:`RooflineLatency`; ``profile`` loads the
    profile at ``s.profile`` (a device, model or precision directory) and raises
    :class:`ProfileError` if it has no matching model/precision; ``auto`` uses ``s.profile`` if
    given, else a bundled profile under ``profiles/`` measured on ``s.gpu`` for this model and
    precision, else falls back to the roofline and says so.
    """
    model = get_model(s.base_model)
    gpu = get_gpu(s.gpu)
    roof = RooflineLatency(gpu, model, precision)
    if s.latency == "roofline":
        return roof, f"{role}: {roof.description} (asked for)"
    try:
        from sunsim.latency import profiled
    except ImportError:  # pragma: no cover - the profiled module ships with sunsim
        profiled = None
    if s.profile:
        if profiled is None:  # pragma: no cover
            raise ProfileError("profiled latency models are not available in this install")
        d = profiled.resolve_profile(Path(s.profile), model.name, precision)
        lat = profiled.ProfiledLatency.from_dir(d, model=model.name, precision=precision)
        _check_profile_role(lat, role, d)
        return lat, f"{role}: {lat.description} from {d}"
    if profiled is not None and PROFILES_ROOT.exists():
        d = profiled.find_profile(
            PROFILES_ROOT, gpu_key=_gpu_key(s.gpu), model=model.name, precision=precision
        )
        if d is not None:
            lat = profiled.ProfiledLatency.from_dir(d, model=model.name, precision=precision)
            if _has_role(lat, role):
                return lat, f"{role}: {lat.description} from {d}"
    return roof, (
        f"{role}: no measured profile for {s.gpu} {model.name} {precision}; "
        f"using {roof.description}"
    )


def _gpu_key(name: str) -> str:
    from sunsim.specs import GPU_ALIASES

    key = name.lower()
    return GPU_ALIASES.get(key, key)


def _has_role(lat: LatencyModel, role: str) -> bool:
    has = getattr(lat, "has_prefill", True) if role == "prefill" else True
    return bool(has)


def _check_profile_role(lat: LatencyModel, role: str, d: Path) -> None:
    if not _has_role(lat, role):
        raise ProfileError(
            f"{d}: this profile has no prefill measurements (decode-only "
            f"precision); point --profile at a directory that also holds bf16"
        )


@dataclass
class ReplayResult:
    """Results of one replay: per-mode :class:`SimResult` and summary dicts."""

    scenario: Scenario
    workload: Workload
    results: dict[str, SimResult]
    summaries: dict[str, dict[str, Any]]
    latency_notes: list[str] = field(default_factory=list)

    def table(self) -> pd.DataFrame:
        """Modes side by side (see :func:`sunsim.metrics.comparison_table`)."""
        return comparison_table(self.summaries)


def run_replay(
    s: Scenario,
    workload: Workload | None = None,
    on_progress: Callable[[str, float], None] | None = None,
) -> ReplayResult:
    """Simulate every mode of ``s`` on the same labelled requests.

    ``on_progress(mode, fraction)`` is called as each mode advances.
    """
    wl = workload if workload is not None else load_workload(s)
    req = wl.requests
    out_per_model = [
        float(req.loc[req["model"] == m, "output_tokens"].sum()) for m in s.served_models
    ]
    notes: list[str] = []
    cache: dict[tuple[str, str], LatencyModel] = {}

    def lat(precision: str, role: str) -> LatencyModel:
        key = (precision, role)
        if key not in cache:
            m, note = resolve_latency(s, precision, role)
            cache[key] = m
            notes.append(note)
        return cache[key]

    results: dict[str, SimResult] = {}
    summaries: dict[str, dict[str, Any]] = {}
    for mode in s.modes:
        cl = s.cluster(mode, out_per_model)
        pl = lat("bf16", "prefill")
        dl = lat(cl.decode_precision, "decode")
        cb = (lambda f, _m=mode: on_progress(_m, f)) if on_progress else None
        res = simulate(req, cl, pl, dl, seed=s.seed, on_progress=cb)
        results[mode] = res
        summaries[mode] = summarize(res, s.slo)
    return ReplayResult(s, wl, results, summaries, notes)


def default_run_dir(prefix: str = "replay") -> Path:
    """``runs/<prefix>-YYYYmmdd-HHMMSS`` under the current directory."""
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{prefix}-{stamp}"


def write_run(
    r: ReplayResult, out: Path, records_format: str = "parquet", command: str | None = None
) -> list[Path]:
    """Write the run directory; returns the files written.

    Files: ``scenario.toml`` (the resolved scenario: ``sunsim replay --scenario`` repeats the
    run), ``summary.json`` (per-mode summaries, trace info, model counts, latency sources,
    sunsim version, command), ``comparison.csv`` (the side-by-side table), and per mode
    ``records_<mode>.parquet|csv`` (one row per request), ``decode_workers_<mode>.csv``,
    ``prefill_workers_<mode>.csv``, ``timeline_<mode>.csv``, ``batch_time_<mode>.csv``,
    ``kv_time_<mode>.csv``, ``itl_<mode>.csv`` (non-empty ITL bins: ``lo_s``, ``hi_s``,
    ``tokens``).
    """
    if records_format not in ("parquet", "csv"):
        raise ConfigError(f"records format must be parquet or csv, got '{records_format}'")
    out.mkdir(parents=True, exist_ok=True)
    files = []
    s = r.scenario
    toml = scenario_to_toml_dict(s)
    if s.trace is None:
        toml["trace"]["path"] = str(DEFAULT_TRACE)
    p = out / "scenario.toml"
    p.write_text(
        "# sunsim replay scenario; repeat with: sunsim replay --scenario "
        f"{p}\n" + tomli_w.dumps(toml)
    )
    files.append(p)
    summary = {
        "sunsim_version": __version__,
        "created": _dt.datetime.now().isoformat(timespec="seconds"),
        "command": command,
        "trace": jsonable(r.workload.info),
        "model_counts": r.workload.model_counts,
        "labelling": r.workload.labelling,
        "latency_sources": r.latency_notes,
        "modes": jsonable(r.summaries),
    }
    p = out / "summary.json"
    p.write_text(json.dumps(summary, indent=2))
    files.append(p)
    p = out / "comparison.csv"
    r.table().to_csv(p)
    files.append(p)
    edges = itl_bin_edges()
    for mode, res in r.results.items():
        rec = res.records
        p = out / f"records_{mode}.{records_format}"
        if records_format == "parquet":
            rec.to_parquet(p, index=False)
        else:
            rec.to_csv(p, index=False)
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
        nz = np.nonzero(res.itl_hist)[0]
        p = out / f"itl_{mode}.csv"
        pd.DataFrame({"lo_s": edges[nz], "hi_s": edges[nz + 1], "tokens": res.itl_hist[nz]}).to_csv(
            p, index=False
        )
        files.append(p)
    return files
