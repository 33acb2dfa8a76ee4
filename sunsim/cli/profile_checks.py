"""The checks of ``sunsim profile``'s options, all made before torch measures anything.

Bounds (each says why in its message):

* grid lists (``--batch-sizes``, ``--contexts``, ``--prefill-batch-sizes``,
  ``--prompt-tokens``): at most :data:`MAX_GRID_VALUES` values each (every value multiplies the
  grid points, and a CPU point takes seconds per pass); batch sizes up to
  :data:`MAX_BATCH_SIZE` (the scenario's ``max_num_seqs`` bound: the simulator never asks for a
  larger batch); token counts up to the model's ``max_model_len`` (its RoPE table);
* ``--max-prefill-tokens`` up to :data:`MAX_PREFILL_TOKENS` (a prefill batch's activations);
* timing: ``--warmup`` 0..1,000, ``--repeats``/``--max-repeats`` 1..10,000, ``--passes``
  1..100, ``--time-per-point`` 0..600 s (beyond these one grid takes days);
* ``--layers`` 1..the model's layers; ``--threads`` and ``--seed`` as everywhere
  (:mod:`sunsim.cli.checks`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sunsim.cli.checks import (
    check_choice,
    check_device,
    check_int,
    check_ints,
    check_model,
    check_number,
    check_out_dir,
    check_precision,
    check_seed,
    check_threads,
)
from sunsim.cli.format import split_list
from sunsim.errors import ConfigError
from sunsim.profiling.quant import KERNELS

MAX_GRID_VALUES = 32
MAX_BATCH_SIZE = 65_536
MAX_PREFILL_TOKENS = 1_048_576
MAX_REPEATS = 10_000
MAX_WARMUP = 1_000
MAX_PASSES = 100
MAX_TIME_PER_POINT_S = 600.0
STATISTICS = ("auto", "median", "min")

#: grid option -> (parameter name, whether its values are token counts)
_GRID = {
    "--batch-sizes": ("batch_sizes", False),
    "--contexts": ("contexts", True),
    "--prefill-batch-sizes": ("prefill_batch_sizes", False),
    "--prompt-tokens": ("prompt_tokens", True),
}


@dataclass(frozen=True)
class ProfileRequest:
    """What ``sunsim profile`` was asked, checked: ``device`` resolved (``auto`` -> cuda or
    cpu), ``statistic`` lower-cased, ``grid`` the parsed grid lists by parameter name (None:
    not given)."""

    model: str
    device: str
    precision: str
    statistic: str
    grid: dict[str, tuple[int, ...] | None]


def checked_request(p: dict[str, Any]) -> ProfileRequest:
    """Check the parameters of ``sunsim profile`` (by parameter name, as typer parsed them).

    Raises:
        ConfigError: one line naming the option that is wrong.
        ProfileError: torch missing (for ``--device auto`` or ``cuda``).
    """
    spec = check_model("--model", p["model"])
    precision = check_precision("--precision", p["precision"])
    measurable = dict.fromkeys(prec for prec, _ in KERNELS)  # fp8 only by `profile import`
    check_choice("--precision", precision, measurable, "precision `sunsim profile` measures")
    statistic = check_choice("--statistic", p["statistic"], STATISTICS, "statistic")
    check_int("--layers", p["layers"], 1, spec.num_layers, f"{spec.name} has that many layers")
    check_threads("--threads", p["threads"])
    check_seed("--seed", p["seed"])
    grid = _checked_grid(p, spec.max_model_len, spec.name)
    _check_timing(p)
    check_out_dir("--out", Path(p["out"]))
    device = check_device("--device", p["device"], allow_auto=True)
    if device == "auto":
        from sunsim.profiling._torch import require_torch

        device = "cuda" if require_torch().cuda.is_available() else "cpu"
    if p["cuda_graphs"] and not device.startswith("cuda"):
        raise ConfigError(f"--cuda-graphs: needs --device cuda, got --device {device}")
    return ProfileRequest(p["model"], device, precision, statistic, grid)


def _checked_grid(
    p: dict[str, Any], max_model_len: int, model: str
) -> dict[str, tuple[int, ...] | None]:
    grid = {}
    for option, (name, tokens) in _GRID.items():
        values = split_list(p[name], option, int)
        hi, why = (
            (max_model_len, f"{model}'s max_model_len")
            if tokens
            else (MAX_BATCH_SIZE, "the simulator's max_num_seqs bound")
        )
        check_ints(option, values, 1, hi, why, MAX_GRID_VALUES)
        grid[name] = values
    check_int(
        "--max-prefill-tokens",
        p["max_prefill_tokens"],
        1,
        MAX_PREFILL_TOKENS,
        "a prefill batch's activations take GiBs per layer beyond it",
    )
    return grid


def _check_timing(p: dict[str, Any]) -> None:
    days = "one grid would take days"
    check_int("--warmup", p["warmup"], 0, MAX_WARMUP, days)
    check_int("--repeats", p["repeats"], 1, MAX_REPEATS, days)
    check_int("--max-repeats", p["max_repeats"], 1, MAX_REPEATS, days)
    check_int("--passes", p["passes"], 1, MAX_PASSES, days)
    check_number(
        "--time-per-point", p["time_per_point"], 0.0, MAX_TIME_PER_POINT_S, unit="s", why=days
    )
