"""The checks of ``sunsim validate engine``'s options, the trace slice and ``--out``, all made
before the real engine starts (and before anything is written).

Bounds (each says why in its message):

* ``--requests`` up to :data:`MAX_REQUESTS`, and the slice's arrivals span at most
  :data:`MAX_SPAN_S` (the engine replays arrivals in real time, so span is wall time);
* ``--max-num-seqs`` up to :data:`MAX_NUM_SEQS` (one small-model decode process; larger caps
  only grow the default KV cache); ``--max-num-batched-tokens`` up to
  :data:`MAX_BATCHED_TOKENS`; ``--max-prompt`` + ``--max-output`` within the model's
  ``max_model_len`` (its RoPE table);
* ``--kv-blocks`` (given or derived) and the two processes' weights must fit this machine's
  memory (BF16, 2 bytes per element);
* ``--time-per-point`` 0..60 s, ``--prefill-idle`` 0..10 s, ``--passes`` 1 or 2;
* ``--threads`` and ``--seed`` as everywhere (:mod:`sunsim.cli.checks`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sunsim.cli.checks import (
    check_device,
    check_int,
    check_model,
    check_number,
    check_out_dir,
    check_seed,
    check_threads,
    memory_bytes,
)
from sunsim.errors import ConfigError
from sunsim.validate.engine.options import STATISTICS

MAX_REQUESTS = 10_000
MAX_SPAN_S = 3 * 3600.0
MAX_NUM_SEQS = 1_024
MAX_BATCHED_TOKENS = 65_536
MAX_TIME_PER_POINT_S = 60.0
MAX_PREFILL_IDLE_S = 10.0
_REAL_TIME = "the engine replays arrivals in real time"


def checked_options(p: dict[str, Any], trace: Path) -> Any:
    """The :class:`~sunsim.validate.engine.EngineCheckOptions` of the command's parameters
    (by name, as typer parsed them), every one checked; ``trace`` is the trace to slice.

    Raises:
        ConfigError: one line naming the option that is wrong. TraceError: a bad trace.
        ProfileError: torch missing (``--device cuda``).
    """
    from sunsim.validate.engine import EngineCheckOptions

    spec = check_model("--model", p["model"])
    statistic = p["statistic"].lower()
    if statistic not in STATISTICS:
        raise ConfigError(f"--statistic must be split, mean or median, got '{p['statistic']}'")
    _check_counts(p, spec)
    _check_times(p)
    if p["out"] is not None:
        check_out_dir("--out", p["out"])
    if not trace.is_file():
        what = "is a directory" if trace.is_dir() else "file not found"
        raise ConfigError(f"--trace {trace}: {what}; pass --trace FILE or set $SUNSIM_TRACES")
    device = check_device("--device", p["device"])
    opts = EngineCheckOptions(
        trace=str(trace),
        num_requests=p["requests"],
        rate_scale=p["rate_scale"],
        prompt_scale=p["prompt_scale"],
        output_scale=p["output_scale"],
        max_prompt=p["max_prompt"],
        max_output=p["max_output"],
        device=device,
        model=p["model"],
        threads=p["threads"],
        max_num_seqs=p["max_num_seqs"],
        kv_blocks=p["kv_blocks"],
        max_num_batched_tokens=p["max_num_batched_tokens"],
        pin=p["pin"],
        concurrent=p["concurrent"],
        prefill_idle_s=p["prefill_idle"],
        seed=p["seed"],
        statistic=statistic,
        profile_passes=p["passes"],
        time_per_point_s=p["time_per_point"],
    )
    _check_slice(opts, spec)
    return opts


def _check_counts(p: dict[str, Any], spec: Any) -> None:
    check_int("--requests", p["requests"], 1, MAX_REQUESTS, _REAL_TIME)
    check_threads("--threads", p["threads"])
    check_seed("--seed", p["seed"])
    check_int("--max-num-seqs", p["max_num_seqs"], 1, MAX_NUM_SEQS, "one small decode process")
    check_int(
        "--max-num-batched-tokens",
        p["max_num_batched_tokens"],
        1,
        MAX_BATCHED_TOKENS,
        "one prefill process on a small model",
    )
    why = f"{spec.name}'s max_model_len"
    check_int("--max-prompt", p["max_prompt"], 1, spec.max_model_len - 1, why)
    check_int("--max-output", p["max_output"], 1, spec.max_model_len - p["max_prompt"], why)
    check_int("--kv-blocks", p["kv_blocks"], 1)
    if p["passes"] not in (1, 2):
        raise ConfigError(f"--passes: must be 1 or 2, got {p['passes']}")


def _check_times(p: dict[str, Any]) -> None:
    for option, name in (
        ("--rate-scale", "rate_scale"),
        ("--prompt-scale", "prompt_scale"),
        ("--output-scale", "output_scale"),
    ):
        check_number(option, p[name], 0.0, lo_open=True)
    check_number(
        "--time-per-point", p["time_per_point"], 0.0, MAX_TIME_PER_POINT_S, unit="s",
        why="per grid point and pass",
    )  # fmt: skip
    check_number(
        "--prefill-idle", p["prefill_idle"], 0.0, MAX_PREFILL_IDLE_S, unit="s",
        why="a sleep before every timed prefill",
    )  # fmt: skip


def _check_slice(opts: Any, spec: Any) -> None:
    """Read the slice (a bad trace is one TraceError line) and check its span and the memory
    its KV cache and the two processes' weights need."""
    from sunsim.specs import weight_bytes
    from sunsim.validate.engine.options import engine_config, load_slice

    req = load_slice(opts)
    arr = req["arrival_s"].to_numpy(dtype=float)
    span = float(arr[-1] - arr[0]) if len(arr) else 0.0
    if span > MAX_SPAN_S:
        raise ConfigError(
            f"--rate-scale: the slice's {len(arr):,} arrivals span {span / 3600:,.1f} h at "
            f"rate x{opts.rate_scale:g}, more than {MAX_SPAN_S / 3600:g} h ({_REAL_TIME}); "
            "raise --rate-scale or lower --requests"
        )
    mem = memory_bytes()
    if mem is None:
        return
    kv_blocks = engine_config(opts, req).kv_blocks
    kv = kv_blocks * 16 * spec.kv_bytes_per_token(2)
    if kv > mem // 2:
        raise ConfigError(
            f"--kv-blocks: {kv_blocks:,} blocks of 16 tokens take {kv / 2**30:,.1f} GiB of KV "
            f"cache, more than half of this machine's {mem / 2**30:,.1f} GiB; give fewer "
            "--kv-blocks or a smaller --max-num-seqs"
        )
    weights = 2 * weight_bytes(spec)
    if opts.device == "cpu" and weights > mem // 2:
        raise ConfigError(
            f"--model {spec.name}: its two processes hold {weights / 2**30:,.1f} GiB of BF16 "
            f"weights, more than half of this machine's {mem / 2**30:,.1f} GiB; use a small "
            "model such as tiny-llama"
        )
