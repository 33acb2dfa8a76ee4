"""The optional session columns of a trace: ``session_id``, ``turn`` and ``hash_ids``.

=================  ==========  ===================================================================
column             dtype       meaning
=================  ==========  ===================================================================
``session_id``     int64       the conversation or agent session a request belongs to (>= 0)
``turn``           int64       its position in the session (>= 0; unique within the session);
                               when absent but ``session_id`` is given: the order of arrival
                               within the session, from 0
``hash_ids``       object      a tuple of ints per request: the content hash of each block of
                               ``hash_block_tokens`` prompt tokens (:mod:`.hashes`)
=================  ==========  ===================================================================

``df.attrs["hash_block_tokens"]`` holds the block size whenever ``hash_ids`` is present, and
``df.attrs["hash_ids_source"]`` says where the ids came from (``"trace"`` or ``"session
structure"``). Without these columns nothing changes. A column that is present must be filled in
every row; a bad value is one :class:`~sunsim.errors.TraceError` line naming the file, row and
column.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from sunsim.errors import ConfigError, TraceError, where
from sunsim.traces.formats import TraceFormat
from sunsim.traces.hashes import check_hash_counts, derive_hash_ids, parse_hash_ids

__all__ = [
    "SESSION_COLUMNS",
    "SessionInfo",
    "read_session_columns",
    "complete_sessions",
    "add_session_columns",
    "infer_sessions",
    "with_inferred_sessions",
]

#: The optional columns, in frame order.
SESSION_COLUMNS = ("session_id", "turn", "hash_ids")
_MAX_ID = 2**62


@dataclass(frozen=True)
class SessionInfo:
    """What :func:`complete_sessions` did: ``hash_ids_source`` (``"trace"``, ``"session
    structure"`` or None), ``num_sessions`` (0 without ``session_id``), ``num_context_resets``
    (turns shorter than the previous turn's context: a new epoch of fresh ids)."""

    hash_ids_source: str | None = None
    num_sessions: int = 0
    num_context_resets: int = 0


def _missing(v: object) -> bool:
    return v is None or (isinstance(v, float) and v != v)


def _whole(s: pd.Series, p: Path, rows: np.ndarray, col: str) -> np.ndarray:
    """A column of whole numbers from 0 to 2**62, as int64."""
    if s.dtype == object:
        s = s.mask(s.map(lambda v: isinstance(v, (bool, list, dict))).to_numpy(dtype=bool))
    f = pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~np.isfinite(f) | (f != np.floor(f)) | (f < 0) | (f > _MAX_ID)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        n = int(bad.sum())
        v = s.iloc[i]
        shown = "an empty or NaN value" if _missing(v) else repr(str(v)[:60])
        raise TraceError(
            f"{where(p, int(rows[i]), col)}{shown} is not a whole number >= 0 "
            f"({n} bad row{'s' if n > 1 else ''} in this column); fill '{col}' in every row "
            f"with a whole number >= 0, or remove the column"
        )
    out: np.ndarray = (
        s.to_numpy(dtype=np.int64) if pd.api.types.is_integer_dtype(s.dtype) else f.astype(np.int64)
    )
    return out


def read_session_columns(
    raw: pd.DataFrame, fmt: TraceFormat, p: Path, rows: np.ndarray
) -> dict[str, np.ndarray]:
    """The checked optional columns of a raw frame that the format allows and the file has:
    ``session_id`` and ``turn`` int64, ``hash_ids`` an object array of int tuples.

    Raises:
        TraceError: the first bad value (file, row, column).
    """
    out: dict[str, np.ndarray] = {}
    for col in fmt.optional:
        if col not in raw.columns:
            continue
        if col == "hash_ids":
            out[col] = parse_hash_ids(raw[col], p, rows, col)
        else:
            out[col] = _whole(raw[col], p, rows, col)
    return out


def _turns(frame: pd.DataFrame, p: Path) -> pd.Series:
    """The ``turn`` column: as given (unique within a session), else the order of arrival."""
    if "turn" not in frame.columns:
        order = frame.sort_values("arrival_s", kind="stable")
        turn = order.groupby("session_id", sort=False).cumcount()
        return turn.reindex(frame.index).astype(np.int64)
    dup = frame.duplicated(["session_id", "turn"], keep=False).to_numpy(dtype=bool)
    if dup.any():
        i = int(np.flatnonzero(dup)[0])
        s, t = int(frame["session_id"].iloc[i]), int(frame["turn"].iloc[i])
        same = (frame["session_id"] == s) & (frame["turn"] == t)
        other = [int(r) for r in frame.loc[same, "row"]][1]
        raise TraceError(
            f"{where(p, int(frame['row'].iloc[i]), 'turn')}session {s} has turn {t} twice "
            f"(rows {int(frame['row'].iloc[i])} and {other}); number the turns of a session "
            f"0, 1, 2, ... or remove the 'turn' column to number them by arrival"
        )
    return frame["turn"]


def complete_sessions(
    frame: pd.DataFrame, p: Path, block_tokens: int, shared_prefix_tokens: int = 0
) -> tuple[pd.DataFrame, SessionInfo]:
    """Fill in what the session columns imply, on the requests frame in file order.

    ``turn`` without ``session_id`` is refused; ``session_id`` without ``turn`` numbers the
    turns by arrival; ``hash_ids`` from the trace must have ``ceil(prompt / block_tokens)`` ids;
    ``session_id`` without ``hash_ids`` derives them (:func:`~.hashes.derive_hash_ids`, with
    ``shared_prefix_tokens`` common to every session). Sets ``frame.attrs["hash_block_tokens"]``
    and ``["hash_ids_source"]`` when ``hash_ids`` is there.

    Raises:
        TraceError: ``turn`` without ``session_id``; a turn twice in a session; a row whose
            id count does not match its prompt length.
    """
    rows = frame["row"].to_numpy(dtype=np.int64)
    if "turn" in frame.columns and "session_id" not in frame.columns:
        raise TraceError(
            f"{where(p, column='turn')}a 'turn' column needs a 'session_id' column; add the "
            f"sessions or remove 'turn'"
        )
    info = SessionInfo()
    if "session_id" in frame.columns:
        frame["turn"] = _turns(frame, p)
        info = SessionInfo(num_sessions=int(frame["session_id"].nunique()))
    if "hash_ids" in frame.columns:
        check_hash_counts(
            frame["hash_ids"].to_numpy(dtype=object),
            frame["prompt_tokens"].to_numpy(),
            block_tokens,
            p,
            rows,
            "hash_ids",
        )
        info = SessionInfo("trace", info.num_sessions)
    elif "session_id" in frame.columns:
        ids, resets = derive_hash_ids(
            frame["session_id"].to_numpy(dtype=np.int64),
            frame["turn"].to_numpy(dtype=np.int64),
            frame["prompt_tokens"].to_numpy(dtype=np.int64),
            frame["output_tokens"].to_numpy(dtype=np.int64),
            block_tokens,
            shared_prefix_tokens,
        )
        frame["hash_ids"] = pd.Series(ids, index=frame.index, dtype=object)
        info = SessionInfo("session structure", info.num_sessions, resets)
    if info.hash_ids_source is not None:
        frame.attrs["hash_block_tokens"] = block_tokens
        frame.attrs["hash_ids_source"] = info.hash_ids_source
    present = [c for c in SESSION_COLUMNS if c in frame.columns]
    other = [c for c in frame.columns if c not in SESSION_COLUMNS]
    return frame[other + present], info


def add_session_columns(records: pd.DataFrame, requests: pd.DataFrame) -> pd.DataFrame:
    """Copy ``session_id`` and ``turn`` (when ``requests`` has them) onto a run's records, in
    place (``records.request_id`` is the position in ``requests``). ``hash_ids`` stays in the
    trace. Records of requests without sessions are left as they are. Returns ``records``."""
    rid = records["request_id"].to_numpy()
    for c in ("session_id", "turn"):
        if c in requests.columns:
            records[c] = requests[c].to_numpy(dtype=np.int64)[rid]
    return records


def infer_sessions(hash_ids: Sequence[tuple[int, ...]], min_shared_blocks: int = 2) -> np.ndarray:
    """Sessions inferred from prefix sharing, for traces with ``hash_ids`` but no sessions
    (Mooncake's), as int64 session ids from 0 in order of first request.

    In row (arrival) order, a request continues the session of the latest earlier request with
    which it shares the longest run of leading ids, when that run has at least
    ``min_shared_blocks`` ids (the default 2 looks past a one-block system prompt common to every
    request, such as id 0 on every line of Mooncake's conversation trace); otherwise it opens a
    new session. This is an inference: two users sending the same long document land in one
    session. A prefix tree over the ids keeps it linear in the number of ids.

    Raises:
        ConfigError: ``min_shared_blocks`` < 1.
    """
    if not isinstance(min_shared_blocks, int) or min_shared_blocks < 1:
        raise ConfigError(f"min_shared_blocks must be an integer >= 1, got {min_shared_blocks!r}")
    node_of: dict[tuple[int, int], int] = {}
    last: list[int] = []  # per tree node: the latest request through it
    session = np.empty(len(hash_ids), dtype=np.int64)
    num = 0
    for r, ids in enumerate(hash_ids):
        node, parent = -1, -1
        for depth, h in enumerate(ids):
            nxt = node_of.get((node, h))
            if nxt is None:
                nxt = node_of[(node, h)] = len(last)
                last.append(r)
            elif depth + 1 >= min_shared_blocks:
                parent = last[nxt]
            last[nxt] = r
            node = nxt
        if parent >= 0:
            session[r] = session[parent]
        else:
            session[r] = num
            num += 1
    return session


def with_inferred_sessions(requests: pd.DataFrame, min_shared_blocks: int = 2) -> pd.DataFrame:
    """A copy of an arrival-sorted requests frame with ``hash_ids`` but no ``session_id``, with
    ``session_id`` from :func:`infer_sessions` and ``turn`` the order of arrival within it.

    Raises:
        TraceError: the frame has no ``hash_ids``, or already has ``session_id``.
    """
    if "hash_ids" not in requests.columns or "session_id" in requests.columns:
        raise TraceError(
            "sessions can be inferred only for a trace with 'hash_ids' and no 'session_id'"
        )
    out = requests.copy()
    out["session_id"] = infer_sessions(out["hash_ids"].tolist(), min_shared_blocks)
    out["turn"] = out.groupby("session_id", sort=False).cumcount().astype(np.int64)
    other = [c for c in out.columns if c not in SESSION_COLUMNS]
    return out[other + [c for c in SESSION_COLUMNS if c in out.columns]]
