"""The searches of a design with one shared prefill pool and per-model decode pools
(``prefillshare``, arXiv 2602.12029).

Its pools are coupled: every model's requests queue on the one prefill pool, and with prefix
caching a prompt prefilled for one model is a cache hit for the next model that reads it (the
KV is keyed by content). So, unlike ``partitioned``'s pools, no pool can be sized on its own
model's requests alone:

1. :func:`pooled_prefill` sizes the shared prefill pool on **every** model's requests cut to
   one output token, with the design's prefix cache, to the prefill goal over all requests
   and over each model (the goal per-model pools are held to).
2. :func:`pooled_decode_pools` sizes model ``m``'s decode pool with every model's requests
   simulated behind that prefill pool, the other decode pools held at twice their analytic
   bound (:func:`~sunsim.planner.bounds.decode_start`), and the SLO judged on ``m``'s requests
   alone. A decode pool only receives its own model's requests and sends nothing back to
   the prefill pool except the recomputation of preempted requests, which the generous
   other pools keep rare; so each search sees the prefill queueing the final cluster has.
3. The caller simulates the whole cluster at the chosen counts for the summary.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from sunsim.planner.bounds import decode_start
from sunsim.planner.criteria import meets_prefill_goal, meets_slo
from sunsim.planner.driver import Chain, Spawn
from sunsim.planner.search import PoolSearch

if TYPE_CHECKING:
    from sunsim.planner.points import PointPlanner
    from sunsim.planner.tasks import SimTask

#: The other decode pools' count while one pool is searched: this factor x their bound.
OTHER_POOLS_FACTOR = 2


def pooled_prefill(pp: PointPlanner, mode: str) -> Chain:
    """The shared prefill pool of ``mode``: its worker count, as the one-element tuple a
    :class:`~sunsim.engine.spec.ClusterSpec` of the design takes."""
    served = pp.ctx.served
    one_each = (1,) * len(served)  # outputs are cut to one token: decode is idle

    def make(n: int) -> SimTask:
        return pp.task(mode, (n,), one_each, prefill_only=True)

    goal = partial(meets_prefill_goal, goal=pp.ctx.prefill_goal, models=served)
    search = PoolSearch(f"{mode} shared prefill pool", "prefill", "shared", 1, make, goal,
                        pp.logs[mode])  # fmt: skip
    n, _, _ = yield from pp.search(search)
    return (n,)


def pooled_decode_pools(pp: PointPlanner, mode: str, prefill: tuple[int, ...]) -> Chain:
    """Per served model, the decode pool of ``mode`` behind the shared prefill pool
    ``prefill`` (searched in parallel); returns the counts in served order."""
    from sunsim.planner.points import cluster_of  # the planner's cluster builder

    served = pp.ctx.served
    col = pp.req["model"].astype(str)
    dl = pp.ctx.latency[mode][1]
    bounds = []
    for m in served:
        sub = pp.req[col == m]
        bounds.append(decode_start(sub, cluster_of(pp.ps, mode, prefill, (1,), [m]), dl))
    others = [OTHER_POOLS_FACTOR * b for b in bounds]
    res = yield Spawn(
        [_decode_pool(pp, mode, prefill, j, others, bounds[j]) for j in range(len(served))]
    )
    return tuple(r[0] for r in res)


def _decode_pool(
    pp: PointPlanner,
    mode: str,
    prefill: tuple[int, ...],
    j: int,
    others: list[int],
    start: int,
) -> Chain:
    """Model ``j``'s decode pool: every model's requests simulated, the other pools at
    ``others``, the SLO judged on model ``j``'s requests alone."""
    m = pp.ctx.served[j]
    if pp.counts[m] == 0:
        return (1, None, None)

    def make(n: int) -> SimTask:
        return pp.task(mode, prefill, tuple(others[:j]) + (n,) + tuple(others[j + 1 :]))

    crit = partial(
        meets_slo, slo=pp.ps.slo, kind=pp.ctx.options.slo_kind, models=[m], overall=False
    )
    search = PoolSearch(f"{mode} decode pool {m}", "decode", m, start, make, crit,
                        pp.logs[mode])  # fmt: skip
    return (yield from pp.search(search))
