"""Requests as the simulator sees them.

A :class:`Request` lives only while it is in flight; when it ends (finished or rejected)
its timestamps are written into the run's :class:`~sunsim.engine.records.RecordTable` and the
object is dropped, so memory stays proportional to the requests in flight.
"""

from __future__ import annotations

from enum import IntEnum


class RequestStatus(IntEnum):
    """Where a request is in its life (ARCHITECTURE.md, "A request's life")."""

    QUEUED = 0  # in a prefill worker's queue (fresh, or back for recompute)
    PREFILLING = 1  # in a running prefill batch
    TRANSFERRING = 2  # its KV is on a link to the decode worker the router chose
    WAITING = 3  # its KV is at the decode worker; waiting for admission into the batch
    RUNNING = 4  # in a decode worker's running batch
    DONE = 5  # finished (all output tokens emitted)


class Request:
    """One request in flight. Times are simulated seconds (``*_at``), counts are tokens.

    ``num_generated_tokens`` counts output tokens emitted so far (1 after prefill).
    ``admission_id`` identifies the current admission into a decode batch (unique over the
    cluster), so stale entries of a preempted request in a worker's finishing-time heap are
    recognised and skipped. ``kv_offset`` is the request's offset ``a`` in the worker's
    :class:`~sunsim.engine.kv_cache.PagedKvCache` (it holds ``a + k`` tokens at iteration
    ``k``). ``routed_tokens`` is its KV tokens when the decode router assigned it (the
    router's ``load_tokens``).
    """

    __slots__ = (
        "request_id",
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
        "num_generated_tokens",
        "admission_id",
        "status",
        "kv_offset",
        "routed_tokens",
        "last_token_at",
    )

    def __init__(
        self,
        request_id: int,
        model_idx: int,
        prompt_tokens: int,
        output_tokens: int,
        arrived_at: float,
    ) -> None:
        self.request_id = request_id
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
        self.num_generated_tokens = 0
        self.admission_id = -1
        self.status = RequestStatus.QUEUED
        self.kv_offset = 0
        self.routed_tokens = 0

    @property
    def context_tokens(self) -> int:
        """Tokens whose KV the request needs at its next decode iteration."""
        return self.prompt_tokens + self.num_generated_tokens

    def __repr__(self) -> str:
        return (
            f"Request(request_id={self.request_id}, model={self.model_idx}, "
            f"prompt={self.prompt_tokens}, output={self.output_tokens}, "
            f"generated={self.num_generated_tokens}, status={self.status.name})"
        )
