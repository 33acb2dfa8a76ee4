"""The profiling harness: time the prefill and decode modules over a grid, write a profile.

``profile_model`` builds :class:`~sunsim.profiling.modules.DecoderModule` from a model spec,
measures the device's copy bandwidth and BF16 matmul rate (before the grid and before every
later pass, keeping the best), and times

* decode: one iteration for every (batch size B, context tokens per request c) of the grid,
  attending over a real random KV cache of c tokens for each request, plus the LM head;
* prefill (BF16 only; QSUN keeps prefill in BF16, so W8A16/W4A16 profiles are decode-only):
  one batch of B prompts of L tokens for every (B, L) of the grid with B x L <= max tokens.

A model too large for the device (or, on a CPU, too slow) runs ``layers_run`` of its
``layers_total`` layers. Then at every grid point the harness times the k layers alone (on
precomputed embeddings) and, interleaved with them, the part outside the layers (embedding,
final RMSNorm, LM head), and writes the full-model estimate per repeat ``t = t_base +
t_layers x layers_total / layers_run`` (median and p10/p90 over repeats): only the layers'
time is scaled, so noise in the LM head is not multiplied. ``meta.json`` records the scaling.

Files (``write_profile``, through :func:`sunsim.latency.profile_format.write_profile_dir`),
under ``<out>/<device-slug>/<model>/<precision>/``:

* ``decode.csv``: ``batch_size, context_tokens, total_context_tokens, time_s_median,
  time_s_p10, time_s_p90, repeats`` (+ ``time_s_min``: the fastest repeat;
  ``layers_s_median``: the k layers alone, ``base_s_median``: embedding/head only, both empty
  when no scaling; ``preempted``: rounds in which another process held the CPU core);
* ``prefill.csv`` (bf16 only): ``batch_size, prompt_tokens, total_tokens, time_s_median,
  time_s_p10, time_s_p90, repeats`` (+ the same extra columns);
* ``meta.json``: see :func:`profile_model`.

Times are seconds for the full model. ``--quick`` profiles go to ``<device-slug>-quick`` so
they never replace a full profile, and carry ``"quick": true``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sunsim.errors import ProfileError
from sunsim.latency.profile_format import (
    DECODE_COLUMNS,
    EXTRA_COLUMNS,
    PREFILL_COLUMNS,
    SCHEMA_VERSION,
    profile_subdir,
    write_profile_dir,
)
from sunsim.profiling._torch import require_torch
from sunsim.profiling.grid import (
    ProfileGrid,
    TimingOptions,
    default_grid,
    default_timing,
    fit_statistic_for,
)
from sunsim.profiling.measure import (
    GridMeasurer,
    PassContext,
    Progress,
    ProgressFn,
    auto_layers,
    check_plan,
    decode_pass,
    plan_points,
    pool_probes,
    prefill_pass,
    run_probe,
)
from sunsim.profiling.record import RunFacts, build_meta, build_tables
from sunsim.specs import ModelSpec, get_model, get_precision

__all__ = [
    "DECODE_COLUMNS",
    "EXTRA_COLUMNS",
    "PREFILL_COLUMNS",
    "SCHEMA_VERSION",
    "Profile",
    "ProfileGrid",
    "ProgressFn",
    "TimingOptions",
    "default_grid",
    "default_timing",
    "profile_dir",
    "profile_model",
    "write_profile",
]

#: The old private names (tests and notebooks use them).
_pool_probes = pool_probes
_auto_layers = auto_layers


@dataclass
class Profile:
    """A measured profile in memory: ``meta`` (JSON-ready dict), ``decode`` and ``prefill``
    DataFrames (``prefill`` is None for decode-only W8A16/W4A16 profiles)."""

    meta: dict[str, Any]
    decode: Any
    prefill: Any | None


def profile_model(
    model: str | ModelSpec,
    device: str = "cpu",
    precision: str = "bf16",
    *,
    quick: bool = False,
    grid: ProfileGrid | None = None,
    timing: TimingOptions | None = None,
    layers: int | None = None,
    threads: int | None = None,
    seed: int = 0,
    command: str | None = None,
    progress: ProgressFn | None = None,
) -> Profile:
    """Measure a profile of ``model`` at ``precision`` on ``device``.

    Args:
        model: a built-in model name (``sunsim.config.MODELS``) or a spec.
        device: ``cpu`` or ``cuda`` (``cuda:N``).
        precision: ``bf16`` (prefill and decode), ``w8a16`` or ``w4a16`` (decode only).
        quick: the tiny grid and few repeats, for tests (seconds on ``tiny-llama``).
        grid, timing: override :func:`default_grid` / :func:`default_timing`.
        layers: layers to run (default: all, unless the weights do not fit the device, or on a
            CPU exceed 2 GiB, when 2 (quick: 1) run and the rest is scaled).
        threads: CPU threads for torch while profiling (default: torch's default; restored
            afterwards); recorded in meta and in the CPU device slug (``...-1t``).
        seed: seeds the random weights, KV caches and token ids.
        command: the command line, recorded in meta.
        progress: called as ``progress(done, total, label)`` after each grid point.

    Returns:
        :class:`Profile` whose ``meta`` holds: ``schema_version``, ``method`` ("measured"),
        ``quick``, ``model``, ``precision``, ``model_spec`` (all ModelSpec fields),
        ``modules``, ``device_kind``, ``device_name``, ``device_slug``, ``gpu_key``,
        ``device_memory_bytes``, ``torch_version``, ``cuda_version``, ``driver_version``,
        ``threads``, ``dtype``, ``weight_quantisation`` (scheme, kernel, what it applies to),
        ``layers_run``, ``layers_total``, ``scaling``, ``grid`` (incl. skipped points),
        ``fit_statistic`` (``median`` or ``min``, see :class:`TimingOptions`),
        ``timing``, ``copy_bandwidth_bytes_per_s``, ``matmul_flops_per_s`` (the ceilings: the
        best repeat of all probes, one before the grid and, unless quick, one before every
        later pass; ``*_median_*``: the median of the probes' medians; ``probes``: how many),
        ``date``, ``sunsim_version``, ``command``, ``wall_s``.

    Raises:
        ProfileError: torch missing, no CUDA device, kernel unavailable, bad grid or layers.
        ConfigError: unknown model or precision.
    """
    torch = require_torch()
    prev_threads = torch.get_num_threads()
    if threads is not None:
        if threads < 1:
            raise ProfileError(f"--threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)
    try:
        return _profile_model(
            model,
            device,
            precision,
            quick=quick,
            grid=grid,
            timing=timing,
            layers=layers,
            seed=seed,
            command=command,
            progress=progress,
        )
    finally:
        torch.set_num_threads(prev_threads)


def _profile_model(
    model: str | ModelSpec,
    device: str,
    precision: str,
    *,
    quick: bool,
    grid: ProfileGrid | None,
    timing: TimingOptions | None,
    layers: int | None,
    seed: int,
    command: str | None,
    progress: ProgressFn | None,
) -> Profile:
    from sunsim.profiling.timing import Timer, device_info

    t_start = time.perf_counter()
    spec = get_model(model) if isinstance(model, str) else model
    prec = get_precision(precision).name
    info = device_info(device)
    kind = info["device_kind"]
    grid = grid or default_grid(kind, quick)
    timing = timing or default_timing(kind, quick)
    if timing.cuda_graphs and kind != "cuda":
        raise ProfileError("--cuda-graphs needs --device cuda")
    do_prefill = prec == "bf16"
    n_points = len(grid.decode_points()) + (len(grid.prefill_points()) if do_prefill else 0)
    prog = Progress(total=1 + timing.passes * n_points, fn=progress)
    prog.step("roofline probe (copy bandwidth, matmul rate)", n=0)
    probes = [run_probe(device, kind, quick)]
    prog.step("building modules")
    mod = _build_module(spec, prec, device, grid, layers, quick, kind, seed)
    plan = plan_points(spec, grid, mod.layers_run, _memory_budget(device), do_prefill)
    check_plan(plan, do_prefill)
    scaled = mod.layers_run < spec.num_layers
    timer = Timer(device)
    measurer = GridMeasurer(timer, timing, scaled, spec.num_layers / mod.layers_run)
    ctx = PassContext(mod, grid, plan, measurer, prog, seed, kind, timing.cuda_graphs)
    _run_passes(ctx, timing, probes, device, quick, do_prefill)
    decode, prefill = build_tables(measurer, plan, do_prefill)
    meta = build_meta(
        RunFacts(
            spec=spec,
            precision=prec,
            quick=quick,
            info=info,
            kernel=mod.kernel,
            weight_nbytes=mod.weight_nbytes,
            layers_run=mod.layers_run,
            grid=grid,
            skipped=plan.skipped,
            timing=timing,
            timer_name=timer.name,
            timer_clock=timer.clock,
            preempted_rounds=measurer.preempted_rounds,
            fit_statistic=fit_statistic_for(timing, kind),
            probes=pool_probes(probes),
            command=command,
            wall_s=round(time.perf_counter() - t_start, 1),
        )
    )
    prog.done = prog.total
    prog.step("done", n=0)
    return Profile(meta=meta, decode=decode, prefill=prefill)


def _memory_budget(device: str) -> int:
    """Bytes the KV caches and activations of one grid point may take (80% of what is free)."""
    from sunsim.profiling.timing import available_memory_bytes

    return int(0.8 * available_memory_bytes(device))


def _build_module(
    spec: ModelSpec,
    prec: str,
    device: str,
    grid: ProfileGrid,
    layers: int | None,
    quick: bool,
    kind: str,
    seed: int,
) -> Any:
    """The :class:`~sunsim.profiling.modules.DecoderModule` to time (``layers`` layers, or
    :func:`~sunsim.profiling.measure.auto_layers`), with positions for the whole grid."""
    from sunsim.profiling.modules import DecoderModule
    from sunsim.profiling.timing import available_memory_bytes

    torch = require_torch()
    budget = available_memory_bytes(device)
    n_layers = layers if layers is not None else auto_layers(spec, prec, kind, quick, budget)
    max_pos = max(
        max(grid.decode_context_tokens) + 1,
        max(grid.prefill_prompt_tokens) if prec == "bf16" else 1,
    )
    with torch.inference_mode():
        return DecoderModule(
            spec,
            layers_run=n_layers,
            precision=prec,
            device=device,
            max_positions=max_pos,
            seed=seed,
        )


def _run_passes(
    ctx: PassContext,
    timing: TimingOptions,
    probes: list[dict[str, float]],
    device: str,
    quick: bool,
    do_prefill: bool,
) -> None:
    """``timing.passes`` sweeps over the grid; before every later pass (unless quick) one more
    roofline probe, so the ceilings too are the best seen over the whole run."""
    torch = require_torch()
    with torch.inference_mode():
        for p in range(timing.passes):
            tag = f"pass {p + 1}/{timing.passes} " if timing.passes > 1 else ""
            if p and not quick:
                probes.append(run_probe(device, ctx.kind, quick, repeats=4))
            decode_pass(ctx, tag)
            prefill_pass(ctx, tag)
            if do_prefill:
                ctx.progress.skip(len(ctx.grid.prefill_points()) - len(ctx.plan.prefill))


def profile_dir(out_root: str | Path, meta: dict[str, Any]) -> Path:
    """``<out_root>/<device_slug>/<model>/<precision>``."""
    return profile_subdir(out_root, meta)


def write_profile(profile: Profile, out_root: str | Path = "profiles", force: bool = False) -> Path:
    """Write ``profile`` under ``out_root`` and return its directory (through
    :func:`sunsim.latency.profile_format.write_profile_dir`, which validates it first).

    Raises ProfileError when a full (non-quick) profile already exists there and ``force`` is
    False (quick profiles are replaced freely), or when the profile does not validate.
    """
    return write_profile_dir(out_root, profile.prefill, profile.decode, profile.meta, force=force)
