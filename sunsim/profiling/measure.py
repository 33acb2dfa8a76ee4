"""The measure loop of the profiling harness: which grid points fit the device, the roofline
probes, and the passes over the grid that time every point (torch, lazily).

Keys of grid points are ``("decode", B, c)`` (B requests, c context tokens each) and
``("prefill", B, L)`` (B prompts of L tokens). Times are seconds.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from sunsim.profiling.grid import ProfileGrid, TimingOptions
from sunsim.profiling.timing import summarize
from sunsim.specs import ModelSpec, weight_bytes

ProgressFn = Callable[[int, int, str], None]
Key = tuple[str, int, int]


@dataclass
class Progress:
    """Counts finished steps (probe, grid points of every pass) for a ``progress`` callback."""

    total: int
    fn: ProgressFn | None = None
    done: int = 0

    def step(self, label: str, n: int = 1) -> None:
        self.done += n
        if self.fn is not None:
            self.fn(self.done, self.total, label)

    def skip(self, n: int) -> None:
        """Count ``n`` steps (skipped points) without reporting."""
        self.done += n


def auto_layers(spec: ModelSpec, precision: str, kind: str, quick: bool, budget_bytes: int) -> int:
    """Layers to run by default: all, unless the weights do not fit 60% of ``budget_bytes`` on
    a GPU (then as many as fit) or exceed 2 GiB on a CPU (then 2; quick: 1)."""
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


def kv_bytes(spec: ModelSpec, layers: int, batch: int, tokens: int) -> int:
    """BF16 KV cache bytes of ``batch`` requests of ``tokens`` tokens over ``layers`` layers."""
    return 2 * layers * batch * spec.num_kv_heads * tokens * spec.head_dim * 2


@dataclass
class GridPlan:
    """The grid points to time and those skipped (with the reason), in grid order."""

    decode: list[Key] = field(default_factory=list)
    prefill: list[Key] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)


def plan_points(
    spec: ModelSpec, grid: ProfileGrid, layers_run: int, budget_bytes: int, do_prefill: bool
) -> GridPlan:
    """Keep the grid points whose KV cache (and, for prefill, activations) fit
    ``budget_bytes``."""
    plan = GridPlan()
    for c in grid.decode_context_tokens:
        for b in grid.decode_batch_sizes:
            if kv_bytes(spec, layers_run, b, c + 1) + 4 * b * spec.vocab_size <= budget_bytes:
                plan.decode.append(("decode", b, c))
            else:
                plan.skipped.append(
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
            if kv_bytes(spec, layers_run, b, l) + act <= budget_bytes:
                plan.prefill.append(("prefill", b, l))
            else:
                plan.skipped.append(
                    {
                        "module": "prefill",
                        "batch_size": b,
                        "prompt_tokens": l,
                        "reason": "does not fit device memory",
                    }
                )
    return plan


def check_plan(plan: GridPlan, do_prefill: bool) -> None:
    """Raise ProfileError before any timing when too few grid points fit the device (a
    profile needs :data:`~sunsim.latency.profile_format.MIN_ROWS` per module)."""
    from sunsim.errors import ProfileError
    from sunsim.latency.profile_format import MIN_ROWS

    mods = [("decode", plan.decode, "--batch-sizes/--contexts")]
    if do_prefill:
        mods.append(("prefill", plan.prefill, "--prefill-batch-sizes/--prompt-tokens"))
    for name, keys, opts in mods:
        if len(keys) < MIN_ROWS:
            raise ProfileError(
                f"{len(keys)} {name} grid point(s) fit the device memory; a profile needs at "
                f"least {MIN_ROWS} per module: pass more {opts} (smaller ones), or fewer --layers"
            )


def pool_probes(probes: Sequence[dict[str, float]]) -> dict[str, Any]:
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


def run_probe(device: str, kind: str, quick: bool, repeats: int | None = None) -> dict[str, float]:
    """One roofline probe: copy bandwidth and BF16 matmul rate (smaller when ``quick``)."""
    from sunsim.profiling._torch import require_torch
    from sunsim.profiling.timing import measure_copy_bandwidth, measure_matmul_rate

    torch = require_torch()
    with torch.inference_mode():
        if quick:  # smaller probes: the quick grid is for tests
            copy_bytes = 64 * 1024**2 if kind == "cpu" else 256 * 1024**2
            return {
                **measure_copy_bandwidth(device, copy_bytes, repeats=5),
                **measure_matmul_rate(device, 1024 if kind == "cpu" else 4096, repeats=5),
            }
        kw = {} if repeats is None else {"repeats": repeats}
        return {**measure_copy_bandwidth(device, **kw), **measure_matmul_rate(device, **kw)}


class GridMeasurer:
    """Times grid points and pools their repeats over passes.

    Not scaled (all layers run): the full step is timed. Scaled (``layers_run`` of
    ``layers_total``): the k layers alone and the rest (embedding, final norm, LM head),
    interleaved, so that only the layers' time is multiplied by ``factor`` = layers_total /
    k; noise in the rest is not.
    """

    def __init__(self, timer: Any, timing: TimingOptions, scaled: bool, factor: float) -> None:
        self.timer = timer
        self.timing = timing
        self.scaled = scaled
        self.factor = factor
        self.rep_lo, self.rep_hi, self.per_pass_s = timing.per_pass()
        self.samples: dict[Key, list[list[float]]] = {}
        self.preempts: dict[Key, int] = {}

    def measure(
        self,
        key: Key,
        full: Callable[[], Any],
        layers: Callable[[], Any],
        base: Callable[[], Any],
    ) -> None:
        """Time one point for one pass (warm-up only the first time it is seen)."""
        fns = [layers, base] if self.scaled else [full]
        seen = self.samples.get(key)
        # Later passes: the callables ran before (warm), so no warm-up; the round time is
        # the median so far.
        round_s = sum(statistics.median(t) for t in seen) if seen else None
        times, preempted = self.timer.measure(
            fns,
            warmup=0 if seen else self.timing.warmup,
            min_repeats=self.rep_lo,
            max_repeats=self.rep_hi,
            time_budget_s=self.per_pass_s,
            round_s=round_s,
        )
        acc = self.samples.setdefault(key, [[] for _ in fns])
        for i, t in enumerate(times):
            acc[i].extend(t)
        self.preempts[key] = self.preempts.get(key, 0) + preempted

    def row(self, key: Key) -> dict[str, Any]:
        """The statistics columns of a point: full-model times (seconds) per repeat pooled."""
        times = self.samples[key]
        run = times[0]
        total = [b + k * self.factor for k, b in zip(run, times[1])] if self.scaled else run
        med, p10, p90 = summarize(total)
        return {
            "time_s_median": med,
            "time_s_p10": p10,
            "time_s_p90": p90,
            "repeats": len(run),
            "time_s_min": min(total),
            "layers_s_median": statistics.median(run) if self.scaled else math.nan,
            "base_s_median": statistics.median(times[1]) if self.scaled else math.nan,
            "preempted": self.preempts[key],
        }

    @property
    def preempted_rounds(self) -> int:
        return int(sum(self.preempts.values()))


@dataclass
class PassContext:
    """What one pass over the grid needs: the module, the plan, the measurer, the progress."""

    mod: Any  # sunsim.profiling.modules.DecoderModule
    grid: ProfileGrid
    plan: GridPlan
    measurer: GridMeasurer
    progress: Progress
    seed: int
    kind: str
    cuda_graphs: bool


def decode_pass(ctx: PassContext, tag: str) -> None:
    """Time every planned decode point once (one KV cache per context length, sliced per
    batch size)."""
    from sunsim.profiling._torch import require_torch
    from sunsim.profiling.timing import cuda_graph

    torch = require_torch()
    F = torch.nn.functional
    mod, seed = ctx.mod, ctx.seed
    for c in ctx.grid.decode_context_tokens:
        bs = [k[1] for k in ctx.plan.decode if k[2] == c]
        ctx.progress.skip(len(ctx.grid.decode_batch_sizes) - len(bs))  # skipped points
        if not bs:
            continue
        kv_all = mod.new_kv(max(bs), c + 1, seed=seed + c)
        for b in bs:
            kv = [(k[:b], v[:b]) for k, v in kv_all]
            ids = mod.random_ids(b, seed=seed + b)
            x = F.embedding(ids, mod.embed).unsqueeze(1)
            full: Callable[[], Any] = partial(mod.decode_step, ids, kv, c)
            layers: Callable[[], Any] = partial(mod.decode_layers, x, kv, c)
            base: Callable[[], Any] = partial(mod.decode_base, ids)
            if ctx.cuda_graphs:
                if ctx.measurer.scaled:
                    layers = cuda_graph(layers, mod.device)
                    base = cuda_graph(base, mod.device)
                else:
                    full = cuda_graph(full, mod.device)
            ctx.measurer.measure(("decode", b, c), full, layers, base)
            ctx.progress.step(f"{tag}decode B={b} ctx={c}")
            del full, layers, base, kv, x
        del kv_all
        if ctx.kind == "cuda":
            torch.cuda.empty_cache()


def prefill_pass(ctx: PassContext, tag: str) -> None:
    """Time every planned prefill point once (a fresh empty KV cache per point)."""
    from sunsim.profiling._torch import require_torch

    F = require_torch().nn.functional
    mod, seed = ctx.mod, ctx.seed
    for key in ctx.plan.prefill:
        _, b, l = key
        kv = mod.new_kv(b, l, random=False)
        ids = mod.random_ids(b, l, seed=seed + b * 7919 + l)
        x = F.embedding(ids, mod.embed)
        ctx.measurer.measure(
            key,
            partial(mod.prefill, ids, kv),
            partial(mod.prefill_layers, x, kv),
            partial(mod.prefill_base, ids),
        )
        del kv, x
        ctx.progress.step(f"{tag}prefill B={b} L={l}")
