"""The whole check (:func:`run_engine_check`) and its analysis (:func:`analyze_engine_check`):
the engine's measurements -> its profile and link -> the mirrored simulation -> the
comparison, the summary and the files. :func:`load_engine_raw` reads a run back."""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sunsim.errors import ProfileError
from sunsim.latency.profile_format import write_profile_dir
from sunsim.serialize import jsonable
from sunsim.specs import ModelSpec
from sunsim.validate.engine.driver import run_engine
from sunsim.validate.engine.link import fit_link
from sunsim.validate.engine.mirror import LevelScaledLatency, SplitLatency, mirror_cluster
from sunsim.validate.engine.options import (
    STATISTICS,
    EngineCheck,
    EngineCheckOptions,
    ProgressFn,
    engine_config,
    load_slice,
)
from sunsim.validate.engine.output import cfg_dict, write_engine_check
from sunsim.validate.engine.profile import build_profile, statistic_latency
from sunsim.validate.engine.records import (
    batches_frame,
    compare_requests,
    engine_records,
    iterations_frame,
)
from sunsim.validate.engine.summary import summarize_check

_TRACE_COLUMNS = ["arrival_s", "model", "prompt_tokens", "output_tokens"]


def run_engine_check(
    opts: EngineCheckOptions,
    out: str | Path,
    *,
    progress: ProgressFn | None = None,
    command: str | None = None,
) -> EngineCheck:
    """Run the whole check (see the module docstring) and write its files under ``out``
    (also ``engine_raw.json``: every measurement, for :func:`analyze_engine_check`).

    Raises:
        TraceError: unreadable trace. ConfigError: bad options. ProfileError: torch missing.
        RuntimeError: a worker process failed (its traceback in the message).
    """
    from sunsim.profiling._torch import torch_available

    if not torch_available():
        raise ProfileError(
            "the real-engine check needs torch, which is not installed; "
            "install it with: pip install 'sunsim[profile]'"
        )
    say = progress or (lambda msg: None)
    out = Path(out)
    req = load_slice(opts)  # a bad trace fails before anything is written
    out.mkdir(parents=True, exist_ok=True)
    cfg = engine_config(opts, req)
    t_start = time.perf_counter()
    raw = run_engine(cfg, say, passes=opts.profile_passes, concurrent=opts.concurrent)
    raw["wall_s"] = time.perf_counter() - t_start
    raw["config"] = asdict(cfg)
    (out / "engine_raw.json").write_text(json.dumps(jsonable(raw)) + "\n", encoding="utf-8")
    say("writing the profile and simulating the same slice")
    return analyze_engine_check(raw, cfg, req, opts, out, command=command)


def load_engine_raw(path: str | Path) -> tuple[dict, Any, pd.DataFrame]:
    """Read ``engine_raw.json`` (written by :func:`run_engine_check`) back: ``(raw, cfg,
    requests)``, ready for :func:`analyze_engine_check` (to re-simulate a measured run)."""
    from sunsim.validate.real_engine import EngineConfig

    p = Path(path)
    if p.is_dir():
        p = p / "engine_raw.json"
    raw = json.loads(p.read_text(encoding="utf-8"))
    for role in ("prefill", "decode"):
        r = raw["replay"][role]
        r["requests"] = {int(k): v for k, v in r["requests"].items()}
    d = dict(raw["config"])
    d["spec"] = ModelSpec(**d["spec"])
    for k, v in d.items():
        if isinstance(v, list):
            d[k] = tuple(v)
    cfg = EngineConfig(**d)
    req = pd.DataFrame(
        {
            "arrival_s": cfg.arrival_s,
            "model": "m",
            "prompt_tokens": cfg.prompt_tokens,
            "output_tokens": cfg.output_tokens,
        }
    )
    return raw, cfg, req


def _simulate_statistic(
    raw: dict, req: pd.DataFrame, eng: pd.DataFrame, cluster: Any, lat: Any, cpu_lat: Any, seed: int
) -> tuple:
    """Simulate the slice with ``lat`` and compare: ``(sim result, comparison, iterations,
    prefill batches, summary)``."""
    from sunsim.engine.cluster import simulate

    sim_res = simulate(req[_TRACE_COLUMNS], cluster, lat, lat, seed=seed)
    comp = compare_requests(eng, sim_res.records)
    iters = iterations_frame(raw, lat, cpu_lat)
    batches = batches_frame(raw, lat, cpu_lat)
    return sim_res, comp, iters, batches, summarize_check(comp, iters, eng, sim_res, batches)


