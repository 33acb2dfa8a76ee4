"""The KV link of the mirrored simulation, fitted to the engine's handoff calibration."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sunsim.specs import LinkSpec


def fit_link(raw: dict, kv_bytes_per_token: int) -> tuple[LinkSpec, pd.DataFrame, dict]:
    """Fit ``handoff_s = latency_s + bytes / bandwidth`` (non-negative least squares on the
    median handoff of each size) to the calibration samples.

    Handoff = from the start of the prefill process's copy into the staging tensor to the
    decode process reading the notice. Returns ``(LinkSpec, samples frame, fit info)``.
    """
    from scipy.optimize import nnls

    pre, dec = raw["link"]["prefill"], raw["link"]["decode"]
    dec = dec[-len(pre) :] if len(dec) >= len(pre) else dec  # drop the warm-up round
    rows = [
        {
            "tokens": a["tokens"],
            "bytes": a["tokens"] * kv_bytes_per_token,
            "handoff_s": b["received"] - a["copy_start"],
            "copy_s": a["copy_end"] - a["copy_start"],
        }
        for a, b in zip(pre, dec)
    ]
    df = pd.DataFrame(rows)
    med = df.groupby("bytes")["handoff_s"].median()
    x = np.column_stack([np.ones(len(med)), med.index.to_numpy(dtype=float)])
    t = med.to_numpy(dtype=float)
    w = 1.0 / t  # relative error
    scale = np.abs(x * w[:, None]).max(axis=0)
    scale[scale == 0] = 1.0
    coef, _ = nnls(x * w[:, None] / scale, np.ones_like(t))
    lat, inv_bw = coef / scale
    bw = 1.0 / inv_bw if inv_bw > 0 else 1e15
    spec = LinkSpec(bandwidth=float(bw), latency_s=float(max(lat, 0.0)))
    pred = np.array([spec.transfer_time(b) for b in med.index])
    info = {
        "latency_s": spec.latency_s,
        "bandwidth_bytes_per_s": spec.bandwidth,
        "fit_mape_pct": float(100 * np.mean(np.abs(pred - t) / t)),
        "median_handoff_s_by_bytes": {str(int(k)): float(v) for k, v in med.items()},
        "median_copy_s_by_bytes": {
            str(int(k)): float(v) for k, v in df.groupby("bytes")["copy_s"].median().items()
        },
        "default_link": {
            "latency_s": LinkSpec().latency_s,
            "bandwidth_bytes_per_s": LinkSpec().bandwidth,
        },
    }
    return spec, df, info
