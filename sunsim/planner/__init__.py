"""The capacity planner: the fewest workers per serving mode that meet an SLO, and sweeps.

What it answers: for a trace (at a rate scale), served models and skew, a GPU (and a profile
or the roofline) and an SLO, how many decode workers each mode needs -- ``partitioned``: one
count per model, since its pools are independent; ``sun``/``qsun``: one shared pool -- and how
many prefill workers each model needs; then the GPUs in total (workers x each pool's
``tensor_parallel_size``), the throughput per GPU at that size, and the saving against
``partitioned``.

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
   A design with **one shared prefill pool** (``prefillshare``) sizes its own pool instead, on
   every model's requests (cut to one output token, with the design's content-keyed prefix
   cache when caching is on), to the same goal over all requests and over each model.
2. **Decode.** With the prefill counts fixed: ``partitioned`` sizes each model's pool with only
   that model's requests through a one-model cluster (exact: a model's requests never touch
   another model's prefill workers, links or decode pool); ``sun``/``qsun`` size the one
   shared pool with all requests. ``prefillshare``'s per-model decode pools share the prefill
   pool, so each is sized with every model's requests simulated, the other pools at twice
   their analytic bound, and the SLO judged on its own model's requests
   (:mod:`~sunsim.planner.pooled`). Co-located designs size one pool per model on its own
   requests (``colocated``) or one shared pool on all requests (``lora``, ``icarus``; the
   bounds use ICaRus's paired decode rows, as the engine does).
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

Simulations run on a :class:`concurrent.futures.Executor`: one handed to :func:`plan` (a
process pool, Dask's ``Client.get_executor()``), else a process pool of ``jobs`` processes, or
serially in this process for ``jobs`` = 1 or inside a daemon (pool or Dask worker) process;
each task carries its requests and latency models, no module state is set up in workers.
Independent searches (per-model prefill, per-model partitioned decode, sun, qsun, sweep
points) advance in parallel. Evaluations are cached in the content-addressed
:class:`~sunsim.cache.ResultCache` (keys hash the trace's bytes, the scenario, the profile
files and the sunsim version), in memory and, with ``cache_dir``, on disk, shared with other
plans and with ``sunsim sweep``.

Sweeps (:func:`plan` with ``sweep``): ``request_rate`` (req/s), ``rate_scale`` or ``zipf``
over a list of values give one plan per value (capacity curves: decode workers against load,
throughput per GPU against skew); a sweep over load also gives each mode's **goodput** at the
scenario's own worker counts: the highest rate (of the grid, refined by bisection) whose SLO
is met at it and at every lower grid rate.

Library functions never print; ``on_event`` receives progress.

What the package owns, room by room:

* :mod:`~sunsim.planner.options`: :class:`PlanOptions`, :func:`parse_sweep`, the ``[plan]``
  table, and the one helper through which the planner copies a scenario (:func:`scenario_with`);
* :mod:`~sunsim.planner.criteria`: what a simulation scores (:func:`evaluate`) and the SLO
  criteria (:func:`meets_slo`, :func:`meets_prefill_goal`), goodput rows;
* :mod:`~sunsim.planner.bounds`: the search's analytic start and the up-front feasibility check;
* :mod:`~sunsim.planner.search`: :class:`CountSearch` (galloping + bisection) and
  :class:`PoolSearch` (one pool's search as a chain of simulations);
* :mod:`~sunsim.planner.tasks`: :class:`SimTask`, :func:`run_task`, :func:`task_key`;
  :mod:`~sunsim.planner.driver`: the executor running the chains;
* :mod:`~sunsim.planner.points`: one sweep point's chains of searches
  (:class:`~sunsim.planner.points.PointPlanner`); :mod:`~sunsim.planner.pooled`: those of a
  shared prefill pool with per-model decode pools (``prefillshare``);
  :mod:`~sunsim.planner.goodput`: a rate sweep's goodput; :mod:`~sunsim.planner.planning`:
  :func:`plan`;
* :mod:`~sunsim.planner.results`: :class:`ModePlan`, :class:`PointPlan`, :class:`PlanResult`
  and its table;
* :mod:`~sunsim.planner.ranking`: :func:`plan_gpus`, every design on every GPU type given,
  the cheapest configuration per design that meets the SLO, ranked by $/hour.

Plan directories are written and read by :mod:`sunsim.runs.plan_dir` (:func:`write_plan`,
:func:`read_plan_dir`, ...), re-exported here.
"""

from __future__ import annotations

from sunsim.planner.bounds import check_feasible, decode_start
from sunsim.planner.criteria import evaluate, goodput_row, meets_prefill_goal, meets_slo
from sunsim.planner.driver import Driver, Spawn, in_daemon_process, pick_executor
from sunsim.planner.options import (
    MAX_WORKERS,
    SLO_KINDS,
    SWEEP_KEYS,
    PlanOptions,
    cluster_with,
    parse_sweep,
    plan_options_from_dict,
    scenario_with,
)
from sunsim.planner.planning import plan
from sunsim.planner.ranking import GpuPlans, parse_gpus, plan_gpus
from sunsim.planner.results import ModePlan, PlanResult, PointPlan
from sunsim.planner.search import CountSearch, PoolSearch
from sunsim.planner.tasks import SimTask, run_task, task_key, task_latency, task_requests
from sunsim.runs.plan_dir import (
    PlanDir,
    load_plan_toml,
    plan_summary,
    plan_to_toml_dict,
    read_plan_dir,
    write_plan,
)

# The names of the single-module planner (v0.1), kept for callers and tests.
_meets = meets_slo
_prefill_meets = meets_prefill_goal

__all__ = [
    "MAX_WORKERS",
    "SLO_KINDS",
    "SWEEP_KEYS",
    "CountSearch",
    "Driver",
    "GpuPlans",
    "ModePlan",
    "PlanDir",
    "PlanOptions",
    "PlanResult",
    "PointPlan",
    "PoolSearch",
    "SimTask",
    "Spawn",
    "check_feasible",
    "cluster_with",
    "decode_start",
    "evaluate",
    "goodput_row",
    "in_daemon_process",
    "load_plan_toml",
    "meets_prefill_goal",
    "meets_slo",
    "parse_gpus",
    "parse_sweep",
    "plan",
    "plan_gpus",
    "plan_options_from_dict",
    "plan_summary",
    "pick_executor",
    "plan_to_toml_dict",
    "read_plan_dir",
    "run_task",
    "scenario_with",
    "task_key",
    "task_latency",
    "task_requests",
    "write_plan",
]
