"""The paged KV cache of one decode worker: block accounting only (no SimPy, no tensors).

vLLM (Kwon et al., SOSP'23) stores a request's KV in blocks of ``block_size`` tokens (16 by
default); a request with ``c`` context tokens holds ``ceil(c / block_size)`` blocks.

Every running request gains one token per decode iteration, so a request admitted before
iteration ``K0 + 1`` with ``c`` context tokens holds ``a + k`` tokens at iteration ``k``, with
offset ``a = c - (K0 + 1)``. The cache keeps only ``sum(a)``, the number of requests, and the
count of requests per residue ``a mod block_size``; then the running requests' context at
iteration ``k`` is ``sum(a) + n k`` tokens and their blocks
``sum(ceil((a + k) / B)) = (sum(a) + n k + sum((-(a + k)) mod B)) / B`` follow in
O(block_size), whatever the number of requests.
"""

from __future__ import annotations


class PagedKvCache:
    """Block accounting of one worker's paged KV cache.

    Attributes:
        block_size: tokens per block (vLLM's name).
        capacity_blocks: blocks the cache holds.
        num_seqs: requests holding blocks.
        sum_offset: sum of their offsets ``a`` (tokens).
        residue_count: ``residue_count[r]`` = requests with ``a mod block_size == r``.
    """

    __slots__ = ("block_size", "capacity_blocks", "num_seqs", "sum_offset", "residue_count")

    def __init__(self, capacity_blocks: int, block_size: int) -> None:
        self.block_size = block_size
        self.capacity_blocks = capacity_blocks
        self.num_seqs = 0
        self.sum_offset = 0
        self.residue_count = [0] * block_size

    @property
    def capacity_tokens(self) -> int:
        """Tokens the cache holds: ``capacity_blocks x block_size``."""
        return self.capacity_blocks * self.block_size

    def add(self, offset: int) -> None:
        """A request with offset ``offset`` (tokens at iteration k = offset + k) joins."""
        self.sum_offset += offset
        self.residue_count[offset % self.block_size] += 1
        self.num_seqs += 1

    def remove(self, offset: int) -> None:
        """The request with offset ``offset`` leaves (finished or preempted): its blocks free."""
        self.sum_offset -= offset
        self.residue_count[offset % self.block_size] -= 1
        self.num_seqs -= 1

    def context_tokens_at(self, k: int) -> int:
        """Tokens the requests hold at iteration ``k``: ``sum(a) + n k``."""
        return self.sum_offset + self.num_seqs * k

    def blocks_at(self, k: int) -> int:
        """Blocks the requests hold at iteration ``k`` (exact, O(block_size))."""
        B = self.block_size
        s = self.sum_offset + self.num_seqs * k
        for res, c in enumerate(self.residue_count):
            if c:
                s += c * ((-(res + k)) % B)
        return s // B

    def blocks_upper_bound(self, k: int) -> int:
        """An upper bound of :meth:`blocks_at` in O(1): ``(tokens + n (B - 1)) // B``."""
        n = self.num_seqs
        return (self.sum_offset + n * k + n * (self.block_size - 1)) // self.block_size

    def last_safe_iteration(self, base: int) -> int:
        """How many iterations after iteration ``base`` surely fit (the largest ``i`` with
        ``blocks_upper_bound(base + i) <= capacity_blocks``); needs ``num_seqs >= 1``."""
        B = self.block_size
        n = self.num_seqs
        return ((self.capacity_blocks + 1) * B - self.sum_offset - n * (B - 1) - n * base - 1) // n
