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
"""

from __future__ import annotations

from collections.abc import Sequence

from sunsim.latency.base import LatencyModel
from sunsim.specs import GpuSpec, ModelSpec, get_precision, weight_bytes


class RooflineLatency(LatencyModel):
    """Roofline step times of ``model`` at ``precision`` on ``gpu``.

    Args:
        gpu: achieved ceilings ``gpu.mem_bw`` (bytes/s) and ``gpu.bf16_flops`` (FLOP/s).
        model: the architecture.
        precision: ``bf16``, ``w8a16`` or ``w4a16`` linear weights.
        step_overhead_s: a fixed cost added to every step (seconds), 0 by default.
    """

    method = "analytic"

    def __init__(
        self, gpu: GpuSpec, model: ModelSpec, precision: str = "bf16", step_overhead_s: float = 0.0
    ) -> None:
        p = get_precision(precision)
        self.gpu, self.model, self.precision = gpu, model, p.name
        self.step_overhead_s = step_overhead_s
        self.weight_bytes = weight_bytes(model, p.name)
        self.kv_bytes_per_token = model.kv_bytes_per_token()
        self.max_model_len = model.max_model_len
        self.description = f"roofline {gpu.name} {model.name} {p.name} (analytic)"
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
        nbytes = self._weight_read_bytes + self.kv_bytes_per_token * tokens
        t_c = flops * self._inv_flops
        t_m = nbytes * self._inv_bw
        return (t_c if t_c > t_m else t_m) + self.step_overhead_s

    def decode_step_time(self, batch_size: int, total_context_tokens: int) -> float:
        flops = (
            self._linear_flops_per_token + self._head_flops_per_request
        ) * batch_size + self._attn_decode_flops_per_ctx * total_context_tokens
        nbytes = self._weight_read_bytes + self.kv_bytes_per_token * (
            total_context_tokens + batch_size
        )
        t_c = flops * self._inv_flops
        t_m = nbytes * self._inv_bw
        return (t_c if t_c > t_m else t_m) + self.step_overhead_s

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
        kvb = float(self.kv_bytes_per_token)
        fixed_m = self._weight_read_bytes + self.kv_bytes_per_token * batch_size
        over = self.step_overhead_s
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
