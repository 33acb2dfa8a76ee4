"""Prefix caching: a worker's KV blocks kept by content hash after their request is done.

vLLM's automatic prefix caching (``vllm/v1/core/kv_cache_utils.py``, block hashes chained
through the parent block's hash) and SGLang's radix cache (Zheng et al., "SGLang", NeurIPS'24)
keep the KV of computed prompt blocks after their request leaves; a later request whose
prompt starts with the same blocks reuses them and computes only the rest. Here:

* **Keys.** A request's prompt is described by the trace's ``hash_ids`` (one content hash per
  block of ``hash_block_tokens`` prompt tokens; Mooncake's traces use 512; the last block may
  be partial). Key ``i`` chains hash ``i`` with key ``i - 1`` (:func:`chain_keys`), so a block
  matches only if every block before it matches, as vLLM's hash chaining does. The chain
  starts from a namespace: the request's model for per-model KV (a model's KV is useless to
  another model), or one namespace for all models where the design shares the KV
  (``prefillshare``, ``icarus``: :attr:`~sunsim.engine.designs.Design.kv_shared_across_models`).
  Keys are 64-bit Python hashes of (previous key, hash id): a collision is possible in
  principle (probability ~2^-64 per pair), as with any hashed prefix cache.
* **Blocks.** One hash block of ``t`` tokens occupies ``ceil(t / block_size)`` engine blocks
  (512-token hash blocks and vLLM's 16-token blocks: 32). A hit is counted in whole hash
  blocks, and at least one prompt token is always computed (the step computing it emits the
  next token; vLLM caps a full hit the same way).
* **Memory.** Cached blocks count against the worker's KV capacity. A block is *pinned*
  (reference count > 0) while a request using it runs; unreferenced blocks stay cached and
  are evicted least recently used first (vLLM's free-block queue) whenever the running
  requests need the room (:meth:`PrefixCache.trim`).

One :class:`PrefixCache` belongs to one worker; the engine hooks live in
:mod:`sunsim.engine.prefix_hooks`. Cost: O(hash blocks of the request) per lookup, pin,
insert or release, O(1) per eviction (an ordered dict is the LRU list).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

__all__ = ["PrefixCache", "chain_keys", "hash_block_token_counts"]

#: The chain's namespace when every model reads the same KV (content-only keys).
SHARED_NAMESPACE = -1


def chain_keys(hash_ids: Sequence[int], namespace: int) -> list[int]:
    """Chained keys of a prompt's hash blocks: ``key[i] = hash((key[i - 1], hash_ids[i]))``,
    ``key[-1] = hash(("ns", namespace))``; equal keys mean equal prefixes (up to hash
    collisions). ``namespace`` is a model index, or :data:`SHARED_NAMESPACE`."""
    k = hash(("ns", namespace))
    out = []
    for h in hash_ids:
        k = hash((k, int(h)))
        out.append(k)
    return out


def hash_block_token_counts(
    prompt_tokens: int, num_hash_blocks: int, hash_block_tokens: int
) -> list[int]:
    """Tokens in each of a prompt's hash blocks: ``hash_block_tokens`` each, the last one the
    remainder. Raises ValueError when the counts disagree (the caller names the row)."""
    H = hash_block_tokens
    need = -(-prompt_tokens // H)
    if num_hash_blocks != need:
        raise ValueError(
            f"{num_hash_blocks} hash_ids for {prompt_tokens} prompt tokens; expected "
            f"ceil({prompt_tokens} / {H}) = {need}"
        )
    return [min(H, prompt_tokens - i * H) for i in range(num_hash_blocks)]


class PrefixCache:
    """The prefix cache of one worker (see the module docstring).

    Args:
        capacity_blocks: the worker's KV capacity in engine blocks.
        block_size: tokens per engine block.

    Counters (tokens, blocks): ``query_tokens`` (prompt tokens looked up at admission),
    ``hit_tokens`` (of those, found cached), ``evicted_blocks``, ``num_evictions`` (hash
    blocks evicted), ``inserted_blocks``, ``peak_blocks`` (the most blocks ever cached,
    pinned or not). ``blocks_by_owner`` maps the model whose request inserted an entry to the
    blocks it holds now.
    """

    __slots__ = (
        "capacity_blocks",
        "block_size",
        "entries",
        "lru",
        "num_blocks",
        "free_blocks",
        "query_tokens",
        "hit_tokens",
        "evicted_blocks",
        "num_evictions",
        "inserted_blocks",
        "peak_blocks",
        "blocks_by_owner",
    )

    def __init__(self, capacity_blocks: int, block_size: int) -> None:
        self.capacity_blocks = capacity_blocks
        self.block_size = block_size
        #: key -> [reference count, engine blocks, owner model]
        self.entries: dict[int, list[int]] = {}
        #: unreferenced keys, least recently used first -> their engine blocks
        self.lru: OrderedDict[int, int] = OrderedDict()
        self.num_blocks = 0  # cached blocks, pinned or not
        self.free_blocks = 0  # cached blocks no running request references (evictable)
        self.query_tokens = 0
        self.hit_tokens = 0
        self.evicted_blocks = 0
        self.num_evictions = 0
        self.inserted_blocks = 0
        self.peak_blocks = 0
        self.blocks_by_owner: dict[int, int] = {}

    @property
    def pinned_blocks(self) -> int:
        """Cached blocks referenced by running requests."""
        return self.num_blocks - self.free_blocks

    def match(self, keys: Sequence[int], tokens: Sequence[int], limit: int) -> tuple[int, int]:
        """The longest cached prefix of ``keys`` whose tokens stay within ``limit``:
        ``(hash blocks, tokens)``. Reads only (no pin, no LRU touch)."""
        entries = self.entries
        n = hit = 0
        for k, t in zip(keys, tokens):
            if k not in entries or hit + t > limit:
                break
            hit += t
            n += 1
        return n, hit

    def pin(self, keys: Sequence[int]) -> None:
        """Reference the (cached) entries ``keys``: they leave the LRU list while pinned."""
        entries = self.entries
        lru = self.lru
        for k in keys:
            e = entries[k]
            if e[0] == 0:
                del lru[k]
                self.free_blocks -= e[1]
            e[0] += 1

    def release(self, keys: Sequence[int]) -> None:
        """Drop one reference of each of ``keys``; an unreferenced entry becomes the most
        recently used of the LRU list. Keys not cached (never inserted) are skipped."""
        entries = self.entries
        lru = self.lru
        for k in keys:
            e = entries.get(k)
            if e is None:
                continue
            e[0] -= 1
            if e[0] == 0:
                lru[k] = e[1]
                self.free_blocks += e[1]

    def insert(
        self, keys: Sequence[int], tokens: Sequence[int], owner: int, room: int
    ) -> list[int]:
        """Cache the computed blocks ``keys`` (``tokens`` each), pinned once each, evicting
        unreferenced entries as needed so that at most ``room`` blocks are cached in all;
        stop at the first block that does not fit (it stays uncached, as do the ones after
        it, whose chain it breaks). Keys already cached are pinned again. Returns the keys
        pinned (to :meth:`release` later)."""
        entries = self.entries
        bs = self.block_size
        pinned: list[int] = []
        for k, t in zip(keys, tokens):
            if k in entries:
                self.pin((k,))
                pinned.append(k)
                continue
            b = -(-t // bs)
            if self.num_blocks + b > room:
                self.trim(room - b - self.pinned_blocks)
                if self.num_blocks + b > room:
                    break
            entries[k] = [1, b, owner]
            self.num_blocks += b
            self.inserted_blocks += b
            self.blocks_by_owner[owner] = self.blocks_by_owner.get(owner, 0) + b
            pinned.append(k)
        if self.num_blocks > self.peak_blocks:
            self.peak_blocks = self.num_blocks
        return pinned

    def trim(self, max_free_blocks: int) -> None:
        """Evict unreferenced entries, least recently used first, until at most
        ``max_free_blocks`` unreferenced blocks stay cached."""
        lru = self.lru
        entries = self.entries
        while self.free_blocks > max_free_blocks and lru:
            k, b = lru.popitem(last=False)
            owner = entries.pop(k)[2]
            self.blocks_by_owner[owner] -= b
            self.free_blocks -= b
            self.num_blocks -= b
            self.evicted_blocks += b
            self.num_evictions += 1
