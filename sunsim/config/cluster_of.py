"""The resolved cluster of one design under a scenario (:func:`cluster_of`): worker counts per
pool, the engine limits, tensor parallel sizes, pool GPUs and, for ``lora``, the adapters."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from sunsim.engine.designs import PoolScope, get_design
from sunsim.engine.lora_spec import LoraSpec, lora_spec
from sunsim.engine.spec import ClusterSpec, split_workers
from sunsim.specs import GiB, get_gpu, get_model

if TYPE_CHECKING:
    from sunsim.config.scenario import Scenario


def cluster_of(
    s: Scenario, mode: str, output_tokens_per_model: Sequence[float] | None = None
) -> ClusterSpec:
    """The :class:`ClusterSpec` of design ``mode`` under scenario ``s``.

    ``prefill_workers`` (one count: every model's; summed for a shared prefill pool, so
    ``prefillshare`` pools the workers ``partitioned`` gives each model), ``decode_workers``
    (one count for a per-model design: a total split over the pools in proportion to
    ``output_tokens_per_model``, served order, else evenly; summed for a shared pool) and, for
    co-located designs, ``colocated_workers`` (:func:`colocated_counts`).

    Raises:
        ConfigError: counts that do not fit the design (fewer decode workers than pools...).
    """
    n = len(s.served_models)
    pw = s.prefill_workers * n if len(s.prefill_workers) == 1 else s.prefill_workers
    dw = s.decode_workers
    design = get_design(mode)
    cw: tuple[int, ...] = ()
    if design.colocated:
        pw, dw, cw = (), (), colocated_counts(s, mode)
    elif not design.shares_decode:
        if len(dw) == 1:
            dw = split_workers(dw[0], output_tokens_per_model or [1.0] * n)
    else:
        dw = (sum(dw),)
    if pw and design.prefill.scope is PoolScope.SHARED:
        pw = (sum(pw),)
    return ClusterSpec(
        design=design,
        served_models=s.served_models,
        prefill_workers=tuple(pw),
        decode_workers=tuple(dw),
        decode_precision=s.decode_precision(mode),
        gpu=s.gpu,
        max_num_seqs=s.max_num_seqs,
        max_num_batched_tokens=s.max_num_batched_tokens,
        block_size=s.block_size,
        gpu_memory_utilization=s.gpu_memory_utilization,
        reserve_bytes=int(s.reserve_gib * GiB),
        prefill_router=s.prefill_router,
        decode_router=s.decode_router,
        link=s.link,
        prefill_tensor_parallel_size=s.pool_tensor_parallel_size("prefill"),
        decode_tensor_parallel_size=s.pool_tensor_parallel_size("decode"),
        colocated_workers=cw,
        enable_prefix_caching=s.enable_prefix_caching,
        prefill_gpu=s.prefill_gpu,
        decode_gpu=s.decode_gpu,
        lora=scenario_lora_spec(s) if design.lora else None,
    )


def scenario_lora_spec(s: Scenario) -> LoraSpec:
    """The ``lora`` design's adapters: ``max_loras`` slots of ``max_lora_rank`` for the base
    model on the decode pools' GPU (:func:`sunsim.engine.lora_spec.lora_spec`)."""
    return lora_spec(
        get_model(s.base_model),
        get_gpu(s.pool_gpu("decode")),
        s.max_loras,
        s.max_lora_rank,
        s.pool_tensor_parallel_size("decode"),
        s.lora_overhead_per_adapter,
    )


def colocated_counts(s: Scenario, mode: str) -> tuple[int, ...]:
    """Co-located workers per pool of design ``mode``: ``colocated_workers`` per model (one
    count: every model's), summed for a shared pool."""
    n = len(s.served_models)
    cw = s.colocated_workers
    cw = cw * n if len(cw) == 1 else cw
    if get_design(mode).decode.scope is PoolScope.SHARED:
        cw = (sum(cw),)
    return tuple(cw)
