"""A model's step time as the sum of its operators' measured kernel times (tensor parallel 1).

Per layer (vLLM's Llama/Qwen3 decoder layer): the fused QKV GEMM (n = (heads + 2 x KV heads)
x head_dim, k = hidden), attention (prefill: context attention over each prompt; decode:
generation attention over each request's KV cache of context + 1 tokens), the O projection
(n = hidden, k = heads x head_dim), the fused gate/up GEMM (n = 2 x intermediate, k = hidden)
and the down GEMM (n = hidden, k = intermediate); after the layers the LM head GEMM (n =
vocab, k = hidden) for one token per request (vLLM computes logits only for the positions it
samples: the last prompt token in prefill, the new token in decode). GEMM m is the tokens of
the step: B x L in prefill, B in decode. The layers' GEMMs are at the weights' precision
(weight-only int8/int4 for W8A16/W4A16); the LM head stays BF16, as in low-bit checkpoints.

Not in the database, so estimated (:meth:`StepComposer.elementwise_ms`), each kernel as
``max(bytes moved / copy bandwidth, floor)`` with the GPU's copy bandwidth from
:mod:`sunsim.specs` (``GpuSpec.mem_bw``) and ``floor`` the shortest kernel the database
measured on that GPU and backend (its smallest GEMM: the duration of a kernel that does
almost nothing, under CUDA graphs). BF16 activations (2 bytes), T tokens, h hidden:

* per layer: two fused residual-add + RMSNorm (read x and residual, write both: 4 T h x 2
  bytes each), RoPE on q and k (read and write (heads + KV heads) x head_dim x T x 2 bytes),
  the q/k RMSNorm of models with ``qk_norm`` (the same bytes), the KV-cache write (read K
  and V, write them into the cache: 2 x 2 x KV heads x head_dim x T x 2 bytes), SiLU-and-mul
  (read 2 T I, write T I, x 2 bytes);
* per step: the embedding gather (read and write T h x 2 bytes) and the final RMSNorm
  (4 T h x 2 bytes).

Sampling, scheduling and other CPU time of the serving engine are not kernel time and are
not included (a later part of issue 10 models them).
"""

from __future__ import annotations

from dataclasses import dataclass

from sunsim.profiling.aic.interp import AttentionTable, GemmTable
from sunsim.specs import ModelSpec

BF16_BYTES = 2


@dataclass(frozen=True)
class StepParts:
    """Milliseconds of one step by part: ``gemm`` (all GEMMs incl. the LM head),
    ``attention``, ``elementwise`` (estimated); ``total`` their sum."""

    gemm: float
    attention: float
    elementwise: float

    @property
    def total(self) -> float:
        return self.gemm + self.attention + self.elementwise


class StepComposer:
    """Composes prefill and decode step times of ``spec`` from measured kernel tables.

    ``gemm``: the GEMM table at the weights' precision (``head``: the BF16 one of the LM
    head, default ``gemm``); ``context``/``generation``: the
    attention tables for the model's heads; ``mem_bw``: bytes/s of the elementwise
    estimate; ``floor_ms``: the shortest kernel time (ms) of the elementwise estimate.
    """

    def __init__(
        self,
        spec: ModelSpec,
        gemm: GemmTable,
        context: AttentionTable,
        generation: AttentionTable,
        mem_bw: float,
        floor_ms: float,
        head: GemmTable | None = None,
    ) -> None:
        self.spec = spec
        self.gemm = gemm
        #: the LM head's GEMM table: BF16 (low-bit checkpoints keep the LM head in BF16,
        #: :class:`sunsim.specs.Precision`); ``gemm`` when the weights are BF16.
        self.head = head if head is not None else gemm
        self.context = context
        self.generation = generation
        self.mem_bw = mem_bw
        self.floor_ms = floor_ms

    def layer_gemms(self) -> list[tuple[str, int, int]]:
        """``(name, n, k)`` of one layer's GEMMs (weights ``k x n``)."""
        s = self.spec
        q = s.num_heads * s.head_dim
        return [
            ("qkv", q + 2 * s.num_kv_heads * s.head_dim, s.hidden_size),
            ("o", s.hidden_size, q),
            ("gate_up", 2 * s.intermediate_size, s.hidden_size),
            ("down", s.hidden_size, s.intermediate_size),
        ]

    def gemm_ms(self, tokens: int, sampled: int) -> float:
        """All GEMMs of a step: the layers' at m = ``tokens``, the LM head at m = ``sampled``."""
        per_layer = sum(self.gemm.ms(tokens, n, k) for _, n, k in self.layer_gemms())
        head = self.head.ms(sampled, self.spec.vocab_size, self.spec.hidden_size)
        return self.spec.num_layers * per_layer + head

    def elementwise_kernels(self, tokens: int) -> list[tuple[str, int, float]]:
        """``(name, count per step, bytes each)`` of the estimated kernels (module docstring)."""
        s, t = self.spec, tokens
        h, i, layers = s.hidden_size, s.intermediate_size, s.num_layers
        qk = (s.num_heads + s.num_kv_heads) * s.head_dim
        b = BF16_BYTES
        kernels = [
            ("add_rmsnorm", 2 * layers, 4 * t * h * b),
            ("rope", layers, 2 * qk * t * b),
            ("kv_cache_write", layers, 2 * 2 * s.num_kv_heads * s.head_dim * t * b),
            ("silu_and_mul", layers, 3 * t * i * b),
            ("embedding", 1, 2 * t * h * b),
            ("final_rmsnorm", 1, 4 * t * h * b),
        ]
        if s.qk_norm:
            kernels.append(("qk_rmsnorm", layers, 2 * qk * t * b))
        return kernels

    def elementwise_ms(self, tokens: int) -> float:
        """Estimated milliseconds of the elementwise kernels of a step of ``tokens`` tokens."""
        return sum(
            count * max(1e3 * nbytes / self.mem_bw, self.floor_ms)
            for _, count, nbytes in self.elementwise_kernels(tokens)
        )

    def prefill(self, batch_size: int, prompt_tokens: int) -> StepParts:
        """One prefill step of ``batch_size`` prompts of ``prompt_tokens`` tokens each."""
        t = batch_size * prompt_tokens
        attn = self.spec.num_layers * self.context.ms(batch_size, prompt_tokens)
        return StepParts(self.gemm_ms(t, batch_size), attn, self.elementwise_ms(t))

    def decode(self, batch_size: int, context_tokens: int) -> StepParts:
        """One decode step of ``batch_size`` requests with ``context_tokens`` cached tokens
        each (attention over context + 1 tokens: the cache and the new token)."""
        attn = self.spec.num_layers * self.generation.ms(batch_size, context_tokens + 1)
        return StepParts(
            self.gemm_ms(batch_size, batch_size), attn, self.elementwise_ms(batch_size)
        )
