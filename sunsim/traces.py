"""Request traces: read, validate, label with served models, summarise, synthesise.

A trace is a table of requests, one row each, that the simulator replays. This module reads
the public production trace formats, checks every row, and returns one canonical frame.

Requests frame (``Trace.requests``), index ``0..n-1``:

=================  ==========  ===================================================================
column             dtype       meaning
=================  ==========  ===================================================================
``arrival_s``      float64     arrival time in seconds from the first kept request (sorted, first 0.0)
``prompt_tokens``  int64       prompt (input, context) length in tokens, >= 1
``output_tokens``  int64       tokens to generate, >= 1 (see the notes on failed/zero-output rows)
``source_model``   string      the model named in the trace (BurstGPT ``Model``, canonical
                               ``model``); ``<NA>`` when the trace has none
``row``            int64       1-based data row in the file (the header is not counted; for JSONL
                               the line number), for error messages and provenance
=================  ==========  ===================================================================

Formats (detected from the header by column *names*, never positions; ``fmt`` forces one):

* ``burstgpt``: BurstGPT CSV (Wang et al. 2024, arXiv 2401.17644; github.com/HPMLL/BurstGPT):
  ``Timestamp`` (seconds from trace start), ``Model``, ``Request tokens``, ``Response tokens``,
  ``Total tokens``, ``Log Type``; release v2.0 inserts ``Session ID, Elapsed time`` after
  ``Timestamp``. Rows with ``Response tokens`` == 0 are *failed* requests: left out by default and
  counted; with ``keep_failed`` they are kept with ``output_tokens = 1`` (a failed request still
  consumed a prefill, which emits the first token) and ``prompt_tokens = max(1, Request tokens)``.
* ``azure``: Azure LLM inference trace 2023 CSV (Azure/AzurePublicDataset; the Splitwise paper's
  trace): ``TIMESTAMP`` (datetime text, up to 7 fractional digits), ``ContextTokens``,
  ``GeneratedTokens``.
* ``mooncake``: Mooncake JSONL (kvcache-ai/Mooncake, FAST'25 traces): one JSON object per line with
  ``timestamp`` (milliseconds), ``input_length``, ``output_length``; ``hash_ids`` and other keys
  are ignored.
* ``canonical``: sunsim's own CSV, ``arrival_s, model, prompt_tokens, output_tokens`` (``model``
  optional and may be empty), as written by :func:`write_canonical`.

Nothing is silently dropped: every data row becomes a request or is counted (failed BurstGPT
rows). In the non-BurstGPT formats a row with 0 output tokens is kept with ``output_tokens = 1``
(the prefill's token) and counted in ``Trace.num_zero_output``. Blank lines are not data rows
(they are skipped, but row numbers still count them so that they match the file).
"""

from __future__ import annotations

import csv
import json
import math
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from sunsim.errors import ConfigError, TraceError, where

__all__ = [
    "FORMATS",
    "CANONICAL_COLUMNS",
    "REQUEST_COLUMNS",
    "Trace",
    "LognormalLengths",
    "DEFAULT_PROMPT_LENGTHS",
    "DEFAULT_OUTPUT_LENGTHS",
    "read_trace",
    "label_models",
    "model_counts",
    "zipf_shares",
    "trace_info",
    "synth_trace",
    "synth_command",
    "write_canonical",
]

#: Format key -> human name, in detection order.
FORMATS: dict[str, str] = {
    "burstgpt": "BurstGPT CSV",
    "azure": "Azure LLM inference CSV",
    "mooncake": "Mooncake JSONL",
    "canonical": "sunsim canonical CSV",
}

#: Columns of :attr:`Trace.requests`, in order.
REQUEST_COLUMNS = ("arrival_s", "prompt_tokens", "output_tokens", "source_model", "row")
#: Columns of the canonical CSV and of :func:`synth_trace`'s frame, in order.
CANONICAL_COLUMNS = ("arrival_s", "model", "prompt_tokens", "output_tokens")

