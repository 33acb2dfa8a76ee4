"""Row validation: every value of a raw trace frame checked, bad ones reported by row and column.

One path for every format: the arrival times (numbers in a unit, or ISO 8601 datetimes), the
time order, the token counts and the source model. A bad value raises :class:`TraceError` with
``file: row N, column 'X': <value> is not <what> (<n> bad rows); <how to fix>``, naming the
first bad row and counting all of them.

Time order (the rule): a trace lists its requests in arrival order. A row whose time is earlier
than a row above it by at most :data:`REORDER_TOLERANCE_S` (logging jitter) is re-sorted (stable)
and counted in ``num_reordered``; a row earlier by more is an error naming that row, its value and
the earlier row it precedes, unless the caller asks to re-sort (``sort_arrivals``), in which case
every out-of-order row is re-sorted and counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from sunsim.errors import TraceError, where
from sunsim.traces.formats import TraceFormat
from sunsim.traces.sessions import read_session_columns

__all__ = ["REORDER_TOLERANCE_S", "MAX_TOKENS", "MAX_TIME_S", "Rows", "validate_rows"]

#: Largest backward step in time (seconds) that is taken as jitter and re-sorted silently
#: (but counted). BurstGPT stamps whole seconds, so jitter below one second is invisible there.
REORDER_TOLERANCE_S = 1.0
#: Largest token count accepted in a row (10 M tokens: above any model's context window today).
MAX_TOKENS = 10_000_000
#: Largest absolute arrival time accepted, seconds (about 3,170 years): larger values are
#: almost always a unit mistake (milliseconds or nanoseconds in a seconds column).
MAX_TIME_S = 1e11

_FIX_TOKENS = "fix or remove those rows"
_DATETIME_LIKE = "a timestamp like '2023-11-16 18:17:03.9799600' (years 1678 to 2261)"
_TZ_SUFFIX = r"(?:Z|[+-]\d{2}(?::?\d{2})?)$"


@dataclass(frozen=True)
class Rows:
    """The checked values of every data row, in file order (int64/float64 arrays, one per row).

    ``arrival_s`` is seconds from an arbitrary origin; ``row`` the 1-based data row (or JSONL
    line); ``source`` object array of model names or ``pd.NA``; ``num_reordered`` rows earlier
    in time than a row above them; ``extra`` the checked optional session columns the file has
    (``session_id``, ``turn``, ``hash_ids``; :mod:`sunsim.traces.sessions`).
    """

    arrival_s: np.ndarray
    prompt_tokens: np.ndarray
    output_tokens: np.ndarray
    source: np.ndarray
    row: np.ndarray
    num_reordered: int
    extra: dict[str, np.ndarray] = field(default_factory=dict)


def bad_rows(
    p: Path, col: str, rows: np.ndarray, bad: np.ndarray, values: pd.Series, what: str, fix: str
) -> TraceError:
    """The error for the rows where ``bad`` is True: names the first, counts them all."""
    i = int(np.flatnonzero(bad)[0])
    n = int(bad.sum())
    v = values.iloc[i]
    shown = "an empty or NaN value" if _is_missing(v) else repr(_text(v)[:60])
    more = f" ({n} bad rows in this column)" if n > 1 else " (1 bad row)"
    return TraceError(f"{where(p, int(rows[i]), col)}{shown} is not {what}{more}; {fix}")


def _is_missing(v: object) -> bool:
    try:
        return v is None or bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def _text(v: object) -> str:
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e16:
        return str(int(v))
    return str(v)


def _as_float(s: pd.Series) -> np.ndarray:
    """Numeric values of a column as float64, NaN where a value is not a number."""
    if s.dtype == object:
        # JSON values: booleans, lists and objects are not numbers.
        odd = s.map(lambda v: isinstance(v, (bool, list, dict))).to_numpy(dtype=bool)
        if odd.any():
            s = s.mask(odd)
    elif pd.api.types.is_bool_dtype(s.dtype):
        return np.full(len(s), np.nan)
    out: np.ndarray = pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    return out


def _tokens(
    s: pd.Series, col: str, p: Path, rows: np.ndarray, min_value: np.ndarray | int, what: str
) -> np.ndarray:
    """Validated whole-number token counts of one column, as int64 (vectorised)."""
    fix = f"token counts must be whole numbers; {_FIX_TOKENS}"
    if pd.api.types.is_integer_dtype(s.dtype) and not pd.api.types.is_unsigned_integer_dtype(
        s.dtype
    ):
        vals = s.to_numpy(dtype=np.int64)
    else:
        f = _as_float(s)
        bad = ~np.isfinite(f)
        if bad.any():
            raise bad_rows(p, col, rows, bad, s, "a number", fix)
        bad = f != np.floor(f)
        if bad.any():
            raise bad_rows(p, col, rows, bad, s, "a whole number", fix)
        huge = np.abs(f) > MAX_TOKENS
        if huge.any():
            raise bad_rows(p, col, rows, huge, s, f"a token count <= {MAX_TOKENS:,}", _FIX_TOKENS)
        vals = f.astype(np.int64)
    vals = np.asarray(vals, dtype=np.int64)
    huge = vals > MAX_TOKENS
    if huge.any():
        raise bad_rows(p, col, rows, huge, s, f"a token count <= {MAX_TOKENS:,}", _FIX_TOKENS)
    low = vals < min_value
    if low.any():
        raise bad_rows(p, col, rows, low, s, what, _FIX_TOKENS)
    return vals


def _numeric_times(s: pd.Series, col: str, p: Path, rows: np.ndarray, unit_s: float) -> np.ndarray:
    f = _as_float(s)
    bad = ~np.isfinite(f)
    if bad.any():
        raise bad_rows(p, col, rows, bad, s, "a timestamp (a number)", _FIX_TOKENS)
    t = f * unit_s
    huge = np.abs(t) > MAX_TIME_S
    if huge.any():
        unit = "milliseconds" if unit_s == 1e-3 else "seconds"
        raise bad_rows(
            p,
            col,
            rows,
            huge,
            s,
            f"a plausible time (it is over {MAX_TIME_S:g} s, about 3,000 years)",
            f"this column is in {unit}; convert the column (was it written in a smaller unit?)",
        )
    return t


def _datetime_times(s: pd.Series, col: str, p: Path, rows: np.ndarray) -> np.ndarray:
    """ISO 8601 datetimes as float seconds from the earliest; UTC offsets are converted to UTC."""
    text = s.astype("string").str.strip()
    has_tz = text.str.contains(_TZ_SUFFIX, regex=True, na=False).to_numpy(dtype=bool)
    if has_tz.any():
        present = text.notna().to_numpy(dtype=bool)
        mixed = present & (has_tz != has_tz[np.flatnonzero(present)[0]])
        if mixed.any():
            i = int(np.flatnonzero(present)[0])
            j = int(np.flatnonzero(mixed)[0])
            kind = "has a UTC offset" if has_tz[j] else "has no UTC offset"
            raise TraceError(
                f"{where(p, int(rows[j]), col)}{str(text.iloc[j])!r} {kind} but row "
                f"{int(rows[i])} ({str(text.iloc[i])!r}) differs; give every timestamp an "
                f"offset (e.g. +00:00) or none"
            )
        t = pd.to_datetime(text, format="ISO8601", errors="coerce", utc=True)
        t = t.dt.tz_convert("UTC").dt.tz_localize(None)
    elif pd.api.types.is_numeric_dtype(s.dtype):
        # Numbers are not datetimes here (pandas would read them as epochs some day).
        t = pd.to_datetime(s.astype("string"), format="ISO8601", errors="coerce")
    else:
        t = pd.to_datetime(s, format="ISO8601", errors="coerce")
    # pandas may parse at microsecond or second resolution; nanoseconds span 1677 to 2262.
    bad = (t.isna() | (t < pd.Timestamp.min) | (t > pd.Timestamp.max)).to_numpy(dtype=bool)
    if bad.any():
        raise bad_rows(p, col, rows, bad, s, _DATETIME_LIKE, _FIX_TOKENS)
    ns = t.to_numpy().astype("datetime64[ns]").astype(np.int64)
    # Subtract in integer nanoseconds first, so float seconds keep sub-microsecond precision.
    seconds: np.ndarray = (ns - ns.min()).astype(np.float64) / 1e9
    return seconds


def _times(raw: pd.DataFrame, fmt: TraceFormat, p: Path, rows: np.ndarray) -> np.ndarray:
    s = raw[fmt.time_col]
    if fmt.time_kind == "datetime":
        return _datetime_times(s, fmt.time_col, p, rows)
    unit = 1e-3 if fmt.time_kind == "milliseconds" else 1.0
    return _numeric_times(s, fmt.time_col, p, rows, unit)


def check_order(
    t: np.ndarray, raw_times: pd.Series, col: str, p: Path, rows: np.ndarray, sort_arrivals: bool
) -> int:
    """Apply the time-order rule (module docstring); return the number of out-of-order rows.

    Raises:
        TraceError: a row earlier than a row above it by more than :data:`REORDER_TOLERANCE_S`
            and ``sort_arrivals`` is False.
    """
    if len(t) < 2:
        return 0
    running = np.maximum.accumulate(t)
    lag = running[:-1] - t[1:]
    num = int((lag > 0).sum())
    if sort_arrivals:
        return num
    far = np.flatnonzero(lag > REORDER_TOLERANCE_S)
    if len(far):
        i = int(far[0]) + 1
        j = int(np.flatnonzero(t[:i] == running[i - 1])[0])
        n = len(far)
        raise TraceError(
            f"{where(p, int(rows[i]), col)}{_text(raw_times.iloc[i])!r} is {_duration(lag[i - 1])} "
            f"earlier than row {int(rows[j])} ({_text(raw_times.iloc[j])!r}) above it "
            f"({n} row{'s' if n > 1 else ''} out of order by more than "
            f"{REORDER_TOLERANCE_S:g} s); sort the file by '{col}', or re-sort on read "
            f"(--sort-arrivals, or sort_arrivals = true in the scenario's [trace])"
        )
    return num


def _duration(s: float) -> str:
    """A duration for messages: seconds, with days when it is over a day."""
    text = f"{s:,.6g} s" if s < 1e6 else f"{s:,.0f} s"
    return text + (f" ({s / 86400:,.1f} days)" if s >= 86400 else "")


def _source(raw: pd.DataFrame, fmt: TraceFormat, n: int) -> np.ndarray:
    if fmt.model_col is not None and fmt.model_col in raw.columns:
        src = raw[fmt.model_col].astype("string").str.strip()
        src = src.mask(src == "")
        names: np.ndarray = src.to_numpy(dtype=object, na_value=pd.NA)
        return names
    return np.full(n, pd.NA, dtype=object)


def validate_rows(
    raw: pd.DataFrame, p: Path, fmt: TraceFormat, *, sort_arrivals: bool = False
) -> Rows:
    """Check every data row of a raw frame (blank CSV rows are not data rows and are skipped).

    Token counts: whole numbers, ``output >= 0``, ``prompt >= 1`` (BurstGPT failed rows, with
    0 output tokens, may have a 0 prompt), at most :data:`MAX_TOKENS`. Output and prompt values
    are returned as read (the caller applies the failed/zero-output rules).

    Raises:
        TraceError: the first bad value (see the module docstring), or rows out of time order.
    """
    if fmt.file_kind == "csv":
        blank = raw.isna().all(axis=1).to_numpy()
        if blank.any():
            raw = raw.loc[~blank]
    rows = raw.index.to_numpy(dtype=np.int64) + 1
    n = len(raw)
    if n == 0:
        raise TraceError(
            f"{where(p)}the file has a header but no data rows; pass a trace with at least "
            f"one request"
        )
    arrival = _times(raw, fmt, p, rows)
    output = _tokens(raw[fmt.output_col], fmt.output_col, p, rows, 0, "a token count >= 0")
    if fmt.failed_rows:
        min_prompt: np.ndarray | int = np.where(output == 0, 0, 1)
        what = "a token count >= 1 (0 is allowed only in failed rows)"
    else:
        min_prompt, what = 1, "a token count >= 1"
    prompt = _tokens(raw[fmt.prompt_col], fmt.prompt_col, p, rows, min_prompt, what)
    num_reordered = check_order(arrival, raw[fmt.time_col], fmt.time_col, p, rows, sort_arrivals)
    extra = read_session_columns(raw, fmt, p, rows)
    return Rows(arrival, prompt, output, _source(raw, fmt, n), rows, num_reordered, extra)
