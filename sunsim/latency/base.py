"""The latency-model interface: the only place that knows about hardware.

The cluster asks a :class:`LatencyModel` for the time of a prefill batch and of one decode
iteration; nothing else in the simulator knows about GPUs. Implementations:

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
