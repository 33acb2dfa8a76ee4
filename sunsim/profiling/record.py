"""The harness's measurements as a profile: the decode/prefill tables and ``meta.json``
(the format: :mod:`sunsim.latency.profile_format`)."""

from __future__ import annotations

import dataclasses
import datetime as _dt
from dataclasses import dataclass
from typing import Any

import pandas as pd

from sunsim.errors import ProfileError
from sunsim.latency.profile_format import (
    DECODE_COLUMNS,
    EXTRA_COLUMNS,
    PREFILL_COLUMNS,
    SCHEMA_VERSION,
)
from sunsim.profiling.grid import ProfileGrid, TimingOptions
from sunsim.profiling.measure import GridMeasurer, GridPlan
from sunsim.serialize import as_dict
from sunsim.specs import ModelSpec

#: Keys of :func:`sunsim.profiling.timing.device_info` copied into ``meta.json``.
DEVICE_KEYS = (
    "device_kind",
    "device_name",
    "device_slug",
    "gpu_key",
    "device_memory_bytes",
    "torch_version",
    "cuda_version",
    "driver_version",
    "threads",
    "cpu_count",
    "cpu_name",
)


def build_tables(
    measurer: GridMeasurer, plan: GridPlan, do_prefill: bool
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """``(decode, prefill)`` DataFrames (:data:`DECODE_COLUMNS` / :data:`PREFILL_COLUMNS` +
    :data:`EXTRA_COLUMNS`, seconds); ``prefill`` None unless ``do_prefill``.

    Raises ProfileError when no point of a module fit the device memory.
    """
    decode_rows = [
        {"batch_size": b, "context_tokens": c, "total_context_tokens": b * c, **measurer.row(k)}
        for k in plan.decode
        for _, b, c in [k]
    ]
    prefill_rows = [
        {"batch_size": b, "prompt_tokens": l, "total_tokens": b * l, **measurer.row(k)}
        for k in plan.prefill
        for _, b, l in [k]
    ]
    if not decode_rows:
        raise ProfileError(
            "no decode grid point fits the device memory; pass smaller "
            "--batch-sizes/--contexts or fewer --layers"
        )
    decode = pd.DataFrame(decode_rows, columns=[*DECODE_COLUMNS, *EXTRA_COLUMNS])
    if not do_prefill:
        return decode, None
    if not prefill_rows:
        raise ProfileError(
            "no prefill grid point fits the device memory; pass smaller "
            "--prompt-tokens or fewer --layers"
        )
    return decode, pd.DataFrame(prefill_rows, columns=[*PREFILL_COLUMNS, *EXTRA_COLUMNS])


@dataclass(frozen=True)
class RunFacts:
    """What ``meta.json`` records about one harness run besides the tables."""

    spec: ModelSpec
    precision: str
    quick: bool
    info: dict[str, Any]  # sunsim.profiling.timing.device_info
    kernel: str  # the module's linear kernel
    weight_nbytes: int  # weights of the layers run
    layers_run: int
    grid: ProfileGrid
    skipped: list[dict[str, Any]]
    timing: TimingOptions
    timer_name: str
    timer_clock: str
    preempted_rounds: int
    fit_statistic: str
    probes: dict[str, Any]  # measure.pool_probes
    command: str | None
    wall_s: float


def _quantisation(f: RunFacts) -> dict[str, Any]:
    from sunsim.profiling.quant import SCHEMES

    return {
        "precision": f.precision,
        "scheme": SCHEMES[f.precision],
        "kernel": f.kernel,
        "applies_to": "q/k/v/o and gate/up/down linear layers (q/k/v and gate/up fused); "
        "embedding, RMSNorms and LM head BF16",
    }


def _scaling(scaled: bool) -> dict[str, Any]:
    return {
        "scaled": scaled,
        "formula": (
            "time_s = base_s + layers_s * layers_total / layers_run, per repeat, "
            "then median/p10/p90"
            if scaled
            else "none (all layers run)"
        ),
        "base": (
            "embedding + final RMSNorm + LM head of the same batch, timed at every "
            "grid point interleaved with the k layers alone (on precomputed "
            "embeddings), so only the layers' time is scaled"
            if scaled
            else None
        ),
    }


def _timing(f: RunFacts) -> dict[str, Any]:
    return {
        **dataclasses.asdict(f.timing),
        "timer": f.timer_name,
        "clock": f.timer_clock,
        "preempted_rounds": f.preempted_rounds,
        "preempted_note": (
            "rounds in which another process held the core (wall > "
            "1.05 x CPU time + 50 us), column 'preempted'; the "
            "thread-cpu clock leaves that time out"
            if f.info["device_kind"] == "cpu"
            else None
        ),
        "statistic": "median, p10, p90 and min over repeats (seconds)",
        "inputs": "random token ids and random KV caches",
    }


def _fit_note(fit_statistic: str) -> str:
    if fit_statistic == "min":
        return (
            "the latency model fits time_s_min (the fastest repeat of each grid point): "
            "other tenants of this shared machine slow repeats by up to 3x for seconds at a "
            "time; the median columns keep the typical time under that load"
        )
    return "the latency model fits time_s_median"


def build_meta(f: RunFacts) -> dict[str, Any]:
    """``meta.json`` of a harness run (the keys :func:`~sunsim.profiling.harness.profile_model`
    documents, in the order written)."""
    from sunsim import __version__

    do_prefill = f.precision == "bf16"
    scaled = f.layers_run < f.spec.num_layers
    meta: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "method": "measured",
        "quick": bool(f.quick),
        "model": f.spec.name,
        "precision": f.precision,
        "model_spec": as_dict(f.spec),
        "modules": ["prefill", "decode"] if do_prefill else ["decode"],
        "prefill_note": None
        if do_prefill
        else (
            f"{f.precision} is the QSUN decode module: only decode is profiled; QSUN's prefill "
            "stays BF16, so prefill times come from the bf16 profile of the same device and model"
        ),
        **{k: f.info[k] for k in DEVICE_KEYS},
        "compute_capability": f.info.get("compute_capability"),
        "dtype": "bfloat16",
        "weight_quantisation": _quantisation(f),
        "attention": "torch.nn.functional.scaled_dot_product_attention (enable_gqa), BF16 KV cache",
        "layers_run": f.layers_run,
        "layers_total": f.spec.num_layers,
        "scaling": _scaling(scaled),
        "grid": {**dataclasses.asdict(f.grid), "skipped": f.skipped},
        "fit_statistic": f.fit_statistic,
        "fit_statistic_note": _fit_note(f.fit_statistic),
        "timing": _timing(f),
        **f.probes,
        "module_weight_bytes_run": f.weight_nbytes,
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "sunsim_version": __version__,
        "command": f.command,
        "wall_s": f.wall_s,
    }
    if f.quick:
        meta["device_slug"] = f"{meta['device_slug']}-quick"
    return meta
