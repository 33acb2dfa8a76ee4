"""The decode scheduling policy shared by the simulator and the real engine.

vLLM's (v0 FCFS) decode scheduling rules and the arrival-time rejection rules, in one
place: :mod:`sunsim.engine.decode` (the simulated decode worker) and
:mod:`sunsim.validate.real_engine` (the real two-process engine) both call these instead of
each writing the rules. Pure Python (no SimPy, no torch, no numpy), O(1) per call.

(Written in the validate branch to the API of ``SCHEDULER_API.md``; the engine helper's
module of the same API replaces it at merge.)
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class RejectReason(StrEnum):
    """Why a request is rejected at arrival (the records' ``reject_reason``)."""

    EXCEEDS_MAX_MODEL_LEN = "exceeds_max_model_len"  # prompt + output tokens > max_model_len
    EXCEEDS_KV_CAPACITY = "exceeds_kv_capacity"  # its full context can never fit one worker


def blocks_for(num_tokens: int, block_size: int) -> int:
    """KV blocks holding ``num_tokens`` tokens: ``ceil(num_tokens / block_size)``."""
    return -(-num_tokens // block_size)


def reject_reason(
    prompt_tokens: int,
    output_tokens: int,
    max_model_len: int,
    capacity_blocks: int,
    block_size: int,
) -> RejectReason | None:
    """EXCEEDS_MAX_MODEL_LEN if ``prompt + output > max_model_len``; else
    EXCEEDS_KV_CAPACITY if ``blocks_for(prompt + output - 1, block_size) > capacity_blocks``
    (the last token's KV is never written); else None."""
    if prompt_tokens + output_tokens > max_model_len:
        return RejectReason.EXCEEDS_MAX_MODEL_LEN
    if blocks_for(prompt_tokens + output_tokens - 1, block_size) > capacity_blocks:
        return RejectReason.EXCEEDS_KV_CAPACITY
    return None


@dataclass(frozen=True)
class DecodePolicy:
    """vLLM's (v0 FCFS) decode scheduling: at each iteration boundary, (1) while the running
    requests' KV blocks for this iteration exceed the capacity, preempt the NEWEST running
    request (its KV is dropped, it is recomputed); (2) only if nothing was preempted at this
    boundary, admit waiting requests in FCFS order while ``running < max_num_seqs`` and the
    cache has blocks for the request's whole current context (head-of-line blocking)."""

    max_num_seqs: int
    capacity_blocks: int
    block_size: int

    def must_preempt(self, blocks_needed: int) -> bool:
        """``blocks_needed`` (the running requests' blocks at this iteration) exceeds the
        capacity."""
        return blocks_needed > self.capacity_blocks

    def admission_blocks(self, prompt_tokens: int, num_generated_tokens: int) -> int:
        """Blocks a waiting request needs to be admitted: ``blocks_for(prompt + generated)``."""
        return blocks_for(prompt_tokens + num_generated_tokens, self.block_size)

    def can_admit(self, num_running: int, blocks_used: int, blocks_needed: int) -> bool:
        """``num_running < max_num_seqs`` and ``blocks_used + blocks_needed <= capacity``."""
        return (
            num_running < self.max_num_seqs and blocks_used + blocks_needed <= self.capacity_blocks
        )
