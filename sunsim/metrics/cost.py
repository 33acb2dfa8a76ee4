"""Cost of a design at its simulated size: GPUs, dollars per hour, dollars per million output
tokens, and the saving against ``partitioned`` -- computed here and nowhere else.

Definitions (docs/metrics.md):

* ``usd_per_hour`` = sum over GPU types of GPUs x price per GPU-hour
  (:func:`sunsim.specs.pricing.gpu_hour_usd`); the GPUs by type are the prefill GPUs on the
  prefill pools' GPU and the decode and co-located GPUs on the decode pools' GPU
  (:meth:`sunsim.metrics.summary.GpuCounts.by_type`; heterogeneous pools have two types);
* ``usd_per_million_output_tokens`` = ``usd_per_hour`` / (output tokens per second x 3600)
  x 1e6, with the run's measured throughput (output tokens of finished requests over the
  measured window, first arrival to last finish, as :func:`sunsim.metrics.summarize`);
  NaN when nothing was produced;
* ``saving_usd_per_hour`` = partitioned's ``usd_per_hour`` - the design's, and
  ``saving_pct`` = that / partitioned's ``usd_per_hour`` x 100 (positive: cheaper than
  partitioned; NaN when partitioned was not run).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from sunsim.metrics.summary import RunSummary
from sunsim.specs.pricing import gpu_hour_usd, price_source

NAN = float("nan")
#: The design every saving is measured against.
BASELINE = "partitioned"


@dataclass(frozen=True)
class DesignCost:
    """One design's cost. ``gpus_by_type``: GPU name -> count; ``gpu_hour_usd``: GPU name ->
    price used (US dollars per GPU-hour); ``price_source``: where the prices come from."""

    num_gpus: int
    gpus_by_type: dict[str, int]
    gpu_hour_usd: dict[str, float]
    usd_per_hour: float
    usd_per_million_output_tokens: float
    saving_usd_per_hour: float
    saving_pct: float
    price_source: str

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (NaN stays NaN)."""
        return asdict(self)


def saving_text(c: DesignCost, mode: str) -> str:
    """The saving against partitioned as people read it: ``$7.90/h (33%)``; ``-`` for
    partitioned itself or when there is no baseline (the one wording of every table)."""
    if mode == BASELINE or c.saving_pct != c.saving_pct:
        return "-"
    return f"${c.saving_usd_per_hour:,.2f}/h ({c.saving_pct:.0f}%)"


def gpus_by_type_text(gpus_by_type: Mapping[str, int]) -> str:
    """GPUs by type as people read them: ``2 H100 + 3 H200`` (the one wording of every table
    and sentence that names GPU types)."""
    return " + ".join(f"{n} {g.upper()}" for g, n in gpus_by_type.items())


def usd_per_hour(gpus_by_type: Mapping[str, int], prices: Mapping[str, float]) -> float:
    """Dollars per hour of ``gpus_by_type`` (GPU -> count) at ``prices`` (GPU -> $/GPU-hour).
    Raises KeyError for a GPU without a price."""
    return float(sum(n * prices[g] for g, n in gpus_by_type.items()))


def usd_per_million_tokens(dollars_per_hour: float, tokens_per_s: float) -> float:
    """Dollars per million tokens produced at ``tokens_per_s`` by a cluster costing
    ``dollars_per_hour``; NaN when ``tokens_per_s`` is not positive."""
    if not tokens_per_s or not tokens_per_s > 0 or math.isnan(tokens_per_s):
        return NAN
    return dollars_per_hour / (tokens_per_s * 3600.0) * 1e6


def design_costs(
    summaries: Mapping[str, RunSummary],
    gpu: str,
    overrides: Mapping[str, float] | None = None,
) -> dict[str, DesignCost]:
    """Mode -> :class:`DesignCost` of each run in ``summaries``, its GPUs by type
    (:meth:`~sunsim.metrics.summary.GpuCounts.by_type`: ``gpu``, the scenario's, unless a
    pool has its own) at ``overrides`` over :data:`sunsim.specs.pricing.GPU_HOUR_USD`.
    Savings are against ``partitioned`` when it is among the summaries, else NaN.

    Raises :class:`~sunsim.errors.ConfigError` when a GPU type has no price.
    """
    base: dict[str, tuple[dict[str, int], dict[str, float], float, float]] = {}
    for mode, s in summaries.items():
        by_type = s.gpus.by_type(gpu)
        prices = {g: gpu_hour_usd(g, overrides) for g in by_type}
        per_h = usd_per_hour(by_type, prices)
        per_m = usd_per_million_tokens(per_h, s.throughput.output_tokens_per_s)
        base[mode] = (by_type, prices, per_h, per_m)
    ref = base.get(BASELINE)
    out = {}
    for mode, (by_type, prices, per_h, per_m) in base.items():
        saved = ref[2] - per_h if ref else NAN
        pct = 100.0 * saved / ref[2] if ref and ref[2] > 0 else NAN
        out[mode] = DesignCost(
            num_gpus=int(sum(by_type.values())),
            gpus_by_type=by_type,
            gpu_hour_usd=prices,
            usd_per_hour=per_h,
            usd_per_million_output_tokens=per_m,
            saving_usd_per_hour=saved,
            saving_pct=pct,
            price_source="; ".join(dict.fromkeys(price_source(g, overrides) for g in prices)),
        )
    return out