# Column names per CSV format: (timestamp, prompt, output, model or None).
_BURSTGPT = ("Timestamp", "Request tokens", "Response tokens", "Model")
_AZURE = ("TIMESTAMP", "ContextTokens", "GeneratedTokens", None)
_CANONICAL = ("arrival_s", "prompt_tokens", "output_tokens", "model")
_MOONCAKE = ("timestamp", "input_length", "output_length", None)
_COLUMNS = {"burstgpt": _BURSTGPT, "azure": _AZURE, "canonical": _CANONICAL, "mooncake": _MOONCAKE}
# Header names that identify a CSV format (any one of them is enough to pick it).
_SIGNATURES = {
    "burstgpt": {"Timestamp", "Request tokens", "Response tokens", "Total tokens", "Log Type"},
    "azure": {"TIMESTAMP", "ContextTokens", "GeneratedTokens"},
    "canonical": {"arrival_s", "prompt_tokens", "output_tokens"},
}
_FIX_TOKENS = "fix or remove those rows"


@dataclass(frozen=True)
class Trace:
    """A validated request trace.

    Attributes:
        requests: the requests frame (columns :data:`REQUEST_COLUMNS`, see the module docstring),
            after the read options (window, max_requests, rate_scale) were applied.
        path: the file read.
        format: the format key (one of :data:`FORMATS`).
        num_rows: data rows in the file (blank lines not counted).
        num_failed: BurstGPT failed rows (``Response tokens`` == 0) in the file; 0 for other formats.
        num_failed_excluded: those left out because ``keep_failed`` was False.
        source_models: source model name -> number of kept requests, most frequent first; empty
            when the trace names no models.
        num_zero_output: non-BurstGPT rows with 0 output tokens, kept with ``output_tokens = 1``.
    """

    requests: pd.DataFrame
    path: str
    format: str
    num_rows: int
    num_failed: int
    num_failed_excluded: int
    source_models: dict[str, int] = field(default_factory=dict)
    num_zero_output: int = 0


# ---------------------------------------------------------------------------------------------
# Reading


def read_trace(
    path: str | Path,
    fmt: str = "auto",
    *,
    keep_failed: bool = False,
    window: tuple[float, float] | None = None,
    rate_scale: float = 1.0,
    max_requests: int | None = None,
) -> Trace:
    """Read and validate a request trace file.

    Args:
        path: the trace file (CSV or JSONL; see the module docstring for the formats).
        fmt: ``"auto"`` (detect from the header's column names) or one of :data:`FORMATS`.
        keep_failed: keep BurstGPT failed rows (``Response tokens`` == 0) as requests with
            ``output_tokens = 1`` instead of leaving them out (they are counted either way).
        window: ``(start_s, end_s)``: keep arrivals in ``[start_s, end_s)`` seconds measured from
            the trace's first arrival, then re-zero.
        rate_scale: multiply the request rate by this factor (> 0): arrival times are divided by it.
        max_requests: keep only the first N requests (after the window).

    The options apply in this order: sort by arrival (stable), window, max_requests, rate_scale,
    re-zero (first kept arrival at 0.0 s).

    Returns:
        A :class:`Trace`; ``requests`` has the columns :data:`REQUEST_COLUMNS`.

    Raises:
        TraceError: a missing or unreadable file, an empty file or header only, an unknown format,
            a missing column, a bad token count or timestamp (the message names the first bad row
            and column and how many rows are bad), a malformed JSON line, or no requests left.
        ConfigError: an unknown ``fmt`` or an impossible option (``rate_scale`` <= 0, an empty or
            reversed window, ``max_requests`` < 1).
    """
    _check_options(fmt, window, rate_scale, max_requests)
    p = Path(path)
    if not p.exists():
        raise TraceError(
            f"{where(p)}file not found; check the path (the full public traces "
            f"must be downloaded first, see traces/README.md)"
        )
    if not p.is_file():
        raise TraceError(f"{where(p)}is not a file; pass a trace file (CSV or JSONL)")
    first = _first_line(p)
    if first is None:
        raise TraceError(f"{where(p)}the file is empty; pass a trace with a header and data rows")

    if fmt == "auto":
        fmt = _detect(p, first)
    if fmt == "mooncake":
        raw = _read_jsonl(p)
    else:
        raw = _read_csv(p)
    frame, num_rows, num_failed, num_excluded, num_zero = _validate(raw, p, fmt, keep_failed)
    if num_rows == 0:
        raise TraceError(
            f"{where(p)}the file has a header but no data rows; "
            f"pass a trace with at least one request"
        )
    if len(frame) == 0:
        raise TraceError(
            f"{where(p)}all {num_rows} rows are failed requests (Response tokens == 0) "
            f"and were left out; pass --keep-failed to keep them"
        )

    frame = _apply_options(frame, p, window, rate_scale, max_requests)
    counts = frame["source_model"].value_counts(dropna=True)
    source_models = {str(k): int(v) for k, v in counts.items()}
    return Trace(
        requests=frame,
        path=str(p),
        format=fmt,
        num_rows=num_rows,
        num_failed=num_failed,
        num_failed_excluded=num_excluded,
        source_models=source_models,
        num_zero_output=num_zero,
    )


