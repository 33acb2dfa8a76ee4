"""Paired decode: ICaRus's decoding step, where every decoding request runs two rows.

ICaRus (Identical Cache Reuse, arXiv 2603.13281, ICLR 2026) splits a decoder-only model into
a frozen *logical encoder*, which writes the KV cache every model shares, and a fine-tuned
*logical decoder* (LoRA adapters on the same base weights), which predicts the next token
from it. Each generated token therefore needs both: the decoder's row to predict it, and the
encoder's row to write the KV of the shared cache. With LoRA the two rows share the base
weights and run in one forward pass ("parallelizes KV cache generation and next-token
prediction during decoding"), so a decode step of ``B`` requests over ``C`` context tokens
is modelled as the same module's step of ``2 B`` rows over ``2 C`` context tokens: the
weights are read once, the linear layers see twice the rows, and each row's attention reads
the context (an upper bound: a kernel that serves both rows from one read of the KV is
faster). Not modelled: the LoRA adapters' own FLOPs (rank << hidden size). Prefill and the
prompt chunks of a mixed step are the encoder's alone and cost what they cost the base
module.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sunsim.latency.base import LatencyModel

__all__ = ["PairedDecodeLatency", "design_decode_latency"]


class PairedDecodeLatency(LatencyModel):
    """``inner`` with every decoding request counted as two rows (module docstring).

    Attributes are ``inner``'s; ``description`` says that decodes are paired."""

    def __init__(self, inner: LatencyModel) -> None:
        self.inner = inner
        self.method = inner.method
        self.description = f"{inner.description} [ICaRus paired decode: 2 rows per request]"
        self.weight_bytes = inner.weight_bytes
        self.kv_bytes_per_token = inner.kv_bytes_per_token
        self.max_model_len = inner.max_model_len

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as ``inner`` (as :meth:`RooflineLatency.__reduce__
        <sunsim.latency.roofline.RooflineLatency.__reduce__>`, for the compiled build)."""
        return (type(self), (self.inner,))

    def prefill_time(self, prompt_lens: Sequence[int]) -> float:
        return self.inner.prefill_time(prompt_lens)

    def decode_step_time(self, batch_size: int, total_context_tokens: int) -> float:
        return self.inner.decode_step_time(2 * batch_size, 2 * total_context_tokens)

    def decode_run(
        self,
        batch_size: int,
        first_context_tokens: int,
        max_iterations: int,
        stop_s: float = float("inf"),
    ) -> list[float]:
        # iteration i holds 2 (first + (i - 1) B) = 2 first + (i - 1) 2B context tokens
        return self.inner.decode_run(
            2 * batch_size, 2 * first_context_tokens, max_iterations, stop_s
        )

    def context_attention_time(self, batch_size: int, context_tokens: int) -> float:
        return self.inner.context_attention_time(2 * batch_size, 2 * context_tokens)

    def mixed_step_time(
        self,
        decode_batch: int,
        decode_context_tokens: int,
        prefill_chunks: Sequence[tuple[int, int]],
    ) -> float:
        return self.inner.mixed_step_time(
            2 * decode_batch, 2 * decode_context_tokens, prefill_chunks
        )


def design_decode_latency(paired_decode: bool, decode_latency: LatencyModel) -> LatencyModel:
    """The decode step times a design runs at: :class:`PairedDecodeLatency` (ICaRus: an
    encoder and a decoder row per decoding request) when its ``paired_decode`` is set, else
    ``decode_latency`` itself. The engine and the planner's bounds both call this."""
    return PairedDecodeLatency(decode_latency) if paired_decode else decode_latency
