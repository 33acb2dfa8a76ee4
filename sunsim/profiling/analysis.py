"""Distance of a measured profile to the roofline of its own device (no torch needed).

The roofline uses the ceilings measured on the device when the profile was made
(``meta.json``: ``copy_bandwidth_bytes_per_s``, ``matmul_flops_per_s``) and sunsim's analytic
counting (:mod:`sunsim.latency.roofline`) for the full model at the profile's precision:

* decode: ``roofline_s = bytes moved / measured copy bandwidth`` (weights at the precision,
  LM head and norms BF16, the whole KV cache read and the new token's KV written);
  ``ratio = measured step time / roofline_s`` (1.0 = at the bandwidth roofline; on a CPU whose
  cache holds the weights it can fall below 1);
* prefill: ``flops`` (linear layers, causal attention, LM head of the last tokens),
  ``achieved_flops_per_s = flops / measured time`` and ``matmul_fraction = achieved /
  measured matmul rate``; ``roofline_s = flops / matmul rate`` and ``ratio = time /
  roofline_s`` (= 1 / matmul_fraction).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from sunsim.errors import ProfileError
from sunsim.specs import GpuSpec, ModelSpec

COLUMNS = (
    "module",
    "batch_size",
    "tokens",
    "time_s",
    "roofline_s",
    "ratio",
    "bytes_moved",
    "flops",
    "achieved_flops_per_s",
    "matmul_fraction",
)


def _ceilings(meta: dict[str, Any], path: Path) -> tuple[float, float]:
    try:
        bw = float(meta["copy_bandwidth_bytes_per_s"])
        rate = float(meta["matmul_flops_per_s"])
    except (KeyError, TypeError, ValueError):
        raise ProfileError(
            f"{path / 'meta.json'}: no measured copy_bandwidth_bytes_per_s / "
            "matmul_flops_per_s; re-run `sunsim profile`"
        ) from None
    if not (bw > 0 and rate > 0):
        raise ProfileError(
            f"{path / 'meta.json'}: measured bandwidth and matmul rate must be "
            "positive; re-run `sunsim profile`"
        )
    return bw, rate


def roofline_ratios(profile_dir: str | Path) -> Any:
    """Per grid point of the profile at ``profile_dir``, its distance to the roofline.

    Returns a DataFrame with columns ``module`` (decode/prefill), ``batch_size``, ``tokens``
    (context or prompt tokens per request), ``time_s`` (measured, full model; the column
    named by the profile's ``fit_statistic``),
    ``roofline_s``, ``ratio`` (time / roofline), ``bytes_moved`` (decode), ``flops``,
    ``achieved_flops_per_s``, ``matmul_fraction`` (prefill). ``attrs`` carry the measured
    ``copy_bandwidth_bytes_per_s`` and ``matmul_flops_per_s``.

    Raises ProfileError for a missing or malformed profile.
    """
    import pandas as pd

    from sunsim.latency.profiled import ProfiledLatency
    from sunsim.latency.roofline import RooflineLatency

    lat = ProfiledLatency.from_dir(profile_dir, prefill_from_bf16=False)
    d = lat.path
    meta = lat.meta
    bw, rate = _ceilings(meta, d)
    spec: ModelSpec = lat.spec
    mem = GpuSpec("measured-bandwidth", 0, bw, math.inf, bw, math.inf, True)
    cnt = GpuSpec("flop-counter", 0, math.inf, 1.0, math.inf, 1.0, True)
    by_bytes = RooflineLatency(mem, spec, lat.precision)
    by_flops = RooflineLatency(cnt, spec, lat.precision)
    rows = _decode_rows(pd.read_csv(d / "decode.csv"), lat.time_column, by_bytes, by_flops, bw)
    if (d / "prefill.csv").exists():
        rows += _prefill_rows(pd.read_csv(d / "prefill.csv"), lat.time_column, by_flops, rate)
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    df.attrs.update(
        copy_bandwidth_bytes_per_s=bw,
        matmul_flops_per_s=rate,
        profile=str(d),
        description=lat.description,
    )
    return df


def _decode_rows(
    dec: Any, time_column: str, by_bytes: Any, by_flops: Any, bw: float
) -> list[dict[str, Any]]:
    """Rows of :func:`roofline_ratios` for the decode grid ``dec``: its roofline is the bytes
    moved at the measured copy bandwidth ``bw`` (bytes/s); ``by_flops`` counts the FLOPs."""
    rows = []
    for r in dec.itertuples(index=False):
        b, c, t = int(r.batch_size), int(r.context_tokens), float(getattr(r, time_column))
        roof = by_bytes.decode_step_time(b, b * c)
        rows.append(
            {
                "module": "decode",
                "batch_size": b,
                "tokens": c,
                "time_s": t,
                "roofline_s": roof,
                "ratio": t / roof,
                "bytes_moved": roof * bw,
                "flops": by_flops.decode_step_time(b, b * c),
                "achieved_flops_per_s": math.nan,
                "matmul_fraction": math.nan,
            }
        )
    return rows


def _prefill_rows(pre: Any, time_column: str, by_flops: Any, rate: float) -> list[dict[str, Any]]:
    """Rows of :func:`roofline_ratios` for the prefill grid ``pre``: its roofline is the
    FLOPs (``by_flops``) at the measured matmul rate ``rate`` (FLOP/s)."""
    rows = []
    for r in pre.itertuples(index=False):
        b, l, t = int(r.batch_size), int(r.prompt_tokens), float(getattr(r, time_column))
        flops = by_flops.prefill_time([l] * b)
        ach = flops / t
        rows.append(
            {
                "module": "prefill",
                "batch_size": b,
                "tokens": l,
                "time_s": t,
                "roofline_s": flops / rate,
                "ratio": t / (flops / rate),
                "bytes_moved": math.nan,
                "flops": flops,
                "achieved_flops_per_s": ach,
                "matmul_fraction": ach / rate,
            }
        )
    return rows


def roofline_summary(df: Any) -> dict[str, float]:
    """Medians and ranges of :func:`roofline_ratios`: ``decode_ratio_median``,
    ``decode_ratio_min``, ``decode_ratio_max``, ``prefill_fraction_median``,
    ``prefill_fraction_max`` (NaN when a module is absent)."""
    dec = df[df["module"] == "decode"]["ratio"]
    pre = df[df["module"] == "prefill"]["matmul_fraction"]
    nan = math.nan
    return {
        "decode_ratio_median": float(dec.median()) if len(dec) else nan,
        "decode_ratio_min": float(dec.min()) if len(dec) else nan,
        "decode_ratio_max": float(dec.max()) if len(dec) else nan,
        "prefill_fraction_median": float(pre.median()) if len(pre) else nan,
        "prefill_fraction_max": float(pre.max()) if len(pre) else nan,
    }


def load_meta(profile_dir: str | Path) -> dict[str, Any]:
    """``meta.json`` of a profile directory as a dict (ProfileError when unreadable)."""
    p = Path(profile_dir) / "meta.json"
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ProfileError(f"{p}: cannot read ({e}); re-run `sunsim profile`") from None
