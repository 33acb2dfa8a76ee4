"""Per-request records: written once when a request ends, turned into columns in trace order.

A finished request appends one row of values to a list (cheap in the event loop), moved
into a flat float64 buffer every :data:`_FLUSH_ROWS` rows; the columns are built from the
buffer (scattered by request id) when the table becomes a DataFrame. With a ``sink`` (a
:class:`RecordSink`, e.g. a Parquet writer) the table streams: every ``chunk_rows``
consecutive trace rows form one frame, handed to the sink as soon as all of its requests have
ended, in trace order, so memory holds only the chunks with requests still in flight (not the
whole run).
"""

from __future__ import annotations

from array import array
from typing import Protocol

import numpy as np
import pandas as pd

from sunsim.engine.request import Request
from sunsim.engine.scheduler import RejectReason

#: Reasons a request can be rejected (codes stored as int8; 0: not rejected).
REJECT_REASONS: tuple[str, ...] = ("", *(r.value for r in RejectReason))
_REJECT_CODE = {r: i + 1 for i, r in enumerate(RejectReason)}
#: A finished row of the buffer: request id, prefill_started_at, first_token_at, kv_ready_at,
#: decode_started_at, finished_at, prefill_worker, decode_worker, num_preemptions.
_ROW = 9
#: Rows buffered before a streaming table moves them into its chunks.
_DRAIN_ROWS = 1 << 16
#: Trace rows per streamed frame, :meth:`RecordTable.stream`'s default (a module global, so
#: a test can set it for callers in the compiled build too).
_CHUNK_ROWS = 1 << 18
#: Rows appended to the row list before they move into the float64 buffer.
_FLUSH_ROWS = 1 << 12


class RecordSink(Protocol):
    """Receives a run's records frame by frame (consecutive trace rows, in order)."""

    def write(self, frame: pd.DataFrame) -> None: ...


