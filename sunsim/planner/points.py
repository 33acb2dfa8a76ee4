"""The plan at one sweep point: the chains of searches (prefill per model, then per mode the
decode pools and the final simulation) as the methods of :class:`PointPlanner`.

A design with one shared prefill pool (``prefillshare``) sizes that pool itself, on every
model's requests with its own prefix cache (a prompt prefilled for one model is a hit for the
next), instead of taking the per-model prefill pools; its per-model decode pools are then
sized on the whole workload (:mod:`sunsim.planner.pooled`)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

import pandas as pd

from sunsim.config import Scenario
from sunsim.engine.designs import PoolScope, get_design
from sunsim.engine.spec import ClusterSpec
from sunsim.metrics import summarize
from sunsim.planner.bounds import decode_start
from sunsim.planner.criteria import meets_prefill_goal, meets_slo
from sunsim.planner.driver import Chain, OnEvent, Spawn
from sunsim.planner.options import PlanOptions, cluster_with
from sunsim.planner.pooled import pooled_decode_pools, pooled_prefill
from sunsim.planner.results import ModePlan, PointPlan
from sunsim.planner.search import PoolSearch, SearchResult
from sunsim.planner.tasks import SimTask, task_requests

#: A search's answer for a pool without requests: one worker, nothing simulated.
_NO_REQUESTS: SearchResult = (1, None, None)


@dataclass
class PlanContext:
    """What the searches of every point share: the options, the served models, the prefill
    goal (TTFT-only attainment), per mode the (prefill, decode) latency models, the labelled
    workloads by key, the progress callback and the index of the reference point."""

    options: PlanOptions
    served: list[str]
    prefill_goal: float
    latency: dict[str, tuple[Any, Any]]
    workloads: dict[str, pd.DataFrame]
    on_event: OnEvent | None
    reference: int


def cluster_of(
    ps: Scenario,
    mode: str,
    prefill: tuple[int, ...],
    decode: tuple[int, ...],
    models: list[str] | None = None,
) -> ClusterSpec:
    """The cluster of ``mode`` for scenario ``ps`` with these worker counts, serving
    ``models`` (None: all of ``ps.served_models``)."""
    base = ps.cluster(mode, [1.0] * len(ps.served_models))
    ms = tuple(models) if models is not None else ps.served_models
    if base.design.colocated:  # ``decode``: its co-located workers per pool
        return cluster_with(base, served_models=ms, colocated_workers=decode)
    return cluster_with(base, served_models=ms, prefill_workers=prefill, decode_workers=decode)


def scaled_info(info: dict[str, Any], factor: float) -> dict[str, Any]:
    """Trace info of a workload whose arrival times were multiplied by ``factor``."""
    if factor == 1.0:
        return info
    out = dict(info)
    if out.get("span_s") is not None:
        out["span_s"] = out["span_s"] * factor
    if out.get("mean_rate") is not None:
        out["mean_rate"] = out["mean_rate"] / factor
    return out


class PointPlanner:
    """The searches of sweep point ``index`` (scenario ``ps``; requests: workload ``wkey`` with
    arrival times multiplied by ``factor``; ``workload``: its :class:`~sunsim.replay.Workload`
    for trace info and labelling). :meth:`chain` is the driver chain returning the
    :class:`~sunsim.planner.results.PointPlan`."""

    def __init__(
        self, ctx: PlanContext, index: int, ps: Scenario, wkey: str, factor: float, workload: Any
    ) -> None:
        self.ctx = ctx
        self.index = index
        self.ps = ps
        self.wkey = wkey
        self.factor = factor
        self.workload = workload
        all_req = SimTask(wkey, factor, None, False, ps.cluster(ps.modes[0]), ps)
        self.req = task_requests(all_req, ctx.workloads)
        col = self.req["model"].astype(str)
        self.counts = {m: int((col == m).sum()) for m in ctx.served}
        self.prefill_log: list[dict[str, Any]] = []
        self.logs: dict[str, list[dict[str, Any]]] = {m: [] for m in ps.modes}
        self.prefill: tuple[int, ...] = ()

    def chain(self) -> Chain:
        """Prefill pools per model (shared by the modes that have them), then each mode's
        plan."""
        served = self.ctx.served
        per_model = [
            not d.colocated and d.prefill.scope is PoolScope.PER_MODEL
            for d in map(get_design, self.ps.modes)
        ]
        if not any(per_model):
            pres = []  # no mode has per-model prefill pools
        else:
            pres = yield Spawn([self._prefill_pool(m) for m in served])
        self.prefill = tuple(r[0] for r in pres)
        mps = yield Spawn([self._mode(m) for m in self.ps.modes])
        return PointPlan(
            self.ps,
            self._sweep_value(),
            scaled_info(self.workload.info, self.factor),
            dict(self.counts),
            self.workload.labelling,
            {mp.mode: mp for mp in mps},
            rate_scale=1.0 / self.factor if self.ctx.options.rate_sweep else None,
        )

    def _sweep_value(self) -> float | None:
        key = self.ctx.options.sweep_key
        return None if key is None else getattr(self.ps, key)

    def task(
        self,
        mode: str,
        prefill: tuple[int, ...],
        decode: tuple[int, ...],
        model: str | None = None,
        prefill_only: bool = False,
        final: bool = False,
    ) -> SimTask:
        """The simulation of ``mode`` at these counts (``model``: that model's requests and
        pools alone; ``final``: keep its SimResult and simulate even if cached)."""
        cl = cluster_of(self.ps, mode, prefill, decode, None if model is None else [model])
        return SimTask(
            self.wkey, self.factor, model, prefill_only, cl, self.ps, keep=final, fresh=final
        )

    def search(self, search: PoolSearch) -> Chain:
        return search.chain(self.ctx.options.max_workers, self.ctx.on_event)

    # --- prefill ---------------------------------------------------------------------------

    def _prefill_task(self, m: str, n: int) -> SimTask:
        return self.task("partitioned", (n,), (1,), m, prefill_only=True)

    def _prefill_pool(self, m: str) -> Chain:
        """Model ``m``'s prefill pool, sized on its requests cut to one output token."""
        if self.counts[m] == 0:
            return _NO_REQUESTS
        goal = partial(meets_prefill_goal, goal=self.ctx.prefill_goal)
        search = PoolSearch(
            f"prefill {m}", "prefill", m, 1, partial(self._prefill_task, m), goal, self.prefill_log
        )
        return (yield from self.search(search))

    # --- decode ----------------------------------------------------------------------------

    def _partitioned_task(self, j: int, m: str, n: int) -> SimTask:
        return self.task("partitioned", (self.prefill[j],), (n,), m)

    def _partitioned_pool(self, j: int, m: str) -> Chain:
        """Model ``m``'s (index ``j``) partitioned decode pool, on its requests alone."""
        if self.counts[m] == 0:
            return _NO_REQUESTS
        sub = self.req[self.req["model"].astype(str) == m]
        cl1 = cluster_of(self.ps, "partitioned", (self.prefill[j],), (1,), [m])
        start = decode_start(sub, cl1, self.ctx.latency["partitioned"][1])
        crit = partial(meets_slo, slo=self.ps.slo, kind=self.ctx.options.slo_kind, models=[m])
        search = PoolSearch(
            f"partitioned decode pool {m}",
            "decode",
            m,
            start,
            partial(self._partitioned_task, j, m),
            crit,
            self.logs["partitioned"],
        )
        return (yield from self.search(search))

    def _shared_task(self, mode: str, prefill: tuple[int, ...], n: int) -> SimTask:
        return self.task(mode, prefill, (n,))

    def _shared_pool(self, mode: str, prefill: tuple[int, ...]) -> Chain:
        """The one shared decode pool of ``mode`` (sun, qsun), on all requests, behind the
        prefill pools ``prefill``."""
        cl1 = cluster_of(self.ps, mode, prefill, (1,))
        start = decode_start(self.req, cl1, self.ctx.latency[mode][1])
        crit = partial(
            meets_slo, slo=self.ps.slo, kind=self.ctx.options.slo_kind, models=self.ctx.served
        )
        search = PoolSearch(
            f"{mode} shared decode pool",
            "decode",
            "shared",
            start,
            partial(self._shared_task, mode, prefill),
            crit,
            self.logs[mode],
            keep_passing=True,
        )
        return (yield from self.search(search))

    def _mode(self, mode: str) -> Chain:
        """``mode``'s prefill pools (the per-model ones, or its own shared pool), its decode
        pools, then its final full simulation at the chosen counts (the shared pool's last
        passing run when it was simulated, not cached)."""
        final = None
        design = get_design(mode)
        if design.colocated:
            return (yield from self._colocated(mode))
        pooled = design.prefill.scope is PoolScope.SHARED
        prefill = (yield from pooled_prefill(self, mode)) if pooled else self.prefill
        if design.shares_decode:
            n, final, _ = yield from self._shared_pool(mode, prefill)
            decode: tuple[int, ...] = (n,)
        elif pooled:
            decode = yield from pooled_decode_pools(self, mode, prefill)
        else:
            pools = [self._partitioned_pool(j, m) for j, m in enumerate(self.ctx.served)]
            res = yield Spawn(pools)
            decode = tuple(r[0] for r in res)
        if final is None:
            _, final, _ = yield self.task(mode, prefill, decode, final=True)
        summary = summarize(final, self.ps.slo)
        evaluations = ([] if pooled else self.prefill_log) + self.logs[mode]
        kept = final if self.index == self.ctx.reference else None
        return ModePlan(mode, prefill, decode, summary, evaluations, kept)

    # --- co-located --------------------------------------------------------------------------

    def _colocated_pool(self, mode: str, m: str | None) -> Chain:
        """Co-located pool of model ``m`` (its requests alone: a model's requests touch only
        its pool), or, for ``m`` None, the one shared pool on all requests; the search
        starts from the decode bound (:func:`decode_start`: a co-located worker also
        prefills, so it stays a lower bound)."""
        if m is not None and self.counts[m] == 0:
            return _NO_REQUESTS
        ms = [m] if m is not None else self.ctx.served
        sub = self.req if m is None else self.req[self.req["model"].astype(str) == m]
        cl1 = cluster_of(self.ps, mode, (), (1,), None if m is None else [m])
        start = decode_start(sub, cl1, self.ctx.latency[mode][1])
        crit = partial(meets_slo, slo=self.ps.slo, kind=self.ctx.options.slo_kind, models=ms)
        search = PoolSearch(
            f"{mode} pool {m or 'shared'}",
            "colocated",
            m or "shared",
            start,
            lambda n: self.task(mode, (), (n,), m),
            crit,
            self.logs[mode],
            keep_passing=m is None,
        )
        return (yield from self.search(search))

    def _colocated(self, mode: str) -> Chain:
        """A co-located mode: one count per pool (per model, searched in parallel, or the
        shared pool), then its final full simulation at those counts."""
        if get_design(mode).shares_decode:
            n, final, _ = yield from self._colocated_pool(mode, None)
            counts: tuple[int, ...] = (n,)
        else:
            res = yield Spawn([self._colocated_pool(mode, m) for m in self.ctx.served])
            counts, final = tuple(r[0] for r in res), None
        if final is None:
            _, final, _ = yield self.task(mode, (), counts, final=True)
        summary = summarize(final, self.ps.slo)
        kept = final if self.index == self.ctx.reference else None
        return ModePlan(
            mode, (), (), summary, list(self.logs[mode]), kept, colocated_workers=counts
        )
