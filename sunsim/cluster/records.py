"""Per-request records, kept in flat NumPy arrays (one slot per trace request)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sunsim.workload import Request

#: Reasons a request can be rejected (codes stored as int8).
REJECT_REASONS = ("", "exceeds_max_model_len", "exceeds_kv_capacity")


class RecordTable:
    """Timestamps and counts of every request, written once when the request ends."""

    def __init__(self, n: int) -> None:
        self.n = n
        nan = np.full(n, np.nan)
        self.prefill_started_at = nan.copy()
        self.first_token_at = nan.copy()
        self.kv_ready_at = nan.copy()
        self.decode_started_at = nan.copy()
        self.finished_at = nan.copy()
        self.prefill_worker = np.full(n, -1, dtype=np.int32)
        self.decode_worker = np.full(n, -1, dtype=np.int32)
        self.num_preemptions = np.zeros(n, dtype=np.int32)
        self.reason = np.zeros(n, dtype=np.int8)
        self.ended = np.zeros(n, dtype=np.int8)

    def set_inputs(self, arrival_s: np.ndarray, model_idx: np.ndarray, prompt: np.ndarray,
                   output: np.ndarray) -> None:
        self.arrival_s, self.model_idx, self.prompt, self.output = (
            arrival_s, model_idx, prompt, output)

    def finish(self, r: Request, at: float) -> None:
        i = r.rid
        self.prefill_started_at[i] = r.prefill_started_at
        self.first_token_at[i] = r.first_token_at
        if r.kv_ready_at >= 0:
            self.kv_ready_at[i] = r.kv_ready_at
            self.decode_started_at[i] = r.decode_started_at
            self.decode_worker[i] = r.decode_worker
        self.finished_at[i] = at
        self.prefill_worker[i] = r.prefill_worker
        self.num_preemptions[i] = r.num_preemptions
        self.ended[i] += 1

    def reject(self, rid: int, at: float, reason: str) -> None:
        self.reason[rid] = REJECT_REASONS.index(reason)
        self.ended[rid] += 1

    def to_frame(self, served: list[str]) -> pd.DataFrame:
        """One row per request, in trace order.

        Columns: ``request_id``, ``model``, ``prompt_tokens``, ``output_tokens``, ``arrived_at``,
        ``prefill_worker``, ``prefill_started_at``, ``first_token_at``, ``kv_ready_at``,
        ``decode_worker``, ``decode_started_at``, ``finished_at`` (simulated seconds; NaN where
        a stage did not happen, e.g. no decode for a 1-token output), ``num_preemptions``,
        ``status`` (``finished``/``rejected``), ``reject_reason`` (empty when finished),
        ``ttft_s``, ``tpot_s`` (NaN for 1-token outputs), ``e2e_s`` (seconds).
        """
        if np.any(self.ended != 1):  # pragma: no cover - engine invariant
            bad = int(np.sum(self.ended != 1))
            raise RuntimeError(f"{bad} requests did not end exactly once")
        reason = np.asarray(REJECT_REASONS, dtype=object)[self.reason]
        df = pd.DataFrame({
            "request_id": np.arange(self.n),
            "model": pd.Categorical.from_codes(self.model_idx, categories=served),
            "prompt_tokens": self.prompt,
            "output_tokens": self.output,
            "arrived_at": self.arrival_s,
            "prefill_worker": self.prefill_worker,
            "prefill_started_at": self.prefill_started_at,
            "first_token_at": self.first_token_at,
            "kv_ready_at": self.kv_ready_at,
            "decode_worker": self.decode_worker,
            "decode_started_at": self.decode_started_at,
            "finished_at": self.finished_at,
            "num_preemptions": self.num_preemptions,
            "status": np.where(self.reason == 0, "finished", "rejected"),
            "reject_reason": reason,
        })
        df["ttft_s"] = df["first_token_at"] - df["arrived_at"]
        with np.errstate(invalid="ignore", divide="ignore"):
            tpot = (df["finished_at"] - df["first_token_at"]) / (df["output_tokens"] - 1)
        df["tpot_s"] = tpot.where(df["output_tokens"] > 1)
        df["e2e_s"] = df["finished_at"] - df["arrived_at"]
        return df
