"""The accuracy of a measured profile: leave-one-out errors of its grid points
(:func:`held_out_errors`) and their summary per grid slice (:func:`check_profile`, printed by
``sunsim profile check``). Split from :mod:`sunsim.latency.profiled`, which only gives step
times."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from sunsim.latency.profiled import ProfiledLatency

__all__ = ["check_profile", "held_out_errors"]


def held_out_errors(lat: ProfiledLatency) -> pd.DataFrame:
    """Leave-one-out errors per measured point, a DataFrame with columns ``module``
    (decode/prefill), ``batch_size``, ``tokens`` (context or prompt tokens per request),
    ``time_s`` (measured), ``predicted_s`` (interpolation with the point held out),
    ``fit_only_s`` (fitted form refitted without it), ``ape_pct``, ``fit_only_ape_pct``.
    Only this profile's own modules (not a borrowed bf16 prefill)."""

    rows = []
    mods = [("decode", lat._decode)]
    if lat._prefill is not None and lat.prefill_path == lat.path:
        mods.append(("prefill", lat._prefill))
    for name, s in mods:
        for p, (f, pred, t) in zip(s.points, s.held_out()):
            rows.append(
                {
                    "module": name,
                    "batch_size": int(p[0]),
                    "tokens": int(p[1]),
                    "time_s": t,
                    "predicted_s": pred,
                    "fit_only_s": f,
                    "ape_pct": 100 * abs(pred - t) / t,
                    "fit_only_ape_pct": 100 * abs(f - t) / t,
                }
            )
    return pd.DataFrame(rows)


def check_profile(
    path: str | Path, *, model: str | None = None, precision: str | None = None
) -> pd.DataFrame:
    """Held-out error of a profile, per grid slice.

    Leave-one-out over the grid points (:func:`held_out_errors`), grouped by
    slice: decode per batch size, prefill per batch composition (batch size). Returns a
    DataFrame with columns ``module``, ``slice`` (e.g. ``"B=4"``), ``points``, ``mape_pct``
    (interpolation), ``max_ape_pct``, ``fit_only_mape_pct``; ``df.attrs["median_mape_pct"]``
    is the median over slices of ``mape_pct`` and ``df.attrs["profile"]`` the directory.
    """
    lat = ProfiledLatency.from_dir(path, model=model, precision=precision)
    pts = held_out_errors(lat)

    rows = []
    for (mod, b), g in pts.groupby(["module", "batch_size"], sort=False):
        rows.append(
            {
                "module": mod,
                "slice": f"B={b}",
                "points": len(g),
                "mape_pct": float(g["ape_pct"].mean()),
                "max_ape_pct": float(g["ape_pct"].max()),
                "fit_only_mape_pct": float(g["fit_only_ape_pct"].mean()),
            }
        )
    df = pd.DataFrame(
        rows, columns=["module", "slice", "points", "mape_pct", "max_ape_pct", "fit_only_mape_pct"]
    )
    df.attrs["median_mape_pct"] = float(df["mape_pct"].median()) if len(df) else math.nan
    df.attrs["profile"] = str(lat.path)
    df.attrs["description"] = lat.description
    df.attrs["decode_fit"] = lat.decode_fit
    df.attrs["prefill_fit"] = lat.prefill_fit
    df.attrs["decode_interpolation"] = lat._decode.interpolation
    df.attrs["prefill_interpolation"] = (
        lat._prefill.interpolation if lat._prefill is not None else None
    )
    return df