def _check_options(fmt: str, window, rate_scale, max_requests) -> None:
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
    if not (isinstance(rate_scale, (int, float)) and math.isfinite(rate_scale) and rate_scale > 0):
        raise ConfigError(f"rate_scale must be a finite number > 0, got {rate_scale!r}")
    if max_requests is not None and (
        not isinstance(max_requests, (int, np.integer)) or max_requests < 1
    ):
        raise ConfigError(f"max_requests must be an integer >= 1, got {max_requests!r}")


def _first_line(p: Path) -> str | None:
    """The first non-blank line of the file, or None if it is empty (or only blank lines)."""
    try:
        with p.open("r", encoding="utf-8-sig", errors="replace") as f:
            for line in f:
                if line.strip():
                    return line.strip()
    except OSError as e:
        raise TraceError(
            f"{where(p)}cannot read the file ({e.strerror}); check its permissions"
        ) from None
    return None


def _header_names(first: str) -> list[str]:
    try:
        return [c.strip() for c in next(csv.reader([first]))]
    except (csv.Error, StopIteration):
        return [first]


def _detect(p: Path, first: str) -> str:
    if first.startswith("{"):
        return "mooncake"
    names = set(_header_names(first))
    hits = {fmt: len(names & sig) for fmt, sig in _SIGNATURES.items()}
    best = max(hits.values())
    winners = [f for f, n in hits.items() if n == best]
    if best == 0 or len(winners) > 1:
        shown = ", ".join(repr(c) for c in _header_names(first)[:8])
        raise TraceError(
            f"{where(p)}unknown trace format (header columns: {shown}); known formats: "
            + "; ".join(f"{k} ({v})" for k, v in FORMATS.items())
            + "; rename the columns or pass --format"
        )
    return winners[0]


def _read_csv(p: Path) -> pd.DataFrame:
    """All columns as read by pandas; index = 0-based data row (blank lines included)."""
    try:
        df = pd.read_csv(p, skip_blank_lines=False, encoding="utf-8-sig", low_memory=False)
    except pd.errors.EmptyDataError:
        raise TraceError(
            f"{where(p)}the file is empty; pass a trace with a header and data rows"
        ) from None
    except pd.errors.ParserError as e:
        msg = " ".join(str(e).split())
        raise TraceError(
            f"{where(p)}not a well-formed CSV ({msg}; lines count the header); "
            f"fix that line or pass the right file"
        ) from None
    except UnicodeDecodeError as e:
        raise TraceError(
            f"{where(p)}not UTF-8 text ({e.reason} at byte {e.start}); "
            f"pass a CSV or JSONL text file"
        ) from None
    df.columns = [str(c).strip() for c in df.columns]
    return df


