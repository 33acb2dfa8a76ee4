"""A model's step time as the sum of its operators' measured kernel times, on one GPU of a
tensor-parallel group of ``tp`` GPUs (Megatron-style, as vLLM shards Llama/Qwen3).

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
  and V in BF16, write them into the cache: 2 x (2 + cache bytes) x KV heads x head_dim x T
  bytes, cache bytes 2 for BF16, 1 for an FP8 KV cache), SiLU-and-mul
  (read 2 T I, write T I, x 2 bytes);
* per step: the embedding gather (read and write T h x 2 bytes) and the final RMSNorm
  (4 T h x 2 bytes).

FP8 (W8A8) adds one estimated activation-quantisation kernel per GEMM input (read BF16, write
FP8: 3 bytes per element; vLLM quantises activations dynamically per tensor before each
CUTLASS FP8 GEMM unless a compile pass fuses it into the norm).

Tensor parallelism (``tp`` > 1): QKV and gate/up are column-parallel (n / tp), O and down
row-parallel (k / tp); attention runs heads / tp and KV heads / tp (at least 1: vLLM
replicates KV heads when there are fewer than GPUs); the LM head is vocab-parallel (n =
vocab / tp) followed by a gather of the logits. Communication (:meth:`StepComposer.comm_ms`,
tables of :mod:`sunsim.profiling.aic.comm`): two all-reduces of T x hidden BF16 elements per
layer (after the O projection and after the down projection), one after the vocab-parallel
embedding, and one all_gather of ``sampled x vocab`` logits: ``2 x layers + 1`` all-reduces
and 1 gather per step (:meth:`StepComposer.collectives`). Elementwise kernels on sharded
tensors shrink by tp (RoPE, q/k norm, KV-cache write, SiLU-and-mul); the residual RMSNorms,
the embedding and the final norm work on the full hidden size on every GPU.

Sampling, scheduling and other CPU time of the serving engine are not kernel time and are
not included (:mod:`sunsim.latency.overhead` models them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sunsim.profiling.aic.interp import AttentionTable
from sunsim.specs import ModelSpec

BF16_BYTES = 2


class GemmLookup(Protocol):
    """A GEMM time table: :class:`~sunsim.profiling.aic.interp.GemmTable` or
    :class:`~sunsim.profiling.aic.derive.DerivedGemmTable`."""

    def ms(self, m: int, n: int, k: int) -> float: ...


class CommLookup(Protocol):
    """A collective's time table (:class:`~sunsim.profiling.aic.comm.CommTable`)."""

    def ms(self, elements: float) -> float: ...


