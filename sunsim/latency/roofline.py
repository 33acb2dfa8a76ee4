"""Analytic roofline latency: a step costs max(FLOPs / rate, bytes moved / bandwidth).

A lower bound for what real kernels achieve (no launch gaps, no dequantisation cost, perfect
overlap), made from a :class:`~sunsim.config.GpuSpec` and a :class:`~sunsim.config.ModelSpec`.
Its ``method`` is ``"analytic"`` and every output made with it says so.

Counting (per step, dense BF16 arithmetic; weight-only quantised layers still multiply in BF16):

* linear FLOPs: 2 x (linear weights of all layers) x tokens; LM head: 2 x hidden x vocab per
  request (prefill: only the last prompt token's logits; decode: every request).
* attention FLOPs: decode 4 x heads x head_dim x layers x total context tokens (QK^T and PV);
  prefill, causal, 2 x heads x head_dim x layers x sum(L^2).
* bytes: every weight read once per step (linear layers at the module's precision,
  LM head and norms BF16; the embedding is a row gather), plus KV read (decode: the whole
  context) and KV written (one token per request in decode, every prompt token in prefill).

Tensor parallel size N (vLLM's ``tensor_parallel_size``; Megatron-LM's split, arXiv
1909.08053): each GPU of the worker holds 1/N of the weights (heads, KV heads, MLP columns and
vocabulary split; the few replicated norm weights are counted split too), so FLOPs, weight
bytes and KV bytes per GPU are the totals / N, and the GPUs run in lockstep; each step then adds
2 x layers ring all-reduces of tokens x hidden BF16 values over NVLink
(:func:`sunsim.specs.parallel.allreduce_seconds_per_token`), not overlapped with compute.
At N = 1 nothing changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sunsim.latency.base import LatencyModel
from sunsim.specs import GpuSpec, ModelSpec, get_precision, weight_bytes
from sunsim.specs.parallel import allreduce_seconds_per_token, check_heads_divisible


class RooflineLatency(LatencyModel):
    """Roofline step times of ``model`` at ``precision`` on ``gpu``.

    Args:
        gpu: achieved ceilings ``gpu.mem_bw`` (bytes/s) and ``gpu.bf16_flops`` (FLOP/s).
        model: the architecture.
        precision: ``bf16``, ``w8a16`` or ``w4a16`` linear weights.
        step_overhead_s: a fixed cost added to every step (seconds), 0 by default.
        tensor_parallel_size: GPUs per worker (N above); ``weight_bytes`` and
            ``kv_bytes_per_token`` stay the whole model's (what the worker's N GPUs hold).

    Raises:
        ConfigError: an unknown precision; a tensor parallel size that is not a power of two
            in 1..64 or does not divide the model's heads and KV heads; a GPU without an
            NVLink figure at N > 1.
    """

    method = "analytic"

    def __init__(
        self,
        gpu: GpuSpec,
        model: ModelSpec,
        precision: str = "bf16",
        step_overhead_s: float = 0.0,
        tensor_parallel_size: int = 1,
    ) -> None:
        p = get_precision(precision)
        tp = check_heads_divisible(model, tensor_parallel_size)
        self.gpu, self.model, self.precision = gpu, model, p.name
        self.tensor_parallel_size = tp
        self.step_overhead_s = step_overhead_s
        self.weight_bytes = weight_bytes(model, p.name)
        self.kv_bytes_per_token = model.kv_bytes_per_token()
        self.max_model_len = model.max_model_len
        at_tp = f" TP{tp}" if tp > 1 else ""
        self.description = f"roofline {gpu.name} {model.name} {p.name}{at_tp} (analytic)"
        m = model
        # Bytes read per step: linear weights at precision + LM head and norms in BF16.
        self._weight_read_bytes = (
            m.num_layers * m.layer_linear_params * p.linear_bytes_per_weight
            + 2 * (m.lm_head_params or m.embedding_params)
            + 2 * (m.num_layers * m.layer_norm_params + m.hidden_size)
        )
        self._linear_flops_per_token = 2.0 * m.num_layers * m.layer_linear_params
        self._head_flops_per_request = 2.0 * m.hidden_size * m.vocab_size
        self._attn_decode_flops_per_ctx = 4.0 * m.num_heads * m.head_dim * m.num_layers
        self._attn_prefill_flops_per_l2 = 2.0 * m.num_heads * m.head_dim * m.num_layers
        self._inv_bw = 1.0 / gpu.mem_bw
        self._inv_flops = 1.0 / gpu.bf16_flops
        #: KV bytes per token each GPU reads or writes (the whole token's at N = 1).
        #: (a float, as the compiled build's attribute needs; exact: the bytes are below 2**53)
        self._kv_io_bytes_per_token: float = float(self.kv_bytes_per_token)
        #: all-reduce seconds per token of a step (0 at N = 1).
        self._allreduce_s_per_token = allreduce_seconds_per_token(model, gpu, tp)
        if tp > 1:  # per GPU: 1/N of everything (left untouched at 1: bit-identical)
            self._weight_read_bytes /= tp
            self._linear_flops_per_token /= tp
            self._head_flops_per_request /= tp
            self._attn_decode_flops_per_ctx /= tp
            self._attn_prefill_flops_per_l2 /= tp
            self._kv_io_bytes_per_token = self.kv_bytes_per_token / tp

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as its constructor's arguments (the planner sends latency models to its
        worker processes): the compiled build's class cannot be rebuilt the default way."""
        args = (self.gpu, self.model, self.precision, self.step_overhead_s)
        return (type(self), (*args, self.tensor_parallel_size))

    def prefill_time(self, prompt_lens: Sequence[int]) -> float:
        tokens = 0
        sq = 0
        for n in prompt_lens:
            tokens += n
            sq += n * n
        flops = (
            self._linear_flops_per_token * tokens
            + self._head_flops_per_request * len(prompt_lens)
            + self._attn_prefill_flops_per_l2 * sq
        )
        nbytes = self._weight_read_bytes + self._kv_io_bytes_per_token * tokens
        t_c = flops * self._inv_flops
        t_m = nbytes * self._inv_bw
        over = self.step_overhead_s + self._allreduce_s_per_token * tokens
        return (t_c if t_c > t_m else t_m) + over

    def decode_step_time(self, batch_size: int, total_context_tokens: int) -> float:
        flops = (
            self._linear_flops_per_token + self._head_flops_per_request
        ) * batch_size + self._attn_decode_flops_per_ctx * total_context_tokens
        nbytes = self._weight_read_bytes + self._kv_io_bytes_per_token * (
            total_context_tokens + batch_size
        )
        t_c = flops * self._inv_flops
        t_m = nbytes * self._inv_bw
        over = self.step_overhead_s + self._allreduce_s_per_token * batch_size
        return (t_c if t_c > t_m else t_m) + over

    def decode_run(
        self,
        batch_size: int,
        first_context_tokens: int,
        max_iterations: int,
        stop_s: float = float("inf"),
    ) -> list[float]:
        # Same arithmetic as decode_step_time, inlined: this is the simulator's hottest loop.
        # The context is carried as a float (exact below 2**53, so every product rounds as
        # with the int), and a zero overhead is not added (x + 0.0 == x for x >= 0).
        fixed_c = (self._linear_flops_per_token + self._head_flops_per_request) * batch_size
        per_ctx_c = self._attn_decode_flops_per_ctx
        inv_f, inv_bw = self._inv_flops, self._inv_bw
        kvb = self._kv_io_bytes_per_token
        fixed_m = self._weight_read_bytes + kvb * batch_size
        over = self.step_overhead_s + self._allreduce_s_per_token * batch_size
        out: list[float] = []
        append = out.append
        t = 0.0
        ctx = float(first_context_tokens)
        step = float(batch_size)
        if over == 0.0 and max_iterations > 0:
            # Both terms are affine in the context, so their difference is largest and
            # smallest at the run's ends: when the memory time leads the compute time there
            # by far more than rounding (1e-9 relative), every iteration takes the memory
            # time, and the loop need not compute the other.
            last_ctx = ctx + (max_iterations - 1) * step
            lo_c, lo_m = (fixed_c + per_ctx_c * ctx) * inv_f, (fixed_m + kvb * ctx) * inv_bw
            hi_c = (fixed_c + per_ctx_c * last_ctx) * inv_f
            hi_m = (fixed_m + kvb * last_ctx) * inv_bw
            if lo_m > lo_c * (1 + 1e-9) and hi_m > hi_c * (1 + 1e-9):
                for _ in range(max_iterations):
                    t += (fixed_m + kvb * ctx) * inv_bw
                    append(t)
                    if t >= stop_s:
                        break
                    ctx += step
                return out
            for _ in range(max_iterations):
                t_c = (fixed_c + per_ctx_c * ctx) * inv_f
                t_m = (fixed_m + kvb * ctx) * inv_bw
                t += t_c if t_c > t_m else t_m
                append(t)
                if t >= stop_s:
                    break
                ctx += step
            return out
        for _ in range(max_iterations):
            t_c = (fixed_c + per_ctx_c * ctx) * inv_f
            t_m = (fixed_m + kvb * ctx) * inv_bw
            t += (t_c if t_c > t_m else t_m) + over
            append(t)
            if t >= stop_s:
                break
            ctx += step
        return out

    def mixed_step_time(
        self,
        decode_batch: int,
        decode_context_tokens: int,
        prefill_chunks: Sequence[tuple[int, int]],
    ) -> float:
        """One co-located step (see :meth:`LatencyModel.mixed_step_time`), counted directly:
        every new token (``decode_batch`` + the chunks' tokens) through the linear layers
        with the weights read once; the LM head once per request (vLLM computes the logits of
        each scheduled request's last token); attention: decodes ``4 h d layers`` FLOPs per
        context token, a chunk of ``c`` tokens after ``b`` cached ones ``4 h d layers c b``
        (over the cache) + ``2 h d layers c^2`` (causal, inside the chunk); bytes: the
        weights, the decodes' KV read and written as in :meth:`decode_step_time`, each
        chunk's cached KV read and its new KV written."""
        if not prefill_chunks:
            return self.decode_step_time(decode_batch, decode_context_tokens)
        tokens = decode_batch
        cross = 0
        sq = 0
        cached = 0
        for c, b in prefill_chunks:
            tokens += c
            cross += c * b
            sq += c * c
            cached += b
        flops = (
            self._linear_flops_per_token * tokens
            + self._head_flops_per_request * (decode_batch + len(prefill_chunks))
            + self._attn_decode_flops_per_ctx * (decode_context_tokens + cross)
            + self._attn_prefill_flops_per_l2 * sq
        )
        nbytes = self._weight_read_bytes + self.kv_bytes_per_token * (
            decode_context_tokens + tokens + cached
        )
        t_c = flops * self._inv_flops
        t_m = nbytes * self._inv_bw
        return (t_c if t_c > t_m else t_m) + self.step_overhead_s
