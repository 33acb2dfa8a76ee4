"""Default prices per GPU-hour (US dollars), one per GPU of :data:`sunsim.specs.GPUS`.

The defaults are one provider's published on-demand list prices, so that the GPUs compare on
one price list: Modal's base per-second GPU rates (``modal.com/pricing``), converted to
dollars per hour. The figures were not read from modal.com itself; they are taken from pages
that quote it, dated:

* H100 (80 GB SXM): $0.001097/s = $3.9492/h; A100 80 GB: $2.4984/h -- techbytes.app,
  "Serverless GPU Pricing Matrix [2026 Developer Cheat Sheet]", prices verified 2026-05-07;
  beam.cloud, "Modal Pricing Explained (2026)" (verified 2026-06-27) quotes H100 ~$3.95/h.
* H200 (141 GB): $0.001261/s = $4.54/h -- quoted in several public 2026 project notes
  (e.g. a research-infrastructure survey dated 2026-03-07); not confirmed on a dated vendor
  page here.
* B200 (180 GB): $6.25/h -- blaxel.ai, "Modal pricing alternatives guide" (2026); not
  confirmed on a dated vendor page here.
* L40S (48 GB, for heterogeneous pools): $1.9512/h -- techbytes.app, above (2026-05-07).

These are base rates: Modal multiplies them for regions (1.5-1.75x) and non-preemptible
capacity (beam.cloud, above); dedicated clouds sell the same GPUs for less (e.g. Lambda's
1x H100 SXM at $3.78/h, techbytes.app above; AWS p5.48xlarge at $98.32/h for 8 H100s,
$12.29 per GPU-hour, before AWS's June 2025 price cut). Prices change month to month: give
your own with the scenario's ``[cost] gpu_hour_usd = {h100 = 2.5}``. Only the ratios
between designs (the saving) do not depend on the price, as long as every design runs on
the same GPU.
"""

from __future__ import annotations

from collections.abc import Mapping

from sunsim.errors import ConfigError

#: Price per GPU-hour in US dollars, by sunsim GPU name (see the module docstring).
GPU_HOUR_USD: dict[str, float] = {
    "h100": 3.9492,
    "h200": 4.54,
    "a100": 2.4984,
    "b200": 6.25,
    "l40s": 1.9512,
}

#: Where :data:`GPU_HOUR_USD` comes from, in one line (printed beside every cost).
PRICE_SOURCE = "Modal on-demand base list prices, 2026 (sunsim.specs.pricing)"


def gpu_hour_usd(gpu: str, overrides: Mapping[str, float] | None = None) -> float:
    """The price of one ``gpu``-hour in US dollars: ``overrides[gpu]`` when given, else the
    default of :data:`GPU_HOUR_USD`.

    Raises :class:`~sunsim.errors.ConfigError` for a GPU without a price (set one with
    ``[cost] gpu_hour_usd = {<gpu> = <dollars>}``) or a price that is not a positive number.
    """
    key = gpu.lower()
    table = {**GPU_HOUR_USD, **{str(k).lower(): v for k, v in (overrides or {}).items()}}
    if key not in table:
        raise ConfigError(
            f"no price per GPU-hour for GPU '{gpu}'; set one in the scenario: "
            f"[cost] gpu_hour_usd = {{{key} = <dollars>}}"
        )
    price = table[key]
    if isinstance(price, bool) or not isinstance(price, (int, float)) or not price > 0:
        raise ConfigError(
            f"[cost] gpu_hour_usd.{key}: expected a positive number of dollars, got {price!r}"
        )
    return float(price)


def price_source(gpu: str, overrides: Mapping[str, float] | None = None) -> str:
    """Where the price of ``gpu`` comes from: ``scenario [cost]`` or :data:`PRICE_SOURCE`."""
    keys = {str(k).lower() for k in (overrides or {})}
    return "scenario [cost] gpu_hour_usd" if gpu.lower() in keys else PRICE_SOURCE


def price_items(v: object) -> object:
    """A ``[cost] gpu_hour_usd`` value as ``((gpu key, price), ...)``: a TOML table or
    ``(name, price)`` pairs, GPU names lower-cased and aliases resolved; prices are checked
    by the scenario field. Raises ValueError naming an unknown GPU (the scenario turns it into
    one line naming the key)."""
    from sunsim.specs.hardware import GPU_ALIASES, GPUS

    if isinstance(v, dict):
        v = tuple(v.items())
    if not v or not isinstance(v, (list, tuple)):
        return v
    out = []
    for item in v:
        name, price = tuple(item) if isinstance(item, (list, tuple)) else (item, None)
        key = GPU_ALIASES.get(str(name).lower(), str(name).lower())
        if key not in GPUS:
            raise ValueError(f"unknown GPU '{name}'; known GPUs: {', '.join(GPUS)}")
        out.append((key, price))
    return tuple(out)