@dataclass(frozen=True)
class StepParts:
    """Milliseconds of one step by part: ``gemm`` (all GEMMs incl. the LM head),
    ``attention``, ``elementwise`` (estimated), ``comm`` (tensor-parallel collectives, 0 at
    tp 1); ``total`` their sum."""

    gemm: float
    attention: float
    elementwise: float
    comm: float = 0.0

    @property
    def total(self) -> float:
        return self.gemm + self.attention + self.elementwise + self.comm


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
        gemm: GemmLookup,
        context: AttentionTable,
        generation: AttentionTable,
        mem_bw: float,
        floor_ms: float,
        head: GemmLookup | None = None,
        *,
        tp: int = 1,
        allreduce: CommLookup | None = None,
        gather: CommLookup | None = None,
        act_quant: bool = False,
        kv_cache_bytes: int = BF16_BYTES,
    ) -> None:
        self.spec = spec
        self.gemm = gemm
        #: the LM head's GEMM table: BF16 (low-bit and FP8 checkpoints keep the LM head in
        #: BF16, :class:`sunsim.specs.Precision`); ``gemm`` when the weights are BF16.
        self.head = head if head is not None else gemm
        self.context = context
        self.generation = generation
        self.mem_bw = mem_bw
        self.floor_ms = floor_ms
        self.tp = tp
        self.allreduce = allreduce
        self.gather = gather
        #: FP8 W8A8: an activation-quantisation kernel before each layer GEMM
        self.act_quant = act_quant
        #: bytes per KV-cache element (2: BF16; 1: FP8 KV cache), for the cache write
        self.kv_cache_bytes = kv_cache_bytes
        if tp > 1 and (allreduce is None or gather is None):
            raise ValueError("tensor parallelism needs the all-reduce and gather tables")

    def layer_gemms(self) -> list[tuple[str, int, int]]:
        """``(name, n, k)`` of one layer's GEMMs on one GPU (weights ``k x n``; column-parallel
        QKV and gate/up split n, row-parallel O and down split k by ``tp``)."""
        s, tp = self.spec, self.tp
        q = s.num_heads * s.head_dim // tp
        kv = self.kv_heads * s.head_dim
        return [
            ("qkv", q + 2 * kv, s.hidden_size),
            ("o", s.hidden_size, q),
            ("gate_up", 2 * s.intermediate_size // tp, s.hidden_size),
            ("down", s.hidden_size, s.intermediate_size // tp),
        ]

    @property
    def heads(self) -> int:
        """Attention heads on one GPU."""
        return self.spec.num_heads // self.tp

    @property
    def kv_heads(self) -> int:
        """KV heads on one GPU (replicated when there are fewer KV heads than GPUs)."""
        return max(1, self.spec.num_kv_heads // self.tp)

    def gemm_ms(self, tokens: int, sampled: int) -> float:
        """All GEMMs of a step: the layers' at m = ``tokens``, the LM head at m = ``sampled``."""
        per_layer = sum(self.gemm.ms(tokens, n, k) for _, n, k in self.layer_gemms())
        vocab = -(-self.spec.vocab_size // self.tp)
        head = self.head.ms(sampled, vocab, self.spec.hidden_size)
        return self.spec.num_layers * per_layer + head

    def collectives(self, tokens: int, sampled: int) -> list[tuple[str, int, int]]:
        """``(collective, count per step, elements each)``: ``2 x layers + 1`` all-reduces of
        ``tokens x hidden`` and one all_gather of ``sampled x vocab``; [] at tp 1."""
        if self.tp == 1:
            return []
        s = self.spec
        return [
            ("all_reduce", 2 * s.num_layers + 1, tokens * s.hidden_size),
            ("all_gather", 1, sampled * s.vocab_size),
        ]

    def comm_ms(self, tokens: int, sampled: int) -> float:
        """Milliseconds of the step's collectives (:meth:`collectives`)."""
        total = 0.0
        for name, count, elements in self.collectives(tokens, sampled):
            table = self.allreduce if name == "all_reduce" else self.gather
            assert table is not None
            total += count * table.ms(elements)
        return total

    def elementwise_kernels(self, tokens: int) -> list[tuple[str, int, float]]:
        """``(name, count per step, bytes each)`` of the estimated kernels (module docstring)."""
        s, t, tp = self.spec, tokens, self.tp
        h, i, layers = s.hidden_size, s.intermediate_size // tp, s.num_layers
        qk = (self.heads + self.kv_heads) * s.head_dim
        b = BF16_BYTES
        kernels: list[tuple[str, int, float]] = [
            ("add_rmsnorm", 2 * layers, 4 * t * h * b),
            ("rope", layers, 2 * qk * t * b),
            (
                "kv_cache_write",
                layers,
                2 * (b + self.kv_cache_bytes) * self.kv_heads * s.head_dim * t,
            ),
            ("silu_and_mul", layers, 3 * t * i * b),
            ("embedding", 1, 2 * t * h * b),
            ("final_rmsnorm", 1, 4 * t * h * b),
        ]
        if s.qk_norm:
            kernels.append(("qk_rmsnorm", layers, 2 * qk * t * b))
        if self.act_quant:
            for name, _, k in self.layer_gemms():
                kernels.append((f"fp8_quant_{name}_input", layers, 3 * t * k))
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
        return StepParts(
            self.gemm_ms(t, batch_size),
            attn,
            self.elementwise_ms(t),
            self.comm_ms(t, batch_size),
        )

    def decode(self, batch_size: int, context_tokens: int) -> StepParts:
        """One decode step of ``batch_size`` requests with ``context_tokens`` cached tokens
        each (attention over context + 1 tokens: the cache and the new token)."""
        attn = self.spec.num_layers * self.generation.ms(batch_size, context_tokens + 1)
        return StepParts(
            self.gemm_ms(batch_size, batch_size),
            attn,
            self.elementwise_ms(batch_size),
            self.comm_ms(batch_size, batch_size),
        )