class RecordTable:
    """Timestamps and counts of every request, written once when the request ends.

    ``n`` is the number of requests in the trace. By default the records stay in memory
    until :meth:`to_frame`; after :meth:`stream` they go to a sink instead.
    """

    def __init__(self, n: int) -> None:
        self.n = n
        self.buf = array("d")  # finished rows, _ROW floats each, in finishing order
        self._rows: list[float] = []  # the latest rows, not yet in buf
        self.reason = np.zeros(n, dtype=np.int8)
        self.num_ended = 0
        self.served: list[str] = []
        self.sink: RecordSink | None = None
        self.chunk_rows = max(n, 1)
        self._drain_len = -1
        self._chunk_ended = np.zeros(0, dtype=np.int64)
        self._chunks: dict[int, np.ndarray] = {}  # chunk -> (rows, _ROW - 1) finished values
        self._next_chunk = 0  # the first chunk not yet written
        self.rows_written = 0

    def stream(self, sink: RecordSink, served: list[str], chunk_rows: int | None = None) -> None:
        """Send the records to ``sink`` in frames of ``chunk_rows`` consecutive trace rows
        (default ``_CHUNK_ROWS``, 2**18; the columns of :meth:`to_frame`; ``served`` names the
        model codes), each as soon as all of its requests have ended; call :meth:`close` after
        the run. Call before the run."""
        if chunk_rows is None:
            chunk_rows = _CHUNK_ROWS
        self.sink, self.served, self.chunk_rows = sink, list(served), chunk_rows
        self._drain_len = _DRAIN_ROWS * _ROW
        self._chunk_ended = np.zeros(-(-self.n // chunk_rows), dtype=np.int64)

    def set_inputs(
        self, arrival_s: np.ndarray, model_idx: np.ndarray, prompt: np.ndarray, output: np.ndarray
    ) -> None:
        self.arrival_s, self.model_idx, self.prompt, self.output = (
            arrival_s,
            model_idx,
            prompt,
            output,
        )

    def finish(self, r: Request, at: float) -> None:
        """Write the row of finished request ``r`` (it finished at ``at``, seconds)."""
        rows = self._rows
        rows += (
            r.request_id,
            r.prefill_started_at,
            r.first_token_at,
            r.kv_ready_at,
            r.decode_started_at,
            at,
            r.prefill_worker,
            r.decode_worker,
            r.num_preemptions,
        )
        self.num_ended += 1
        if len(rows) >= _FLUSH_ROWS * _ROW:
            self._flush()

    def _flush(self) -> None:
        """Move the row list into ``buf``; a streaming table drains a full buffer."""
        rows = self._rows  # np.fromiter converts them about 1.4x faster than array.fromlist
        self.buf.frombytes(np.fromiter(rows, dtype=float, count=len(rows)).tobytes())
        self._rows.clear()
        if 0 <= self._drain_len <= len(self.buf):
            self._drain()

    def reject(self, rid: int, at: float, reason: RejectReason) -> None:
        """Request ``rid`` (trace row) is rejected at ``at`` (seconds) for ``reason``."""
        if self.reason[rid]:  # pragma: no cover - engine invariant
            raise RuntimeError(f"request {rid} rejected twice")
        self.reason[rid] = _REJECT_CODE[reason]
        self.num_ended += 1
        if self.sink is not None:
            self._chunk_ended[rid // self.chunk_rows] += 1

    # -- building columns -----------------------------------------------------------------
    def _buffered(self) -> tuple[np.ndarray, np.ndarray]:
        """The buffered rows' request ids and values ((rows, 8) float64); clears the buffer."""
        self.buf.fromlist(self._rows)
        self._rows.clear()
        rows = np.frombuffer(self.buf, dtype=float).reshape(-1, _ROW).copy()
        self.buf = array("d")
        return rows[:, 0].astype(np.int64), rows[:, 1:]

    def _drain(self) -> None:
        """Move buffered rows into their chunks; hand every complete chunk to the sink."""
        assert self.sink is not None
        rid, vals = self._buffered()
        C = self.chunk_rows
        chunk = rid // C
        self._chunk_ended += np.bincount(chunk, minlength=len(self._chunk_ended))
        for c in np.unique(chunk):
            c = int(c)
            block = self._chunks.get(c)
            if block is None:
                size = min(C, self.n - c * C)
                block = self._chunks[c] = np.full((size, _ROW - 1), np.nan)
            sel = chunk == c
            block[rid[sel] - c * C] = vals[sel]
        while self._next_chunk < len(self._chunk_ended):
            c = self._next_chunk
            lo, hi = c * C, min(self.n, (c + 1) * C)
            if self._chunk_ended[c] < hi - lo:
                break
            block = self._chunks.pop(c, None)
            if block is None:  # every request of the chunk was rejected
                block = np.full((hi - lo, _ROW - 1), np.nan)
            self.sink.write(self._frame(lo, hi, block))
            self.rows_written += hi - lo
            self._next_chunk += 1

    def close(self) -> None:
        """Streaming: write what is left (every request must have ended)."""
        self._drain()
        if self.rows_written != self.n:  # pragma: no cover - engine invariant
            raise RuntimeError(f"{self.n - self.rows_written} requests did not end exactly once")

    def to_frame(self, served: list[str]) -> pd.DataFrame:
        """One row per request, in trace order.

        Columns: ``request_id``, ``model``, ``prompt_tokens``, ``output_tokens``, ``arrived_at``,
        ``prefill_worker``, ``prefill_started_at``, ``first_token_at``, ``kv_ready_at``,
        ``decode_worker``, ``decode_started_at``, ``finished_at`` (simulated seconds; NaN where
        a stage did not happen, e.g. no decode for a 1-token output), ``num_preemptions``,
        ``status`` (``finished``/``rejected``), ``reject_reason`` (empty when finished),
        ``ttft_s``, ``tpot_s`` (NaN for 1-token outputs), ``e2e_s`` (seconds).
        """
        if self.sink is not None:
            raise RuntimeError("the records streamed to their sink")  # pragma: no cover
        self.served = list(served)
        n = self.n
        rid, vals = self._buffered()
        ended = np.bincount(rid, minlength=n) + (self.reason != 0)
        if np.any(ended != 1):  # pragma: no cover - engine invariant
            bad = int(np.sum(ended != 1))
            raise RuntimeError(f"{bad} requests did not end exactly once")
        cols = np.full((n, _ROW - 1), np.nan)
        cols[rid] = vals
        self.buf.extend(np.column_stack([rid, vals]).ravel())  # to_frame can be called again
        return self._frame(0, n, cols)

    def _frame(self, lo: int, hi: int, cols: np.ndarray) -> pd.DataFrame:
        """The records of trace rows ``lo:hi`` from their finished values ``cols`` ((hi - lo,
        8); NaN rows for rejected requests)."""
        finished = self.reason[lo:hi] == 0
        cols[cols < 0] = np.nan  # -1 marks a stage that did not happen
        ints = np.nan_to_num(cols[:, 5:8], nan=-1).astype(np.int32)
        reason = np.asarray(REJECT_REASONS, dtype=object)[self.reason[lo:hi]]
        df = pd.DataFrame(
            {
                "request_id": np.arange(lo, hi),
                "model": pd.Categorical.from_codes(self.model_idx[lo:hi], categories=self.served),
                "prompt_tokens": self.prompt[lo:hi],
                "output_tokens": self.output[lo:hi],
                "arrived_at": self.arrival_s[lo:hi],
                "prefill_worker": ints[:, 0],
                "prefill_started_at": cols[:, 0],
                "first_token_at": cols[:, 1],
                "kv_ready_at": cols[:, 2],
                "decode_worker": ints[:, 1],
                "decode_started_at": cols[:, 3],
                "finished_at": cols[:, 4],
                "num_preemptions": np.where(finished, ints[:, 2], 0).astype(np.int32),
                "status": np.where(finished, "finished", "rejected"),
                "reject_reason": reason,
            }
        )
        return add_latency_columns(df)


def add_latency_columns(df: pd.DataFrame) -> pd.DataFrame:
    """Add ``ttft_s``, ``tpot_s`` and ``e2e_s`` (seconds, ARCHITECTURE.md's definitions) to a
    frame with ``arrived_at``, ``first_token_at``, ``finished_at`` and ``output_tokens``;
    TPOT is NaN for 1-token outputs. Returns the same frame."""
    df["ttft_s"] = df["first_token_at"] - df["arrived_at"]
    with np.errstate(invalid="ignore", divide="ignore"):
        tpot = (df["finished_at"] - df["first_token_at"]) / (df["output_tokens"] - 1)
    df["tpot_s"] = tpot.where(df["output_tokens"] > 1)
    df["e2e_s"] = df["finished_at"] - df["arrived_at"]
    return df
