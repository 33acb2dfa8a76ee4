"""The profile ``sunsim validate engine`` builds from the engine's own kernel measurements.

:func:`build_profile` pools the repeats of every profile pass into the profile tables
(``decode.csv``, ``prefill.csv``) and builds ``meta.json`` (:func:`profile_meta`);
:func:`sunsim.latency.profile_format.write_profile_dir` writes them; :func:`statistic_latency`
fits a latency model to another column of the tables than the median.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sunsim.latency.profile_tables import DECODE_COLUMNS, ENGINE_EXTRA_COLUMNS, PREFILL_COLUMNS
from sunsim.serialize import as_dict
from sunsim.validate.engine.options import EngineCheckOptions

#: Columns of the two tables: the profile format's, then the check's extra ones.
DECODE_TABLE_COLUMNS = (*DECODE_COLUMNS, *ENGINE_EXTRA_COLUMNS)
PREFILL_TABLE_COLUMNS = (*PREFILL_COLUMNS, *ENGINE_EXTRA_COLUMNS)

_KERNELS = {
    "decode": "sunsim.validate.real_engine.decode_step: batched linear layers, each "
    "request's new K/V written into its 16-token block of the paged cache, "
    "blocks gathered (index_select) and SDPA per request over its own "
    "context, LM head, greedy argmax",
    "prefill": "sunsim.validate.real_engine.prefill_packed: linear layers over all "
    "tokens of the batch, causal SDPA per request, LM head on each "
    "request's last token, greedy argmax",
}
_DEVICE_KEYS = (
    "device_kind",
    "device_name",
    "gpu_key",
    "device_memory_bytes",
    "torch_version",
    "cuda_version",
    "driver_version",
    "cpu_count",
    "cpu_name",
)


def _stats(xs: list[float]) -> tuple[float, float, float, float]:
    """(median, p10, p90, mean) of ``xs``."""
    a = np.asarray(xs, dtype=float)
    return (
        float(np.median(a)),
        float(np.percentile(a, 10)),
        float(np.percentile(a, 90)),
        float(np.mean(a)),
    )


def pool_passes(rows_per_pass: list[list[dict]], per: str, total: str) -> list[dict]:
    """One row per grid point ``(batch_size, per)`` over every pass's rows (``wall`` and
    ``cpu`` lists of seconds per repeat): ``batch_size``, ``per``, ``total`` (B x ``per``),
    ``time_s_median``/``_p10``/``_p90`` (wall), ``repeats``, ``time_s_mean``,
    ``cpu_s_median``, ``passes``."""
    acc: dict[tuple, dict] = {}
    for rows in rows_per_pass:
        for r in rows:
            a = acc.setdefault((r["batch_size"], r[per]), {"wall": [], "cpu": [], "passes": 0})
            a["wall"] += r["wall"]
            a["cpu"] += r["cpu"]
            a["passes"] += 1
    out = []
    for (b, t), a in acc.items():
        med, p10, p90, mean = _stats(a["wall"])
        out.append(
            {
                "batch_size": b,
                per: t,
                total: b * t,
                "time_s_median": med,
                "time_s_p10": p10,
                "time_s_p90": p90,
                "repeats": len(a["wall"]),
                "time_s_mean": mean,
                "cpu_s_median": float(np.median(a["cpu"])),
                "passes": a["passes"],
            }
        )
    return out


def build_profile(
    cfg: Any, raw: dict, opts: EngineCheckOptions, command: str | None
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """``(decode, prefill, meta)`` in the profile format (:mod:`sunsim.profiling.harness`),
    pooling the repeats of every pass. Extra columns: ``time_s_mean``, ``cpu_s_median``
    (thread CPU time), ``passes``."""
    dec = pd.DataFrame(
        pool_passes(raw["profile"]["decode"], "context_tokens", "total_context_tokens")
    )
    pre = pd.DataFrame(pool_passes(raw["profile"]["prefill"], "prompt_tokens", "total_tokens"))
    dec = dec[list(DECODE_TABLE_COLUMNS)]
    pre = pre[list(PREFILL_TABLE_COLUMNS)]
    return dec, pre, profile_meta(cfg, raw["info"]["decode"], opts, command)


def _timing_meta(cfg: Any, opts: EngineCheckOptions) -> dict:
    """``meta.json``'s ``timing``: how the engine's kernels were timed."""
    return {
        "warmup": cfg.warmup,
        "min_repeats": cfg.min_repeats,
        "max_repeats": cfg.max_repeats,
        "time_per_point_s": cfg.time_per_point_s,
        "passes": opts.profile_passes,
        "passes_note": "pass 1 before the replay, pass 2 after it (if 2), in the "
        "engine's own worker processes, one kernel at a time; repeats "
        "pooled",
        "conditions": (
            "prefill profiled while the decode process kept decoding a "
            "typical batch; decode profiled while the prefill process "
            "prefilled a typical prompt once every mean time between "
            "arrivals (as during the replay)"
            if opts.concurrent
            else "each kernel profiled with the other process idle"
        ),
        "prefill_idle_s": cfg.prefill_idle_s,
        "prefill_idle_note": "every timed prefill follows this much sleep, as a "
        "replayed prefill follows the wait for its request",
        "clock": "wall",
        "timer": "time.perf_counter (wall time, as the engine's "
        "TTFT/TPOT); cpu_s_median: time.thread_time",
        "statistic": "median, p10, p90 over repeats (seconds); time_s_mean too",
    }


def profile_meta(cfg: Any, info: dict, opts: EngineCheckOptions, command: str | None) -> dict:
    """``meta.json`` of the engine's profile (``method = "measured"``): the model, the device
    (``info``: the decode worker's :func:`~sunsim.profiling.timing.device_info`), the
    kernels, the grid and the timing. Built by hand here: the one place to swap for the
    profile format's own meta constructor."""
    from sunsim import __version__
    from sunsim.profiling.timing import device_slug

    spec = cfg.spec
    kind = info["device_kind"]
    slug = (
        device_slug(kind, info["device_name"], cfg.threads)
        if kind == "cpu"
        else info["device_slug"]
    )
    return {
        "schema_version": 1,
        "method": "measured",
        "quick": False,
        "model": spec.name,
        "precision": "bf16",
        "model_spec": as_dict(spec),
        "modules": ["prefill", "decode"],
        **{k: info.get(k) for k in _DEVICE_KEYS},
        "device_slug": f"{slug}-engine",
        "threads": cfg.threads,
        "dtype": "bfloat16",
        "weight_quantisation": {"precision": "bf16", "scheme": "none (BF16 weights)"},
        "kernels": dict(_KERNELS),
        "decode_context_definition": "context_tokens = tokens attended per request in the "
        "iteration (prompt + generated), as the simulator counts",
        "layers_run": spec.num_layers,
        "layers_total": spec.num_layers,
        "scaling": {"scaled": False, "formula": "none (all layers run)"},
        "grid": {
            "decode_batch_sizes": list(cfg.decode_batch_sizes),
            "decode_context_tokens": list(cfg.decode_contexts),
            "prefill_batch_sizes": list(cfg.prefill_batch_sizes),
            "prefill_prompt_tokens": list(cfg.prefill_prompt_tokens),
            "prefill_max_tokens": cfg.max_num_batched_tokens,
            "skipped": [],
        },
        "timing": _timing_meta(cfg, opts),
        "measured_by": "sunsim validate engine",
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "sunsim_version": __version__,
        "command": command,
    }


def _points(df: pd.DataFrame, per: str, column: str) -> list[tuple[float, ...]]:
    return [
        (float(b), float(c), float(b * c), float(b * c * c), float(t))
        for b, c, t in zip(df["batch_size"], df[per], df[column])
    ]


def statistic_latency(
    dec: pd.DataFrame, pre: pd.DataFrame, meta: dict, path: Path, column: str
) -> Any:
    """A :class:`ProfiledLatency` fitted to another column of the profile than
    ``time_s_median``, built in memory (the written profile keeps the median there):
    ``time_s_mean`` (the expected step time, which a sum of many steps such as a TPOT
    follows) or ``cpu_s_median`` (thread CPU time: a diagnostic that leaves out the time other
    processes held the core, exact with one torch thread)."""
    from sunsim.latency.profiled import ProfiledLatency

    return ProfiledLatency(
        meta,
        _points(dec, "context_tokens", column),
        _points(pre, "prompt_tokens", column),
        path=path,
        prefill_path=path,
    )
