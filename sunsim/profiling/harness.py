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

Files (``write_profile``), under ``<out>/<device-slug>/<model>/<precision>/``:

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

import dataclasses
import datetime as _dt
import json
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sunsim.errors import ProfileError
from sunsim.profiling._torch import require_torch
from sunsim.serialize import as_dict
from sunsim.specs import ModelSpec, get_model, get_precision, weight_bytes

DECODE_COLUMNS = (
    "batch_size",
    "context_tokens",
    "total_context_tokens",
    "time_s_median",
    "time_s_p10",
    "time_s_p90",
    "repeats",
)
PREFILL_COLUMNS = (
    "batch_size",
    "prompt_tokens",
    "total_tokens",
    "time_s_median",
    "time_s_p10",
    "time_s_p90",
    "repeats",
)
EXTRA_COLUMNS = ("time_s_min", "layers_s_median", "base_s_median", "preempted")
SCHEMA_VERSION = 1

ProgressFn = Callable[[int, int, str], None]


@dataclass(frozen=True)
class ProfileGrid:
    """The measured grid.

    ``decode_batch_sizes`` x ``decode_context_tokens`` (context tokens per request);
    ``prefill_batch_sizes`` x ``prefill_prompt_tokens`` (tokens per prompt), keeping only
    batches of at most ``prefill_max_tokens`` tokens in all.
    """

    decode_batch_sizes: tuple[int, ...]
    decode_context_tokens: tuple[int, ...]
    prefill_batch_sizes: tuple[int, ...]
    prefill_prompt_tokens: tuple[int, ...]
    prefill_max_tokens: int

    def __post_init__(self) -> None:
        for name in (
            "decode_batch_sizes",
            "decode_context_tokens",
            "prefill_batch_sizes",
            "prefill_prompt_tokens",
        ):
            v = getattr(self, name)
            if not v or any(int(x) < 1 for x in v):
                raise ProfileError(f"grid {name} must be positive integers, got {list(v)}")
            object.__setattr__(self, name, tuple(sorted(set(int(x) for x in v))))

    def prefill_points(self) -> list[tuple[int, int]]:
        return [
            (b, l)
            for b in self.prefill_batch_sizes
            for l in self.prefill_prompt_tokens
            if b * l <= self.prefill_max_tokens
        ]

    def decode_points(self) -> list[tuple[int, int]]:
        return [(b, c) for c in self.decode_context_tokens for b in self.decode_batch_sizes]


def _geom(lo: int, hi: int) -> tuple[int, ...]:
    out, x = [], lo
    while x <= hi:
        out.append(x)
        x *= 2
    return tuple(out)


def default_grid(device_kind: str, quick: bool = False) -> ProfileGrid:
    """The default grid for ``cpu`` or ``cuda``; ``quick`` is a tiny grid for tests.

    * quick: decode B in {1, 4, 16} x c in {64, 256}; prefill B in {1, 2} x L in {32, 128}.
    * cpu: decode B 1..64 x c 128..4096; prefill B 1..8 x L 64..2048, at most 4096 tokens.
    * cuda: decode B 1..256 x c 128..8192; prefill B 1..16 x L 64..8192, at most 16384 tokens.
    (ranges are powers of two).
    """
    if quick:
        return ProfileGrid((1, 4, 16), (64, 256), (1, 2), (32, 128), 256)
    if device_kind == "cuda":
        return ProfileGrid(_geom(1, 256), _geom(128, 8192), _geom(1, 16), _geom(64, 8192), 16384)
    return ProfileGrid(_geom(1, 64), _geom(128, 4096), _geom(1, 8), _geom(64, 2048), 4096)


