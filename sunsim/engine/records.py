"""Per-request records, kept in flat NumPy arrays (one slot per trace request)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sunsim.engine.request import Request
from sunsim.engine.scheduler import RejectReason

#: Reasons a request can be rejected (codes stored as int8; 0: not rejected).
REJECT_REASONS: tuple[str, ...] = ("", *(r.value for r in RejectReason))
_REJECT_CODE = {r: i + 1 for i, r in enumerate(RejectReason)}


class RecordTable:
    """Timestamps and counts of every request, written once when the request ends.

    A finished request's row is one tuple (cheap to write in the event loop); the columns are
    built when the table is turned into a DataFrame.
    """

    def __init__(self, n: int) -> None:
        self.n = n
        # finished: (prefill_started_at, first_token_at, kv_ready_at, decode_started_at,
        # finished_at, prefill_worker, decode_worker, num_preemptions)
        self.rows: list[tuple[float, ...] | None] = [None] * n
        self.reason = np.zeros(n, dtype=np.int8)
        self.ended = np.zeros(n, dtype=np.int32)
        self.num_ended = 0

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
        rid = r.request_id
        if self.rows[rid] is not None:  # pragma: no cover - engine invariant
            raise RuntimeError(f"request {rid} finished twice")
        self.rows[rid] = (
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

    def reject(self, rid: int, at: float, reason: RejectReason) -> None:
        """Request ``rid`` (trace row) is rejected at ``at`` (seconds) for ``reason``."""
        self.reason[rid] = _REJECT_CODE[reason]
        self.ended[rid] += 1
        self.num_ended += 1

    def to_frame(self, served: list[str]) -> pd.DataFrame:
        """One row per request, in trace order.

        Columns: ``request_id``, ``model``, ``prompt_tokens``, ``output_tokens``, ``arrived_at``,
        ``prefill_worker``, ``prefill_started_at``, ``first_token_at``, ``kv_ready_at``,
        ``decode_worker``, ``decode_started_at``, ``finished_at`` (simulated seconds; NaN where
        a stage did not happen, e.g. no decode for a 1-token output), ``num_preemptions``,
        ``status`` (``finished``/``rejected``), ``reject_reason`` (empty when finished),
        ``ttft_s``, ``tpot_s`` (NaN for 1-token outputs), ``e2e_s`` (seconds).
        """
        n = self.n
        finished = np.fromiter((r is not None for r in self.rows), dtype=bool, count=n)
        ended = self.ended + finished
        if np.any(ended != 1):  # pragma: no cover - engine invariant
            bad = int(np.sum(ended != 1))
            raise RuntimeError(f"{bad} requests did not end exactly once")
        cols = np.full((n, 8), np.nan)
        if finished.any():
            cols[finished] = np.array([r for r in self.rows if r is not None], dtype=float)
        never = cols < 0  # -1 marks a stage that did not happen
        cols[never] = np.nan
        ints = np.nan_to_num(cols[:, 5:8], nan=-1).astype(np.int32)
        reason = np.asarray(REJECT_REASONS, dtype=object)[self.reason]
        df = pd.DataFrame(
            {
                "request_id": np.arange(n),
                "model": pd.Categorical.from_codes(self.model_idx, categories=served),
                "prompt_tokens": self.prompt,
                "output_tokens": self.output,
                "arrived_at": self.arrival_s,
                "prefill_worker": ints[:, 0],
                "prefill_started_at": cols[:, 0],
                "first_token_at": cols[:, 1],
                "kv_ready_at": cols[:, 2],
                "decode_worker": ints[:, 1],
                "decode_started_at": cols[:, 3],
                "finished_at": cols[:, 4],
                "num_preemptions": np.where(finished, ints[:, 2], 0).astype(np.int32),
                "status": np.where(self.reason == 0, "finished", "rejected"),
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
