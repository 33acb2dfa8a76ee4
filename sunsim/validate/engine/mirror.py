"""The simulation that mirrors the engine: the cluster (:func:`mirror_cluster`) and the
latency models the check simulates with (:class:`SplitLatency`, :class:`LevelScaledLatency`)."""

from __future__ import annotations

from typing import Any

from sunsim.engine.spec import ClusterSpec
from sunsim.errors import ConfigError
from sunsim.latency.base import LatencyModel
from sunsim.specs import LinkSpec, get_gpu


def mirror_cluster(cfg: Any, latency: Any, link: LinkSpec) -> ClusterSpec:
    """A one-model cluster mirroring the engine: 1 prefill and 1 decode worker, the engine's
    ``max_num_seqs``, prefill token budget, KV block size and **exactly** its KV capacity in
    blocks: memory utilisation 1.0 and ``reserve_bytes = GPU memory - decode weight bytes -
    blocks x block bytes - half a block`` (so :func:`kv_capacity_blocks` rounds down to the
    engine's blocks)."""
    from sunsim.engine.cluster import kv_capacity_blocks

    gpu = get_gpu("h100")
    per_block = latency.kv_bytes_per_token * cfg.block_tokens
    reserve = int(
        gpu.memory_bytes - latency.weight_bytes - cfg.kv_blocks * per_block - per_block // 2
    )
    if reserve < 0:
        raise ConfigError(
            f"{cfg.kv_blocks} KV blocks of {cfg.spec.name} do not fit the "
            "memory accounting of the mirrored cluster; use fewer --kv-blocks"
        )
    cl = ClusterSpec(
        design="sun",
        served_models=("m",),
        prefill_workers=(1,),
        decode_workers=(1,),
        gpu="h100",
        max_num_seqs=cfg.max_num_seqs,
        max_num_batched_tokens=cfg.max_num_batched_tokens,
        block_size=cfg.block_tokens,
        gpu_memory_utilization=1.0,
        reserve_bytes=reserve,
        link=link,
    )
    got = kv_capacity_blocks(cl, latency)
    if got != cfg.kv_blocks:  # pragma: no cover - arithmetic guard
        raise RuntimeError(f"mirrored KV capacity {got} blocks != engine's {cfg.kv_blocks}")
    return cl


class LevelScaledLatency(LatencyModel):
    """``base`` with its prefill and decode times multiplied by constant factors.

    The check's diagnostic: with the factors set to (sum of the replay's measured times) /
    (sum of the profile's predictions for them), the profile keeps its shape (how time grows
    with batch size and tokens) but takes the speed level the machine had during the replay.
    Simulating with it separates the error that comes from the machine's speed drifting
    between profiling and replay (other people's load on a shared machine) from the error of
    the step model's shape and of the simulated dynamics. Calibrated on the measurement it is
    compared with: a diagnostic, never a prediction.
    """

    def __init__(self, base: LatencyModel, prefill_scale: float, decode_scale: float) -> None:
        self.base = base
        self.prefill_scale = float(prefill_scale)
        self.decode_scale = float(decode_scale)
        self.method = base.method
        self.weight_bytes = base.weight_bytes
        self.kv_bytes_per_token = base.kv_bytes_per_token
        self.max_model_len = base.max_model_len
        self.description = (
            f"{base.description}, prefill x{self.prefill_scale:.3f}, decode "
            f"x{self.decode_scale:.3f} (level matched to the replay)"
        )

    def prefill_time(self, prompt_lens):
        return self.prefill_scale * self.base.prefill_time(prompt_lens)

    def decode_step_time(self, batch_size: int, total_context_tokens: int) -> float:
        return self.decode_scale * self.base.decode_step_time(batch_size, total_context_tokens)


class SplitLatency(LatencyModel):
    """Prefill times from one latency model, decode step times from another (both of the same
    model and device): the check's ``split`` statistic (prefill medians, decode means)."""

    def __init__(self, prefill: Any, decode: Any) -> None:
        self.prefill, self.decode = prefill, decode
        self.method = decode.method
        self.weight_bytes = decode.weight_bytes
        self.kv_bytes_per_token = decode.kv_bytes_per_token
        self.max_model_len = decode.max_model_len
        self.description = (
            f"{decode.description}; prefill from the per-point medians, "
            "decode from the per-point means"
        )
        self.decode_fit = getattr(decode, "decode_fit", None)
        self.prefill_fit = getattr(prefill, "prefill_fit", None)

    def prefill_time(self, prompt_lens):
        return self.prefill.prefill_time(prompt_lens)

    def decode_step_time(self, batch_size: int, total_context_tokens: int) -> float:
        return self.decode.decode_step_time(batch_size, total_context_tokens)
