"""Options of ``sunsim validate engine``, the trace slice it replays, and the engine
configuration derived from them (:func:`engine_config`); the goal and the result record
(:class:`EngineCheck`)."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sunsim.errors import ConfigError
from sunsim.specs import LinkSpec, ModelSpec, get_model

#: The goal of the check (issue 5): median absolute relative errors.
GOAL_TPOT_MEDIAN = 0.05
GOAL_TTFT_MEDIAN = 0.10

#: Per-point statistics of the profile's repeats the simulation can take its step times from.
#: ``split``: prefill from the medians, decode from the means (see :class:`EngineCheckOptions`).
STATISTICS = {
    "split": "prefill time_s_median, decode time_s_mean",
    "mean": "time_s_mean",
    "median": "time_s_median",
}

ProgressFn = Callable[[str], None]


@dataclass(frozen=True)
class EngineCheckOptions:
    """Options of :func:`run_engine_check` (CLI defaults).

    Trace slice: the first ``num_requests`` requests of ``trace``, arrivals divided by
    ``1 / rate_scale``; lengths ``clip(round(x * scale), 1, max)``. Engine: ``device``
    (``cpu``/``cuda``), ``model`` (a built-in name or a :class:`ModelSpec`), ``threads`` per
    worker process, ``max_num_seqs``, ``kv_blocks`` (decode KV capacity in 16-token blocks;
    None: half of what ``max_num_seqs`` requests of the slice's mean context need, at least the
    largest request), ``max_num_batched_tokens`` (prefill budget), ``pin`` (pin prefill/decode to
    CPUs 0/1). ``concurrent``: profile each kernel while the other process works as it does
    during the replay -- the prefill kernel while the decode process keeps decoding a typical
    batch (it is busy most of the replay), the decode kernel while the prefill process
    prefills a typical prompt once every mean time between arrivals (the two share the caches
    and, on a small machine, the cores); False: the other process idle;
    ``prefill_idle_s``: sleep before every timed prefill of the profile (None: the slice's mean
    time between arrivals, at most 0.5 s), as a replayed prefill follows a wait. Profile grid
    (None: derived from the slice): ``decode_batch_sizes``,
    ``decode_contexts``, ``prefill_batch_sizes``, ``prefill_prompt_tokens``; timing per grid
    point and pass: ``warmup``, ``min_repeats``, ``max_repeats``, ``time_per_point_s``;
    ``profile_passes`` (1: before the replay only; 2: before and after, pooled).
    ``statistic``: which per-point statistic of the profile's repeats gives the simulation's
    step times: ``split`` (default) takes the prefill's median and the decode step's mean --
    the check compares medians over requests, and a request's TTFT is one prefill (its typical
    value is the median) while its TPOT averages tens of decode steps (which concentrates at
    their mean); ``mean`` or ``median`` take one statistic for both. The summary reports the
    errors with all three.
    """

    trace: str
    num_requests: int = 200
    rate_scale: float = 0.5
    prompt_scale: float = 0.125
    output_scale: float = 0.25
    max_prompt: int = 512
    max_output: int = 128
    device: str = "cpu"
    model: Any = "tiny-llama"
    threads: int = 1
    max_num_seqs: int = 16
    kv_blocks: int | None = None
    max_num_batched_tokens: int = 1024
    pin: bool = False
    concurrent: bool = True
    prefill_idle_s: float | None = None
    seed: int = 0
    decode_batch_sizes: tuple[int, ...] | None = None
    decode_contexts: tuple[int, ...] | None = None
    prefill_batch_sizes: tuple[int, ...] | None = None
    prefill_prompt_tokens: tuple[int, ...] | None = None
    warmup: int = 2
    min_repeats: int = 5
    max_repeats: int = 40
    time_per_point_s: float = 0.25
    profile_passes: int = 2
    link_tokens: tuple[int, ...] = (16, 64, 256, 1024)
    link_repeats: int = 7
    statistic: str = "split"

    def __post_init__(self) -> None:
        if self.statistic not in STATISTICS:
            raise ConfigError(f"--statistic must be split, mean or median, got '{self.statistic}'")
        if self.num_requests < 1:
            raise ConfigError(f"--requests must be >= 1, got {self.num_requests}")
        if not (self.rate_scale > 0 and self.prompt_scale > 0 and self.output_scale > 0):
            raise ConfigError("--rate-scale, --prompt-scale and --output-scale must be > 0")
        if self.max_prompt < 1 or self.max_output < 1:
            raise ConfigError("--max-prompt and --max-output must be >= 1")
        if self.threads < 1:
            raise ConfigError(f"--threads must be >= 1, got {self.threads}")
        if self.max_num_seqs < 1 or self.max_num_batched_tokens < 1:
            raise ConfigError("--max-num-seqs and --max-num-batched-tokens must be >= 1")
        if self.kv_blocks is not None and self.kv_blocks < 1:
            raise ConfigError(f"--kv-blocks must be >= 1, got {self.kv_blocks}")
        if self.prefill_idle_s is not None and self.prefill_idle_s < 0:
            raise ConfigError(f"prefill idle time must be >= 0 s, got {self.prefill_idle_s}")
        if self.profile_passes not in (1, 2):
            raise ConfigError(f"profile passes must be 1 or 2, got {self.profile_passes}")
        if self.device not in ("cpu", "cuda") and not str(self.device).startswith("cuda:"):
            raise ConfigError(f"--device must be cpu or cuda, got '{self.device}'")

    @property
    def spec(self) -> ModelSpec:
        return self.model if isinstance(self.model, ModelSpec) else get_model(self.model)


@dataclass
class EngineCheck:
    """What :func:`run_engine_check` measured and simulated.

    Attributes:
        options: the options used; ``config``: the engine configuration (as a dict).
        comparison: one row per request (see :func:`compare_requests`).
        iterations: one row per decode iteration of the engine (see
            :func:`~sunsim.validate.engine.records.iterations_frame`).
        engine_records, sim_records: per-request timestamps (simulator's record columns).
        prefill_batches: one row per engine prefill batch.
        link: calibration samples (``tokens``, ``bytes``, ``handoff_s``, ``copy_s``).
        link_spec: the fitted link; ``summary``: errors, goal check, load, settings (JSON-ready).
        profile_dir: where the profile was written.
    """

    options: EngineCheckOptions
    config: dict
    comparison: pd.DataFrame
    iterations: pd.DataFrame
    engine_records: pd.DataFrame
    sim_records: pd.DataFrame
    prefill_batches: pd.DataFrame
    link: pd.DataFrame
    link_spec: LinkSpec
    summary: dict
    profile_dir: Path
    out_dir: Path
    extra: dict = field(default_factory=dict)


# -- the trace slice ---------------------------------------------------------------------------


def load_slice(opts: EngineCheckOptions) -> pd.DataFrame:
    """The requests to replay: ``arrival_s``, ``prompt_tokens``, ``output_tokens`` (scaled),
    ``trace_prompt_tokens``, ``trace_output_tokens`` (as in the trace), ``model`` (``"m"``).

    Raises TraceError for an unreadable trace.
    """
    from sunsim.traces import read_trace

    tr = read_trace(opts.trace, max_requests=opts.num_requests, rate_scale=opts.rate_scale)
    df = tr.requests
    p = np.clip(np.rint(df["prompt_tokens"].to_numpy() * opts.prompt_scale), 1, opts.max_prompt)
    o = np.clip(np.rint(df["output_tokens"].to_numpy() * opts.output_scale), 1, opts.max_output)
    return pd.DataFrame(
        {
            "arrival_s": df["arrival_s"].to_numpy(dtype=float),
            "model": "m",
            "prompt_tokens": p.astype(np.int64),
            "output_tokens": o.astype(np.int64),
            "trace_prompt_tokens": df["prompt_tokens"].to_numpy(dtype=np.int64),
            "trace_output_tokens": df["output_tokens"].to_numpy(dtype=np.int64),
        }
    )


def _pow2_ladder(lo: int, hi: int) -> tuple[int, ...]:
    out, x = [], lo
    while True:
        out.append(x)
        if x >= hi:
            return tuple(out)
        x *= 2


def default_kv_blocks(req: pd.DataFrame, max_num_seqs: int, block_tokens: int = 16) -> int:
    """Half the blocks ``max_num_seqs`` requests of the slice's mean mid-decode context need
    (``prompt + output / 2`` tokens), and at least the largest request's
    ``ceil((prompt + output - 1) / block_tokens)``: full batches preempt, the usual ones fit."""
    from sunsim.engine.scheduler import blocks_for

    p = req["prompt_tokens"].to_numpy()
    o = req["output_tokens"].to_numpy()
    largest = max(blocks_for(int(a + b - 1), block_tokens) for a, b in zip(p, o))
    mid = float(np.mean(np.ceil((p + o / 2) / block_tokens)))
    return max(largest, int(math.ceil(0.5 * max_num_seqs * mid)))


def profile_grid(opts: EngineCheckOptions, req: pd.DataFrame) -> dict[str, tuple[int, ...]]:
    """The profile grid of ``opts`` (its own where given, else derived from the slice):
    ``decode_batch_sizes`` (a ladder up to ``max_num_seqs``), ``decode_contexts`` (powers of
    two from 16 past the longest context), ``prefill_batch_sizes`` (1..16 requests of at
    least 16 tokens within the budget), ``prefill_prompt_tokens`` (powers of two from 16 past
    the longest recompute)."""
    p = req["prompt_tokens"].tolist()
    o = req["output_tokens"].tolist()
    longest_ctx = max(a + b for a, b in zip(p, o))
    longest_prefill = max(a + b - 1 for a, b in zip(p, o))
    ladder = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256)
    bs = opts.decode_batch_sizes or tuple(
        sorted({b for b in ladder if b <= opts.max_num_seqs} | {opts.max_num_seqs})
    )
    pbs = (
        opts.prefill_batch_sizes
        or tuple(b for b in (1, 2, 4, 8, 16) if b * 16 <= opts.max_num_batched_tokens)
        or (1,)
    )
    return {
        "decode_batch_sizes": tuple(bs),
        "decode_contexts": tuple(opts.decode_contexts or _pow2_ladder(16, longest_ctx)),
        "prefill_batch_sizes": tuple(pbs),
        "prefill_prompt_tokens": tuple(
            opts.prefill_prompt_tokens or _pow2_ladder(16, max(longest_prefill, 16))
        ),
    }


def engine_config(opts: EngineCheckOptions, req: pd.DataFrame) -> Any:
    """The :class:`~sunsim.validate.real_engine.EngineConfig` of ``opts`` for the slice."""
    from sunsim.validate.real_engine import BLOCK_TOKENS, EngineConfig

    kv_blocks = opts.kv_blocks or default_kv_blocks(req, opts.max_num_seqs, BLOCK_TOKENS)
    pin = (0, 1) if opts.pin and (os.cpu_count() or 1) >= 2 else None
    arr = req["arrival_s"].to_numpy(dtype=float)
    idle = opts.prefill_idle_s
    if idle is None:
        idle = min(float(arr[-1] - arr[0]) / (len(arr) - 1), 0.5) if len(arr) > 1 else 0.0
    grid = profile_grid(opts, req)
    return EngineConfig(
        spec=opts.spec,
        device=opts.device,
        threads=opts.threads,
        arrival_s=tuple(float(x) for x in req["arrival_s"]),
        prompt_tokens=tuple(req["prompt_tokens"].tolist()),
        output_tokens=tuple(req["output_tokens"].tolist()),
        kv_blocks=int(kv_blocks),
        max_num_seqs=opts.max_num_seqs,
        max_num_batched_tokens=opts.max_num_batched_tokens,
        decode_batch_sizes=grid["decode_batch_sizes"],
        decode_contexts=grid["decode_contexts"],
        prefill_batch_sizes=grid["prefill_batch_sizes"],
        prefill_prompt_tokens=grid["prefill_prompt_tokens"],
        seed=opts.seed,
        pin_cpus=pin,
        warmup=opts.warmup,
        min_repeats=opts.min_repeats,
        max_repeats=opts.max_repeats,
        time_per_point_s=opts.time_per_point_s,
        link_tokens=tuple(opts.link_tokens),
        link_repeats=opts.link_repeats,
        prefill_idle_s=float(idle),
    )
