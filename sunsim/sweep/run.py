""":func:`run_sweep`: look every point up in the result cache, run the missing ones on an
executor, store each result as it arrives, and gather one tidy table.

The executor is any :class:`concurrent.futures.Executor` (``sunsim sweep`` hands in a Dask
client's, :mod:`sunsim.sweep.cluster`); this module does not import dask. Each point's result
is stored in the cache by this process the moment it arrives, so a sweep interrupted at any
time has kept every finished point, and running it again runs only the others.
"""

from __future__ import annotations

import concurrent.futures as cf
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from sunsim.cache import Fingerprints, ResultCache, content_key
from sunsim.sweep.grid import Grid, SweepPoint
from sunsim.sweep.work import run_point

#: Progress callback: ``(kind, info)``; kinds ``start`` (``total``, ``cached``, ``to_run``)
#: and ``done`` (``point``, ``error``, ``wall_s``).
OnSweepEvent = Callable[[str, dict[str, Any]], None]


@dataclass
class SweepResult:
    """What :func:`run_sweep` returns: the ``table`` (one row per point and mode: ``point``,
    the grid's columns, the point's figures, and ``error`` when a point failed), the
    per-point outcomes (``{"rows", "error", "wall_s", ...}`` by point index), the points
    answered from the cache (``cached``) and run (``ran``), the cache keys by point and the
    sweep's wall-clock seconds."""

    grid: Grid
    table: pd.DataFrame
    outcomes: dict[int, dict[str, Any]]
    cached: list[int]
    ran: list[int]
    keys: dict[int, str]
    wall_s: float
    failed: list[int] = field(default_factory=list)


def point_key(grid: Grid, point: SweepPoint, fingerprints: Fingerprints) -> str:
    """The content-addressed key of a point's result (:func:`sunsim.cache.content_key`):
    the kind, the scenario by content (trace and profile bytes), the latency models it
    resolves to (profile files' bytes), and for plans the ``[plan]`` options."""
    from sunsim.planner import plan_options_from_dict

    payload: dict[str, Any] = {
        "scenario": fingerprints.scenario(point.scenario),
        "latency": fingerprints.scenario_latency(point.scenario),
    }
    if grid.kind == "plan":
        payload["plan"] = plan_options_from_dict(grid.plan, source=str(grid.path)).to_dict()
    return content_key(f"sweep-{grid.kind}", payload)


def _table(grid: Grid, outcomes: dict[int, dict[str, Any]]) -> pd.DataFrame:
    rows = []
    for p in grid.points:
        out = outcomes[p.index]
        cols = {"point": p.index, **grid.column_values(p)}
        if out.get("error"):
            rows.append({**cols, "error": out["error"]})
        for r in out.get("rows", []):
            rows.append({**cols, **r})
    return pd.DataFrame(rows)


@dataclass
class Lookup:
    """A grid looked up in the cache (:func:`lookup`): every point's ``keys``, the
    ``outcomes`` found, the points ``cached`` and the points still ``todo`` by key (points
    with one key share one run)."""

    keys: dict[int, str]
    outcomes: dict[int, dict[str, Any]]
    cached: list[int]
    todo: dict[str, list[SweepPoint]]


def lookup(grid: Grid, cache: ResultCache) -> Lookup:
    """Compute every point's key (:func:`point_key`) and look it up in ``cache``. Raises
    :class:`~sunsim.errors.ConfigError` for a trace that cannot be read here."""
    fp = Fingerprints()
    found = Lookup({p.index: point_key(grid, p, fp) for p in grid.points}, {}, [], {})
    for p in grid.points:
        hit = cache.get(found.keys[p.index])
        if hit is not None:
            found.outcomes[p.index] = hit
            found.cached.append(p.index)
        else:
            found.todo.setdefault(found.keys[p.index], []).append(p)
    return found


def run_sweep(
    grid: Grid,
    executor: cf.Executor | None,
    cache: ResultCache,
    on_event: OnSweepEvent | None = None,
    found: Lookup | None = None,
) -> SweepResult:
    """Run ``grid``'s points not in ``cache`` on ``executor`` and gather every point's rows.

    ``found``: the grid's :func:`lookup` if already done (then ``executor`` may be None when
    nothing is left to run). Points with the same key (the same work) run once. Successful
    results are stored in ``cache`` as they arrive; failed points (a
    :class:`~sunsim.errors.SunsimError` where they ran) are reported in the table's ``error``
    column and not cached. Raises what the points raise otherwise (those finished before
    stay cached), and :class:`~sunsim.errors.ConfigError` for a trace unreadable here.
    """
    t0 = time.perf_counter()
    emit = on_event or (lambda kind, info: None)
    found = found if found is not None else lookup(grid, cache)
    outcomes = dict(found.outcomes)
    todo = found.todo
    emit("start", {"total": len(grid.points), "cached": len(found.cached), "to_run": len(todo)})
    if todo and executor is None:
        raise ValueError("run_sweep: points to run but no executor")
    cache_dir = str(cache.root) if cache.root is not None else None
    futures = {
        executor.submit(run_point, grid.kind, pts[0].scenario, grid.plan, cache_dir): key
        for key, pts in todo.items()
        if executor is not None
    }
    ran: list[int] = []
    failed: list[int] = []
    try:
        for f in cf.as_completed(futures):
            key = futures[f]
            out = f.result()
            if not out.get("error"):
                cache.put(key, out)
            for p in todo[key]:
                outcomes[p.index] = out
                (failed if out.get("error") else ran).append(p.index)
            emit("done", {"point": todo[key][0].index, **out})
    except BaseException:
        for f in futures:
            f.cancel()
        raise
    return SweepResult(
        grid,
        _table(grid, outcomes),
        outcomes,
        list(found.cached),
        sorted(ran),
        dict(found.keys),
        time.perf_counter() - t0,
        sorted(failed),
    )