def _level_matched(
    raw: dict,
    req: pd.DataFrame,
    eng: pd.DataFrame,
    cluster: Any,
    lat: Any,
    run: tuple,
    seed: int,
) -> tuple[dict, pd.DataFrame]:
    """The diagnostic: ``lat`` at the speed level the machine had during the replay
    (:class:`LevelScaledLatency`); returns its summary entry and its comparison."""
    from sunsim.engine.cluster import simulate

    _sim, _comp, iters, batches, _summary = run
    d_scale = float(iters["step_s"].sum() / iters["predicted_s"].sum()) if len(iters) else 1.0
    p_scale = (
        float(batches["prefill_s"].sum() / batches["predicted_s"].sum()) if len(batches) else 1.0
    )
    lvl = LevelScaledLatency(lat, p_scale, d_scale)
    lvl_res = simulate(req[_TRACE_COLUMNS], cluster, lvl, lvl, seed=seed)
    lvl_comp = compare_requests(eng, lvl_res.records)
    lvl_sum = summarize_check(
        lvl_comp, iterations_frame(raw, lvl), eng, lvl_res, batches_frame(raw, lvl)
    )
    entry = {
        "note": "diagnostic, not a prediction: the profile's times scaled so that their sum "
        "over the replay's own decode iterations and prefill batches equals the "
        "measured sum (the machine's speed level during the replay); separates the "
        "drift of the machine's speed between profiling and replay from the error of "
        "the profile's shape and of the simulated dynamics",
        "decode_scale": d_scale,
        "prefill_scale": p_scale,
        **{
            k: lvl_sum["errors"][k] for k in ("ttft", "tpot", "e2e", "decode_step", "prefill_batch")
        },
        "goal": lvl_sum["goal"],
        "decode": {
            k: lvl_sum["decode"][k] for k in ("mean_batch_simulated", "preemptions_simulated")
        },
    }
    return entry, lvl_comp


def _statistics_summary(runs: dict[str, tuple], primary: str) -> dict:
    """``statistic`` (which one is primary) and ``errors_<other>_profile`` per other one."""
    others = [k for k in runs if k != primary]
    out: dict[str, Any] = {
        "statistic": {
            "primary": primary,
            "columns": STATISTICS[primary],
            "note": "the simulation's step times come from the profile's per-point statistic "
            f"'{primary}' over repeats; the errors with the others are under "
            + ", ".join(f"errors_{o}_profile" for o in others),
        }
    }
    keep = ("mean_batch_simulated", "preemptions_simulated", "step_s_mean_predicted")
    for other in others:
        o = runs[other][4]
        out[f"errors_{other}_profile"] = {
            **o["errors"],
            "goal": o["goal"],
            "decode": {k: o["decode"][k] for k in keep},
        }
    return out


def _load_summary(raw: dict) -> dict:
    """The load of the replay and of every phase, and the other processes' mean load."""
    prof = [ph for ph in raw.get("phases", []) if ph["phase"].startswith("profile")]
    return {
        "load": raw["load"],
        "load_phases": raw.get("phases", []),
        "load_other_cores_profile_mean": (
            float(np.mean([ph["other_busy_cores"] for ph in prof])) if prof else math.nan
        ),
        "load_other_cores_replay": raw["load"]["other_busy_cores"],
    }