def _read_jsonl(p: Path) -> pd.DataFrame:
    """Mooncake JSONL as a frame with the needed keys; index = 0-based line number."""
    ts, inp, out, lines = [], [], [], []
    missing: dict[str, int] = {}
    with p.open("r", encoding="utf-8-sig", errors="replace") as f:
        for i, line in enumerate(f):
            s = line.strip()
            if not s:
                continue
            try:
                obj = json.loads(s)
            except json.JSONDecodeError as e:
                raise TraceError(
                    f"{where(p, i + 1)}malformed JSON ({e.msg} at column {e.colno}); "
                    f"each line must be one JSON object; fix or remove that line"
                ) from None
            if not isinstance(obj, dict):
                raise TraceError(
                    f"{where(p, i + 1)}expected a JSON object, got "
                    f"{type(obj).__name__}; each line must be one JSON object"
                )
            for key in _MOONCAKE[:3]:
                if key not in obj and key not in missing:
                    missing[key] = i + 1
            ts.append(obj.get("timestamp"))
            inp.append(obj.get("input_length"))
            out.append(obj.get("output_length"))
            lines.append(i)
    if missing:
        key, line = next(iter(missing.items()))
        raise TraceError(
            f"{where(p, line, key)}missing key '{key}' for the {FORMATS['mooncake']} "
            f"format (needs timestamp, input_length, output_length); "
            f"fix the file or pass the right --format"
        )
    return pd.DataFrame(
        {
            "timestamp": pd.Series(ts, dtype=object),
            "input_length": pd.Series(inp, dtype=object),
            "output_length": pd.Series(out, dtype=object),
        },
        index=pd.Index(lines, dtype=np.int64),
    )


def _bad_rows(
    p: Path, col: str, rows: np.ndarray, bad: np.ndarray, values: pd.Series, what: str, fix: str
) -> TraceError:
    i = int(np.flatnonzero(bad)[0])
    n = int(bad.sum())
    v = values.iloc[i]
    shown = "an empty value" if _is_missing(v) else repr(_text(v))
    more = f" ({n} bad rows in this column)" if n > 1 else " (1 bad row)"
    return TraceError(f"{where(p, int(rows[i]), col)}{shown} is not {what}{more}; {fix}")


def _is_missing(v) -> bool:
    try:
        return v is None or bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def _text(v) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _as_float(s: pd.Series) -> np.ndarray:
    """Numeric values of a column as float64, NaN where a value is not a number."""
    if s.dtype == object:
        # JSON values: booleans, lists and objects are not numbers.
        odd = s.map(lambda v: isinstance(v, (bool, list, dict))).to_numpy(dtype=bool)
        if odd.any():
            s = s.mask(odd)
    return pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def _tokens(
    df: pd.DataFrame, col: str, p: Path, rows: np.ndarray, min_value: np.ndarray | int, what: str
) -> np.ndarray:
    """Validated whole-number token counts of one column, as int64 (vectorised)."""
    s = df[col]
    if pd.api.types.is_integer_dtype(s.dtype):
        vals = s.to_numpy(dtype=np.int64)
    else:
        f = _as_float(s)
        bad = ~np.isfinite(f)
        if bad.any():
            raise _bad_rows(
                p,
                col,
                rows,
                bad,
                s,
                "a number",
                f"token counts must be whole numbers; {_FIX_TOKENS}",
            )
        bad = f != np.floor(f)
        if bad.any():
            raise _bad_rows(
                p,
                col,
                rows,
                bad,
                s,
                "a whole number",
                f"token counts must be whole numbers; {_FIX_TOKENS}",
            )
        vals = f.astype(np.int64)
    low = vals < min_value
    if low.any():
        raise _bad_rows(p, col, rows, low, s, what, _FIX_TOKENS)
    return vals


def _numeric_times(
    df: pd.DataFrame, col: str, p: Path, rows: np.ndarray, unit_s: float
) -> np.ndarray:
    s = df[col]
    f = _as_float(s)
    bad = ~np.isfinite(f)
    if bad.any():
        raise _bad_rows(p, col, rows, bad, s, "a timestamp (a number)", "fix or remove those rows")
    return f * unit_s


