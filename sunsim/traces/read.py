"""``read_trace``: a trace file in, a validated :class:`Trace` out.

The steps: check the options, check the file (exists, a text file), detect the format, read
the rows with the reader of the file kind (:mod:`~sunsim.traces.readers`), check every value
(:mod:`~sunsim.traces.rows`), apply the failed/zero-output rules, then the options
(:mod:`~sunsim.traces.options`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from sunsim.errors import TraceError, where
from sunsim.traces.formats import TRACE_FORMATS, TraceFormat, detect_format
from sunsim.traces.hashes import HASH_BLOCK_TOKENS, check_hash_block_tokens
from sunsim.traces.options import apply_options, check_options
from sunsim.traces.readers import check_file, first_line, read_raw
from sunsim.traces.rows import Rows, validate_rows
from sunsim.traces.sessions import SESSION_COLUMNS, SessionInfo, complete_sessions

__all__ = ["REQUEST_COLUMNS", "Trace", "read_trace"]

#: Columns of :attr:`Trace.requests`, in order; the optional session columns
#: (:data:`~sunsim.traces.sessions.SESSION_COLUMNS`) follow when the trace has them.
REQUEST_COLUMNS = ("arrival_s", "prompt_tokens", "output_tokens", "source_model", "row")


@dataclass(frozen=True)
class Trace:
    """A validated request trace.

    Attributes:
        requests: the requests frame (columns :data:`REQUEST_COLUMNS`, see :mod:`sunsim.traces`),
            after the read options (window, max_requests, rate_scale) were applied.
        path: the file read.
        format: the format key (one of :data:`~sunsim.traces.FORMATS`).
        num_rows: data rows in the file (blank lines not counted).
        num_failed: BurstGPT failed rows (``Response tokens`` == 0) in the file; 0 for
            other formats.
        num_failed_excluded: those left out because ``keep_failed`` was False.
        source_models: source model name -> number of kept requests, most frequent first; empty
            when the trace names no models.
        num_zero_output: non-BurstGPT rows with 0 output tokens, kept with ``output_tokens = 1``.
        num_reordered: rows earlier in time than a row above them in the file, re-sorted (see
            :data:`~sunsim.traces.REORDER_TOLERANCE_S`).
        sessions: the session columns' provenance (:class:`~sunsim.traces.sessions.SessionInfo`:
            where ``hash_ids`` came from, number of sessions, context resets).
        hash_block_tokens: tokens per hashed block when ``requests`` has ``hash_ids``, else None.
    """

    requests: pd.DataFrame
    path: str
    format: str
    num_rows: int
    num_failed: int
    num_failed_excluded: int
    source_models: dict[str, int] = field(default_factory=dict)
    num_zero_output: int = 0
    num_reordered: int = 0
    sessions: SessionInfo = field(default_factory=SessionInfo)
    hash_block_tokens: int | None = None


def read_trace(
    path: str | Path,
    fmt: str = "auto",
    *,
    keep_failed: bool = False,
    window: tuple[float, float] | None = None,
    rate_scale: float = 1.0,
    max_requests: int | None = None,
    sort_arrivals: bool = False,
    hash_block_tokens: int = HASH_BLOCK_TOKENS,
) -> Trace:
    """Read and validate a request trace file.

    Args:
        path: the trace file (CSV or JSONL; see :mod:`sunsim.traces` for the formats).
        fmt: ``"auto"`` (detect from the header's column names) or one of ``FORMATS``.
        keep_failed: keep BurstGPT failed rows (``Response tokens`` == 0) as requests with
            ``output_tokens = 1`` instead of leaving them out (they are counted either way).
        window: ``(start_s, end_s)``: keep arrivals in ``[start_s, end_s)`` seconds measured from
            the trace's first arrival, then re-zero.
        rate_scale: multiply the request rate by this factor (> 0): arrival times are divided by it.
        max_requests: keep only the first N requests (after the window).
        sort_arrivals: re-sort rows that are out of time order by any amount (counted in
            ``num_reordered``) instead of refusing those out of order by more than
            ``REORDER_TOLERANCE_S`` seconds.
        hash_block_tokens: prompt tokens per block of the trace's ``hash_ids`` (Mooncake: 512),
            and of the ids derived from ``session_id``/``turn`` when it has none.

    The optional session columns (``session_id``, ``turn``, ``hash_ids``: canonical CSV;
    ``hash_ids``: Mooncake JSONL) are completed before the options
    (:func:`~sunsim.traces.sessions.complete_sessions`: turns by arrival when absent, ids derived
    from session structure when absent), so they do not depend on the window.

    The options apply in this order: sort by arrival (stable), window, max_requests, rate_scale,
    re-zero (first kept arrival at 0.0 s).

    Returns:
        A :class:`Trace`; ``requests`` has the columns :data:`REQUEST_COLUMNS`, then the
        session columns the trace has (``hash_ids`` also when derived).

    Raises:
        TraceError: a missing, unreadable, binary, compressed or non-UTF-8 file, a directory, an
            empty file or header only, an unknown format, a missing or repeated column, a bad
            token count or timestamp, rows out of time order, a malformed JSON line, a bad
            session column (a turn twice in a session, a hash id list that does not have one id
            per block), or no requests left (each message names the file, the first bad row and
            column, and how to fix it).
        ConfigError: an unknown ``fmt`` or an impossible option (``rate_scale`` <= 0, an empty or
            reversed window, ``max_requests`` < 1, ``hash_block_tokens`` < 1).
    """
    check_options(fmt, window, rate_scale, max_requests)
    block = check_hash_block_tokens(hash_block_tokens)
    p = Path(path)
    tf, rows = _read_rows(p, fmt, sort_arrivals)
    frame, num_failed, num_excluded, num_zero = _requests(rows, tf, keep_failed)
    if len(frame) == 0:
        raise TraceError(
            f"{where(p)}all {len(rows.row)} rows are failed requests (Response tokens == 0) "
            f"and were left out; pass --keep-failed to keep them"
        )
    frame, sessions = complete_sessions(frame, p, block)
    columns = REQUEST_COLUMNS + tuple(c for c in SESSION_COLUMNS if c in frame.columns)
    frame = apply_options(frame, p, window, rate_scale, max_requests, columns)
    counts = frame["source_model"].value_counts(dropna=True)
    return Trace(
        requests=frame,
        path=str(p),
        format=tf.key,
        num_rows=len(rows.row),
        num_failed=num_failed,
        num_failed_excluded=num_excluded,
        source_models={str(k): int(v) for k, v in counts.items()},
        num_zero_output=num_zero,
        num_reordered=rows.num_reordered,
        sessions=sessions,
        hash_block_tokens=block if "hash_ids" in frame.columns else None,
    )


def _read_rows(p: Path, fmt: str, sort_arrivals: bool) -> tuple[TraceFormat, Rows]:
    """The format of the file ``p`` (``fmt``, or detected from its header for ``"auto"``)
    and its rows, every value checked (:func:`~sunsim.traces.rows.validate_rows`); a
    missing, unreadable or empty file is a :class:`TraceError`."""
    check_file(p)
    first = first_line(p)
    if first is None:
        raise TraceError(f"{where(p)}the file is empty; pass a trace with a header and data rows")
    tf = detect_format(p, first) if fmt == "auto" else TRACE_FORMATS[fmt]
    return tf, validate_rows(read_raw(p, tf, first), p, tf, sort_arrivals=sort_arrivals)


def _requests(rows: Rows, tf: TraceFormat, keep_failed: bool) -> tuple[pd.DataFrame, int, int, int]:
    """The requests frame (file order) and the failed, excluded and zero-output counts.

    BurstGPT failed rows (0 output tokens) are left out unless ``keep_failed``; kept ones get
    ``prompt_tokens = max(1, prompt)``. In other formats a 0 output is kept and counted. Every
    kept request has ``output_tokens >= 1`` (the prefill emits the first token).
    """
    zero_out = rows.output_tokens == 0
    prompt = rows.prompt_tokens
    num_failed = num_excluded = num_zero = 0
    keep = np.ones(len(rows.row), dtype=bool)
    if tf.failed_rows:
        num_failed = int(zero_out.sum())
        if not keep_failed:
            keep = ~zero_out
            num_excluded = num_failed
        prompt = np.maximum(prompt, 1)
    else:
        num_zero = int(zero_out.sum())
    output = np.maximum(rows.output_tokens, 1)
    frame = pd.DataFrame(
        {
            "arrival_s": rows.arrival_s[keep],
            "prompt_tokens": prompt[keep],
            "output_tokens": output[keep],
            "source_model": pd.array(rows.source[keep], dtype="string"),
            "row": rows.row[keep],
            **{k: v[keep] for k, v in rows.extra.items()},
        }
    )
    return frame, num_failed, num_excluded, num_zero
