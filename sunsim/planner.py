"""Capacity planner: the fewest workers per serving mode that meet an SLO, and sweeps.

What it answers: for a trace (at a rate scale), served models and skew, a GPU (and a profile
or the roofline) and an SLO, how many decode workers each mode needs -- ``partitioned``: one
count per model, since its pools are independent; ``sun``/``qsun``: one shared pool -- and how
many prefill workers each model needs; then the GPUs in total, the throughput per GPU at that
size, and the saving against ``partitioned``.

When the SLO is met (``slo_kind``; ``t`` = ``Scenario.slo_attainment``, default 0.9):

* ``attainment`` (default): **every served model's** SLO attainment
  (:func:`sunsim.metrics.slo_attainment` over its requests: finished, TTFT <= ``slo_ttft_s``
  and TPOT <= ``slo_tpot_s``; rejected requests miss) is >= ``t`` -- and therefore the
  attainment over all requests too.
* ``percentile``: for every served model, the ``t``-quantile (p90 for ``t`` = 0.9) of TTFT is
  <= ``slo_ttft_s`` and, separately, the ``t``-quantile of TPOT (over requests with more than
  one output token) is <= ``slo_tpot_s``; rejected requests count as infinitely slow.

Per model in every mode, so that ``partitioned`` (whose pools can only be sized per model) and
the shared pool are held to the same bar.

The procedure (documented in ``experiments/sun_claims/README.md`` too):

1. **Prefill, per model, shared by all modes.** Prefill is per model in every mode and TTFT
   (``first_token_at - arrived_at``) depends only on the model's prefill workers as long as no
   decode worker preempts (a preempted request is recomputed on prefill). So each model's
   prefill pool is sized on its own requests with the output cut to one token (the request
   ends at its first token: no decode at all, which makes the simulation cheap and the TTFT
   exact for a decode pool that never preempts). The criterion is TTFT-only attainment >=
   ``prefill_target`` (default ``(1 + t) / 2``, 0.95 for ``t`` = 0.9: half the miss budget is
   left to decode).
2. **Decode.** With the prefill counts fixed: ``partitioned`` sizes each model's pool with only
   that model's requests through a one-model cluster (exact: a model's requests never touch
   another model's prefill workers, links or decode pool); ``sun``/``qsun`` size the one
   shared pool with all requests.
3. **Search.** Each count is found by galloping (``s, 2s, 4s, ...`` from a start ``s``, an
   analytic lower bound: output tokens per second over what one worker decodes at its largest
   batch that fits the KV cache) until the SLO is met, then bisection between the last failing
   and first passing count; if the start already passes, halving towards 1 then bisection. The
   result ``n`` passed and ``n - 1`` failed (or ``n`` = 1). Attainment is assumed monotone in
   the worker count (``tests/test_planner.py`` checks it on small scenarios).
4. **Final.** Each mode is simulated once more in full at the chosen counts (its records,
   summary and utilisation are the plan's figures: attainment, throughput per GPU, p90s).

Rejections: the simulator rejects a request only when it can never be served by any one
worker (prompt + output longer than the model's context, or a context larger than one decode
worker's KV cache); more workers cannot fix those, so they simply count as misses in the
attainment (a target they alone make unreachable ends in the "stays at" error below).

Limits: a search stops with :class:`~sunsim.errors.ConfigError` (one line saying what limits)
when ``max_workers`` (default 4096) workers per pool do not meet the SLO, when three
doublings in a row past 64 workers did not raise the attainment (more workers cannot help),
or up front when the SLO is below what one GPU can do for a request alone: the TTFT bound below
the standalone prefill time, or the TPOT bound below the single-request decode step time, of
more requests than the miss budget allows.

Simulations run in a :class:`concurrent.futures.ProcessPoolExecutor` (``jobs`` processes; the
labelled requests are handed to each process once, by its initializer); independent searches
(per-model prefill, per-model partitioned decode, sun, qsun, sweep points) advance in parallel.
Results are cached per (scenario, workload, cluster, seed) key, in memory and optionally in a
JSON file, so re-planning in the same directory reuses them.

Sweeps (:func:`plan` with ``sweep``): ``rate_scale`` or ``zipf`` over a list of values give one
plan per value (capacity curves: decode workers against load, throughput per GPU against skew);
a rate sweep also gives each mode's **goodput** at the scenario's own worker counts: the highest
rate scale (of the grid, refined by bisection) whose SLO is met at it and at every lower grid
rate.

Library functions never print; ``on_event`` receives progress.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import datetime as _dt
import hashlib
import json
import math
import os
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import tomli_w

from sunsim import __version__
from sunsim.config import Scenario, scenario_to_toml_dict
from sunsim.engine.cluster import SimResult, kv_capacity_blocks, simulate
from sunsim.engine.spec import ClusterSpec
from sunsim.errors import ConfigError
from sunsim.metrics import slo_met, summarize
from sunsim.specs import SloSpec

SLO_KINDS = ("attainment", "percentile")
SWEEP_KEYS = ("rate_scale", "zipf")
#: Largest worker count a search tries per pool (prefill or decode) before it gives up.
MAX_WORKERS = 4096


@dataclass(frozen=True)
class PlanOptions:
    """How :func:`plan` searches.

    ``slo_kind``: ``attainment`` or ``percentile`` (module docstring). ``prefill_target``:
    TTFT-only attainment the prefill pools must reach (None: ``(1 + t) / 2``).
    ``max_workers``: search cap per pool. ``jobs``: worker processes (None: ``os.cpu_count()``;
    1: simulate in this process). ``sweep``: ``("rate_scale" | "zipf", values)``.
    ``goodput_steps``: bisection steps refining each mode's goodput between grid rates.
    ``cache_file``: JSON file of cached evaluations to read and extend (None: memory only).
    """

    slo_kind: str = "attainment"
    prefill_target: float | None = None
    max_workers: int = MAX_WORKERS
    jobs: int | None = None
    sweep: tuple[str, tuple[float, ...]] | None = None
    goodput_steps: int = 3
    cache_file: str | None = None

    def __post_init__(self) -> None:
        if self.slo_kind not in SLO_KINDS:
            raise ConfigError(f"--slo-kind must be attainment or percentile, got '{self.slo_kind}'")
        if self.prefill_target is not None and not (0 < self.prefill_target <= 1):
            raise ConfigError(f"--prefill-target must be in (0, 1], got {self.prefill_target}")
        if self.max_workers < 1:
            raise ConfigError(f"--max-workers must be >= 1, got {self.max_workers}")
        if self.jobs is not None and self.jobs < 1:
            raise ConfigError(f"--jobs must be >= 1, got {self.jobs}")
        if self.sweep is not None:
            key, values = self.sweep
            if key not in SWEEP_KEYS:
                raise ConfigError(f"--sweep: unknown key '{key}'; sweep rate=... or zipf=...")
            if not values:
                raise ConfigError("--sweep: no values")
            if key == "rate_scale" and min(values) <= 0:
                raise ConfigError("--sweep rate=...: rate scales must be > 0")
            if key == "zipf" and min(values) < 0:
                raise ConfigError("--sweep zipf=...: Zipf alphas must be >= 0")
        if self.goodput_steps < 0:
            raise ConfigError("goodput_steps must be >= 0")

    def prefill_goal(self, slo: SloSpec) -> float:
        return self.prefill_target if self.prefill_target is not None else (1 + slo.attainment) / 2

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "slo_kind": self.slo_kind,
            "max_workers": self.max_workers,
            "goodput_steps": self.goodput_steps,
        }
        if self.prefill_target is not None:
            d["prefill_target"] = self.prefill_target
        if self.sweep is not None:
            d["sweep"] = {"key": self.sweep[0], "values": list(self.sweep[1])}
        return d


def parse_sweep(text: str) -> tuple[str, tuple[float, ...]]:
    """``rate=1,2,4`` / ``rate_scale=...`` / ``zipf=0,0.5,1`` -> (key, values).

    Raises :class:`ConfigError` for anything else.
    """
    if "=" not in text:
        raise ConfigError(f"--sweep: '{text}' is not KEY=V1,V2,... (e.g. rate=1,2,4 or zipf=0,1,2)")
    key, vals = text.split("=", 1)
    key = {"rate": "rate_scale", "rate_scale": "rate_scale", "zipf": "zipf"}.get(key.strip())
    if key is None:
        raise ConfigError(f"--sweep: unknown key in '{text}'; sweep rate=... or zipf=...")
    try:
        values = tuple(float(v) for v in vals.split(",") if v.strip())
    except ValueError:
        raise ConfigError(f"--sweep: cannot read the values of '{text}' as numbers") from None
    if not values:
        raise ConfigError(f"--sweep: no values in '{text}'")
    return key, values


# --- evaluation of one simulation --------------------------------------------------------


def evaluate(records: pd.DataFrame, slo: SloSpec, models: Iterable[str]) -> dict[str, Any]:
    """The numbers the planner's criteria need from one run's records.

    Returns a JSON-ready dict: ``n``; ``attainment`` (joint, as
    :func:`sunsim.metrics.slo_attainment`), ``ttft_attainment``, ``tpot_attainment`` (one bound
    alone; requests without a TPOT meet the TPOT bound), ``ttft_q_s``, ``tpot_q_s`` (the
    ``slo.attainment``-quantile, seconds, rejected requests as +inf; None when infinite or no
    requests), ``rejected``, ``preemptions``; and the same per model under ``per_model``.
    """
    out = _eval_group(records, slo)
    out["per_model"] = {}
    col = records["model"].astype(str)
    for m in models:
        out["per_model"][m] = _eval_group(records[col == m], slo)
    return out


def _eval_group(rec: pd.DataFrame, slo: SloSpec) -> dict[str, Any]:
    n = len(rec)
    if n == 0:
        return {
            "n": 0,
            "attainment": 1.0,
            "ttft_attainment": 1.0,
            "tpot_attainment": 1.0,
            "ttft_q_s": 0.0,
            "tpot_q_s": 0.0,
            "rejected": 0,
            "preemptions": 0,
        }
    fin = (rec["status"] == "finished").to_numpy()
    ttft = np.where(fin, rec["ttft_s"].to_numpy(dtype=float), np.inf)
    tpot_raw = rec["tpot_s"].to_numpy(dtype=float)
    has_tpot = rec["output_tokens"].to_numpy() > 1
    tpot = np.where(fin, tpot_raw, np.inf)[has_tpot]
    ok_tpot = ~has_tpot | (np.where(fin, tpot_raw, np.inf) <= slo.tpot_s)
    q = slo.attainment * 100

    def quant(x: np.ndarray) -> float | None:
        if len(x) == 0:
            return 0.0
        v = (
            float(np.percentile(x, q, method="linear"))
            if np.isfinite(x).all()
            else float(np.percentile(np.where(np.isfinite(x), x, 1e300), q))
        )
        return v if v < 1e299 else None

    return {
        "n": int(n),
        "attainment": float(slo_met(rec, slo).mean()),
        "ttft_attainment": float((ttft <= slo.ttft_s).mean()),
        "tpot_attainment": float((fin & ok_tpot).mean()),
        "ttft_q_s": quant(ttft),
        "tpot_q_s": quant(tpot),
        "rejected": int((~fin).sum()),
        "preemptions": int(rec["num_preemptions"].sum()),
    }


def _meets(ev: dict[str, Any], slo: SloSpec, kind: str, models: Iterable[str]) -> bool:
    """Decode criterion: every model (and all requests) meet the SLO (module docstring)."""
    groups = [ev] + [ev["per_model"][m] for m in models if m in ev["per_model"]]
    for g in groups:
        if g["n"] == 0:
            continue
        if kind == "attainment":
            if g["attainment"] < slo.attainment - 1e-12:
                return False
        else:
            if g["ttft_q_s"] is None or g["tpot_q_s"] is None:
                return False
            if g["ttft_q_s"] > slo.ttft_s or g["tpot_q_s"] > slo.tpot_s:
                return False
    return True


def _prefill_meets(ev: dict[str, Any], goal: float) -> bool:
    return ev["n"] == 0 or ev["ttft_attainment"] >= goal - 1e-12


# --- worker processes --------------------------------------------------------------------


@dataclass(frozen=True)
class SimTask:
    """One simulation: ``workload`` key (requests handed to the process pool once), a time
    factor applied to ``arrival_s`` (rate scale relative to the workload's), a model filter
    (None: all requests), ``prefill_only`` (outputs cut to one token), the cluster, the
    scenario whose latency settings and SLO apply, whether to return the
    :class:`SimResult` (``keep``; else only the evaluation) and whether to simulate even when
    the evaluation is cached (``fresh``)."""

    workload: str
    time_factor: float
    model: str | None
    prefill_only: bool
    cluster: ClusterSpec
    scenario: Scenario
    keep: bool = False
    fresh: bool = False


_WORKLOADS: dict[str, pd.DataFrame] = {}
_LATENCY: dict[tuple, Any] = {}


def _init_worker(workloads: dict[str, pd.DataFrame]) -> None:
    """Process-pool initializer: keep the labelled requests for the process's lifetime."""
    _WORKLOADS.clear()
    _WORKLOADS.update(workloads)


def _latency_models(s: Scenario, decode_precision: str):
    from sunsim.replay import resolve_latency

    out = []
    for precision, role in (("bf16", "prefill"), (decode_precision, "decode")):
        key = (s.base_model, s.gpu, s.latency, s.profile, precision, role)
        if key not in _LATENCY:
            _LATENCY[key] = resolve_latency(s, precision, role)
        out.append(_LATENCY[key])
    return out


def task_requests(task: SimTask, workloads: dict[str, pd.DataFrame] | None = None) -> pd.DataFrame:
    """The requests a task simulates (filtered, rescaled, cut to one output token)."""
    req = (workloads or _WORKLOADS)[task.workload]
    if task.model is not None:
        req = req[req["model"].astype(str) == task.model]
    if task.time_factor != 1.0:
        req = req.assign(arrival_s=req["arrival_s"] * task.time_factor)
    if task.prefill_only:
        req = req.assign(output_tokens=1)
    return req


def run_task(task: SimTask) -> tuple[dict[str, Any], SimResult | None]:
    """Simulate one task in this process (the pool's work function)."""
    req = task_requests(task)
    (pl, _), (dl, _) = _latency_models(task.scenario, task.cluster.decode_precision)
    res = simulate(req, task.cluster, pl, dl, seed=task.scenario.seed)
    ev = evaluate(res.records, task.scenario.slo, task.cluster.served_models)
    ev["wall_s"] = res.wall_s
    ev["method"] = res.method
    return ev, (res if task.keep else None)


# --- the search -------------------------------------------------------------------------


class CountSearch:
    """Galloping then bisection for the smallest count meeting a monotone criterion.

    ``propose()`` gives the next count to evaluate (None when done); ``update(n, met,
    progress)`` records its outcome; ``progress`` is a number that grows as the SLO is
    approached (the attainment), used to stop when more workers no longer help. After
    ``propose()`` returns None, ``answer`` holds the count (``n`` met, ``n - 1`` did not or is
    0) or ``failure`` says why there is none.
    """

    def __init__(self, start: int, cap: int, what: str) -> None:
        self.start = max(1, min(int(start), cap))
        self.cap = cap
        self.what = what
        self.lo = 0  # largest count known to fail (0: none)
        self.hi: int | None = None  # smallest count known to pass
        self.seen: dict[int, tuple[bool, float]] = {}
        self.fail_progress: list[tuple[int, float]] = []
        self.failure: str | None = None

    @property
    def answer(self) -> int | None:
        return self.hi if self.failure is None else None

    def propose(self) -> int | None:
        if self.failure is not None:
            return None
        if self.hi is None:
            if not self.seen:
                return self.start
            if self.lo >= self.cap:
                best = max(p for _, p in self.fail_progress)
                self.failure = (
                    f"{self.what}: {self.cap} workers do not meet the SLO (best "
                    f"attainment {best:.1%}); the search stops at --max-workers "
                    f"{self.cap}"
                )
                return None
            if self._stuck():
                n, p = self.fail_progress[-1]
                self.failure = (
                    f"{self.what}: attainment stays at {p:.1%} from "
                    f"{self.fail_progress[-4][0]} to {n} workers; more workers "
                    f"cannot meet the SLO"
                )
                return None
            return min(2 * self.lo, self.cap)
        if self.hi - self.lo <= 1:
            return None
        return (self.lo + self.hi) // 2

    def _stuck(self) -> bool:
        fp = self.fail_progress
        if len(fp) < 4 or fp[-1][0] < 64:
            return False
        last = [p for _, p in fp[-4:]]
        return max(last) - min(last) <= 1e-9

    def update(self, n: int, met: bool, progress: float) -> None:
        self.seen[n] = (met, progress)
        if met:
            self.hi = n if self.hi is None else min(self.hi, n)
        else:
            self.lo = max(self.lo, n)
            self.fail_progress.append((n, progress))


# --- a tiny scheduler: generators yield tasks or spawn sub-generators --------------------


@dataclass
class _Spawn:
    children: list


class _Driver:
    """Runs generator "chains" that ``yield SimTask`` (and receive ``(eval, SimResult|None,
    cached)``) or ``yield _Spawn([...])`` (and receive the children's return values, in order)
    with at most ``jobs`` simulations in flight."""

    def __init__(
        self,
        workloads: dict[str, pd.DataFrame],
        jobs: int,
        cache: dict[str, Any],
        on_event: Callable[[str, dict], None] | None,
    ) -> None:
        self.workloads = workloads
        self.jobs = jobs
        self.cache = cache
        self.on_event = on_event
        self.num_sims = 0
        self.num_cached = 0
        self.sim_wall_s = 0.0
        self.log: list[dict[str, Any]] = []

    def _emit(self, kind: str, **info: Any) -> None:
        if self.on_event is not None:
            self.on_event(kind, info)

    def run(self, roots: list[Generator]) -> list[Any]:
        pool = (
            cf.ProcessPoolExecutor(
                max_workers=self.jobs, initializer=_init_worker, initargs=(self.workloads,)
            )
            if self.jobs > 1
            else None
        )
        if pool is None:
            _init_worker(self.workloads)
        results: list[Any] = [None] * len(roots)
        parents: dict[int, list] = {}  # id(child) -> [parent, index, slot list, counter]
        ready: deque = deque()
        futures: dict[cf.Future, tuple[Generator, str, SimTask]] = {}
        pending_local: deque = deque()

        for i, g in enumerate(roots):
            parents[id(g)] = [None, i, results, None]
            ready.append((g, None))
        try:
            while ready or futures or pending_local:
                while ready:
                    g, value = ready.popleft()
                    try:
                        y = g.send(value)
                    except StopIteration as stop:
                        parent, idx, slots, counter = parents.pop(id(g))
                        slots[idx] = stop.value
                        if parent is not None:
                            counter[0] -= 1
                            if counter[0] == 0:
                                ready.append((parent, slots))
                        continue
                    if isinstance(y, _Spawn):
                        if not y.children:
                            ready.append((g, []))
                            continue
                        slots = [None] * len(y.children)
                        counter = [len(y.children)]
                        for j, c in enumerate(y.children):
                            parents[id(c)] = [g, j, slots, counter]
                            ready.append((c, None))
                        continue
                    task: SimTask = y
                    key = task_key(task)
                    hit = self.cache.get(key)
                    if hit is not None and not task.fresh:
                        self.num_cached += 1
                        ready.append((g, (hit, None, True)))
                        continue
                    self._emit("submit", task=_describe(task))
                    if pool is None:
                        pending_local.append((g, key, task))
                    else:
                        futures[pool.submit(run_task, task)] = (g, key, task)
                if pending_local:
                    g, key, task = pending_local.popleft()
                    ev, res = run_task(task)
                    self._done(key, task, ev)
                    ready.append((g, (ev, res, False)))
                    continue
                if futures:
                    done, _ = cf.wait(list(futures), return_when=cf.FIRST_COMPLETED)
                    for f in done:
                        g, key, task = futures.pop(f)
                        ev, res = f.result()
                        self._done(key, task, ev)
                        ready.append((g, (ev, res, False)))
        except BaseException:
            if pool is not None:
                for f in futures:
                    f.cancel()
                pool.shutdown(wait=False, cancel_futures=True)
                pool = None
            raise
        finally:
            if pool is not None:
                pool.shutdown(wait=True)
        return results

    def _done(self, key: str, task: SimTask, ev: dict[str, Any]) -> None:
        self.num_sims += 1
        self.sim_wall_s += ev.get("wall_s", 0.0)
        self.cache[key] = ev
        self._emit(
            "done", task=_describe(task), wall_s=ev.get("wall_s", 0.0), attainment=ev["attainment"]
        )


def _describe(task: SimTask) -> str:
    cl = task.cluster
    what = "prefill" if task.prefill_only else cl.design.name
    pool = f" {task.model}" if task.model else ""
    return (
        f"{what}{pool} x{task.time_factor:g}: prefill {','.join(map(str, cl.prefill_workers))}"
        f" decode {','.join(map(str, cl.decode_workers))}"
    )


def task_key(task: SimTask) -> str:
    """Cache key of a task: a hash of everything its evaluation depends on."""
    s = task.scenario
    d = scenario_to_toml_dict(s)
    d["cluster"].pop("prefill_workers", None)
    d["cluster"].pop("decode_workers", None)
    d["cluster"].pop("modes", None)
    trace = s.trace
    stamp = None
    if trace:
        try:
            st = os.stat(trace)
            stamp = (st.st_size, int(st.st_mtime))
        except OSError:
            stamp = None
    payload = json.dumps(
        {
            "scenario": d,
            "trace_stamp": stamp,
            "workload": task.workload,
            "factor": task.time_factor,
            "model": task.model,
            "prefill_only": task.prefill_only,
            "cluster": dataclasses.asdict(task.cluster),
            "v": __version__,
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha1(payload.encode()).hexdigest()


# --- results -----------------------------------------------------------------------------


@dataclass
class ModePlan:
    """One mode's plan at one sweep point.

    ``prefill_workers``: per served model; ``decode_workers``: per pool (partitioned: per
    model; sun/qsun: one); ``summary``: :func:`sunsim.metrics.summarize` of the full simulation
    at these counts; ``evaluations``: rows ``phase`` (prefill/decode/final), ``pool``,
    ``workers``, ``met``, ``attainment``, ``ttft_q_s``, ``tpot_q_s``, ``wall_s``, ``cached``;
    ``result``: the final :class:`SimResult` (kept for the reference point only).
    """

    mode: str
    prefill_workers: tuple[int, ...]
    decode_workers: tuple[int, ...]
    summary: dict[str, Any]
    evaluations: list[dict[str, Any]] = field(default_factory=list)
    result: SimResult | None = None

    @property
    def num_gpus(self) -> int:
        return sum(self.prefill_workers) + sum(self.decode_workers)


@dataclass
class PointPlan:
    """The plan at one sweep value (or the only plan): its scenario, workload facts, and one
    :class:`ModePlan` per mode."""

    scenario: Scenario
    sweep_value: float | None
    workload_info: dict[str, Any]
    model_counts: dict[str, int]
    labelling: str
    modes: dict[str, ModePlan]


@dataclass
class PlanResult:
    """What :func:`plan` returns.

    ``points``: one :class:`PointPlan` per sweep value (one without a sweep); ``reference``:
    index of the point whose final simulations are kept (the scenario's own value if swept,
    else the last); ``goodput``: rate sweeps only, frame ``mode``, ``rate_scale``,
    ``attainment``, ``min_model_attainment``, ``met`` (every rate evaluated at the scenario's worker counts) with
    ``attrs['goodput']`` = {mode: highest rate scale met}.
    """

    scenario: Scenario
    options: PlanOptions
    points: list[PointPlan]
    reference: int
    goodput: pd.DataFrame | None
    latency_notes: list[str]
    wall_s: float
    num_simulations: int
    num_cached: int
    sim_wall_s: float
    jobs: int

    def table(self, point: int | None = None) -> pd.DataFrame:
        """One row per (sweep point, mode).

        Columns: ``sweep_key``/``sweep_value`` (sweeps only), ``mode``, ``decode_workers``
        (per pool, comma-joined), ``num_decode_gpus``, ``prefill_workers`` (per model),
        ``num_prefill_gpus``, ``num_gpus``, ``slo_attainment``, ``ttft_s_p90``, ``tpot_s_p50``,
        ``tpot_s_p90`` (seconds), ``throughput_tok_s``, ``throughput_per_gpu``,
        ``throughput_per_decode_gpu`` (output tokens/s over the measured window, first arrival
        to last finish, as :func:`sunsim.metrics.summarize`), ``load_tok_s_per_gpu`` (the
        trace's output tokens over its arrival span, per GPU: the load each GPU carries at the
        planned size; identical offered load in every mode, so its ratio between modes is the
        inverse ratio of their GPUs), ``gpus_saved_vs_partitioned``,
        ``saving_pct_vs_partitioned``, ``throughput_per_gpu_vs_partitioned`` (ratio),
        ``tpot_p50_vs_partitioned_pct`` (TPOT p50 change, percent), ``preemptions``,
        ``rejected``, ``method``.
        """
        pts = self.points if point is None else [self.points[point]]
        rows = []
        for pp in pts:
            base = pp.modes.get("partitioned")
            for mode, mp in pp.modes.items():
                s = mp.summary
                tput = s["throughput"]["output_tokens_per_s"]
                row: dict[str, Any] = {}
                if self.options.sweep is not None:
                    row["sweep_key"] = self.options.sweep[0]
                    row["sweep_value"] = pp.sweep_value
                row.update(
                    {
                        "mode": mode,
                        "decode_workers": ",".join(map(str, mp.decode_workers)),
                        "num_decode_gpus": sum(mp.decode_workers),
                        "prefill_workers": ",".join(map(str, mp.prefill_workers)),
                        "num_prefill_gpus": sum(mp.prefill_workers),
                        "num_gpus": mp.num_gpus,
                        "slo_attainment": s["slo"]["attainment"],
                        "ttft_s_p90": s["latency_s"]["ttft_s_p90"],
                        "tpot_s_p50": s["latency_s"]["tpot_s_p50"],
                        "tpot_s_p90": s["latency_s"]["tpot_s_p90"],
                        "throughput_tok_s": tput,
                        "throughput_per_gpu": tput / mp.num_gpus,
                        "throughput_per_decode_gpu": tput / sum(mp.decode_workers),
                        "load_tok_s_per_gpu": _load_tok_s(pp) / mp.num_gpus,
                    }
                )
                if base is not None:
                    bs = base.summary
                    btp = bs["throughput"]["output_tokens_per_s"] / base.num_gpus
                    row["gpus_saved_vs_partitioned"] = base.num_gpus - mp.num_gpus
                    row["saving_pct_vs_partitioned"] = (
                        100.0 * (base.num_gpus - mp.num_gpus) / base.num_gpus
                    )
                    row["throughput_per_gpu_vs_partitioned"] = row["throughput_per_gpu"] / btp
                    row["tpot_p50_vs_partitioned_pct"] = 100.0 * (
                        s["latency_s"]["tpot_s_p50"] / bs["latency_s"]["tpot_s_p50"] - 1
                    )
                row["preemptions"] = s["requests"]["preemptions"]
                row["rejected"] = s["requests"]["rejected"]
                row["method"] = s["method"]
                rows.append(row)
        return pd.DataFrame(rows)


# --- analytic helpers ----------------------------------------------------------------------


def decode_start(req: pd.DataFrame, cluster: ClusterSpec, decode_latency: Any) -> int:
    """An analytic lower bound on decode workers, the search's first count.

    Output tokens per second over the trace's span, divided by what one worker decodes at the
    largest batch that fits (``min(max_num_seqs, KV capacity / mean context)``, mean context
    = prompt + half the output), at that batch's step time.
    """
    if len(req) < 2:
        return 1
    span = float(req["arrival_s"].iloc[-1] - req["arrival_s"].iloc[0])
    if span <= 0:
        return 1
    out = req["output_tokens"].to_numpy(dtype=float)
    ctx = float(np.mean(req["prompt_tokens"].to_numpy(dtype=float) + out / 2))
    cap_tokens = kv_capacity_blocks(cluster, decode_latency) * cluster.block_size
    b = int(max(1, min(cluster.max_num_seqs, cap_tokens // max(ctx, 1.0))))
    per_worker = b / decode_latency.decode_step_time(b, int(b * ctx))
    return max(1, int(math.ceil(out.sum() / span / per_worker)))


def check_feasible(
    req: pd.DataFrame,
    s: Scenario,
    mode: str,
    kind: str,
    prefill_goal: float,
    prefill_latency: Any,
    decode_latency: Any,
) -> None:
    """Raise :class:`ConfigError` when no number of workers can meet the SLO for ``mode``:
    more requests than the miss budget allow have a standalone prefill time above the TTFT
    bound, or a single-request decode step above the TPOT bound."""
    slo = s.slo
    if len(req) == 0:
        return
    p = req["prompt_tokens"].to_numpy()
    o = req["output_tokens"].to_numpy()
    uniq = np.unique(p)
    pt = {int(x): prefill_latency.prefill_time([int(x)]) for x in uniq}
    t_pre = np.array([pt[int(x)] for x in p])
    ok_ttft = t_pre <= slo.ttft_s
    need_ttft = prefill_goal if kind == "attainment" else slo.attainment
    if ok_ttft.mean() < need_ttft - 1e-12:
        i = int(np.argmax(~ok_ttft))
        raise ConfigError(
            f"TTFT SLO {slo.ttft_s} s is below the prefill time alone of {(~ok_ttft).mean():.1%} "
            f"of the requests (a {int(p[i])}-token prompt takes {t_pre[i]:.3f} s on {s.gpu} "
            f"with {prefill_latency.method} step times); no number of prefill workers can reach "
            f"{need_ttft:.1%}: raise --slo-ttft or lower --slo-attainment"
        )
    has = o > 1
    if not has.any():
        return
    ctx = np.unique(p[has] + o[has] // 2)
    st = {int(c): decode_latency.decode_step_time(1, int(c)) for c in ctx}
    t_dec = np.array([st[int(c)] for c in p[has] + o[has] // 2])
    ok = np.ones(len(req), dtype=bool)
    ok[np.flatnonzero(has)] = t_dec <= slo.tpot_s
    need = slo.attainment
    if ok.mean() < need - 1e-12:
        raise ConfigError(
            f"TPOT SLO {slo.tpot_s * 1e3:.2f} ms is below the single-request decode step time "
            f"({min(st.values()) * 1e3:.2f} ms or more, {mode}, {decode_latency.method} step "
            f"times on {s.gpu}) for {(~ok).mean():.1%} of the requests; no number of decode "
            f"workers can reach {need:.1%}: raise --slo-tpot or lower --slo-attainment"
        )


# --- plan -------------------------------------------------------------------------------


def _point_scenarios(s: Scenario, options: PlanOptions) -> list[tuple[float | None, Scenario]]:
    if options.sweep is None:
        return [(None, s)]
    key, values = options.sweep
    return [(v, dataclasses.replace(s, **{key: float(v)})) for v in values]


def _reference_index(s: Scenario, options: PlanOptions, n: int) -> int:
    if options.sweep is None:
        return 0
    key, values = options.sweep
    own = getattr(s, key)
    for i, v in enumerate(values):
        if own is not None and abs(float(v) - float(own)) < 1e-12:
            return i
    return n - 1


def plan(
    s: Scenario,
    options: PlanOptions = PlanOptions(),
    *,
    on_event: Callable[[str, dict], None] | None = None,
) -> PlanResult:
    """Find, for each mode of ``s`` (and each sweep value), the fewest workers meeting the SLO.

    Args:
        s: the scenario (trace, rate scale, models and labelling, GPU, latency source, SLO,
            seed; its ``prefill_workers``/``decode_workers`` are used only for goodput).
        options: see :class:`PlanOptions`.
        on_event: called with ``("submit" | "done", info)`` per simulation, ``("phase",
            {...})`` as searches finish.

    Returns:
        a :class:`PlanResult`.

    Raises:
        ConfigError: bad options, an SLO no number of workers can meet (message says what
            limits), or the errors of :func:`sunsim.replay.load_workload`.
        TraceError: an unreadable trace.
    """
    from sunsim.replay import load_workload, resolve_latency

    t0 = time.perf_counter()
    jobs = options.jobs or os.cpu_count() or 1
    slo = s.slo
    goal = options.prefill_goal(slo)
    points = _point_scenarios(s, options)
    ref = _reference_index(s, options, len(points))

    # workloads: one labelled frame per distinct labelling; rate points share one (rate scale is
    # applied last by the reader and labelling does not depend on arrival times, so a rate
    # point's requests are the base frame with arrival_s / (its scale / the base scale)).
    workloads: dict[str, pd.DataFrame] = {}
    wl_meta: list[tuple[str, float, Any]] = []
    if options.sweep is not None and options.sweep[0] == "rate_scale":
        base = load_workload(s)
        workloads["base"] = base.requests
        for v, ps in points:
            wl_meta.append(("base", s.rate_scale / ps.rate_scale, base))
    else:
        for i, (v, ps) in enumerate(points):
            w = load_workload(ps)
            workloads[f"p{i}"] = w.requests
            wl_meta.append((f"p{i}", 1.0, w))

    notes: list[str] = []
    lat: dict[str, tuple[Any, Any]] = {}
    for mode in s.modes:
        cl = s.cluster(mode, [1.0] * len(s.served_models))
        pl, pnote = resolve_latency(s, "bf16", "prefill")
        dl, dnote = resolve_latency(s, cl.decode_precision, "decode")
        lat[mode] = (pl, dl)
        for n in (pnote, dnote):
            if n not in notes:
                notes.append(n)

    # up-front feasibility, per point and mode
    for (key, factor, w), (v, ps) in zip(wl_meta, points):
        for mode in s.modes:
            check_feasible(w.requests, ps, mode, options.slo_kind, goal, *lat[mode])

    cache: dict[str, Any] = {}
    if options.cache_file and Path(options.cache_file).exists():
        try:
            cache.update(json.loads(Path(options.cache_file).read_text()))
        except (OSError, ValueError):
            cache = {}
    driver = _Driver(workloads, jobs, cache, on_event)
    served = list(s.served_models)
    cap = options.max_workers

    def cluster_of(
        ps: Scenario,
        mode: str,
        prefill: tuple[int, ...],
        decode: tuple[int, ...],
        models: list[str] | None = None,
    ) -> ClusterSpec:
        base_cl = ps.cluster(mode, [1.0] * len(ps.served_models))
        ms = tuple(models) if models is not None else ps.served_models
        return dataclasses.replace(
            base_cl, served_models=ms, prefill_workers=prefill, decode_workers=decode
        )

    def search_chain(
        make_task: Callable[[int], SimTask],
        start: int,
        what: str,
        crit: Callable[[dict], bool],
        log: list,
        phase: str,
        pool: str,
        keep_passing: bool = False,
    ):
        srch = CountSearch(start, cap, what)
        best: tuple[int, SimResult | None, dict] | None = None
        while (n := srch.propose()) is not None:
            task = make_task(n)
            if keep_passing:
                task = dataclasses.replace(task, keep=True)
            ev, res, cached = yield task
            met = crit(ev)
            srch.update(n, met, ev["attainment"] if phase == "decode" else ev["ttft_attainment"])
            log.append(
                {
                    "phase": phase,
                    "pool": pool,
                    "workers": n,
                    "met": met,
                    "attainment": ev["attainment"],
                    "ttft_attainment": ev["ttft_attainment"],
                    "ttft_q_s": ev["ttft_q_s"],
                    "tpot_q_s": ev["tpot_q_s"],
                    "wall_s": ev.get("wall_s", 0.0),
                    "cached": cached,
                }
            )
            if met and (best is None or n <= best[0]):
                best = (n, res, ev)
        if srch.answer is None:
            raise ConfigError(srch.failure or f"{what}: no count meets the SLO")
        assert best is not None and best[0] == srch.answer
        if on_event:
            on_event("phase", {"what": what, "workers": srch.answer})
        return best

    def point_chain(i: int, ps: Scenario, wkey: str, factor: float, w: Any):
        req = task_requests(
            SimTask(wkey, factor, None, False, s.cluster(s.modes[0]), ps), workloads
        )
        logs: dict[str, list] = {m: [] for m in ps.modes}
        plog: list = []
        # 1. prefill per model
        counts = {m: int((req["model"].astype(str) == m).sum()) for m in served}

        def prefill_chain(m: str):
            if counts[m] == 0:
                return (1, None, None)
            mk = lambda n: SimTask(
                wkey,
                factor,
                m,
                True,  # noqa: E731
                cluster_of(ps, "partitioned", (n,), (1,), [m]),
                ps,
            )
            return (
                yield from search_chain(
                    mk, 1, f"prefill {m}", lambda ev: _prefill_meets(ev, goal), plog, "prefill", m
                )
            )

        pres = yield _Spawn([prefill_chain(m) for m in served])
        prefill = tuple(r[0] for r in pres)

        # 2. decode per mode
        def part_pool(j: int, m: str):
            if counts[m] == 0:
                return (1, None, None)
            sub = req[req["model"].astype(str) == m]
            cl1 = cluster_of(ps, "partitioned", (prefill[j],), (1,), [m])
            start = decode_start(sub, cl1, lat["partitioned"][1])
            mk = lambda n: SimTask(
                wkey,
                factor,
                m,
                False,  # noqa: E731
                cluster_of(ps, "partitioned", (prefill[j],), (n,), [m]),
                ps,
            )
            return (
                yield from search_chain(
                    mk,
                    start,
                    f"partitioned decode pool {m}",
                    lambda ev: _meets(ev, slo_of(ps), options.slo_kind, [m]),
                    logs["partitioned"],
                    "decode",
                    m,
                )
            )

        def shared(mode: str):
            cl1 = cluster_of(ps, mode, prefill, (1,))
            start = decode_start(req, cl1, lat[mode][1])
            mk = lambda n: SimTask(
                wkey,
                factor,
                None,
                False,  # noqa: E731
                cluster_of(ps, mode, prefill, (n,)),
                ps,
            )
            return (
                yield from search_chain(
                    mk,
                    start,
                    f"{mode} shared decode pool",
                    lambda ev: _meets(ev, slo_of(ps), options.slo_kind, served),
                    logs[mode],
                    "decode",
                    "shared",
                    keep_passing=True,
                )
            )

        def mode_chain(mode: str):
            if mode == "partitioned":
                res = yield _Spawn([part_pool(j, m) for j, m in enumerate(served)])
                decode = tuple(r[0] for r in res)
                final = None
            else:
                n, final, _ = yield from shared(mode)
                decode = (n,)
            if final is None:
                ev, final, cached = yield SimTask(
                    wkey,
                    factor,
                    None,
                    False,
                    cluster_of(ps, mode, prefill, decode),
                    ps,
                    keep=True,
                    fresh=True,
                )
            summ = summarize(final, ps.slo)
            evs = plog + logs[mode]
            return ModePlan(mode, prefill, decode, summ, evs, final if i == ref else None)

        mps = yield _Spawn([mode_chain(m) for m in ps.modes])
        return PointPlan(
            ps,
            ps.rate_scale
            if options.sweep and options.sweep[0] == "rate_scale"
            else (ps.zipf if options.sweep else None),
            _scaled_info(w.info, factor),
            _counts(req, served),
            w.labelling,
            {mp.mode: mp for mp in mps},
        )

    def slo_of(ps: Scenario) -> SloSpec:
        return ps.slo

    roots = [point_chain(i, ps, *wl_meta[i][:2], wl_meta[i][2]) for i, (v, ps) in enumerate(points)]
    goodput_chains = []
    if options.sweep is not None and options.sweep[0] == "rate_scale":
        base_req = workloads["base"]
        out_tok = [
            float(base_req.loc[base_req["model"].astype(str) == m, "output_tokens"].sum())
            for m in served
        ]
        goodput_chains = [
            _goodput_chain(s, mode, s.cluster(mode, out_tok), options, served) for mode in s.modes
        ]
    out = driver.run(roots + goodput_chains)
    pps: list[PointPlan] = out[: len(roots)]
    gp = None
    if goodput_chains:
        frames = list(out[len(roots) :])
        gp = pd.concat(frames, ignore_index=True)
        gp.attrs["goodput"] = {f.attrs["mode"]: f.attrs["goodput"] for f in frames}
        gp.attrs["workers"] = {f.attrs["mode"]: f.attrs["workers"] for f in frames}
    if options.cache_file:
        try:
            Path(options.cache_file).parent.mkdir(parents=True, exist_ok=True)
            Path(options.cache_file).write_text(json.dumps(cache))
        except OSError:
            pass
    return PlanResult(
        s,
        options,
        pps,
        ref,
        gp,
        notes,
        time.perf_counter() - t0,
        driver.num_sims,
        driver.num_cached,
        driver.sim_wall_s,
        jobs,
    )


def _scaled_info(info: dict[str, Any], factor: float) -> dict[str, Any]:
    """Trace info of a workload whose arrival times were multiplied by ``factor``."""
    if factor == 1.0:
        return info
    out = dict(info)
    if out.get("span_s") is not None:
        out["span_s"] = out["span_s"] * factor
    if out.get("mean_rate") is not None:
        out["mean_rate"] = out["mean_rate"] / factor
    return out


def _load_tok_s(pp: PointPlan) -> float:
    info = pp.workload_info
    span = float(info.get("span_s") or 0.0)
    tokens = float(info.get("output_tokens", {}).get("mean", float("nan"))) * float(
        info.get("num_requests") or 0
    )
    return tokens / span if span > 0 else float("nan")


def _counts(req: pd.DataFrame, served: list[str]) -> dict[str, int]:
    col = req["model"].astype(str)
    return {m: int((col == m).sum()) for m in served}


def _goodput_chain(
    s: Scenario, mode: str, cl: ClusterSpec, options: PlanOptions, served: list[str]
):
    """Evaluate ``mode`` at the scenario's own worker counts (``cl``) at every grid rate, then
    bisect (``goodput_steps`` times) between the highest rate met (with all lower grid rates
    met) and the next grid rate. Returns a frame ``mode``, ``rate_scale``, ``attainment``
    (all requests), ``min_model_attainment`` (the worst served model's), ``met`` with attrs ``mode``, ``goodput`` (rate scale; 0 when even the lowest rate fails)
    and ``workers``."""
    rates = sorted(set(float(v) for v in options.sweep[1]))  # type: ignore[index]

    def task_at(r: float) -> SimTask:
        return SimTask(
            "base", s.rate_scale / r, None, False, cl, dataclasses.replace(s, rate_scale=r)
        )

    results = yield _Spawn([_single(task_at(r)) for r in rates])
    rows = []
    all_met = True
    best = 0.0
    nxt = None
    for r, ev in zip(rates, results):
        ok = _meets(ev, s.slo, options.slo_kind, served)
        rows.append(_goodput_row(mode, r, ev, ok))
        if ok and all_met:
            best = r
        elif all_met:
            all_met = False
            nxt = r
    if nxt is not None and best > 0:
        lo, hi = best, nxt
        for _ in range(options.goodput_steps):
            mid = (lo + hi) / 2
            ev, _, _ = yield task_at(mid)
            ok = _meets(ev, s.slo, options.slo_kind, served)
            rows.append(_goodput_row(mode, mid, ev, ok))
            lo, hi = (mid, hi) if ok else (lo, mid)
        best = lo
    df = pd.DataFrame(rows).sort_values("rate_scale", ignore_index=True)
    df.attrs["mode"] = mode
    df.attrs["goodput"] = best
    df.attrs["workers"] = {"prefill": list(cl.prefill_workers), "decode": list(cl.decode_workers)}
    return df


def _goodput_row(mode: str, rate: float, ev: dict[str, Any], ok: bool) -> dict[str, Any]:
    per = [g["attainment"] for g in ev["per_model"].values() if g["n"]]
    return {
        "mode": mode,
        "rate_scale": rate,
        "attainment": ev["attainment"],
        "min_model_attainment": min(per) if per else ev["attainment"],
        "met": ok,
    }


def _single(task: SimTask):
    ev, _, _ = yield task
    return ev


# --- writing a plan directory -------------------------------------------------------------


def plan_to_toml_dict(r: PlanResult) -> dict[str, Any]:
    """The plan's scenario as TOML tables plus a ``[plan]`` table of its options (what
    ``sunsim plan --scenario DIR/scenario.toml`` reads back)."""
    from sunsim.replay import DEFAULT_TRACE

    d: dict[str, Any] = scenario_to_toml_dict(r.scenario)
    if r.scenario.trace is None:
        d["trace"]["path"] = str(DEFAULT_TRACE)
    d["plan"] = r.options.to_dict()
    return d


def plan_options_from_dict(
    d: dict[str, Any], source: str = "plan", base: PlanOptions | None = None
) -> PlanOptions:
    """Build :class:`PlanOptions` from a ``[plan]`` table; raises :class:`ConfigError` for
    unknown keys or bad values."""
    known = {"slo_kind", "prefill_target", "max_workers", "goodput_steps", "sweep", "jobs"}
    changes: dict[str, Any] = {}
    for k, v in d.items():
        if k not in known:
            raise ConfigError(
                f"{source}: unknown key '{k}' in [plan]; known: {', '.join(sorted(known))}"
            )
        if k == "sweep":
            if not isinstance(v, dict) or "key" not in v or "values" not in v:
                raise ConfigError(f"{source}: [plan] sweep must be {{key = ..., values = [...]}}")
            v = (str(v["key"]), tuple(float(x) for x in v["values"]))
        changes[k] = v
    try:
        return dataclasses.replace(base or PlanOptions(), **changes)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{source}: bad [plan] value: {e}") from None


def load_plan_toml(path: Path) -> tuple[Scenario, PlanOptions]:
    """Read a scenario TOML with an optional ``[plan]`` table (what :func:`write_plan` writes
    as ``scenario.toml``). Raises :class:`ConfigError` for a missing file, bad TOML, unknown
    sections or keys, or bad values."""
    import tomllib

    from sunsim.config import scenario_from_toml_dict

    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: no such scenario file")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    ptable = data.pop("plan", {})
    return (
        scenario_from_toml_dict(data, source=str(path)),
        plan_options_from_dict(ptable, source=str(path)),
    )


def plan_summary(r: PlanResult) -> dict[str, Any]:
    """The plan as a JSON-ready dict (what ``plan.json`` holds, less command and date)."""
    from sunsim.serialize import jsonable

    pts = []
    for pp in r.points:
        modes = {}
        for mode, mp in pp.modes.items():
            modes[mode] = {
                "prefill_workers": list(mp.prefill_workers),
                "decode_workers": list(mp.decode_workers),
                "num_gpus": mp.num_gpus,
                "summary": mp.summary,
                "evaluations": mp.evaluations,
            }
        pts.append(
            {
                "sweep_value": pp.sweep_value,
                "trace": pp.workload_info,
                "model_counts": pp.model_counts,
                "labelling": pp.labelling,
                "rate_scale": pp.scenario.rate_scale,
                "zipf": pp.scenario.zipf,
                "modes": modes,
            }
        )
    methods = sorted({mp.summary["method"] for pp in r.points for mp in pp.modes.values()})
    out = {
        "sunsim_version": __version__,
        "kind": "plan",
        "options": r.options.to_dict(),
        "slo": {
            "ttft_s": r.scenario.slo_ttft_s,
            "tpot_s": r.scenario.slo_tpot_s,
            "attainment": r.scenario.slo_attainment,
            "kind": r.options.slo_kind,
            "prefill_target": r.options.prefill_goal(r.scenario.slo),
        },
        "method": methods[0] if len(methods) == 1 else ",".join(methods),
        "latency_sources": r.latency_notes,
        "seed": r.scenario.seed,
        "reference_point": r.reference,
        "table": r.table(r.reference).to_dict(orient="records"),
        "points": pts,
        "stats": {
            "wall_s": r.wall_s,
            "simulations": r.num_simulations,
            "cached": r.num_cached,
            "simulation_wall_s": r.sim_wall_s,
            "jobs": r.jobs,
        },
    }
    if r.goodput is not None:
        out["goodput"] = {
            "rate_scale": r.goodput.attrs.get("goodput", {}),
            "workers": r.goodput.attrs.get("workers", {}),
            "evaluations": r.goodput.to_dict(orient="records"),
        }
    return jsonable(out)


def write_plan(
    r: PlanResult,
    out: Path,
    command: str | None = None,
    replays: bool = True,
    records_format: str = "parquet",
) -> list[Path]:
    """Write a plan directory; returns the files written.

    Files: ``scenario.toml`` (scenario + ``[plan]`` options: ``sunsim plan --scenario
    DIR/scenario.toml`` repeats the plan), ``plan.json`` (:func:`plan_summary` + command and
    date), ``plan.csv`` (:meth:`PlanResult.table` at the reference point, one row per mode),
    ``evaluations.csv`` (every simulation the searches ran: ``sweep_value``, ``mode``,
    ``phase``, ``pool``, ``workers``, ``met``, ``attainment``, ...), for sweeps ``sweep.csv``
    (all points) and, for rate sweeps, ``goodput.csv``; with ``replays``, ``replay_<mode>/``:
    each mode's final simulation at the reference point as a replay run directory
    (:func:`sunsim.replay.write_run`; its ``scenario.toml`` repeats it with ``sunsim replay``).
    """
    from sunsim.replay import ReplayResult, Workload, write_run

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = []
    p = out / "scenario.toml"
    p.write_text(
        f"# sunsim plan scenario; repeat with: sunsim plan --scenario {p}\n"
        + tomli_w.dumps(plan_to_toml_dict(r))
    )
    files.append(p)
    summ = plan_summary(r)
    summ["command"] = command
    summ["created"] = _dt.datetime.now().isoformat(timespec="seconds")
    p = out / "plan.json"
    p.write_text(json.dumps(summ, indent=2))
    files.append(p)
    p = out / "plan.csv"
    r.table(r.reference).to_csv(p, index=False)
    files.append(p)
    rows = []
    for pp in r.points:
        for mode, mp in pp.modes.items():
            for e in mp.evaluations:
                if e["phase"] == "prefill" and mode != next(iter(pp.modes)):
                    continue  # prefill searches are shared by the modes: list them once
                rows.append(
                    {
                        "sweep_value": pp.sweep_value,
                        "mode": "all" if e["phase"] == "prefill" else mode,
                        **e,
                    }
                )
    p = out / "evaluations.csv"
    pd.DataFrame(rows).to_csv(p, index=False)
    files.append(p)
    if r.options.sweep is not None:
        p = out / "sweep.csv"
        r.table().to_csv(p, index=False)
        files.append(p)
    if r.goodput is not None:
        p = out / "goodput.csv"
        g = r.goodput.copy()
        g["goodput_rate_scale"] = g["mode"].map(r.goodput.attrs.get("goodput", {}))
        g.to_csv(p, index=False)
        files.append(p)
    if replays:
        pp = r.points[r.reference]
        for mode, mp in pp.modes.items():
            if mp.result is None:
                continue
            ms = dataclasses.replace(
                pp.scenario,
                modes=(mode,),
                prefill_workers=mp.prefill_workers,
                decode_workers=mp.decode_workers,
            )
            wl = Workload(pd.DataFrame(), pp.workload_info, pp.model_counts, pp.labelling)
            rr = ReplayResult(ms, wl, {mode: mp.result}, {mode: mp.summary}, r.latency_notes)
            files += write_run(
                rr,
                out / f"replay_{mode}",
                records_format,
                command=(command or "sunsim plan") + f"  [final {mode} simulation]",
            )
    return files
