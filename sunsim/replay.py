"""Replay a trace through each serving mode: orchestration only.

``run_replay(scenario)`` loads and labels the trace (:func:`load_workload`), resolves a
latency model per module and precision (:func:`resolve_latency`), simulates every mode of the
scenario on the same labelled requests and summarizes each run
(:func:`sunsim.metrics.summarize`). Writing the run directory is :mod:`sunsim.runs`'s job.
The CLI's ``sunsim replay`` is a thin layer over ``run_replay`` and ``sunsim.runs.write_run``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sunsim.config import Scenario
from sunsim.data import default_trace
from sunsim.engine.closed_loop import ClosedLoopWorkload, simulate_closed_loop
from sunsim.engine.cluster import SimResult, simulate
from sunsim.engine.records import RecordSink
from sunsim.engine.session_loop import simulate_sessions
from sunsim.engine.spec import ClusterSpec
from sunsim.errors import ConfigError
from sunsim.latency.base import LatencyModel
from sunsim.latency.kv_cache_dtype import with_kv_cache_dtype
from sunsim.latency.overhead import with_overhead
from sunsim.latency.resolve import resolve_latency as resolve
from sunsim.metrics import RunSummary, comparison_table, summarize
from sunsim.traces.sessions import add_session_columns

#: The bundled default trace (package data).
DEFAULT_TRACE = default_trace()


@dataclass
class Workload:
    """A labelled trace: ``requests`` has ``arrival_s``, ``model``, ``prompt_tokens``,
    ``output_tokens`` (plus the reader's columns); ``info`` describes the trace.

    A closed-loop workload (``closed_loop`` set) has the same columns with ``arrival_s`` NaN:
    each run's arrival times come out of the simulation."""

    requests: pd.DataFrame
    info: dict[str, Any]
    model_counts: dict[str, int]
    labelling: str
    closed_loop: ClosedLoopWorkload | None = None


def closed_loop_workload(s: Scenario) -> Workload:
    """The closed-loop workload of ``s`` (``max_concurrency`` set): its requests drawn with
    the scenario's seed, and ``info`` saying what it is (no trace)."""
    assert s.max_concurrency is not None
    cl = ClosedLoopWorkload(
        s.max_concurrency,
        s.num_prompts,
        s.input_len,
        s.output_len,
        s.range_ratio,
        tuple(s.served_models),
        s.shares,
        s.seed,
    )
    df = cl.requests()
    info = {
        "path": "closed loop (no trace)",
        "format": "closed-loop",
        "num_requests": s.num_prompts,
        "max_concurrency": s.max_concurrency,
        "input_len": s.input_len,
        "output_len": s.output_len,
        "range_ratio": s.range_ratio,
        "description": cl.describe(),
    }
    counts = {m: int((df["model"] == m).sum()) for m in s.served_models}
    return Workload(df, info, counts, cl.labelling(), cl)


def at_request_rate(tr: Any, rate: float) -> Any:
    """The trace ``tr`` (:class:`~sunsim.traces.Trace`) with its arrival times scaled so that
    its mean rate (requests / span, as :func:`sunsim.traces.trace_info`) is ``rate`` req/s:
    the rate scale ``rate`` / the trace's own mean rate.

    Raises :class:`~sunsim.errors.ConfigError` when the trace has no span (fewer than two
    distinct arrival times), so no rate to scale.
    """
    import dataclasses

    req = tr.requests
    t = req["arrival_s"].to_numpy(dtype=float)
    span = float(t[-1] - t[0]) if len(t) else 0.0
    if span <= 0:
        raise ConfigError(
            f"request_rate {rate:g} req/s: the trace's {len(t)} requests arrive at one "
            "instant, so it has no rate to scale; use a longer trace or window"
        )
    factor = (len(t) / span) / rate  # time factor: own mean rate / wanted rate
    return dataclasses.replace(tr, requests=req.assign(arrival_s=(t - t[0]) * factor))


def load_workload(s: Scenario) -> Workload:
    """Read ``s.trace`` (or the bundled default), apply window/rate/max, label models.

    Raises :class:`~sunsim.errors.TraceError` for unreadable traces and
    :class:`~sunsim.errors.ConfigError` for bad labelling options.
    """
    from sunsim import traces  # the readers

    if s.closed_loop:
        return closed_loop_workload(s)
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
        sort_arrivals=s.sort_arrivals,
    )
    if s.request_rate is not None:
        tr = at_request_rate(tr, s.request_rate)
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
    """The latency model of ``role`` (``prefill``/``decode``) at ``precision`` for scenario
    ``s``, and a note saying where it came from (:func:`sunsim.latency.resolve.resolve_latency`
    with the scenario's model, the ``role`` pool's GPU (``prefill_gpu``/``decode_gpu``, else
    ``gpu``), latency source, profile path and the ``role`` pool's tensor parallel size),
    with an FP8 KV cache when ``s.kv_cache_dtype`` is ``fp8``
    (:func:`sunsim.latency.kv_cache_dtype.with_kv_cache_dtype`), plus the backend's fitted
    per-step overhead when ``s.engine_overhead`` names one
    (:class:`sunsim.latency.overhead.OverheadLatency`).

    Raises:
        ProfileError: the scenario's profile has no model/precision/role asked for.
        ConfigError: no fitted overhead for ``s.engine_overhead``.
    """
    tp = s.pool_tensor_parallel_size(role)
    gpu = s.pool_gpu(role)  # heterogeneous pools: each role on its own GPU
    lat, note = resolve(
        s.base_model, gpu, precision, role, s.latency, s.profile, tensor_parallel_size=tp
    )
    if s.kv_cache_dtype != "auto":  # FP8 KV cache (sunsim.latency.kv_cache_dtype)
        lat = with_kv_cache_dtype(lat, s.kv_cache_dtype)
        note = f"{note}; KV cache {s.kv_cache_dtype} ({lat.method})"
    if s.engine_overhead != "none":
        lat = with_overhead(lat, s.engine_overhead)
        note = f"{note}; {lat.description.rsplit(' + ', 1)[-1]}"
    return lat, note


