"""The LoRA adapters of the ``lora`` design: their size, their cost per step, their load time
and the GPU memory they take -- arithmetic only, no simulation.

Every task model is a LoRA adapter (Hu et al., ICLR'22) of one base model: on each adapted
projection ``W`` (``d_in x d_out``) a token's output gains ``x A B`` with ``A`` ``d_in x r``
and ``B`` ``r x d_out``. Here the adapted projections are the attention's ``q_proj``,
``k_proj``, ``v_proj`` and ``o_proj``, the setting S-LoRA (Sheng et al., MLSys'24, Sec. 7)
and Punica (Chen et al., MLSys'24, Sec. 7) evaluate; adapters are BF16 (2 bytes a weight).

vLLM (``--enable-lora``) holds ``max_loras`` GPU slots, each sized for ``max_lora_rank``
(an adapter of lower rank is zero-padded into its slot), so the rank used for memory and
compute is ``max_lora_rank`` and the slots' bytes are taken from the KV cache
(vLLM ``LoRAConfig``: ``max_loras`` = adapters in one batch, ``max_lora_rank``).

Cost per step, *derived* (analytic) like the roofline: Punica's SGMV and S-LoRA's MBGMV
kernels batch the adapter products of every request in one launch per projection; in decode
they are memory-bound (Punica, Sec. 4-5), reading each *distinct* adapter's A and B once per
step, and they do ``2 x adapter weights`` FLOPs per token. So, for a worker of TP GPUs
(S-LoRA's tensor parallelism shards adapters like the base)::

    extra_s = distinct x adapter_bytes / (TP x mem_bw)
              + tokens x 2 x adapter_params / (TP x bf16_flops)
    step_s  = base_step_s x (1 + overhead_per_adapter x distinct) + extra_s

``overhead_per_adapter`` (scenario ``lora_overhead_per_adapter``, default 0) is a measured
fraction per distinct adapter for what the analytic term leaves out (kernel launches and
padding: Punica reports about 2 ms added per token end to end, Sec. 7, on a system with
other differences); with 0 the adapter cost is a lower bound, said so in every output.

Load: an adapter not in a worker's GPU slots is copied from host memory (vLLM's CPU cache,
``max_cpu_loras``; every adapter is assumed to be there, disk loads are not modelled) at the
PCIe host-to-device rate of :data:`PCIE_H2D_BYTES_PER_S`; the step that first uses it takes
``adapter_bytes / rate`` longer. Slots are evicted least recently used.
"""

from __future__ import annotations

from dataclasses import dataclass

from sunsim.errors import ConfigError
from sunsim.specs import GpuSpec, ModelSpec

#: Bytes of one adapter weight (BF16 adapters, as S-LoRA and Punica serve them).
ADAPTER_WEIGHT_BYTES = 2

#: Host-to-device copy rate per GPU, bytes/s, per direction: PCIe Gen5 x16 (64 GB/s) on
#: H100 SXM, H200 SXM and B200 (NVIDIA datasheets: "PCIe Gen5: 128 GB/s" bidirectional), PCIe
#: Gen4 x16 (32 GB/s) on A100 and L40S ("PCIe Gen4: 64 GB/s"). Nominal, so a load time from
#: it is a lower bound.
PCIE_H2D_BYTES_PER_S: dict[str, float] = {
    "H100-SXM-80GB": 64e9,
    "H200-SXM-141GB": 64e9,
    "B200-SXM-180GB": 64e9,
    "A100-SXM-80GB": 32e9,
    "L40S-48GB": 32e9,
}


def adapter_params(model: ModelSpec, rank: int) -> int:
    """Weights of one rank-``rank`` adapter on q/k/v/o of every layer:
    ``rank x layers x sum(d_in + d_out)`` over the four projections."""
    h = model.hidden_size
    q = model.num_heads * model.head_dim
    kv = model.num_kv_heads * model.head_dim
    per_layer = (h + q) + 2 * (h + kv) + (q + h)
    return rank * model.num_layers * per_layer


@dataclass(frozen=True)
class LoraSpec:
    """The adapters of a ``lora`` cluster, resolved for one base model and GPU.

    Attributes:
        max_loras: distinct adapters one worker's batch may hold (vLLM's ``max_loras``; also
            its GPU slots).
        max_lora_rank: the rank every slot is sized for (vLLM's ``max_lora_rank``).
        adapter_bytes: bytes of one slot (an adapter at ``max_lora_rank``).
        read_s: seconds per step per distinct adapter in the batch (its bytes read once).
        token_s: seconds per token of the step (the adapter FLOPs).
        load_s: seconds to copy one adapter into a slot.
        overhead_per_adapter: fraction of the base step time added per distinct adapter.

    Raises:
        ConfigError: ``max_loras`` or ``max_lora_rank`` below 1, a negative time or fraction.
    """

    max_loras: int
    max_lora_rank: int = 16
    adapter_bytes: int = 0
    read_s: float = 0.0
    token_s: float = 0.0
    load_s: float = 0.0
    overhead_per_adapter: float = 0.0

    def __post_init__(self) -> None:
        if self.max_loras < 1:
            raise ConfigError(f"max_loras must be >= 1 (adapters per batch), got {self.max_loras}")
        if self.max_lora_rank < 1:
            raise ConfigError(f"max_lora_rank must be >= 1, got {self.max_lora_rank}")
        if min(self.adapter_bytes, self.read_s, self.token_s, self.load_s) < 0:
            raise ConfigError("LoRA adapter bytes and times must be >= 0")
        if self.overhead_per_adapter < 0:
            raise ConfigError(
                f"lora_overhead_per_adapter must be >= 0, got {self.overhead_per_adapter}"
            )

    @property
    def reserved_bytes(self) -> int:
        """GPU memory of a worker's slots: ``max_loras x adapter_bytes`` (not KV cache)."""
        return self.max_loras * self.adapter_bytes

    def step_time(self, base_s: float, distinct: int, tokens: int) -> float:
        """Seconds of a step whose base-model time is ``base_s`` with ``distinct`` adapters and
        ``tokens`` tokens in the batch (module docstring)."""
        return (
            base_s * (1.0 + self.overhead_per_adapter * distinct)
            + distinct * self.read_s
            + tokens * self.token_s
        )


def lora_spec(
    model: ModelSpec,
    gpu: GpuSpec,
    max_loras: int,
    max_lora_rank: int,
    tensor_parallel_size: int = 1,
    overhead_per_adapter: float = 0.0,
) -> LoraSpec:
    """The :class:`LoraSpec` of ``model``'s adapters on workers of ``tensor_parallel_size``
    ``gpu`` GPUs (module docstring for the formulas). Raises :class:`ConfigError` for bad
    counts."""
    if max_loras < 1 or max_lora_rank < 1:  # say it before any arithmetic
        LoraSpec(max_loras, max_lora_rank)
    params = adapter_params(model, max_lora_rank)
    nbytes = params * ADAPTER_WEIGHT_BYTES
    tp = max(int(tensor_parallel_size), 1)
    h2d = PCIE_H2D_BYTES_PER_S.get(gpu.name, 32e9)
    return LoraSpec(
        max_loras=max_loras,
        max_lora_rank=max_lora_rank,
        adapter_bytes=nbytes,
        read_s=nbytes / (tp * gpu.mem_bw),
        token_s=2.0 * params / (tp * gpu.bf16_flops),
        load_s=nbytes / (tp * h2d),  # each GPU copies its shard
        overhead_per_adapter=overhead_per_adapter,
    )
