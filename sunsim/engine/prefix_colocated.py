"""Prefix caching on co-located workers: the cache hooks of a
:class:`~sunsim.engine.colocated.ColocatedWorker`, as a subclass.

:func:`sunsim.engine.prefix_hooks.attach_prefix_caches` turns a run's co-located workers into
:class:`PrefixColocatedWorker` (their class is swapped once, before the run starts), so a run
without caching executes the co-located worker's code unchanged. The worker's own admission
(:meth:`ColocatedWorker._admit`) asks :meth:`WorkerPrefix.lookup
<sunsim.engine.prefix_hooks.WorkerPrefix.lookup>` how many prompt tokens are cached and starts
the request's first chunk after them; this subclass adds what happens around it, as vLLM's
KV cache manager does:

* admission pins the hit blocks (they count among the request's blocks) and then evicts
  unreferenced cached blocks until they fit beside the running requests' blocks;
* when a request's last prefill chunk has run, its prompt's blocks are cached, pinned to it;
* a finished or preempted request unpins its blocks: they stay cached, evictable (a
  preempted request recomputing its prompt may find them again).

Memory: a block shared by two running requests is counted once per request here (the
running requests' KV is block accounting per request, :class:`PagedKvCache`), so concurrent
sharing saves compute but not memory; cached blocks no request holds are shared.
"""

from __future__ import annotations

from sunsim.engine.colocated import Chunk, ColocatedWorker
from sunsim.engine.request import Request

__all__ = ["PrefixColocatedWorker"]


class PrefixColocatedWorker(ColocatedWorker):
    """A :class:`ColocatedWorker` with a prefix cache (``self.prefix``, a
    :class:`~sunsim.engine.prefix_hooks.WorkerPrefix`); see the module docstring."""

    def _admit(self, chunks: list[Chunk], used: int, budget: int) -> None:
        k = len(chunks)
        super()._admit(chunks, used, budget)
        pc = self.prefix
        bs = self.block_size
        for r, c, hit in chunks[k:]:  # the requests admitted now
            pc.admit(r, hit)
            used += -(-(hit + c) // bs)
        pc.trim(self.kv.capacity_blocks - used)

    def _prefilled(self, r: Request, end: float) -> None:
        self.prefix.computed(r, self.kv.capacity_blocks)
        super()._prefilled(r, end)

    def _requeue(self, r: Request) -> None:
        self.prefix.release(r)
        super()._requeue(r)

    def _finish(self, r: Request, end: float) -> None:
        self.prefix.release(r)
        super()._finish(r, end)
