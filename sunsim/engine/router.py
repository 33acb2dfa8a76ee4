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
* ``central`` (decode): one FCFS queue per pool, an idealised pull-based global scheduler. A
  request goes to the least-loaded worker holding fewer than ``max_num_seqs`` requests; when
  every worker holds ``max_num_seqs``, it waits in the pool's queue (its KV stays on the
  prefill worker; the transfer starts when it is dispatched) and goes, in order, to the next
  worker that frees a slot (a request finishing or being preempted). With ``max_num_seqs = 1``
  the pool is the c-server FCFS queue of M/M/c. The other policies commit a request to one
  worker's queue when its prefill ends, so a request can wait behind a long one while another
  worker idles. For prefill, ``central`` is ``least_loaded``.

Cost is O(workers in the pool) per routing decision (pools hold tens of workers).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from operator import attrgetter
from typing import Protocol

import numpy as np


class Routable(Protocol):
    load: int
    load_tokens: int


class Router:
    """Picks one of ``workers``. ``prefill`` selects the prefill meaning of load."""

    def __init__(
        self, workers: Sequence[Routable], rng: np.random.Generator, prefill: bool = False
    ) -> None:
        self.workers = list(workers)
        self.rng = rng
        self.prefill = prefill

    def choose(self) -> Routable:  # pragma: no cover - interface
        raise NotImplementedError


class RoundRobin(Router):
    def __init__(self, *a, **kw) -> None:
        super().__init__(*a, **kw)
        self._next = 0

    def choose(self) -> Routable:
        w = self.workers[self._next]
        self._next = (self._next + 1) % len(self.workers)
        return w


class LeastLoaded(Router):
    def choose(self) -> Routable:
        ws = self.workers
        if len(ws) == 1:
            return ws[0]
        if self.prefill:
            return min(ws, key=_tokens)
        return min(ws, key=_load)


class LeastKv(Router):
    def choose(self) -> Routable:
        ws = self.workers
        if len(ws) == 1:
            return ws[0]
        return min(ws, key=_tokens)


class PowerOfTwo(Router):
    def __init__(self, *a, **kw) -> None:
        super().__init__(*a, **kw)
        self._buf: list[int] = []

    def choose(self) -> Routable:
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
_tokens = attrgetter("load_tokens")


class Central(Router):
    """``central``: see the module docstring. ``held`` is the pool's FCFS queue of
    ``(request, prefill worker, KV tokens)``; :meth:`choose` returns ``None`` when every
    worker holds ``max_num_seqs`` requests (the request must then be held)."""

    def __init__(self, *a, **kw) -> None:
        super().__init__(*a, **kw)
        self.held: deque = deque()

    def choose(self):
        if self.prefill:
            return min(self.workers, key=_tokens)
        w = min(self.workers, key=_load)
        return w if w.load < w.max_num_seqs else None


#: Router registry: policy name -> class.
ROUTERS: dict[str, type[Router]] = {
    "round_robin": RoundRobin,
    "least_loaded": LeastLoaded,
    "least_kv": LeastKv,
    "power_of_two": PowerOfTwo,
    "central": Central,
}


def make_router(
    name: str, workers: Sequence[Routable], rng: np.random.Generator, prefill: bool = False
) -> Router:
    """Build the router ``name`` over ``workers`` (KeyError-free: names are validated in
    :class:`sunsim.config.ClusterSpec`)."""
    return ROUTERS[name](workers, rng, prefill=prefill)
