"""Tensor parallelism (vLLM's ``tensor_parallel_size``): which sizes are allowed for a model,
and the ring all-reduce time of its activations over NVLink.

A worker of tensor parallel size N is N GPUs that split every layer Megatron-style (Shoeybi et
al., "Megatron-LM", arXiv 1909.08053): attention heads and KV heads, the MLP's intermediate
dimension and the vocabulary are divided over the N GPUs; each layer ends its attention and its
MLP with one all-reduce of the activations, so a step runs 2 x layers all-reduces of
tokens x hidden values (BF16: 2 bytes each).

Allowed sizes: powers of two from 1 to :data:`MAX_TENSOR_PARALLEL_SIZE`, dividing both the
model's attention heads and its KV heads.

* Powers of two: the GPUs of one NVLink domain come in powers of two (HGX/DGX boards: 8 GPUs
  behind NVSwitch), and every KV-head count of the built-in models is a power of two (8 or
  2), so a size that divides it is one. A size like 3 or 6 would leave GPUs of a board idle
  and cannot divide the KV heads anyway.
* At most 64: the largest power of two inside the largest NVLink domain NVIDIA sells (GB200
  NVL72, 72 GPUs); tensor parallelism across nodes over InfiniBand is not modelled.
* Dividing the KV heads: each GPU then holds ``num_kv_heads / N`` heads of every token's KV
  cache, so the worker's KV cache is split, not copied. vLLM also runs N above the KV-head count
  by replicating KV heads; that is not simulated and is refused.
"""

from __future__ import annotations

from sunsim.errors import ConfigError
from sunsim.specs.hardware import GpuSpec, nvlink_bandwidth
from sunsim.specs.models import ModelSpec

#: Largest tensor parallel size: 64 GPUs (the largest power of two in a GB200 NVL72 domain).
MAX_TENSOR_PARALLEL_SIZE = 64
#: Bytes per activation value moved by the all-reduce (BF16).
ACTIVATION_BYTES = 2


def check_tensor_parallel_size(tp: int, what: str = "tensor_parallel_size") -> int:
    """``tp`` when it is a power of two in 1..64; else :class:`ConfigError` naming ``what``
    (the key or option that set it) and the allowed values."""
    if isinstance(tp, bool) or not isinstance(tp, int):
        raise ConfigError(f"{what} must be an integer (1, 2, 4, ... 64), got {tp!r}")
    if not 1 <= tp <= MAX_TENSOR_PARALLEL_SIZE or tp & (tp - 1):
        raise ConfigError(
            f"{what} must be a power of two from 1 to {MAX_TENSOR_PARALLEL_SIZE} "
            f"(GPUs of one NVLink domain), got {tp}"
        )
    return tp


def check_heads_divisible(model: ModelSpec, tp: int, what: str = "tensor_parallel_size") -> int:
    """``tp`` when it passes :func:`check_tensor_parallel_size` and divides ``model``'s
    attention heads and KV heads; else :class:`ConfigError` naming the model's heads."""
    check_tensor_parallel_size(tp, what)
    if model.num_heads % tp or model.num_kv_heads % tp:
        raise ConfigError(
            f"{what} {tp} does not divide {model.name}'s {model.num_heads} attention heads "
            f"and {model.num_kv_heads} KV heads; use a size that divides both (at most "
            f"{_largest_divisor(model)})"
        )
    return tp


def _largest_divisor(model: ModelSpec) -> int:
    tp = 1
    while (
        tp * 2 <= MAX_TENSOR_PARALLEL_SIZE
        and model.num_heads % (tp * 2) == 0
        and model.num_kv_heads % (tp * 2) == 0
    ):
        tp *= 2
    return tp


def allreduce_seconds_per_token(model: ModelSpec, gpu: GpuSpec, tp: int) -> float:
    """Seconds of all-reduce per token of a step at tensor parallel size ``tp`` (0 at 1).

    2 x ``num_layers`` ring all-reduces per step (after attention and after the MLP), each of
    ``hidden_size`` x :data:`ACTIVATION_BYTES` bytes per token; a ring all-reduce of S bytes
    over N GPUs moves 2(N-1)/N x S bytes through each GPU's link (the bus-bandwidth rule of
    NVIDIA's nccl-tests, ``doc/PERFORMANCE.md``), at :func:`~sunsim.specs.hardware.
    nvlink_bandwidth` bytes/s per direction. No per-call latency and no overlap with compute:
    a bandwidth lower bound, like the rest of the roofline. How low: vLLM's custom all-reduce
    measured under CUDA graphs on H100 and H200 (aiconfigurator-core 0.12.0's tables, vLLM
    0.14-0.24) takes 4.4-5.1 us for one token of 4096 BF16 values (over 150x this bound),
    4.5-6.6 us for 8 tokens and 1.3-2.2x this bound at 2048 tokens
    (``experiments/tp_allreduce/run.py`` prints the table); so at N > 1 the roofline leaves
    out about 2 x layers x 5 us per decode step. Profiles imported at N
    (``sunsim profile import --tensor-parallel-size N``) carry the measured all-reduces.
    """
    if tp == 1:
        return 0.0
    per_token = 2 * model.num_layers * model.hidden_size * ACTIVATION_BYTES
    return per_token * 2.0 * (tp - 1) / tp / nvlink_bandwidth(gpu)
