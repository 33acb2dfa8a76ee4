"""Read options: the arrival window, the rate scale and the request cap.

Applied to a validated requests frame in this order: sort by arrival (stable), window,
max_requests, rate_scale, re-zero (first kept arrival at 0.0 s).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from sunsim.errors import ConfigError, TraceError, where
from sunsim.traces.formats import FORMATS

__all__ = ["check_options", "apply_options"]


def check_options(
    fmt: str,
    window: tuple[float, float] | None,
    rate_scale: float,
    max_requests: int | None,
) -> None:
    """Check the read options before the file is read.

    Raises:
        ConfigError: an unknown ``fmt``; a window that is not two numbers ``0 <= start_s <
            end_s``; ``rate_scale`` not a finite number > 0; ``max_requests`` not an integer >= 1.
    """
    if fmt != "auto" and fmt not in FORMATS:
        raise ConfigError(f"unknown trace format '{fmt}'; use one of: auto, {', '.join(FORMATS)}")
    if window is not None:
        try:
            start, end = (float(window[0]), float(window[1]))
        except (TypeError, ValueError, IndexError):
            raise ConfigError(
                f"window must be two numbers (start_s, end_s), got {window!r}"
            ) from None
        if not (math.isfinite(start) and start >= 0 and end > start):
            raise ConfigError(
                f"window ({start:g}, {end:g}) s is empty or reversed; use 0 <= start_s < end_s"
            )
    if not (
        isinstance(rate_scale, (int, float))
        and not isinstance(rate_scale, bool)
        and math.isfinite(rate_scale)
        and rate_scale > 0
    ):
        raise ConfigError(f"rate_scale must be a finite number > 0, got {rate_scale!r}")
    if max_requests is not None and (
        not isinstance(max_requests, (int, np.integer))
        or isinstance(max_requests, bool)
        or max_requests < 1
    ):
        raise ConfigError(f"max_requests must be an integer >= 1, got {max_requests!r}")


def apply_options(
    frame: pd.DataFrame,
    p: Path,
    window: tuple[float, float] | None,
    rate_scale: float,
    max_requests: int | None,
    columns: tuple[str, ...],
) -> pd.DataFrame:
    """Sort (stable), window, cap, scale and re-zero the requests frame; keep ``columns``.

    Raises:
        TraceError: no requests fall inside the window.
    """
    frame = frame.sort_values("arrival_s", kind="stable", ignore_index=True)
    t = frame["arrival_s"].to_numpy()
    t = t - t[0]
    if window is not None:
        start, end = float(window[0]), float(window[1])
        inside = (t >= start) & (t < end)
        if not inside.any():
            raise TraceError(
                f"{where(p)}no requests in the window [{start:g}, {end:g}) s; the trace "
                f"spans 0 to {t[-1]:g} s from its first arrival; pick a window inside it"
            )
        frame = frame.loc[inside].reset_index(drop=True)
        t = t[inside]
    if max_requests is not None:
        frame = frame.iloc[:max_requests].reset_index(drop=True)
        t = t[:max_requests]
    t = t / float(rate_scale)
    frame["arrival_s"] = (t - t[0]).astype(np.float64)
    return frame[list(columns)]
