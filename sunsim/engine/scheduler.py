"""The decode scheduling policy, shared by the simulator and the real engine.

vLLM's (v0, FCFS) rules for a decode worker over a paged KV cache (Kwon et al., SOSP'23;
``vllm/core/scheduler.py``), in one place so that the simulator's decode worker
(:mod:`sunsim.engine.decode`), the cluster's arrival check (:mod:`sunsim.engine.cluster`) and
the real two-process engine (:mod:`sunsim.validate.real_engine`) apply the same arithmetic:

* **reject** on arrival a request that can never run: prompt + output tokens over the model's
  context (``max_model_len``), or whose full context (``prompt + output - 1`` tokens: the last
  token is emitted, never stored) needs more KV blocks than one worker holds;
* at each iteration boundary, **preempt** the newest running request while the running
  requests' blocks for this iteration exceed the capacity (its KV is dropped, it is recomputed);
* only if nothing was preempted at this boundary, **admit** waiting requests in FCFS order
  while ``running < max_num_seqs`` and the cache has blocks for the request's whole current
  context (head-of-line blocking).

Pure Python: no SimPy, no torch, no numpy; every call is O(1). Counts are tokens and blocks.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class RejectReason(str, Enum):  # noqa: UP042 - the shared API (SCHEDULER_API.md)
    """Why a request is rejected on arrival (its ``reject_reason`` record column)."""

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
    """``EXCEEDS_MAX_MODEL_LEN`` if ``prompt + output > max_model_len``; else
    ``EXCEEDS_KV_CAPACITY`` if ``blocks_for(prompt + output - 1, block_size) >
    capacity_blocks``; else None (the request can run)."""
    total = prompt_tokens + output_tokens
    if total > max_model_len:
        return RejectReason.EXCEEDS_MAX_MODEL_LEN
    if -(-(total - 1) // block_size) > capacity_blocks:
        return RejectReason.EXCEEDS_KV_CAPACITY
    return None


@dataclass(frozen=True, slots=True)
class DecodePolicy:
    """vLLM's (v0 FCFS) decode scheduling: at each iteration boundary, (1) while the running
    requests' KV blocks for this iteration exceed the capacity, preempt the NEWEST running
    request (its KV is dropped, it is recomputed); (2) only if nothing was preempted at this
    boundary, admit waiting requests in FCFS order while running < max_num_seqs and the cache
    has blocks for the request's whole current context (head-of-line blocking).

    Attributes:
        max_num_seqs: the running batch's request cap (vLLM's name).
        capacity_blocks: KV blocks of one worker's cache.
        block_size: tokens per KV block (vLLM: 16).
    """

    max_num_seqs: int
    capacity_blocks: int
    block_size: int

    def must_preempt(self, blocks_needed: int) -> bool:
        """``blocks_needed`` (the running requests' blocks at this iteration) >
        ``capacity_blocks``: the newest running request must be preempted."""
        return blocks_needed > self.capacity_blocks

    def admission_blocks(self, prompt_tokens: int, num_generated_tokens: int) -> int:
        """Blocks a waiting request needs to be admitted:
        ``blocks_for(prompt_tokens + num_generated_tokens)``."""
        return -(-(prompt_tokens + num_generated_tokens) // self.block_size)

    def can_admit(self, num_running: int, blocks_used: int, blocks_needed: int) -> bool:
        """``num_running < max_num_seqs`` and ``blocks_used + blocks_needed <=
        capacity_blocks``."""
        return (
            num_running < self.max_num_seqs and blocks_used + blocks_needed <= self.capacity_blocks
        )
