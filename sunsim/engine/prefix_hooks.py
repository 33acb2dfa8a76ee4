"""Prefix caching in the engine: where the caches live and how workers use them.

Where (a simplification, stated): one :class:`~sunsim.engine.prefix_cache.PrefixCache` per
**prefill worker** of a disaggregated design (a hit skips that part of the prefill; the decode
worker still receives the whole prompt's KV over the link, as it does in Mooncake, whose
prefill side reads cached KV from its pool and ships it all) and one per **co-located
worker** (vLLM's automatic prefix caching on an aggregated engine). Decode workers keep no
prefix cache: their KV is dropped when a request ends, as in the engine without caching.

A prefill worker's cache holds up to the KV capacity of its GPUs (the same formula as a
decode worker's, :func:`~sunsim.engine.cluster.kv_capacity_blocks`, with the prefill module's
weights and ``prefill_tensor_parallel_size``), less the blocks of the batch being computed;
a co-located worker's shares the worker's KV cache with its running requests (unreferenced
cached blocks are evicted when running requests need them).

Timing: a prefill batch in which some requests found cached blocks costs
:meth:`~sunsim.latency.base.LatencyModel.mixed_step_time` with no decodes and one chunk per
request, ``(uncached tokens, cached tokens)``: the uncached tokens through the model plus
attention over the cached context (for the default composition, the decode curve's context
term; for the roofline, the exact attention FLOPs and KV bytes). A batch without hits costs
:meth:`~sunsim.latency.base.LatencyModel.prefill_time` as without caching. Co-located steps
already use ``mixed_step_time``: a hit makes the request's first chunk start after its
cached tokens.

The lookup happens when the request is scheduled (batched, or admitted into a co-located
step), not when it arrives: blocks evicted while it waited are simply computed.

Hooks: a caching worker holds a :class:`WorkerPrefix` as its ``prefix`` component (None
without caching; the worker's class is the same either way) and calls it, as vLLM's KV cache
manager is called by its scheduler. A prefill worker: :meth:`~WorkerPrefix.lookup` and
:meth:`~WorkerPrefix.admit` when it batches a request, :meth:`~WorkerPrefix.start_batch`,
:meth:`~WorkerPrefix.computed` when the batch ends, :meth:`~WorkerPrefix.release` when the KV
has left. A co-located worker (:mod:`sunsim.engine.colocated`): ``lookup`` while admitting
(the first chunk starts after the hit), :meth:`~WorkerPrefix.admitted` after a step's
admission (pin the hits, which count among the request's blocks, then evict unreferenced
blocks until they fit beside the running requests' blocks), ``computed`` when a request's
last prefill chunk has run, ``release`` when it finishes or is preempted (its blocks stay
cached, evictable: a preempted request recomputing its prompt may find them again). On a
co-located worker a block two running requests share is counted once per request (running
requests' KV is block accounting per request, :class:`PagedKvCache`), so concurrent sharing
saves compute but not memory; cached blocks no request holds are shared.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, cast

import pandas as pd

from sunsim.engine.prefix_cache import (
    SHARED_NAMESPACE,
    PrefixCache,
    chain_keys,
    hash_block_token_counts,
)
from sunsim.engine.prefix_timeline import KvTimeline, kv_timeline_frame
from sunsim.errors import TraceError

if TYPE_CHECKING:  # pragma: no cover
    from sunsim.engine.cluster import ClusterSim
    from sunsim.engine.request import Request
    from sunsim.latency.base import LatencyModel

__all__ = ["PrefixIndex", "WorkerPrefix", "attach_prefix_caches", "prefix_index"]

#: Mooncake's traces hash blocks of 512 tokens (FAST'25 release, ``hash_ids``).
DEFAULT_HASH_BLOCK_TOKENS = 512


class PrefixIndex:
    """Every request's chained keys and tokens per hash block (None: no hashes).

    ``keys[i]`` / ``tokens[i]`` belong to request ``i`` (trace row order)."""

    def __init__(self, keys: list[list[int] | None], tokens: list[list[int] | None]) -> None:
        self.keys = keys
        self.tokens = tokens


def prefix_index(
    requests: pd.DataFrame, model_idx: Sequence[int], shared: bool
) -> PrefixIndex | None:
    """The :class:`PrefixIndex` of a request frame with a ``hash_ids`` column (a sequence of
    ints per row, or None / empty for a request without hashes) and
    ``attrs["hash_block_tokens"]`` (default 512); None when the frame has no ``hash_ids``.
    ``shared``: content-only keys (one namespace for every model), else one per model.

    Raises :class:`TraceError` naming the row whose hash count does not fit its prompt.
    """
    if "hash_ids" not in requests.columns:
        return None
    H = int(requests.attrs.get("hash_block_tokens", DEFAULT_HASH_BLOCK_TOKENS))
    if H < 1:
        raise TraceError(f"hash_block_tokens must be >= 1, got {H}")
    keys: list[list[int] | None] = []
    tokens: list[list[int] | None] = []
    prompts = requests["prompt_tokens"].tolist()
    for i, (h, p, m) in enumerate(zip(requests["hash_ids"].tolist(), prompts, model_idx)):
        if h is None or isinstance(h, float) or len(h) == 0:  # None, NaN or empty: no hashes
            keys.append(None)
            tokens.append(None)
            continue
        try:
            tokens.append(hash_block_token_counts(int(p), len(h), H))
        except ValueError as e:
            raise TraceError(f"request row {i}: {e}; fix its hash_ids or prompt_tokens") from e
        keys.append(chain_keys(h, SHARED_NAMESPACE if shared else int(m)))
    return PrefixIndex(keys, tokens)


class WorkerPrefix:
    """One worker's prefix cache and the pins of the requests it is running.

    Args:
        index: the requests' keys; capacity_blocks: the worker's KV blocks; block_size:
        tokens per block; latency: the worker's latency model (batch times with hits);
        clock: the simulated time now (seconds) and timeline: where the cached blocks by
        model are counted over time (both or neither).
    """

    def __init__(
        self,
        index: PrefixIndex,
        capacity_blocks: int,
        block_size: int,
        latency: LatencyModel,
        clock: Callable[[], float] | None = None,
        timeline: KvTimeline | None = None,
    ) -> None:
        self.index = index
        self.cache = PrefixCache(capacity_blocks, block_size)
        self.latency = latency
        self.pins: dict[int, list[int]] = {}  # request id -> keys it references
        self.clock = clock
        self.timeline = timeline

    def _changed(self) -> None:
        """The cache's blocks changed: note them on the timeline."""
        if self.timeline is not None and self.clock is not None:
            self.timeline.update(self.clock(), self.cache.blocks_by_owner)

    def trim(self, max_free_blocks: int) -> None:
        """Evict unreferenced blocks down to ``max_free_blocks`` (:meth:`PrefixCache.trim`)."""
        self.cache.trim(max_free_blocks)
        self._changed()

    def lookup(self, r: Request, compute_tokens: int) -> int:
        """Cached prompt tokens ``r`` would reuse now if it has to compute
        ``compute_tokens`` tokens (whole hash blocks; at least one token left to compute)."""
        keys = self.index.keys[r.request_id]
        if keys is None:
            return 0
        toks = self.index.tokens[r.request_id]
        assert toks is not None
        return self.cache.match(keys, toks, min(r.prompt_tokens, compute_tokens - 1))[1]

    def admit(self, r: Request, hit: int) -> None:
        """``r`` is scheduled with ``hit`` cached tokens (from :meth:`lookup` at this same
        instant): pin those blocks and count the lookup."""
        c = self.cache
        c.query_tokens += r.prompt_tokens
        c.hit_tokens += hit
        keys = self.index.keys[r.request_id]
        if keys is None or hit == 0:
            return
        toks = self.index.tokens[r.request_id]
        assert toks is not None
        n, got = c.match(keys, toks, hit)
        assert got == hit
        pinned = keys[:n]
        c.pin(pinned)
        self.pins[r.request_id] = pinned

    def admitted(self, chunks: Sequence[tuple[Request, int, int]], room: int) -> None:
        """A co-located step admitted ``chunks`` ``(request, tokens to compute, cached
        tokens)``: pin each one's hit blocks (they count among its KV blocks) and evict
        unreferenced cached blocks until at most ``room`` of them stay beside the running
        requests' blocks."""
        for r, _c, hit in chunks:
            self.admit(r, hit)
        self.trim(room)

    def computed(self, r: Request, room: int) -> None:
        """``r``'s prompt KV is computed: cache its blocks (pinned to ``r``) within ``room``
        blocks in all."""
        keys = self.index.keys[r.request_id]
        if keys is None:
            return
        toks = self.index.tokens[r.request_id]
        assert toks is not None
        old = self.pins.pop(r.request_id, [])
        n = len(old)
        new = self.cache.insert(keys[n:], toks[n:], r.model_idx, room)
        self.pins[r.request_id] = old + new
        self._changed()

    def release(self, r: Request) -> None:
        """``r`` no longer uses its blocks (it finished, was preempted, or its KV left the
        prefill worker): they become evictable."""
        keys = self.pins.pop(r.request_id, None)
        if keys:
            self.cache.release(keys)

    def start_batch(self, lens: Sequence[int], hits: Sequence[int]) -> float:
        """A prefill batch computes ``lens[i] - hits[i]`` tokens after ``hits[i]`` cached
        ones: evict unreferenced blocks to make room for its new blocks, and return its
        seconds (module docstring)."""
        c = self.cache
        bs = c.block_size
        new = sum(-(-(n - h) // bs) for n, h in zip(lens, hits))
        self.trim(c.capacity_blocks - c.pinned_blocks - new)
        if not any(hits):
            return self.latency.prefill_time(lens)
        chunks = [(n - h, h) for n, h in zip(lens, hits)]
        return self.latency.mixed_step_time(0, 0, chunks)


def prefill_cache_blocks(sim: ClusterSim) -> int:
    """KV blocks of one prefill worker (the decode formula with the prefill module)."""
    from sunsim.engine.cluster import kv_capacity_blocks

    cl = sim.cluster
    as_decode = dataclasses.replace(
        cl, decode_tensor_parallel_size=int(cl.prefill_tensor_parallel_size or 1)
    )
    return kv_capacity_blocks(as_decode, sim.prefill_latency)


def attach_prefix_caches(sim: ClusterSim, index: PrefixIndex) -> None:
    """Give every prefill worker and co-located worker of ``sim`` a :class:`WorkerPrefix`,
    its ``prefix`` component (the workers call its hooks when it is set)."""
    bs = sim.cluster.block_size
    env = sim.env
    n = len(sim.cluster.served_models)

    def clock() -> float:
        return float(env.now)

    def tl() -> KvTimeline:
        return KvTimeline(sim.timeline_bin_s, n)

    if sim.cluster.design.colocated:
        for w in sim.decode_workers:  # co-located workers (duck-typed as decode workers)
            cast(Any, w).prefix = WorkerPrefix(
                index, sim.capacity_blocks, bs, sim.decode_latency, clock, tl()
            )
        return
    cap = prefill_cache_blocks(sim)
    for pw in sim.prefill_workers:
        pw.prefix = WorkerPrefix(index, cap, bs, sim.prefill_latency, clock, tl())


def prefix_stats(sim: ClusterSim) -> dict[str, Any]:
    """The run's prefix-cache figures (summed over workers): ``query_tokens``,
    ``hit_tokens``, ``hit_rate`` (hit / query tokens), ``prefill_tokens_saved`` (= hit tokens),
    ``evicted_blocks``, ``evictions`` (hash blocks), ``peak_cached_blocks`` (sum of the workers'
    peaks), ``cached_kv_bytes_by_model`` (bytes of cached blocks each model's requests
    inserted, still cached at the end), ``kv_shared_across_models``."""
    prefixes = [getattr(w, "prefix", None) for w in (*sim.prefill_workers, *sim.decode_workers)]
    caches: list[PrefixCache] = [p.cache for p in prefixes if p is not None]
    q = sum(c.query_tokens for c in caches)
    h = sum(c.hit_tokens for c in caches)
    per_block = sim.kv_bytes_per_token * sim.cluster.block_size
    served = sim.cluster.served_models
    by_model = {m: 0 for m in served}
    for c in caches:
        for owner, b in c.blocks_by_owner.items():
            by_model[served[owner]] += b * per_block
    return {
        "query_tokens": int(q),
        "hit_tokens": int(h),
        "hit_rate": h / q if q else float("nan"),
        "prefill_tokens_saved": int(h),
        "evicted_blocks": int(sum(c.evicted_blocks for c in caches)),
        "evictions": int(sum(c.num_evictions for c in caches)),
        "peak_cached_blocks": int(sum(c.peak_blocks for c in caches)),
        "cached_kv_bytes_by_model": by_model,
        "kv_shared_across_models": bool(sim.cluster.design.kv_shared_across_models),
    }


def prefix_kv_timeline(sim: ClusterSim) -> pd.DataFrame:
    """Cached KV by model over the run: ``t_s`` (bin start, the decode timeline's bins),
    ``model``, ``cached_kv_bytes`` (time-bin mean, summed over the caching workers; see
    :func:`~sunsim.engine.prefix_timeline.kv_timeline_frame`)."""
    prefixes = [getattr(w, "prefix", None) for w in (*sim.prefill_workers, *sim.decode_workers)]
    tls = [p.timeline for p in prefixes if p is not None and p.timeline is not None]
    per_block = sim.kv_bytes_per_token * sim.cluster.block_size
    return kv_timeline_frame(tls, float(sim.env.now), per_block, sim.cluster.served_models)


def prefix_extras(sim: ClusterSim) -> dict[str, Any]:
    """What a run with caching adds to :attr:`SimResult.extra`: ``prefix_cache``
    (:func:`prefix_stats`) and ``prefix_kv_timeline`` (:func:`prefix_kv_timeline`)."""
    return {"prefix_cache": prefix_stats(sim), "prefix_kv_timeline": prefix_kv_timeline(sim)}


def enable_prefix_caching(
    sim: ClusterSim, requests: pd.DataFrame, model_idx: Sequence[int]
) -> bool:
    """Attach prefix caches to ``sim`` when its cluster enables prefix caching and the
    requests carry ``hash_ids``; returns whether caching is on for this run."""
    if not sim.cluster.enable_prefix_caching:
        return False
    index = prefix_index(requests, model_idx, sim.cluster.design.kv_shared_across_models)
    if index is None:
        return False
    attach_prefix_caches(sim, index)
    return True
