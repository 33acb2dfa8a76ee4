"""The latency-model interface: the only place that knows about hardware.

The cluster asks a :class:`LatencyModel` for the time of a prefill batch, of one decode
iteration and of one co-located step mixing decodes with prefill chunks
(:meth:`LatencyModel.mixed_step_time`); nothing else in the simulator knows about GPUs.
Implementations:

* :mod:`sunsim.latency.roofline`: analytic, from a GPU spec and a model spec
  (``method == "analytic"``; every output made with it says so).
* :mod:`sunsim.latency.profiled`: fitted to files written by ``sunsim profile``
  (``method == "measured"``).
* :mod:`sunsim.latency.calibrated`: the roofline at efficiencies fitted to measured GPUs
  (``method == "analytic (calibrated on ...)"``).

Performance contract: the event loop calls :meth:`LatencyModel.decode_step_time` once per
decode iteration of every worker, so implementations do plain-Python arithmetic there
(about a microsecond a call), with any fitting done once when the model is built.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence


class LatencyModel(ABC):
    """Step times of one module (prefill or decode) of one model at one precision on one GPU.

    Attributes:
        method: ``"measured"`` (fitted to a profile measured on a real device) or
            ``"analytic"`` (roofline estimate). Reports print it next to every figure.
        description: one line naming the device, model, precision and source,
            e.g. ``"roofline H100-SXM-80GB llama-3.1-8b w4a16 (analytic)"``.
        weight_bytes: bytes of this module's weights in GPU memory.
        kv_bytes_per_token: KV-cache bytes per token (2 x layers x kv_heads x head_dim x 2
            for a BF16 cache).
        max_model_len: the longest context (prompt + output tokens) the model accepts.
    """

    method: str = "analytic"
    description: str = ""
    weight_bytes: int = 0
    kv_bytes_per_token: int = 0
    max_model_len: int = 131072

    @abstractmethod
    def prefill_time(self, prompt_lens: Sequence[int]) -> float:
        """Seconds for one prefill batch of prompts with these lengths (tokens each).

        The batch computes the KV cache of every prompt and emits each request's first token.
        """

    @abstractmethod
    def decode_step_time(self, batch_size: int, total_context_tokens: int) -> float:
        """Seconds for one decode iteration of ``batch_size`` requests whose contexts add up
        to ``total_context_tokens`` tokens; every request gets one new token."""

    def decode_run(
        self,
        batch_size: int,
        first_context_tokens: int,
        max_iterations: int,
        stop_s: float = float("inf"),
    ) -> list[float]:
        """Cumulative seconds at the end of each of up to ``max_iterations`` consecutive decode
        iterations of a fixed batch: iteration ``i`` (1-based) holds
        ``first_context_tokens + (i - 1) * batch_size`` context tokens. Stops after the first
        iteration whose cumulative time reaches ``stop_s``.

        The simulator plans runs of iterations with this; the default calls
        :meth:`decode_step_time` per iteration, and implementations may override it with a
        faster loop that returns the same values.
        """
        step = self.decode_step_time
        out: list[float] = []
        append = out.append
        t = 0.0
        ctx = first_context_tokens
        for _ in range(max_iterations):
            t += step(batch_size, ctx)
            append(t)
            if t >= stop_s:
                break
            ctx += batch_size
        return out

    def context_attention_time(self, batch_size: int, context_tokens: int) -> float:
        """Seconds a decode iteration of ``batch_size`` requests spends on their
        ``context_tokens`` cached tokens (reading the KV cache in attention), beyond what the
        same batch costs with no context: ``max(0, decode_step_time(B, C) -
        decode_step_time(B, 0))``. Implementations with a fitted context term may override."""
        if batch_size <= 0 or context_tokens <= 0:
            return 0.0
        t = self.decode_step_time(batch_size, context_tokens) - self.decode_step_time(batch_size, 0)
        return t if t > 0.0 else 0.0

    def mixed_step_time(
        self,
        decode_batch: int,
        decode_context_tokens: int,
        prefill_chunks: Sequence[tuple[int, int]],
    ) -> float:
        """Seconds for one step of a co-located worker that decodes ``decode_batch`` requests
        (``decode_context_tokens`` KV tokens in all, as :meth:`decode_step_time`) and, in the
        same forward pass, computes prefill chunks: ``prefill_chunks`` holds ``(chunk_tokens,
        context_before)`` per request, the tokens computed now and those whose KV it already
        holds (tokens).

        Without chunks this is :meth:`decode_step_time`. The default composes the two measured
        curves the way a hybrid batch runs (Sarathi-Serve, Agrawal et al., OSDI'24, section 4:
        the linear layers process the decode tokens and the chunk tokens together in one pass,
        reading the weights once; attention is per request): the prefill curve for a batch
        of the chunks plus one 1-token "prompt" per decode (:meth:`prefill_time` of
        ``[c_1, ..., c_k] + [1] * decode_batch``: weights read once, every token through
        the linear layers and the LM head, causal attention inside each chunk), plus the
        decode curve's context term (:meth:`context_attention_time`) for the KV already
        cached: the decodes' ``decode_context_tokens`` and each chunk's ``context_before``,
        as ``decode_batch + k`` requests. The second term is the memory-bound cost of
        reading cached KV; a long chunk over a long cached context is also compute-bound
        there, which :class:`~sunsim.latency.roofline.RooflineLatency` counts exactly.
        """
        if not prefill_chunks:
            return self.decode_step_time(decode_batch, decode_context_tokens)
        lens = [c for c, _ in prefill_chunks]
        cached = sum(b for _, b in prefill_chunks)
        if decode_batch > 0:
            lens.extend([1] * decode_batch)
        t = self.prefill_time(lens)
        ctx = decode_context_tokens + cached
        if ctx > 0:
            t += self.context_attention_time(decode_batch + len(prefill_chunks), ctx)
        return t


class ConstantLatency(LatencyModel):
    """Fixed step times, for queueing-theory checks and hand-checkable timelines.

    ``prefill_time`` = ``prefill_s`` + ``prefill_per_token_s`` x total prompt tokens;
    ``decode_step_time`` = ``decode_s`` whatever the batch. ``method`` is ``"analytic"``.
    """

    method = "analytic"

    def __init__(
        self,
        prefill_s: float = 0.0,
        decode_s: float = 0.01,
        *,
        prefill_per_token_s: float = 0.0,
        weight_bytes: int = 0,
        kv_bytes_per_token: int = 1,
        max_model_len: int = 1 << 30,
    ) -> None:
        self.prefill_s = prefill_s
        self.prefill_per_token_s = prefill_per_token_s
        self.decode_s = decode_s
        self.weight_bytes = weight_bytes
        self.kv_bytes_per_token = kv_bytes_per_token
        self.max_model_len = max_model_len
        self.description = (
            f"constant prefill {prefill_s} s + {prefill_per_token_s} s/token, "
            f"decode {decode_s} s (analytic)"
        )

    def prefill_time(self, prompt_lens: Sequence[int]) -> float:
        return self.prefill_s + self.prefill_per_token_s * sum(prompt_lens)

    def decode_step_time(self, batch_size: int, total_context_tokens: int) -> float:
        return self.decode_s