def _datetime_times(df: pd.DataFrame, col: str, p: Path, rows: np.ndarray) -> np.ndarray:
    s = df[col]
    t = pd.to_datetime(s, format="ISO8601", errors="coerce")
    bad = t.isna().to_numpy()
    if bad.any():
        raise _bad_rows(
            p,
            col,
            rows,
            bad,
            s,
            "a timestamp like '2023-11-16 18:17:03.9799600'",
            "fix or remove those rows",
        )
    ns = t.to_numpy().astype("datetime64[ns]").astype(np.int64)
    # Subtract in integer nanoseconds first, so float seconds keep sub-microsecond precision.
    return (ns - ns.min()).astype(np.float64) / 1e9


def _validate(raw: pd.DataFrame, p: Path, fmt: str, keep_failed: bool):
    ts_col, in_col, out_col, model_col = _COLUMNS[fmt]
    need = [ts_col, in_col, out_col]
    for c in need:
        if c not in raw.columns:
            found = ", ".join(repr(c) for c in list(raw.columns)[:8])
            raise TraceError(
                f"{where(p, column=c)}missing column '{c}' for the {FORMATS[fmt]} format "
                f"(columns found: {found}); fix the header or pass the right --format"
            )
    if fmt != "mooncake":
        blank = raw.isna().all(axis=1).to_numpy()
        if blank.any():
            raw = raw.loc[~blank]
    rows = raw.index.to_numpy(dtype=np.int64) + 1
    num_rows = len(raw)
    if num_rows == 0:
        return None, 0, 0, 0, 0

    if fmt == "azure":
        arrival = _datetime_times(raw, ts_col, p, rows)
    else:
        arrival = _numeric_times(raw, ts_col, p, rows, 1e-3 if fmt == "mooncake" else 1.0)

    output = _tokens(raw, out_col, p, rows, 0, "a token count >= 0")
    zero_out = output == 0
    num_failed = num_excluded = num_zero = 0
    if fmt == "burstgpt":
        num_failed = int(zero_out.sum())
        prompt = _tokens(
            raw,
            in_col,
            p,
            rows,
            np.where(zero_out, 0, 1),
            "a token count >= 1 (0 is allowed only in failed rows)",
        )
        keep = ~zero_out if not keep_failed else np.ones(num_rows, dtype=bool)
        num_excluded = 0 if keep_failed else num_failed
        prompt = np.maximum(prompt, 1)
    else:
        prompt = _tokens(raw, in_col, p, rows, 1, "a token count >= 1")
        num_zero = int(zero_out.sum())
        keep = np.ones(num_rows, dtype=bool)
    output = np.maximum(output, 1)

    if model_col is not None and model_col in raw.columns:
        src = raw[model_col].astype("string").str.strip()
        src = src.mask(src == "")
        source = src.to_numpy(dtype=object, na_value=pd.NA)
    else:
        source = np.full(num_rows, pd.NA, dtype=object)

    frame = pd.DataFrame(
        {
            "arrival_s": arrival[keep],
            "prompt_tokens": prompt[keep],
            "output_tokens": output[keep],
            "source_model": pd.array(source[keep], dtype="string"),
            "row": rows[keep],
        }
    )
    return frame, num_rows, num_failed, num_excluded, num_zero


def _apply_options(
    frame: pd.DataFrame, p: Path, window, rate_scale: float, max_requests: int | None
) -> pd.DataFrame:
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
    return frame[list(REQUEST_COLUMNS)]


# ---------------------------------------------------------------------------------------------
# Model labelling


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
    return w / w.sum()


