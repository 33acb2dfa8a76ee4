"""``decode.csv`` and ``prefill.csv`` of a profile: their columns and their checks (part of the
profile format, :mod:`sunsim.latency.profile_format`).

Rows are grid points, numbered from 1 below the header in error messages.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from sunsim.errors import ProfileError
from sunsim.latency.fitting import Point

DECODE_COLUMNS = (
    "batch_size",
    "context_tokens",
    "total_context_tokens",
    "time_s_median",
    "time_s_p10",
    "time_s_p90",
    "repeats",
)
PREFILL_COLUMNS = (
    "batch_size",
    "prompt_tokens",
    "total_tokens",
    "time_s_median",
    "time_s_p10",
    "time_s_p90",
    "repeats",
)
#: Optional columns of ``sunsim profile``: the fastest repeat (s), the k layers alone and the
#: part outside them when layers were scaled (s, empty otherwise), rounds in which another
#: process held the CPU core.
EXTRA_COLUMNS = ("time_s_min", "layers_s_median", "base_s_median", "preempted")
#: Optional columns of ``sunsim validate engine``: mean time (s), median thread CPU time (s),
#: passes pooled.
ENGINE_EXTRA_COLUMNS = ("time_s_mean", "cpu_s_median", "passes")
#: Fewest rows a table may have (one point cannot be fitted or checked).
MIN_ROWS = 2

#: kind -> (columns, tokens-per-request column, total-tokens column)
_LAYOUT = {
    "decode": (DECODE_COLUMNS, "context_tokens", "total_context_tokens"),
    "prefill": (PREFILL_COLUMNS, "prompt_tokens", "total_tokens"),
}
#: Columns that must be whole numbers >= 1 in every row.
_COUNT_COLUMNS = ("batch_size", "context_tokens", "prompt_tokens", "repeats")
#: Time columns that must be finite and > 0 in every row (the fitted one too).
_TIME_COLUMNS = ("time_s_median", "time_s_p10", "time_s_p90")


def _fail(path: Path, row: int | None, column: str | None, what: str) -> ProfileError:
    loc = f"{path}: " + (f"row {row}, " if row is not None else "")
    loc += f"column '{column}': " if column is not None else ""
    return ProfileError(f"{loc}{what}")


def _check_columns(df: pd.DataFrame, kind: str, path: Path, time_col: str) -> None:
    columns = _LAYOUT[kind][0]
    need = [*columns, *([time_col] if time_col not in columns else [])]
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise ProfileError(
            f"{path}: missing column(s) {', '.join(missing)}; expected {', '.join(need)}"
        )
    allowed = {*columns, *EXTRA_COLUMNS, *ENGINE_EXTRA_COLUMNS}
    unknown = [str(c) for c in df.columns if c not in allowed]
    if unknown:
        raise ProfileError(
            f"{path}: unknown column(s) {', '.join(unknown)}; a {kind} table has "
            f"{', '.join(columns)} and optionally {', '.join(EXTRA_COLUMNS + ENGINE_EXTRA_COLUMNS)}"
        )
    if len(df) < MIN_ROWS:
        raise ProfileError(
            f"{path}: {len(df)} row(s); a profile needs at least {MIN_ROWS} grid points per "
            "module to fit and check its model; measure a larger grid (`sunsim profile`)"
        )


def _numeric(df: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Every column as floats; a cell that is not a number (empty cells allowed) is an error."""
    out = pd.DataFrame(index=df.index)
    for c in df.columns:
        col = pd.to_numeric(df[c], errors="coerce")
        bad = col.isna() & df[c].notna()
        if bad.any():
            i = int(bad.to_numpy().argmax())
            raise _fail(path, i + 1, str(c), f"non-numeric value {df[c].iloc[i]!r}; write a number")
        out[c] = col.astype(float)
    return out


def _check_rows(num: pd.DataFrame, kind: str, path: Path, time_col: str) -> None:
    _, per_col, total_col = _LAYOUT[kind]
    for c in (*_COUNT_COLUMNS, *_TIME_COLUMNS, time_col):
        if c not in num.columns:
            continue
        v = num[c].to_numpy()
        if c in _COUNT_COLUMNS:
            bad = ~(v >= 1) | (v != v.round())
            rule = "must be a whole number >= 1"
        else:
            bad = ~((v > 0) & (v < math.inf))
            rule = "must be a time in seconds > 0 (not empty, NaN or infinite)"
        if bad.any():
            i = int(bad.argmax())
            raise _fail(path, i + 1, c, f"{rule}, got {v[i]:g}; re-measure this grid point")
    b, per, tot = (num[c].to_numpy() for c in ("batch_size", per_col, total_col))
    off = abs(tot - b * per) > 0.5
    if off.any():
        i = int(off.argmax())
        raise _fail(
            path,
            i + 1,
            total_col,
            f"{total_col} {tot[i]:g} != batch_size x {per_col} ({b[i] * per[i]:g})",
        )
    dup = num.duplicated(subset=["batch_size", per_col]).to_numpy()
    if dup.any():
        i = int(dup.argmax())
        raise _fail(
            path,
            i + 1,
            None,
            f"duplicate grid point batch_size={b[i]:g}, {per_col}={per[i]:g}; keep one row",
        )


def check_table(df: pd.DataFrame, kind: str, path: str | Path, time_col: str) -> pd.DataFrame:
    """Validate a ``decode`` or ``prefill`` table (``kind``) of a profile; returns it with
    numeric columns as floats (counts as int64), columns in the given order.

    ``path`` names the file in errors; ``time_col`` is the fitted column (``meta.json``
    ``fit_statistic``), required too.

    Raises ProfileError (one line: file, row, column, how to fix): a missing or unknown
    column, fewer than :data:`MIN_ROWS` rows, a non-numeric cell, a count that is not a
    whole number >= 1, a time that is empty, NaN, infinite, zero or negative, a total that
    is not batch_size x tokens per request, a duplicate grid point.
    """
    p = Path(path)
    if kind not in _LAYOUT:
        raise ValueError(f"kind must be decode or prefill, got {kind!r}")
    if not isinstance(df, pd.DataFrame):
        raise ProfileError(f"{p}: expected a table (DataFrame), got {type(df).__name__}")
    _check_columns(df, kind, p, time_col)
    num = _numeric(df.reset_index(drop=True), p)
    _check_rows(num, kind, p, time_col)
    _, per_col, total_col = _LAYOUT[kind]
    for c in ("batch_size", per_col, total_col, "repeats"):
        num[c] = num[c].round().astype("int64")
    return num


def table_points(df: pd.DataFrame, kind: str, time_col: str) -> list[Point]:
    """Points ``(batch, tokens_per_request, tokens_total, sum_sq, time_s)`` of a checked table
    (:func:`check_table`), ``time_s`` from column ``time_col``."""
    _, per_col, total_col = _LAYOUT[kind]
    return [
        (float(b), float(per), float(tot), float(b) * float(per) * float(per), float(t))
        for b, per, tot, t in zip(df["batch_size"], df[per_col], df[total_col], df[time_col])
    ]
