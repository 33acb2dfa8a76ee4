"""Routers: choose a worker of a pool for a request.

One registry (:data:`ROUTERS`, a plain dict) maps a policy name to its class. A router sees
only what a real serving router sees at that moment: the request's prompt length and
tokens generated so far, and each worker's ``load`` (requests assigned and not yet gone)
and ``load_tokens`` (KV tokens those requests held when assigned, or queued prompt
tokens for prefill). It never looks at a request's future output length.

Policies:

* ``round_robin``: workers in turn.
* ``least_loaded`` (default): the fewest assigned requests (decode) / queued prompt tokens
  (prefill); ties to the lowest index.
* ``least_kv``: the fewest KV tokens assigned (decode); for prefill the same as least_loaded.
* ``power_of_two``: two distinct workers drawn at random, the less loaded one
  (Mitzenmacher, "The Power of Two Choices in Randomized Load Balancing", 2001).
* ``kv_aware``: the lowest Dynamo-style cost of cached-prefix overlap and load
  (:class:`KvAware`), for prefill and co-located pools with prefix caching.
* ``central`` (decode): one FCFS queue per pool, an idealised pull-based global scheduler. A
  request goes to the least-loaded worker holding fewer than ``max_num_seqs`` requests; when
  every worker holds ``max_num_seqs``, it waits in the pool's queue (its KV stays on the
  prefill worker; the transfer starts when it is dispatched) and goes, in order, to the next
  worker that frees a slot (a request finishing or being preempted). The queue has one owner,
  the router: :meth:`Central.hold` and :meth:`Central.release` are its only writers. With
  ``max_num_seqs = 1`` the pool is the c-server FCFS queue of M/M/c. The other policies commit
  a request to one worker's queue when its prefill ends, so a request can wait behind a long
  one while another worker idles. For prefill, ``central`` is ``least_loaded``.

Cost is O(workers in the pool) per routing decision (pools hold tens of workers). When the
workers of a pool keep their loads in one shared list (``loads``, worker ``i``'s at index
``i``, as decode workers do), ``least_loaded`` and ``central`` read that list with the
built-in ``min`` and ``list.index`` (the same choice, ties to the lowest index, without a
Python-level call per worker).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from operator import attrgetter
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from sunsim.engine.decode import DecodeWorker  # noqa: F401 - DecodeRouter's annotation
    from sunsim.engine.prefill import PrefillWorker
    from sunsim.engine.request import Request


class Routable(Protocol):
    """What a router reads of a worker."""

    @property
    def load(self) -> int: ...

    load_tokens: int


W = TypeVar("W", bound=Routable)


class Router(Generic[W]):
    """Picks one of ``workers``. ``prefill`` selects the prefill meaning of load.
    ``reads_request``: whether :meth:`choose_for` looks at the request (else it is
    :meth:`choose`, which callers may call directly)."""

    reads_request = False

    def __init__(
        self, workers: Sequence[W], rng: np.random.Generator, prefill: bool = False
    ) -> None:
        self.workers = list(workers)
        self.rng = rng
        self.prefill = prefill
        #: the pool's shared load list when its workers keep one (see the module docstring)
        self.loads: list[int] | None = _shared_loads(self.workers)

    def choose(self) -> W | None:
        """The worker for the next request; None only for :class:`Central` (hold it)."""
        raise NotImplementedError  # pragma: no cover - interface

    def choose_for(self, r: Request) -> W | None:
        """The worker for request ``r`` (a prefill or co-located pool's arrivals); the
        policies that ignore the request's content choose as :meth:`choose`."""
        return self.choose()


class RoundRobin(Router[W]):
    def __init__(
        self, workers: Sequence[W], rng: np.random.Generator, prefill: bool = False
    ) -> None:
        super().__init__(workers, rng, prefill)
        self._next = 0

    def choose(self) -> W:
        w = self.workers[self._next]
        self._next = (self._next + 1) % len(self.workers)
        return w


class LeastLoaded(Router[W]):
    def choose(self) -> W:
        ws = self.workers
        if len(ws) == 1:
            return ws[0]
        if self.prefill:
            if len(ws) == 2:  # min(ws, key=_tokens) without the calls: ties to the first
                a, b = ws
                return b if b.load_tokens < a.load_tokens else a
            return min(ws, key=_tokens)
        loads = self.loads
        if loads is not None:
            return ws[loads.index(min(loads))]
        return min(ws, key=_load)


class LeastKv(Router[W]):
    def choose(self) -> W:
        ws = self.workers
        if len(ws) == 1:
            return ws[0]
        return min(ws, key=_tokens)


class PowerOfTwo(Router[W]):
    def __init__(
        self, workers: Sequence[W], rng: np.random.Generator, prefill: bool = False
    ) -> None:
        super().__init__(workers, rng, prefill)
        self._buf: list[int] = []

    def choose(self) -> W:
        ws = self.workers
        n = len(ws)
        if n == 1:
            return ws[0]
        if len(self._buf) < 2:
            # Draw in blocks: one Generator call per 512 decisions.
            i = self.rng.integers(0, n, size=512).tolist()
            j = self.rng.integers(0, n - 1, size=512).tolist()
            self._buf = [x for pair in zip(i, j) for x in pair][::-1]
        a = self._buf.pop()
        b = self._buf.pop()
        if b >= a:  # two distinct workers, uniform over pairs
            b += 1
        wa, wb = ws[a], ws[b]
        key = _tokens if self.prefill else _load
        return wb if key(wb) < key(wa) else wa


_load = attrgetter("load")


def _shared_loads(workers: Sequence[object]) -> list[int] | None:
    """The load list ``workers`` share (worker ``i`` at slot ``i``), or None."""
    loads = getattr(workers[0], "loads", None) if workers else None
    if loads is None or len(loads) != len(workers):
        return None
    for i, w in enumerate(workers):
        if getattr(w, "loads", None) is not loads or getattr(w, "slot", -1) != i:
            return None
    return loads


_tokens = attrgetter("load_tokens")

#: A request held by a :class:`Central` router: (request, its prefill worker, KV tokens).
Held = tuple["Request", "PrefillWorker", int]


class Central(Router[W]):
    """``central``: see the module docstring. ``held`` is the pool's FCFS queue of
    :data:`Held` entries, written only through :meth:`hold` and :meth:`release`;
    :meth:`choose` returns ``None`` when every worker holds ``max_num_seqs`` requests (the
    request must then be held)."""

    def __init__(
        self, workers: Sequence[W], rng: np.random.Generator, prefill: bool = False
    ) -> None:
        super().__init__(workers, rng, prefill)
        self.held: deque[Held] = deque()

    def choose(self) -> W | None:
        if self.prefill:
            return min(self.workers, key=_tokens)
        loads = self.loads
        if loads is not None:
            i = loads.index(min(loads))
            w = self.workers[i]
            return w if loads[i] < w.max_num_seqs else None  # type: ignore[attr-defined]
        w = min(self.workers, key=_load)
        return w if w.load < w.max_num_seqs else None  # type: ignore[attr-defined]

    def hold(self, entry: Held) -> None:
        """Queue ``entry`` until a worker of the pool frees a slot."""
        self.held.append(entry)

    def release(self) -> Held:
        """The first held entry (a worker freed a slot); raises IndexError when none is held."""
        return self.held.popleft()


class KvAware(Router[W]):
    """``kv_aware``: the worker with the lowest cost of taking the request, where a worker's
    prefix cache (:mod:`sunsim.engine.prefix_hooks`) lowers the cost by the blocks it
    already holds. NVIDIA Dynamo's KV router cost (``kv_overlap_score_weight`` x blocks to
    prefill + blocks already active on the worker, lowest wins; its default weight 1.0):

        cost(w) = ``overlap_weight`` x (tokens to compute - cached tokens on w)
                  + ``load_tokens(w)``

    (in tokens; Dynamo counts blocks, the same ranking divided by ``block_size``).
    ``load_tokens`` is the router's usual load (queued prompt tokens on a prefill worker,
    assigned prompt tokens on a co-located one). Ties go to the lowest index. Without prefix
    caches (or for a request without hashes) the first term is equal on every worker and the
    policy is ``least_kv``; :meth:`choose` without a request is ``least_kv`` too. SGLang's
    cache-aware router makes the same trade with thresholds (the longest prefix match unless
    the load is imbalanced); the cost form is Dynamo's. O(workers x hash blocks) a decision.
    """

    overlap_weight = 1.0
    reads_request = True

    def choose(self) -> W:
        return min(self.workers, key=_tokens)

    def choose_for(self, r: Request) -> W:
        ws = self.workers
        if len(ws) == 1:
            return ws[0]
        need = r.prompt_tokens + r.num_generated_tokens
        best = ws[0]
        best_cost = float("inf")
        for w in ws:
            pc = getattr(w, "prefix", None)
            cached = pc.lookup(r, need) if pc is not None else 0
            cost = self.overlap_weight * (need - cached) + w.load_tokens
            if cost < best_cost:
                best, best_cost = w, cost
        return best


#: Router registry: policy name -> class.
ROUTERS: dict[str, type[Router]] = {  # type: ignore[type-arg]
    "round_robin": RoundRobin,
    "least_loaded": LeastLoaded,
    "least_kv": LeastKv,
    "power_of_two": PowerOfTwo,
    "central": Central,
    "kv_aware": KvAware,
}


def make_router(
    name: str, workers: Sequence[W], rng: np.random.Generator, prefill: bool = False
) -> Router[W]:
    """Build the router ``name`` over ``workers`` (KeyError-free: names are validated in
    :class:`sunsim.engine.spec.ClusterSpec`)."""
    return ROUTERS[name](workers, rng, prefill=prefill)


#: The routers of the two kinds of pools.
PrefillRouter = Router["PrefillWorker"]
DecodeRouter = Router["DecodeWorker"]
