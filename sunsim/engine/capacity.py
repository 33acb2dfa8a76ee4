"""KV-cache capacity of one decode (or co-located) worker, in blocks: the memory its GPUs
leave after weights, reserve and LoRA slots, over the KV bytes of a block."""

from __future__ import annotations

from sunsim.engine.spec import ClusterSpec
from sunsim.errors import ConfigError
from sunsim.latency.base import LatencyModel
from sunsim.specs import get_gpu

__all__ = ["kv_capacity_blocks"]


def kv_capacity_blocks(cluster: ClusterSpec, decode_latency: LatencyModel) -> int:
    """KV blocks per decode worker: (TP x GPU memory x utilisation - decode weight bytes
    - TP x reserve) / (KV bytes per token x block tokens), rounded down.

    The GPU is the decode pool's (``cluster.decode_gpu_name``); a ``lora`` cluster's adapter
    slots (``cluster.lora.reserved_bytes``) come off the free bytes too.
    TP is ``cluster.decode_tensor_parallel_size``: a worker is TP GPUs; the weights are split
    over them (so the worker holds the whole model's weight bytes once), every GPU keeps its
    own reserve, and the KV heads are split too (each GPU holds 1/TP of every token's KV
    bytes), so the worker's KV cache holds (free bytes of its TP GPUs) / (the whole token's KV
    bytes) tokens. TP 1: one GPU, as before.
    The KV bytes per token are the latency model's: 1 byte per element with an FP8 KV cache
    (``kv_cache_dtype = fp8``, :mod:`sunsim.latency.kv_cache_dtype`), so a worker then holds
    twice the blocks.

    Raises :class:`ConfigError` when the decode weights leave no room for a KV cache.
    """
    gpu = get_gpu(cluster.decode_gpu_name)
    tp = int(cluster.decode_tensor_parallel_size or 1)
    free = (
        tp * gpu.memory_bytes * cluster.gpu_memory_utilization
        - decode_latency.weight_bytes
        - tp * cluster.reserve_bytes
    )
    if cluster.lora is not None:  # the LoRA slots (sunsim.engine.lora_spec)
        free -= cluster.lora.reserved_bytes
    per_block = decode_latency.kv_bytes_per_token * cluster.block_size
    blocks = int(free // per_block) if per_block > 0 else 0
    if blocks < 1:
        raise ConfigError(
            f"decode weights ({decode_latency.weight_bytes / 1e9:.1f} GB) leave no KV cache on "
            f"{f'{tp} x ' if tp > 1 else ''}{gpu.name} ({gpu.memory_bytes / 1e9:.0f} GB x "
            f"{cluster.gpu_memory_utilization}, {cluster.reserve_bytes / 1e9:.1f} GB reserve); "
            "use a larger GPU, a lower-bit decode or a larger decode_tensor_parallel_size"
        )
    return blocks