def _settings(opts: EngineCheckOptions, cfg: Any, req: pd.DataFrame, raw: dict) -> dict:
    """The summary's ``settings``: the slice, the device, the engine."""
    info = raw["info"]["decode"]
    return {
        "trace": str(opts.trace),
        "num_requests": len(req),
        "rate_scale": opts.rate_scale,
        "arrival_span_s": float(req["arrival_s"].iloc[-1]),
        "prompt_scale": opts.prompt_scale,
        "output_scale": opts.output_scale,
        "max_prompt": opts.max_prompt,
        "max_output": opts.max_output,
        "prompt_tokens_mean": float(req["prompt_tokens"].mean()),
        "output_tokens_mean": float(req["output_tokens"].mean()),
        "device": opts.device,
        "device_name": info.get("device_name"),
        "model": cfg.spec.name,
        "threads_per_process": cfg.threads,
        "pinned_cpus": list(cfg.pin_cpus) if cfg.pin_cpus else None,
        "concurrent_profiling": opts.concurrent,
        "prefill_idle_s": cfg.prefill_idle_s,
        "autogroup": info.get("autogroup"),
        "max_num_seqs": cfg.max_num_seqs,
        "kv_blocks": cfg.kv_blocks,
        "block_size": cfg.block_tokens,
        "max_num_batched_tokens": cfg.max_num_batched_tokens,
        "prefill_pad_tokens": cfg.prefill_pad,
        "profile_passes": opts.profile_passes,
        "seed": opts.seed,
        "torch_version": info.get("torch_version"),
    }


def _latencies(
    cfg: Any, dec: pd.DataFrame, pre: pd.DataFrame, meta: dict, pdir: Path
) -> tuple[dict[str, Any], Any]:
    """The latency models of the three statistics (``split``, ``mean``, ``median``) and the
    CPU-time one, from the written profile."""
    from sunsim.latency.profiled import ProfiledLatency

    lat_median = ProfiledLatency.from_dir(pdir, model=cfg.spec.name, precision="bf16")
    lat_mean = statistic_latency(dec, pre, meta, pdir, "time_s_mean")
    lats = {"split": SplitLatency(lat_median, lat_mean), "mean": lat_mean, "median": lat_median}
    return lats, statistic_latency(dec, pre, meta, pdir, "cpu_s_median")


def analyze_engine_check(
    raw: dict,
    cfg: Any,
    req: pd.DataFrame,
    opts: EngineCheckOptions,
    out: str | Path,
    *,
    command: str | None = None,
) -> EngineCheck:
    """Build the profile from the engine's measurements ``raw`` (:func:`run_engine`), fit
    the link, simulate the slice with the profile's step times (``split``, ``mean`` and
    ``median`` statistics), compare and write everything under ``out``. The statistic
    ``opts.statistic`` is the primary one (``comparison.csv``, the figure, ``errors``); the
    others' errors are in the summary too (``errors_<statistic>_profile``)."""
    out = Path(out)
    dec, pre, meta = build_profile(cfg, raw, opts, command)
    pdir = write_profile_dir(out / "profile", pre, dec, meta)
    lats, cpu_lat = _latencies(cfg, dec, pre, meta, pdir)
    link, link_df, link_info = fit_link(raw, lats["median"].kv_bytes_per_token)
    cluster = mirror_cluster(cfg, lats["median"], link)
    eng = engine_records(cfg, raw, req)
    runs = {
        name: _simulate_statistic(raw, req, eng, cluster, lat, cpu_lat, opts.seed)
        for name, lat in lats.items()
    }
    primary = opts.statistic
    lat = lats[primary]
    sim_res, comp, iters, batches, summary = runs[primary]
    lvl, lvl_comp = _level_matched(raw, req, eng, cluster, lat, runs[primary], opts.seed)
    summary["errors_level_matched"] = lvl
    comp = comp.assign(
        ttft_s_level_matched=lvl_comp["ttft_s_simulated"].to_numpy(),
        tpot_s_level_matched=lvl_comp["tpot_s_simulated"].to_numpy(),
    )
    summary.update(_statistics_summary(runs, primary))
    summary["link"] = link_info
    summary.update(_load_summary(raw))
    summary["profile"] = {
        "dir": str(pdir),
        "description": lat.description,
        "decode_fit": lat.decode_fit,
        "prefill_fit": lat.prefill_fit,
        "cpu_time_decode_fit": cpu_lat.decode_fit,
    }
    summary["settings"] = _settings(opts, cfg, req, raw)
    summary["command"] = command
    summary["wall_s"] = raw.get("wall_s")
    res = EngineCheck(
        options=opts,
        config=cfg_dict(cfg),
        comparison=comp,
        iterations=iters,
        engine_records=eng,
        sim_records=sim_res.records,
        prefill_batches=batches,
        link=link_df,
        link_spec=link,
        summary=summary,
        profile_dir=pdir,
        out_dir=out,
    )
    write_engine_check(res)
    return res
