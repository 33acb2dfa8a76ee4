"""Requests as the simulator sees them.

A :class:`Request` lives only while it is in flight; when it ends (finished or rejected)
its timestamps are written into the run's :class:`~sunsim.metrics.RecordTable` and the
object is dropped, so memory stays proportional to the requests in flight.
"""

from __future__ import annotations

#: Request states.
QUEUED, PREFILLING, TRANSFERRING, WAITING, RUNNING, DONE = range(6)


class Request:
    """One request in flight. Times are simulated seconds (``*_at``), counts are tokens.

    ``generated`` counts output tokens emitted so far (1 after prefill). ``admit_id``
    identifies the current admission into a decode batch, so stale entries of a preempted
    request in a worker's finishing-time heap are recognised and skipped.
    """

    __slots__ = (
        "rid",
        "model_idx",
        "prompt_tokens",
        "output_tokens",
        "arrived_at",
        "prefill_worker",
        "prefill_started_at",
        "first_token_at",
        "kv_ready_at",
        "decode_worker",
        "decode_started_at",
        "num_preemptions",
        "generated",
        "admit_id",
        "state",
        "kv_offset",
        "routed_tokens",
        "last_token_at",
    )

    def __init__(
        self, rid: int, model_idx: int, prompt_tokens: int, output_tokens: int, arrived_at: float
    ) -> None:
        self.rid = rid
        self.model_idx = model_idx
        self.prompt_tokens = prompt_tokens
        self.output_tokens = output_tokens
        self.arrived_at = arrived_at
        self.prefill_worker = -1
        self.prefill_started_at = -1.0
        self.first_token_at = -1.0
        self.kv_ready_at = -1.0
        self.decode_worker = -1
        self.decode_started_at = -1.0
        self.last_token_at = -1.0
        self.num_preemptions = 0
        self.generated = 0
        self.admit_id = -1
        self.state = QUEUED
        self.kv_offset = 0
        self.routed_tokens = 0

    @property
    def context_tokens(self) -> int:
        """Tokens whose KV the request needs at its next decode iteration."""
        return self.prompt_tokens + self.generated

    def __repr__(self) -> str:
        return (
            f"Request(rid={self.rid}, model={self.model_idx}, prompt={self.prompt_tokens}, "
            f"output={self.output_tokens}, generated={self.generated}, state={self.state})"
        )