@dataclass
class ReplayResult:
    """Results of one replay: per-mode :class:`SimResult` and :class:`RunSummary`, and the
    notes saying where each latency model came from."""

    scenario: Scenario
    workload: Workload
    results: dict[str, SimResult]
    summaries: dict[str, RunSummary]
    latency_notes: list[str] = field(default_factory=list)

    def table(self) -> pd.DataFrame:
        """Modes side by side (see :func:`sunsim.metrics.comparison_table`)."""
        return comparison_table(self.summaries)


def run_replay(
    s: Scenario,
    workload: Workload | None = None,
    on_progress: Callable[[str, float], None] | None = None,
    records_dir: Path | None = None,
) -> ReplayResult:
    """Simulate every mode of ``s`` on the same labelled requests.

    ``on_progress(mode, fraction)`` is called as each mode advances. With ``records_dir``,
    each mode's records stream to ``records_dir/records_<mode>.parquet`` in row groups as
    the run goes (:class:`sunsim.runs.stream.ParquetRecordSink`); the summary reads the
    file back one column at a time (:class:`sunsim.runs.stream.ParquetColumns`), the
    result's ``records`` is an empty frame and ``extra["records_path"]`` names the file, so
    a long trace's records never sit in memory whole. Timestamp and session
    (``after_previous``) replays stream; closed-loop clients do not (:class:`ConfigError`).
    """
    wl = workload if workload is not None else load_workload(s)
    if records_dir is not None and wl.closed_loop is not None:
        raise ConfigError(
            "--stream-records: closed-loop clients (--max-concurrency) keep their records in "
            "memory; drop --stream-records (or replay a trace)"
        )
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

    from sunsim.runs.stream import ParquetRecordSink, result_records

    results: dict[str, SimResult] = {}
    summaries: dict[str, RunSummary] = {}
    for mode in s.modes:
        cl = s.cluster(mode, out_per_model)
        pl = lat(s.prefill_precision, "prefill")
        dl = lat(str(cl.decode_precision), "decode")  # the design's when not set
        cb = (lambda f, _m=mode: on_progress(_m, f)) if on_progress else None
        path = None if records_dir is None else Path(records_dir) / f"records_{mode}.parquet"
        # session_id, turn (only when the trace has them) on the records, in memory or streamed
        with contextlib.ExitStack() as stack:
            sink = None
            if path is not None:
                sink = ParquetRecordSink(path, prepare=lambda f: add_session_columns(f, req))
                stack.enter_context(sink)
            res = _simulate_mode(s, wl, cl, (pl, dl), cb, sink)
        if path is None:
            add_session_columns(res.records, req)
        else:
            res.extra["records_path"] = str(path)
        results[mode] = res
        summaries[mode] = summarize(res, s.slo, result_records(res))
    return ReplayResult(s, wl, results, summaries, notes)


def _simulate_mode(
    s: Scenario,
    wl: Workload,
    cl: ClusterSpec,
    latency: tuple[LatencyModel, LatencyModel],
    on_progress: Callable[[float], None] | None,
    sink: RecordSink | None,
) -> SimResult:
    """One mode's run on the cluster ``cl`` with (prefill, decode) ``latency``: closed-loop
    clients, sessions (``after_previous``) or the trace's timestamps; records to ``sink``
    when given (not for closed loops: :func:`run_replay` refuses that)."""
    pl, dl = latency
    req = wl.requests
    if wl.closed_loop is not None:
        return simulate_closed_loop(
            wl.closed_loop, cl, pl, dl, requests=req, seed=s.seed, on_progress=on_progress
        )
    if s.session_arrivals == "after_previous":  # sessions as closed loops
        return simulate_sessions(
            req, cl, pl, dl, think_time_s=s.think_time_s, seed=s.seed,
            on_progress=on_progress, records_sink=sink,
        )  # fmt: skip
    return simulate(req, cl, pl, dl, seed=s.seed, on_progress=on_progress, records_sink=sink)


__all__ = [
    "DEFAULT_TRACE",
    "ReplayResult",
    "Workload",
    "closed_loop_workload",
    "load_workload",
    "resolve_latency",
    "run_replay",
]