def _check_served(served: Sequence[str]) -> list[str]:
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
    return w / w.sum()


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
    names = _check_served(served)
    out = requests.copy()
    n = len(out)
    src = (
        out["source_model"]
        if "source_model" in out.columns
        else pd.Series(pd.NA, index=out.index, dtype="string")
    )
    src = src.astype("string")

    if model_map is not None:
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
        idx = pd.Categorical(mapped.astype(object), categories=names)
    elif shares is not None or zipf_alpha is not None or src.isna().all():
        if shares is not None:
            p = _shares(shares, names)
        else:
            p = zipf_shares(len(names), 1.0 if zipf_alpha is None else zipf_alpha)
        draw = rng.choice(len(names), size=n, p=p)
        idx = pd.Categorical.from_codes(draw.astype(np.int64), categories=names)
    else:
        if src.isna().any():
            raise TraceError(
                f"{int(src.isna().sum())} of {n} requests have no source model, so "
                f"models cannot be mapped by frequency; use --model-map or --zipf"
            )
        counts = src.value_counts()
        if set(map(str, counts.index)) <= set(names):
            idx = pd.Categorical(src.astype(object), categories=names)
            out["model"] = pd.Series(idx, index=out.index)
            return out
        order = sorted(counts.index, key=lambda k: (-int(counts[k]), str(k)))
        if len(order) > len(names):
            raise TraceError(
                f"the trace has {len(order)} source models ({', '.join(map(str, order))}) "
                f"but only {len(names)} served models ({', '.join(names)}); "
                f"use --model-map or --zipf"
            )
        mm = {k: names[i] for i, k in enumerate(order)}
        idx = pd.Categorical(src.map(mm).astype(object), categories=names)
    out["model"] = pd.Series(idx, index=out.index)
    return out


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


# ---------------------------------------------------------------------------------------------
# Summary


def _pcts(x: np.ndarray) -> dict[str, float]:
    if len(x) == 0:
        return {k: float("nan") for k in ("mean", "p50", "p90", "p99", "max")}
    q = np.percentile(x, [50, 90, 99])
    return {
        "mean": float(np.mean(x)),
        "p50": float(q[0]),
        "p90": float(q[1]),
        "p99": float(q[2]),
        "max": float(np.max(x)),
    }


def trace_info(trace: Trace) -> dict:
    """Summary statistics of a trace's kept requests.

    Returns a dict with: ``path``, ``format``, ``num_rows`` (data rows in the file),
    ``num_requests`` (kept), ``num_failed``, ``num_failed_excluded``, ``num_zero_output``,
    ``span_s`` (last arrival - first, seconds), ``mean_rate`` (requests/s: num_requests / span_s;
    NaN when the span is 0), ``interarrival_cv`` (std / mean of the inter-arrival times, population
    std; NaN with fewer than 2 gaps or zero mean), ``prompt_tokens`` and ``output_tokens`` (each a
    dict of ``mean``, ``p50``, ``p90``, ``p99``, ``max``), and ``source_models`` (name -> count).
    """
    df = trace.requests
    t = df["arrival_s"].to_numpy(dtype=np.float64)
    span = float(t[-1] - t[0]) if len(t) else 0.0
    gaps = np.diff(t)
    cv = (
        float(np.std(gaps) / np.mean(gaps))
        if len(gaps) >= 2 and np.mean(gaps) > 0
        else float("nan")
    )
    return {
        "path": trace.path,
        "format": trace.format,
        "num_rows": trace.num_rows,
        "num_requests": len(df),
        "num_failed": trace.num_failed,
        "num_failed_excluded": trace.num_failed_excluded,
        "num_zero_output": trace.num_zero_output,
        "span_s": span,
        "mean_rate": len(df) / span if span > 0 else float("nan"),
        "interarrival_cv": cv,
        "prompt_tokens": _pcts(df["prompt_tokens"].to_numpy()),
        "output_tokens": _pcts(df["output_tokens"].to_numpy()),
        "source_models": dict(trace.source_models),
    }


# ---------------------------------------------------------------------------------------------
# Synthetic traces


