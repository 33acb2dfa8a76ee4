"""Goodput of a rate sweep (DistServe's definition): per mode, at the scenario's own worker
counts, the highest rate scale whose SLO is met at it and at every lower grid rate, refined by
bisection towards the next grid rate."""

from __future__ import annotations

from typing import Any

import pandas as pd

from sunsim.config import Scenario
from sunsim.engine.spec import ClusterSpec
from sunsim.planner.criteria import goodput_row, meets_slo
from sunsim.planner.driver import Chain, Spawn
from sunsim.planner.options import PlanOptions, scenario_with
from sunsim.planner.tasks import SimTask


def _single(task: SimTask) -> Chain:
    """A chain that evaluates one task and returns its evaluation."""
    ev, _, _ = yield task
    return ev


def _grid_best(rows: list[dict[str, Any]]) -> tuple[float, float | None]:
    """(highest grid rate met with every lower one met, or 0.0; the first failing rate or
    None), over rows sorted by rate."""
    best, nxt = 0.0, None
    for row in rows:
        if not row["met"]:
            nxt = row["rate_scale"]
            break
        best = row["rate_scale"]
    return best, nxt


def goodput_chain(
    s: Scenario,
    mode: str,
    cl: ClusterSpec,
    options: PlanOptions,
    served: list[str],
    native_rate: float,
) -> Chain:
    """Evaluate ``mode`` at the scenario's own worker counts (``cl``) at every grid rate of
    ``options.sweep``, then bisect (``goodput_steps`` times) between the highest rate met (with
    all lower grid rates met) and the next grid rate.

    Rates are rate scales of the trace's frame at scale 1 (``native_rate`` req/s; a
    ``request_rate`` sweep's req/s are divided by it). Returns a frame ``mode``,
    ``rate_scale``, ``request_rate`` (req/s), ``attainment`` (all requests),
    ``min_model_attainment`` (the worst served model's), ``met``, sorted by rate, with attrs
    ``mode``, ``goodput`` (rate scale; 0 when even the lowest rate fails) and ``workers``
    (``{"prefill": [...], "decode": [...]}``, plus ``"colocated"`` for a co-located mode).
    """
    assert options.sweep is not None
    per = native_rate if options.sweep_key == "request_rate" else 1.0
    rates = sorted(set(float(v) / per for v in options.sweep[1]))

    def task_at(r: float) -> SimTask:
        at = scenario_with(s, rate_scale=r, request_rate=None)
        return SimTask("base", 1.0 / r, None, False, cl, at)

    def row_at(r: float, ev: dict[str, Any]) -> dict[str, Any]:
        row = goodput_row(mode, r, ev, meets_slo(ev, s.slo, options.slo_kind, served))
        return {**row, "request_rate": r * native_rate}

    results = yield Spawn([_single(task_at(r)) for r in rates])
    rows = [row_at(r, ev) for r, ev in zip(rates, results)]
    best, nxt = _grid_best(rows)
    if nxt is not None and best > 0:
        lo, hi = best, nxt
        for _ in range(options.goodput_steps):
            mid = (lo + hi) / 2
            ev, _, _ = yield task_at(mid)
            rows.append(row_at(mid, ev))
            lo, hi = (mid, hi) if rows[-1]["met"] else (lo, mid)
        best = lo
    df = pd.DataFrame(rows).sort_values("rate_scale", ignore_index=True)
    df.attrs["mode"] = mode
    df.attrs["goodput"] = best
    df.attrs["workers"] = {"prefill": list(cl.prefill_workers), "decode": list(cl.decode_workers)}
    if cl.colocated_workers:
        df.attrs["workers"]["colocated"] = list(cl.colocated_workers)
    return df


def goodput_frame(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """The modes' goodput frames in one, with ``attrs['goodput']`` and ``attrs['workers']``
    keyed by mode."""
    gp = pd.concat(frames, ignore_index=True)
    gp.attrs["goodput"] = {f.attrs["mode"]: f.attrs["goodput"] for f in frames}
    gp.attrs["workers"] = {f.attrs["mode"]: f.attrs["workers"] for f in frames}
    return gp
