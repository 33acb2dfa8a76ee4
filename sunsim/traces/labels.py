"""Model labelling: which served model each request is for.

Zipf popularity shares, the labelling rules of :func:`label_models` (a model map, explicit
shares, Zipf, or the trace's own model column by name or frequency rank) and per-model counts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from sunsim.errors import ConfigError, TraceError

__all__ = ["zipf_shares", "label_models", "model_counts", "check_served"]


def zipf_shares(n: int, alpha: float) -> np.ndarray:
    """Zipf popularity of ``n`` models: P(i) proportional to ``1 / (i + 1) ** alpha``, i = 0..n-1.

    ``alpha = 0`` is uniform; the SUN paper (arXiv 2603.02599) evaluates Zipf-skewed load over
    math/code/tool models. Returns float64 shares summing to 1.

    Raises:
        ConfigError: ``n`` < 1 or ``alpha`` negative or not finite.
    """
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ConfigError(f"need at least one served model, got n={n!r}")
    if not (isinstance(alpha, (int, float)) and math.isfinite(alpha) and alpha >= 0):
        raise ConfigError(f"Zipf alpha must be a finite number >= 0, got {alpha!r}")
    w = 1.0 / np.arange(1, n + 1, dtype=np.float64) ** float(alpha)
    normalised: np.ndarray = w / w.sum()
    return normalised


def check_served(served: Sequence[str]) -> list[str]:
    if isinstance(served, str):
        served = [s for s in served.split(",")]
    names = [str(s).strip() for s in served]
    if not names or any(not s for s in names):
        raise ConfigError(f"served models must be non-empty names, got {list(served)!r}")
    dup = sorted({s for s in names if names.count(s) > 1})
    if dup:
        raise ConfigError(f"served model names must be unique; repeated: {', '.join(dup)}")
    return names


def _shares(shares: Sequence[float], served: list[str]) -> np.ndarray:
    w = np.asarray(list(shares), dtype=np.float64)
    if w.shape != (len(served),):
        raise ConfigError(
            f"need one share per served model ({len(served)}: {', '.join(served)}), got {len(w)}"
        )
    if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise ConfigError(f"shares must be finite, >= 0 and not all 0, got {list(shares)!r}")
    normalised: np.ndarray = w / w.sum()
    return normalised


def label_models(
    requests: pd.DataFrame,
    served: Sequence[str],
    *,
    zipf_alpha: float | None = None,
    shares: Sequence[float] | None = None,
    model_map: Mapping[str, str] | None = None,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """Label each request with the served model it is for.

    Rules, first that applies:

    1. ``model_map`` (source model name -> served name) maps ``source_model``;
    2. ``shares`` (one weight per served model, >= 0, normalised): i.i.d. draw with ``rng``;
    3. ``zipf_alpha``: i.i.d. draw with P(served[i]) proportional to ``1/(i+1)**alpha``;
    4. the trace names source models and all of them are served names (e.g. a canonical trace
       written by :func:`write_canonical`): they are kept as they are;
    5. the trace names source models: the most frequent source -> ``served[0]``, the next ->
       ``served[1]``, ... (ties broken by name);
    6. otherwise Zipf with alpha 1.0.

    Args:
        requests: a frame with ``arrival_s`` etc. and, for rules 1, 4 and 5, ``source_model``.
        served: the served model names, in popularity order (e.g. ``("math", "code", "tool")``).
        rng: the random generator (draws happen only for rules 2, 3 and 6).

    Returns:
        A copy of ``requests`` with a ``model`` column: a pandas Categorical whose categories are
        ``served`` in order.

    Raises:
        TraceError: model_map leaves source models (or rows without one) unmapped; rule 4 with
            more source models than served ones, or with some rows lacking a source model.
        ConfigError: bad served names, shares, alpha, or a model_map value that is not served.
    """
    names = check_served(served)
    out = requests.copy()
    src = (
        out["source_model"]
        if "source_model" in out.columns
        else pd.Series(pd.NA, index=out.index, dtype="string")
    )
    src = src.astype("string")
    if model_map is not None:
        idx = _by_map(src, names, model_map)
    elif shares is not None or zipf_alpha is not None or src.isna().all():
        if shares is not None:
            p = _shares(shares, names)
        else:
            p = zipf_shares(len(names), 1.0 if zipf_alpha is None else zipf_alpha)
        draw = rng.choice(len(names), size=len(out), p=p)
        idx = pd.Categorical.from_codes(draw.astype(np.int64), categories=names)
    else:
        idx = _by_frequency(src, names)
    out["model"] = pd.Series(idx, index=out.index)
    return out


def _by_map(src: pd.Series, names: list[str], model_map: Mapping[str, str]) -> pd.Categorical:
    """Rule 1: source model -> served name through ``model_map``."""
    n = len(src)
    mm = {str(k): str(v) for k, v in model_map.items()}
    unknown = sorted({v for v in mm.values() if v not in names})
    if unknown:
        raise ConfigError(
            f"model map targets {', '.join(unknown)} are not served models "
            f"({', '.join(names)}); map onto served names"
        )
    if src.isna().all():
        raise TraceError(
            "the trace names no source models, so a model map cannot apply; "
            "use --zipf or --shares instead"
        )
    mapped = src.map(mm)
    missing = sorted({str(s) for s in src[mapped.isna()].dropna().unique()})
    if missing:
        raise TraceError(
            f"model map leaves source models unmapped: {', '.join(missing)}; "
            f"add them to the map (e.g. --model-map {missing[0]}={names[0]})"
        )
    if mapped.isna().any():
        raise TraceError(
            f"{int(src.isna().sum())} of {n} requests have no source model, so the "
            f"model map cannot label them; use --zipf or --shares instead"
        )
    return pd.Categorical(mapped.astype(object), categories=names)


def _by_frequency(src: pd.Series, names: list[str]) -> pd.Categorical:
    """Rules 4 and 5: the source names when all are served, else by frequency rank."""
    n = len(src)
    if src.isna().any():
        raise TraceError(
            f"{int(src.isna().sum())} of {n} requests have no source model, so "
            f"models cannot be mapped by frequency; use --model-map or --zipf"
        )
    counts = src.value_counts()
    if set(map(str, counts.index)) <= set(names):
        return pd.Categorical(src.astype(object), categories=names)
    order = sorted(counts.index, key=lambda k: (-int(counts[k]), str(k)))
    if len(order) > len(names):
        raise TraceError(
            f"the trace has {len(order)} source models ({', '.join(map(str, order))}) "
            f"but only {len(names)} served models ({', '.join(names)}); "
            f"use --model-map or --zipf"
        )
    mm = {k: names[i] for i, k in enumerate(order)}
    return pd.Categorical(src.map(mm).astype(object), categories=names)


def model_counts(df: pd.DataFrame, served: Sequence[str] | None = None) -> dict[str, int]:
    """Requests per model, ``{name: count}``, in served order (zeros included).

    The order is ``served`` when given, else the categories of a Categorical ``model`` column,
    else first appearance.
    """
    col = df["model"]
    if served is not None:
        names = [str(s) for s in served]
    elif isinstance(col.dtype, pd.CategoricalDtype):
        names = [str(c) for c in col.cat.categories]
    else:
        names = [str(c) for c in pd.unique(col.dropna())]
    vc = col.astype(object).value_counts()
    return {name: int(vc.get(name, 0)) for name in names}