@dataclass(frozen=True)
class TimingOptions:
    """How each grid point is timed.

    ``passes`` sweeps over the whole grid; in each, a point gets between ``min_repeats /
    passes`` and ``max_repeats / passes`` timed repeats (rounded up), as many as fill
    ``time_per_point_s / passes`` seconds, after ``warmup`` calls in the first pass only
    (later passes run callables that already ran). The statistics pool the repeats of
    all passes, so slow phases of load from other processes on a shared machine touch every
    point a little instead of a few points a lot. ``cuda_graphs`` replays decode steps as
    CUDA graphs.

    ``fit_statistic`` names the statistic the latency model is fitted to (``meta.json``
    ``fit_statistic``): ``median`` or ``min`` (the fastest repeat); ``auto`` is ``median`` on
    CUDA and ``min`` on a CPU. On this project's shared 2-vCPU machines, other tenants of the
    host slow a single-threaded BF16 matmul by 1.2-2.8x for seconds at a time (a 60 s probe:
    median 2.2x its fastest run, copies 1.25x), so the median of a grid point depends on how
    many of its repeats fell into slow phases, while the fastest repeat, taken over passes
    spread across the whole run, is the device's own step time.
    """

    warmup: int = 2
    min_repeats: int = 20
    max_repeats: int = 60
    time_per_point_s: float = 3.0
    passes: int = 20
    cuda_graphs: bool = False
    fit_statistic: str = "auto"

    def __post_init__(self) -> None:
        if self.fit_statistic not in ("auto", "median", "min"):
            raise ProfileError(
                f"--statistic must be auto, median or min, got '{self.fit_statistic}'"
            )
        if self.passes < 1 or self.min_repeats < 1 or self.max_repeats < 1 or self.warmup < 0:
            raise ProfileError(
                "timing needs passes >= 1, repeats >= 1 and warmup >= 0 (got "
                f"passes={self.passes}, repeats={self.min_repeats}.."
                f"{self.max_repeats}, warmup={self.warmup})"
            )

    def per_pass(self) -> tuple[int, int, float]:
        """``(min_repeats, max_repeats, seconds)`` of one pass."""
        p = self.passes
        lo = -(-self.min_repeats // p)
        return lo, max(-(-self.max_repeats // p), lo), self.time_per_point_s / p


def default_timing(device_kind: str, quick: bool = False) -> TimingOptions:
    """quick: 1 pass, 3-5 repeats; cuda: 1 pass, 20-200 repeats in 0.5 s (a dedicated GPU);
    cpu: 20 passes, 20-60 repeats in 3 s per point (CPUs are often shared)."""
    if quick:
        return TimingOptions(
            warmup=1, min_repeats=3, max_repeats=5, time_per_point_s=0.02, passes=1
        )
    if device_kind == "cuda":
        return TimingOptions(
            warmup=5, min_repeats=20, max_repeats=200, time_per_point_s=0.5, passes=1
        )
    return TimingOptions()


@dataclass
class Profile:
    """A measured profile in memory: ``meta`` (JSON-ready dict), ``decode`` and ``prefill``
    DataFrames (``prefill`` is None for decode-only W8A16/W4A16 profiles)."""

    meta: dict[str, Any]
    decode: Any
    prefill: Any | None


def _auto_layers(spec: ModelSpec, precision: str, kind: str, quick: bool, budget_bytes: int) -> int:
    full = weight_bytes(spec, precision)
    if kind == "cpu":
        if full <= 2 * 1024**3:
            return spec.num_layers
        return 1 if quick else 2
    if full <= 0.6 * budget_bytes:
        return spec.num_layers
    per_layer = full / spec.num_layers
    base = 2 * spec.vocab_size * spec.hidden_size * (1 if spec.tie_embeddings else 2)
    return max(1, min(spec.num_layers, int((0.6 * budget_bytes - base) / per_layer)))


def _kv_bytes(spec: ModelSpec, layers: int, batch: int, tokens: int) -> int:
    return 2 * layers * batch * spec.num_kv_heads * tokens * spec.head_dim * 2


def _stats(samples: Sequence[float]) -> tuple[float, float, float]:
    from sunsim.profiling.timing import summarize

    return summarize(samples)


def _pool_probes(probes: Sequence[dict[str, float]]) -> dict[str, Any]:
    """The roofline ceilings over several probes: the best of all (a ceiling), the median of
    their medians, and how many probes there were (one at the start, one per later pass)."""
    return {
        "copy_bandwidth_bytes_per_s": max(p["copy_bandwidth_bytes_per_s"] for p in probes),
        "copy_bandwidth_median_bytes_per_s": statistics.median(
            p["copy_bandwidth_median_bytes_per_s"] for p in probes
        ),
        "copy_bytes": probes[0]["copy_bytes"],
        "matmul_flops_per_s": max(p["matmul_flops_per_s"] for p in probes),
        "matmul_median_flops_per_s": statistics.median(
            p["matmul_median_flops_per_s"] for p in probes
        ),
        "matmul_n": probes[0]["matmul_n"],
        "probes": len(probes),
    }


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
    torch = require_torch()
    import pandas as pd

    from sunsim import __version__
    from sunsim.profiling.modules import DecoderModule
    from sunsim.profiling.quant import SCHEMES
    from sunsim.profiling.timing import (
        Timer,
        available_memory_bytes,
        cuda_graph,
        device_info,
        measure_copy_bandwidth,
        measure_matmul_rate,
    )

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
    fit_stat = (
        timing.fit_statistic
        if timing.fit_statistic != "auto"
        else ("median" if kind == "cuda" else "min")
    )

    progress = progress or (lambda done, total, label: None)
    n_points = len(grid.decode_points()) + (len(grid.prefill_points()) if do_prefill else 0)
    progress(0, 1 + timing.passes * n_points, "roofline probe (copy bandwidth, matmul rate)")
    probes: list[dict[str, float]] = []

    def run_probe(repeats: int | None = None) -> None:
        with torch.inference_mode():
            if quick:  # smaller probes: the quick grid is for tests
                probes.append(
                    {
                        **measure_copy_bandwidth(
                            device, 64 * 1024**2 if kind == "cpu" else 256 * 1024**2, repeats=5
                        ),
                        **measure_matmul_rate(device, 1024 if kind == "cpu" else 4096, repeats=5),
                    }
                )
            else:
                kw = {} if repeats is None else {"repeats": repeats}
                probes.append(
                    {**measure_copy_bandwidth(device, **kw), **measure_matmul_rate(device, **kw)}
                )

    run_probe()
    done = 1
    progress(done, 1 + timing.passes * n_points, "building modules")

    budget = available_memory_bytes(device)
    n_layers = layers if layers is not None else _auto_layers(spec, prec, kind, quick, budget)
    max_pos = max(
        max(grid.decode_context_tokens) + 1, max(grid.prefill_prompt_tokens) if do_prefill else 1
    )
    with torch.inference_mode():
        mod = DecoderModule(
            spec,
            layers_run=n_layers,
            precision=prec,
            device=device,
            max_positions=max_pos,
            seed=seed,
        )
    scaled = mod.layers_run < spec.num_layers
    factor = spec.num_layers / mod.layers_run
    budget = int(0.8 * available_memory_bytes(device))
    timer = Timer(device)
    skipped: list[dict[str, Any]] = []

    rep_lo, rep_hi, per_pass_s = timing.per_pass()
    samples: dict[tuple[str, int, int], list[list[float]]] = {}
    preempts: dict[tuple[str, int, int], int] = {}

    def measure(
        key: tuple[str, int, int],
        full: Callable[[], Any],
        layers: Callable[[], Any],
        base: Callable[[], Any],
    ) -> None:
        # Scaled: the k layers alone and the rest (embedding, final norm, LM head), so that
        # only the layers' time is multiplied by layers_total / k; noise in the rest is not.
        fns = [layers, base] if scaled else [full]
        seen = samples.get(key)
        # Later passes: the callables ran before (warm), so no warm-up; the round time is
        # the median so far.
        round_s = sum(statistics.median(t) for t in seen) if seen else None
        times, preempted = timer.measure(
            fns,
            warmup=0 if seen else timing.warmup,
            min_repeats=rep_lo,
            max_repeats=rep_hi,
            time_budget_s=per_pass_s,
            round_s=round_s,
        )
        acc = samples.setdefault(key, [[] for _ in fns])
        for i, t in enumerate(times):
            acc[i].extend(t)
        preempts[key] = preempts.get(key, 0) + preempted

    def row(key: tuple[str, int, int]) -> dict[str, Any]:
        times = samples[key]
        run = times[0]
        if scaled:
            total = [b + k * factor for k, b in zip(run, times[1])]
        else:
            total = run
        med, p10, p90 = _stats(total)
        return {
            "time_s_median": med,
            "time_s_p10": p10,
            "time_s_p90": p90,
            "repeats": len(run),
            "time_s_min": min(total),
            "layers_s_median": statistics.median(run) if scaled else math.nan,
            "base_s_median": statistics.median(times[1]) if scaled else math.nan,
            "preempted": preempts[key],
        }

    total_steps = 1 + timing.passes * n_points
    decode_keys: list[tuple[str, int, int]] = []
    prefill_keys: list[tuple[str, int, int]] = []
    for c in grid.decode_context_tokens:
        for b in grid.decode_batch_sizes:
            if _kv_bytes(spec, mod.layers_run, b, c + 1) + 4 * b * spec.vocab_size <= budget:
                decode_keys.append(("decode", b, c))
            else:
                skipped.append(
                    {
                        "module": "decode",
                        "batch_size": b,
                        "context_tokens": c,
                        "reason": "KV cache does not fit device memory",
                    }
                )
    if do_prefill:
        for b, l in grid.prefill_points():
            act = b * l * (3 * spec.intermediate_size + 8 * spec.hidden_size) * 2
            if _kv_bytes(spec, mod.layers_run, b, l) + act <= budget:
                prefill_keys.append(("prefill", b, l))
            else:
                skipped.append(
                    {
                        "module": "prefill",
                        "batch_size": b,
                        "prompt_tokens": l,
                        "reason": "does not fit device memory",
                    }
                )

    F = torch.nn.functional
    with torch.inference_mode():
        for p in range(timing.passes):
            tag = f"pass {p + 1}/{timing.passes} " if timing.passes > 1 else ""
            if p and not quick:
                # the ceilings, too, are the best seen over the whole run (slow phases)
                run_probe(repeats=4)
            for c in grid.decode_context_tokens:
                bs = [k[1] for k in decode_keys if k[2] == c]
                done += len(grid.decode_batch_sizes) - len(bs)  # skipped points
                if not bs:
                    continue
                kv_all = mod.new_kv(max(bs), c + 1, seed=seed + c)
                for b in bs:
                    kv = [(k[:b], v[:b]) for k, v in kv_all]
                    ids = mod.random_ids(b, seed=seed + b)
                    x = F.embedding(ids, mod.embed).unsqueeze(1)
                    full = lambda ids=ids, kv=kv, c=c: mod.decode_step(ids, kv, c)
                    layers = lambda x=x, kv=kv, c=c: mod.decode_layers(x, kv, c)
                    base = lambda ids=ids: mod.decode_base(ids)
                    if timing.cuda_graphs:
                        if scaled:
                            layers = cuda_graph(layers, mod.device)
                            base = cuda_graph(base, mod.device)
                        else:
                            full = cuda_graph(full, mod.device)
                    measure(("decode", b, c), full, layers, base)
                    done += 1
                    progress(done, total_steps, f"{tag}decode B={b} ctx={c}")
                    del full, layers, base, kv, x
                del kv_all
                if kind == "cuda":
                    torch.cuda.empty_cache()
            for key in prefill_keys:
                _, b, l = key
                kv = mod.new_kv(b, l, random=False)
                ids = mod.random_ids(b, l, seed=seed + b * 7919 + l)
                x = F.embedding(ids, mod.embed)
                measure(
                    key,
                    (lambda ids=ids, kv=kv: mod.prefill(ids, kv)),
                    (lambda x=x, kv=kv: mod.prefill_layers(x, kv)),
                    (lambda ids=ids: mod.prefill_base(ids)),
                )
                del kv, x
                done += 1
                progress(done, total_steps, f"{tag}prefill B={b} L={l}")
            if do_prefill:
                done += len(grid.prefill_points()) - len(prefill_keys)

    decode_rows = [
        {
            "batch_size": b,
            "context_tokens": c,
            "total_context_tokens": b * c,
            **row(("decode", b, c)),
        }
        for _, b, c in decode_keys
    ]
    prefill_rows = [
        {"batch_size": b, "prompt_tokens": l, "total_tokens": b * l, **row(("prefill", b, l))}
        for _, b, l in prefill_keys
    ]

    if not decode_rows:
        raise ProfileError(
            "no decode grid point fits the device memory; pass smaller "
            "--batch-sizes/--contexts or fewer --layers"
        )
    decode = pd.DataFrame(decode_rows, columns=[*DECODE_COLUMNS, *EXTRA_COLUMNS])
    prefill = (
        pd.DataFrame(prefill_rows, columns=[*PREFILL_COLUMNS, *EXTRA_COLUMNS])
        if do_prefill
        else None
    )
    if do_prefill and (prefill is None or prefill.empty):
        raise ProfileError(
            "no prefill grid point fits the device memory; pass smaller "
            "--prompt-tokens or fewer --layers"
        )

    meta: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "method": "measured",
        "quick": bool(quick),
        "model": spec.name,
        "precision": prec,
        "model_spec": as_dict(spec),
        "modules": ["prefill", "decode"] if do_prefill else ["decode"],
        "prefill_note": None
        if do_prefill
        else (
            f"{prec} is the QSUN decode module: only decode is profiled; QSUN's prefill stays "
            "BF16, so prefill times come from the bf16 profile of the same device and model"
        ),
        **{
            k: info[k]
            for k in (
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
        },
        "compute_capability": info.get("compute_capability"),
        "dtype": "bfloat16",
        "weight_quantisation": {
            "precision": prec,
            "scheme": SCHEMES[prec],
            "kernel": mod.kernel,
            "applies_to": "q/k/v/o and gate/up/down linear layers (q/k/v and gate/up fused); "
            "embedding, RMSNorms and LM head BF16",
        },
        "attention": "torch.nn.functional.scaled_dot_product_attention (enable_gqa), BF16 KV cache",
        "layers_run": mod.layers_run,
        "layers_total": spec.num_layers,
        "scaling": {
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
        },
        "grid": {**dataclasses.asdict(grid), "skipped": skipped},
        "fit_statistic": fit_stat,
        "fit_statistic_note": (
            "the latency model fits time_s_min (the fastest repeat of each grid point): "
            "other tenants of this shared machine slow repeats by up to 3x for seconds at a "
            "time; the median columns keep the typical time under that load"
            if fit_stat == "min"
            else "the latency model fits time_s_median"
        ),
        "timing": {
            **dataclasses.asdict(timing),
            "timer": timer.name,
            "clock": timer.clock,
            "preempted_rounds": int(sum(preempts.values())),
            "preempted_note": (
                "rounds in which another process held the core (wall > "
                "1.05 x CPU time + 50 us), column 'preempted'; the "
                "thread-cpu clock leaves that time out"
                if kind == "cpu"
                else None
            ),
            "statistic": "median, p10, p90 and min over repeats (seconds)",
            "inputs": "random token ids and random KV caches",
        },
        **_pool_probes(probes),
        "module_weight_bytes_run": mod.weight_nbytes,
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "sunsim_version": __version__,
        "command": command,
        "wall_s": round(time.perf_counter() - t_start, 1),
    }
    if quick:
        meta["device_slug"] = f"{meta['device_slug']}-quick"
    progress(total_steps, total_steps, "done")
    return Profile(meta=meta, decode=decode, prefill=prefill)


def profile_dir(out_root: str | Path, meta: dict[str, Any]) -> Path:
    """``<out_root>/<device_slug>/<model>/<precision>``."""
    return Path(out_root) / meta["device_slug"] / meta["model"] / meta["precision"]


def write_profile(profile: Profile, out_root: str | Path = "profiles", force: bool = False) -> Path:
    """Write ``profile`` under ``out_root`` and return its directory.

    Raises ProfileError when a full (non-quick) profile already exists there and ``force`` is
    False (quick profiles are replaced freely).
    """
    d = profile_dir(out_root, profile.meta)
    meta_path = d / "meta.json"
    if meta_path.exists() and not force and not profile.meta.get("quick"):
        raise ProfileError(
            f"{d} already holds a profile; pass --force to replace it, or --out another directory"
        )
    d.mkdir(parents=True, exist_ok=True)
    profile.decode.to_csv(d / "decode.csv", index=False, float_format="%.6g")
    if profile.prefill is not None:
        profile.prefill.to_csv(d / "prefill.csv", index=False, float_format="%.6g")
    elif (d / "prefill.csv").exists():
        (d / "prefill.csv").unlink()
    meta_path.write_text(json.dumps(profile.meta, indent=2) + "\n", encoding="utf-8")
    return d
