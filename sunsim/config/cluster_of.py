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
    ``prefillshare`` pools the workers ``partitioned`` gives each model; a per-model list of
    a shared pool holds each model's part of it, zeros allowed), ``decode_workers``
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
        colocated_scheduler=s.colocated_scheduler,
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
    count: every model's), summed for a shared pool (whose per-model parts may be 0)."""
    n = len(s.served_models)
    cw = s.colocated_workers
    cw = cw * n if len(cw) == 1 else cw
    if get_design(mode).decode.scope is PoolScope.SHARED:
        cw = (sum(cw),)
    return tuple(cw)


def shared_pool_split(workers: int, num_models: int) -> tuple[int, ...]:
    """A shared pool of ``workers`` as ``num_models`` per-model parts that sum back to it:
    ``workers // num_models`` each, one more for the first ``workers % num_models`` models
    (zeros when the pool has fewer workers than models: 1 over 3 models is ``(1, 0, 0)``).
    What a scenario lists for a shared pool so that :func:`cluster_of` rebuilds it."""
    q, r = divmod(int(workers), num_models)
    return tuple(q + (i < r) for i in range(num_models))


def scenario_counts(
    mode: str,
    num_models: int,
    prefill_workers: Sequence[int],
    decode_workers: Sequence[int],
    colocated_workers: Sequence[int] = (),
) -> dict[str, tuple[int, ...]]:
    """The scenario keys that make :func:`cluster_of` build design ``mode`` with these
    :class:`ClusterSpec` counts (per pool): a shared pool's one count becomes per-model parts
    (:func:`shared_pool_split`), since one scenario count means every model's; per-model
    pools and a shared decode pool's total are kept. Co-located designs give
    ``colocated_workers`` only, the others ``prefill_workers`` and ``decode_workers``."""
    design = get_design(mode)

    def per_model(counts: Sequence[int], scope: PoolScope) -> tuple[int, ...]:
        if scope is PoolScope.SHARED and len(counts) == 1:
            return shared_pool_split(counts[0], num_models)
        return tuple(int(c) for c in counts)

    if design.colocated:
        return {"colocated_workers": per_model(colocated_workers, design.decode.scope)}
    return {
        "prefill_workers": per_model(prefill_workers, design.prefill.scope),
        "decode_workers": tuple(int(c) for c in decode_workers),
    }
