"""What the real engine's two worker processes need: :class:`EngineConfig` (picklable, no
torch objects), the shared clock and the staging layout. No torch here."""

from __future__ import annotations

import time
from dataclasses import dataclass

from sunsim.engine.scheduler import blocks_for, reject_reason
from sunsim.specs import ModelSpec

#: Tokens per KV block (vLLM's default; the simulator's ``block_size``).
BLOCK_TOKENS = 16

#: A packed prefill pads its token count to a multiple of this. On a CPU, oneDNN compiles a
#: BF16 matmul kernel for every new row count M (about 1-3 ms each, measured here with torch
#: 2.13); the workers compile every padded M of the run before it starts (see the processes'
#: ``_warm``), so no replayed batch pays for compilation. Padding to 4 keeps that warm-up short
#: and adds 1.5 tokens of linear-layer work per batch on average.
PREFILL_PAD_TOKENS = 4

#: oneDNN's primitive cache must hold every warmed shape (default capacity 1024).
ONEDNN_CACHE_CAPACITY = "16384"

clock = time.perf_counter  # CLOCK_MONOTONIC on Linux: one time base for all processes


@dataclass(frozen=True)
class EngineConfig:
    """Everything the two worker processes need (picklable; no torch objects).

    Requests (trace order, sorted by arrival): ``arrival_s`` (seconds from the replay's start),
    ``prompt_tokens``, ``output_tokens``. Engine: ``kv_blocks`` (decode KV capacity in blocks
    of ``block_tokens``), ``max_num_seqs``, ``max_num_batched_tokens`` (prefill budget), ``threads``
    (torch intra-op threads per process), ``pin_cpus`` ((prefill CPU, decode CPU) or None).
    Profile grid: ``decode_batch_sizes`` x ``decode_contexts`` (context tokens attended per
    request), ``prefill_batch_sizes`` x ``prefill_prompt_tokens`` (kept when the batch holds at
    most ``max_num_batched_tokens``), each point ``warmup`` calls then ``min_repeats`` ..
    ``max_repeats`` repeats filling ``time_per_point_s`` per pass; every timed prefill follows
    ``prefill_idle_s`` seconds of sleep, as a replayed prefill follows the wait for its request
    (caches cooled, the core given to others). Link calibration: transfers of ``link_tokens``
    tokens, ``link_repeats`` each.
    """

    spec: ModelSpec
    device: str
    threads: int
    arrival_s: tuple[float, ...]
    prompt_tokens: tuple[int, ...]
    output_tokens: tuple[int, ...]
    kv_blocks: int
    max_num_seqs: int
    max_num_batched_tokens: int
    decode_batch_sizes: tuple[int, ...]
    decode_contexts: tuple[int, ...]
    prefill_batch_sizes: tuple[int, ...]
    prefill_prompt_tokens: tuple[int, ...]
    block_tokens: int = BLOCK_TOKENS
    seed: int = 0
    pin_cpus: tuple[int, int] | None = None
    warmup: int = 2
    min_repeats: int = 5
    max_repeats: int = 40
    time_per_point_s: float = 0.25
    link_tokens: tuple[int, ...] = (16, 64, 256, 1024)
    link_repeats: int = 7
    prefill_pad: int = PREFILL_PAD_TOKENS
    prefill_idle_s: float = 0.0

    @property
    def longest_prefill(self) -> int:
        """The most tokens one prefill batch can hold: the budget, or a longer lone
        request (a prompt, or a recompute of ``prompt + output - 2`` tokens)."""
        one = max(
            (p + max(o - 2, 0) for p, o in zip(self.prompt_tokens, self.output_tokens)), default=1
        )
        return max(self.max_num_batched_tokens, one, max(self.prefill_prompt_tokens))

    @property
    def max_positions(self) -> int:
        """The longest position (tokens) the RoPE tables must cover, plus one."""
        longest = max((p + o for p, o in zip(self.prompt_tokens, self.output_tokens)), default=1)
        grid = max(max(self.decode_contexts), max(self.prefill_prompt_tokens))
        return max(longest, grid, max(self.link_tokens)) + 1

    def prefill_points(self) -> list[tuple[int, int]]:
        """The prefill profile grid: (batch size, prompt tokens) within the token budget."""
        return [
            (b, n)
            for b in self.prefill_batch_sizes
            for n in self.prefill_prompt_tokens
            if b * n <= max(self.max_num_batched_tokens, n)
        ]

    def decode_points(self) -> list[tuple[int, int]]:
        """The decode profile grid: (batch size, context tokens per request)."""
        return [(b, c) for c in self.decode_contexts for b in self.decode_batch_sizes]

    def reject_reason(self, i: int) -> str:
        """Why request ``i`` is rejected at arrival ('' when it is not), by the simulator's
        rules (:func:`sunsim.engine.scheduler.reject_reason`)."""
        why = reject_reason(
            self.prompt_tokens[i],
            self.output_tokens[i],
            self.spec.max_model_len,
            self.kv_blocks,
            self.block_tokens,
        )
        return "" if why is None else why.value


def staging_offsets(cfg: EngineConfig) -> tuple[list[int], int]:
    """Token offset of each request's staging region and the staging length (tokens).

    A request's region holds ``round_up(prompt + output, block_tokens)`` tokens: enough for
    any recompute (``prompt + generated - 1`` tokens) and a whole number of blocks.
    """
    bt = cfg.block_tokens
    offs, at = [], 0
    for p, o in zip(cfg.prompt_tokens, cfg.output_tokens):
        offs.append(at)
        at += blocks_for(p + o, bt) * bt
    return offs, max(at, blocks_for(max(cfg.link_tokens), bt) * bt)
