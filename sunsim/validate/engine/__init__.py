"""Real-execution check of the simulator: ``sunsim validate engine``.

It runs a small real disaggregated engine (:mod:`sunsim.validate.real_engine`: a prefill worker
process and a decode worker process built from the profiling harness's modules, continuous
batching over a paged KV cache with the simulator's admission and preemption rules, the KV
cache handed from one process to the other), replays a slice of a trace through it, then
simulates the same slice with :func:`sunsim.engine.cluster.simulate` on a cluster that
mirrors the engine, and compares request by request.

Steps (:func:`run_engine_check`):

1. Read the first ``num_requests`` requests of the trace, multiply the request rate by
   ``rate_scale`` (arrival times divided by it, ``read_trace(rate_scale=...)``), and scale the
   lengths to fit the device: ``prompt = clip(round(prompt x prompt_scale), 1, max_prompt)``,
   the same for outputs.
2. Start the two worker processes (same weights, ``threads`` torch threads each); each warms
   up (on a CPU: compiles oneDNN's kernel for every matmul shape the run can meet), then
   **profiles its own kernel** -- the engine's decode step over a grid of batch sizes x context
   tokens, the engine's packed prefill over batch sizes x prompt tokens -- under the conditions
   it meets in the replay: the prefill kernel while the decode process keeps decoding a
   typical batch, each timed prefill after an idle spell as long as the slice's mean time
   between arrivals (at most 0.5 s); the decode kernel back to back while the prefill process
   prefills a typical prompt once per such spell. Pass 1.
3. **Link calibration**: the prefill process hands KV of several sizes to the decode process
   (copy into the shared staging tensor + a notice); ``latency + bytes / bandwidth`` is fitted
   to the measured handoff times (least squares, non-negative) and becomes the
   simulation's :class:`~sunsim.config.LinkSpec`.
4. **Replay**: requests are released at their arrival times; per request the engine records
   arrival, prefill start, first token, KV sent/received, decode start, finish, preemptions; per
   decode iteration: batch size, total context tokens, wall and CPU step time, the time spent
   at the iteration boundary; per prefill batch its lengths, wall and CPU time.
5. Profile pass 2 (same grid), pooled with pass 1 (median, p10, p90 and mean over all repeats,
   and the median thread CPU time) and written in the profile format (``prefill.csv``,
   ``decode.csv``, ``meta.json`` with ``method = "measured"``), loaded with
   :meth:`ProfiledLatency.from_dir`.
6. **Simulate** the slice on a one-model cluster with 1 prefill and 1 decode worker, the same
   ``max_num_seqs``, prefill token budget, KV block size and capacity in blocks (the GPU
   memory accounting is set so that :func:`~sunsim.engine.cluster.kv_capacity_blocks`
   gives exactly the engine's blocks), and the fitted link -- once with the profile's per-point
   means (default primary: TTFT and TPOT are sums of steps, which follow the mean) and once
   with its medians.
7. **Compare**: per request the relative error ``simulated / measured - 1`` of TTFT, TPOT and
   E2E latency (ARCHITECTURE.md definitions); per decode iteration the profile's prediction
   ``decode_step_time(batch, total context)`` against the measured step time, and per prefill
   batch ``prefill_time(lengths)`` against its measured time; both also in thread CPU time
   (a profile fitted to the CPU-time medians), which leaves out the time other processes held
   the core: on a shared machine it separates the step model's error from the load. The CPU
   use of other processes is measured in every phase (profile passes, replay).

Outputs (:func:`write_engine_check`): ``comparison.csv``, ``iterations.csv``,
``prefill_batches.csv``, ``engine_records.csv``, ``sim_records.csv``, ``link.csv``,
``summary.json``, ``measured_vs_simulated.png``, the profile under ``profile/``, and
``engine_raw.json`` (every measurement; :func:`load_engine_raw` + :func:`analyze_engine_check`
re-simulate a measured run).

Goal (issue 5): median |TPOT error| <= 5% and median |TTFT error| <= 10% on a CPU.
Rooms: :mod:`.options` (options, the slice, the engine configuration, the result record),
:mod:`.driver` (the two-process orchestration) with :mod:`.load` (the load meter),
:mod:`.profile` (the profile built from the engine's own measurements), :mod:`.link` (the
link fit), :mod:`.records` (engine records, comparison, per-iteration and per-batch frames),
:mod:`.mirror` (the mirrored cluster and latency models), :mod:`.summary`, :mod:`.analysis`
(the whole check), :mod:`.output` (files and figure). The engine itself:
:mod:`sunsim.validate.real_engine`. Torch is imported only inside the worker processes (and
the real engine's kernel functions).
"""

from sunsim.validate.engine.analysis import (
    analyze_engine_check,
    load_engine_raw,
    run_engine_check,
)
from sunsim.validate.engine.driver import PHASE_TIMEOUT_S, run_engine
from sunsim.validate.engine.link import fit_link
from sunsim.validate.engine.mirror import LevelScaledLatency, SplitLatency, mirror_cluster
from sunsim.validate.engine.options import (
    GOAL_TPOT_MEDIAN,
    GOAL_TTFT_MEDIAN,
    STATISTICS,
    EngineCheck,
    EngineCheckOptions,
    ProgressFn,
    default_kv_blocks,
    engine_config,
    load_slice,
    profile_grid,
)
from sunsim.validate.engine.output import figure, write_engine_check
from sunsim.validate.engine.profile import (
    build_profile,
    profile_meta,
    statistic_latency,
)
from sunsim.validate.engine.records import (
    COMPARED,
    batches_frame,
    compare_requests,
    engine_records,
    iterations_frame,
)
from sunsim.validate.engine.summary import summarize_check

__all__ = [
    "COMPARED",
    "GOAL_TPOT_MEDIAN",
    "GOAL_TTFT_MEDIAN",
    "PHASE_TIMEOUT_S",
    "STATISTICS",
    "EngineCheck",
    "EngineCheckOptions",
    "LevelScaledLatency",
    "ProgressFn",
    "SplitLatency",
    "analyze_engine_check",
    "batches_frame",
    "build_profile",
    "compare_requests",
    "default_kv_blocks",
    "engine_config",
    "engine_records",
    "figure",
    "fit_link",
    "iterations_frame",
    "load_engine_raw",
    "load_slice",
    "mirror_cluster",
    "profile_grid",
    "profile_meta",
    "run_engine",
    "run_engine_check",
    "statistic_latency",
    "summarize_check",
    "write_engine_check",
]