@dataclass(frozen=True)
class LognormalLengths:
    """A clipped lognormal token-length distribution, given by its median and 99th percentile.

    ``sigma = ln(p99 / median) / z_0.99`` with ``z_0.99 = 2.3263``; ``mu = ln(median)``; samples are
    rounded to whole tokens and clipped to ``[low, high]``.
    """

    median: float
    p99: float
    low: int = 1
    high: int = 32768

    def __post_init__(self) -> None:
        if not (
            math.isfinite(self.median) and math.isfinite(self.p99) and 0 < self.median < self.p99
        ):
            raise ConfigError(
                f"length distribution needs 0 < median < p99, got median={self.median}, "
                f"p99={self.p99}"
            )
        if not (1 <= self.low <= self.high):
            raise ConfigError(
                f"length clip range needs 1 <= low <= high, got [{self.low}, {self.high}]"
            )

    @property
    def sigma(self) -> float:
        """Log-space standard deviation."""
        return math.log(self.p99 / self.median) / 2.3263478740408408

    @property
    def mean(self) -> float:
        """Mean before clipping and rounding: ``median * exp(sigma**2 / 2)``."""
        return self.median * math.exp(self.sigma**2 / 2)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` int64 lengths."""
        x = rng.lognormal(mean=math.log(self.median), sigma=self.sigma, size=n)
        return np.clip(np.rint(x), self.low, self.high).astype(np.int64)


#: Prompt lengths matched to the Azure LLM inference trace 2023, conversation service (p50 1020,
#: p99 4142 tokens; measured in ../shared/traces/README.md); mean before clipping ~1223 (trace: 1155).
DEFAULT_PROMPT_LENGTHS = LognormalLengths(median=1020, p99=4142, low=1, high=32768)
#: Output lengths matched to the same trace (p50 129, p99 601 tokens); mean ~161 (trace: 211).
DEFAULT_OUTPUT_LENGTHS = LognormalLengths(median=129, p99=601, low=1, high=4096)


def synth_trace(
    *,
    num_requests: int | None = None,
    duration_s: float | None = None,
    rate: float = 6.0,
    burstiness: float = 2.0,
    served: Sequence[str] = ("math", "code", "tool"),
    zipf_alpha: float = 1.2,
    rng: np.random.Generator,
    prompt: LognormalLengths = DEFAULT_PROMPT_LENGTHS,
    output: LognormalLengths = DEFAULT_OUTPUT_LENGTHS,
) -> pd.DataFrame:
    """A BurstGPT-style synthetic trace.

    * Arrivals: a renewal process with Gamma-distributed inter-arrival times, as BurstGPT
      (Wang et al. 2024, arXiv 2401.17644) fits request arrivals: mean ``1 / rate`` seconds,
      coefficient of variation ``burstiness`` (shape ``k = 1 / burstiness**2``, scale
      ``1 / (rate * k)``); ``burstiness = 1`` is Poisson, ``0`` evenly spaced. First arrival at 0.
    * Lengths: clipped lognormals (:data:`DEFAULT_PROMPT_LENGTHS`, :data:`DEFAULT_OUTPUT_LENGTHS`,
      matched to the Azure 2023 conversation trace), drawn independently.
    * Models: i.i.d. Zipf popularity over ``served`` (:func:`zipf_shares`).

    Exactly one of ``num_requests`` (count) and ``duration_s`` (keep arrivals in ``[0, duration_s)``)
    must be given. Draw order (gaps, models, prompts, outputs) is fixed, so a seed reproduces the trace.

    Returns:
        A frame with the canonical columns :data:`CANONICAL_COLUMNS`: ``arrival_s`` float64 (s),
        ``model`` Categorical over ``served``, ``prompt_tokens`` and ``output_tokens`` int64.

    Raises:
        ConfigError: both or neither of num_requests/duration_s, a count < 1, a non-positive
            duration or rate, a negative burstiness, bad served names or alpha.
    """
    names = _check_served(served)
    if (num_requests is None) == (duration_s is None):
        raise ConfigError("give exactly one of the number of requests and the duration")
    if not (isinstance(rate, (int, float)) and math.isfinite(rate) and rate > 0):
        raise ConfigError(f"rate must be a finite number of requests/s > 0, got {rate!r}")
    if not (isinstance(burstiness, (int, float)) and math.isfinite(burstiness) and burstiness >= 0):
        raise ConfigError(
            f"burstiness (inter-arrival CV) must be a finite number >= 0, got {burstiness!r}"
        )
    p_model = zipf_shares(len(names), zipf_alpha)

    def gaps(m: int) -> np.ndarray:
        if burstiness == 0:
            return np.full(m, 1.0 / rate)
        k = 1.0 / burstiness**2
        return rng.gamma(shape=k, scale=1.0 / (rate * k), size=m)

    if num_requests is not None:
        if not isinstance(num_requests, (int, np.integer)) or num_requests < 1:
            raise ConfigError(f"number of requests must be an integer >= 1, got {num_requests!r}")
        n = int(num_requests)
        arrival = np.concatenate([[0.0], np.cumsum(gaps(n - 1))])
    else:
        if not (
            isinstance(duration_s, (int, float)) and math.isfinite(duration_s) and duration_s > 0
        ):
            raise ConfigError(
                f"duration must be a finite number of seconds > 0, got {duration_s!r}"
            )
        parts = [np.zeros(1)]
        total = 0.0
        expected = rate * duration_s
        while total < duration_s:
            m = int(expected + 6 * math.sqrt(expected) * max(burstiness, 1.0)) + 16
            g = gaps(m)
            c = total + np.cumsum(g)
            parts.append(c)
            total = float(c[-1])
        arrival = np.concatenate(parts)
        arrival = arrival[arrival < duration_s]
        n = len(arrival)

    model = rng.choice(len(names), size=n, p=p_model)
    return pd.DataFrame(
        {
            "arrival_s": arrival.astype(np.float64),
            "model": pd.Categorical.from_codes(model.astype(np.int64), categories=names),
            "prompt_tokens": prompt.sample(rng, n),
            "output_tokens": output.sample(rng, n),
        }
    )


def synth_command(
    out: str | Path,
    *,
    num_requests: int | None = None,
    duration_s: float | None = None,
    rate: float = 6.0,
    burstiness: float = 2.0,
    served: Sequence[str] = ("math", "code", "tool"),
    zipf_alpha: float = 1.2,
    seed: int = 0,
) -> str:
    """The ``sunsim trace synth`` command line that regenerates a synthetic trace exactly."""
    parts = ["sunsim", "trace", "synth", shlex.quote(str(out))]
    if num_requests is not None:
        parts += ["--requests", str(num_requests)]
    else:
        parts += ["--duration", f"{duration_s:g}"]
    parts += [
        "--rate",
        f"{rate:g}",
        "--burstiness",
        f"{burstiness:g}",
        "--models",
        shlex.quote(",".join(served)),
        "--zipf",
        f"{zipf_alpha:g}",
        "--seed",
        str(seed),
    ]
    return " ".join(parts)


def write_canonical(df: pd.DataFrame, path: str | Path) -> Path:
    """Write requests as a sunsim canonical CSV: ``arrival_s, model, prompt_tokens, output_tokens``.

    ``arrival_s`` is written with 6 decimals (microseconds). ``model`` comes from the ``model``
    column, else ``source_model``, else is left empty; missing names are written empty.
    Returns the path written.

    Raises:
        TraceError: ``df`` lacks ``arrival_s``, ``prompt_tokens`` or ``output_tokens``, or the file
            cannot be written.
    """
    for c in ("arrival_s", "prompt_tokens", "output_tokens"):
        if c not in df.columns:
            raise TraceError(
                f"cannot write a canonical trace without column '{c}'; "
                f"columns are: {', '.join(map(str, df.columns))}"
            )
    if "model" in df.columns:
        model = df["model"]
    elif "source_model" in df.columns:
        model = df["source_model"]
    else:
        model = pd.Series(pd.NA, index=df.index)
    out = pd.DataFrame(
        {
            "arrival_s": df["arrival_s"].to_numpy(dtype=np.float64),
            "model": model.astype("string").to_numpy(dtype=object, na_value=""),
            "prompt_tokens": df["prompt_tokens"].to_numpy(dtype=np.int64),
            "output_tokens": df["output_tokens"].to_numpy(dtype=np.int64),
        }
    )
    p = Path(path)
    try:
        out.to_csv(p, index=False, float_format="%.6f", lineterminator="\n")
    except OSError as e:
        raise TraceError(
            f"{where(p)}cannot write the trace ({e.strerror}); check the directory"
        ) from None
    return p
