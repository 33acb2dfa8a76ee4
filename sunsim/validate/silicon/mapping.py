"""One silicon row as a sunsim scenario, and its run.

:func:`row_scenario` is the whole mapping (for whoever extends it):

* aggregated (``agg``) -> design ``colocated``, one worker of ``tp_size`` GPUs
  (``colocated_workers = 1``, ``tensor_parallel_size = tp_size``), ``max_num_seqs =
  batch_size`` (the engine's batch cap the run was configured with), ``max_num_batched_tokens``
  by :func:`token_budget`: the row's documented budget (the gap-analysis vLLM rows:
  ``batch_size + ISL + 1500``, aiconfigurator's benchmark generator
  rule, :func:`~.sources.token_budget_of`), else ``max(8192, batch_size)`` (vLLM's and
  TensorRT-LLM's default token budget);
* disaggregated (``disagg``) -> design ``partitioned`` with ``prefill_num_workers`` prefill
  workers of ``prefill_tp_size`` GPUs and ``decode_num_workers`` decode workers of
  ``decode_tp_size`` GPUs, ``max_num_seqs = decode_batch_size`` (per decode worker),
  ``max_num_batched_tokens = ISL x prefill_batch_size`` (the prefill batch the run used);
* workload: closed loop at the client's concurrency (``silicon_concurrency``), fixed ISL and
  OSL (or the client's length range, :func:`client_lengths`: InferenceMAX's runs draw
  from ``[0.8 L, L]``), ``num_prompts = prompts_per_client x concurrency`` (the file does
  not say how many the benchmark sent; 10 per client by default, InferenceMAX's number),
  seed 0; one served model;
* scheduler: an aggregated SGLang row runs SGLang's prefill-first scheduler
  (``colocated_scheduler = sglang``, :mod:`sunsim.engine.sglang_colocated`), an aggregated
  TensorRT-LLM row TensorRT-LLM's defaults (``colocated_scheduler = trtllm``,
  :mod:`sunsim.engine.trtllm_colocated`: whole prompts, ``GUARANTEED_NO_EVICT`` admission,
  ``max_num_tokens`` from :func:`trtllm_max_num_tokens`), the others vLLM V1's decode-first
  mixed batches;
* client delay: each request a client sends after a response waits an exponential delay
  of a mean fitted on the fit set (:func:`client_delays`, :mod:`.client_fit`); the fit
  (2026-12-02, 258 fit-set rows) chose 0: median |TTFT error| 19.6% at 0, 21.2% at 10 ms,
  25.7% at 50 ms, so a delay that breaks the clients' lock-step helps some rows (vLLM
  Qwen3-32B) and hurts more;
* corrections (``run_case``'s ``correction``, :mod:`.correction_fit`): per (backend, GPU),
  fitted on the fit set only and labelled ``fitted`` in the step-time method: decode steps x
  ``decode_scale`` (:class:`~sunsim.latency.overhead.DecodeScaledLatency`), and
  ``request_latency_s`` outside the engine on every TTFT and before each next request;
* KV cache: ``kv_cache_dtype`` of the row (:func:`~.sources.kv_cache_dtype_of`: ``fp8`` for
  FP8 checkpoints), so an FP8 row's worker holds twice the tokens of a BF16 cache;
* step times: the serving backend's profile on that GPU for the model, precision, KV-cache
  dtype and each pool's TP (:mod:`.profiles`), plus the backend's fitted engine overhead
  when there is one (``engine_overhead``); the scenario records the decode profile's directory, and
  :func:`run_case` loads each pool's profile at its own TP.

Client start (``client_start``): ``together`` (default) sends every client's first request
at time 0, as a benchmark client does when it starts; with fixed ISL and OSL the clients
then stay in step (their requests end together, so the next ones arrive together) and every
prefill queues behind the others of its wave. ``staggered`` spreads the first requests over
the shortest possible request latency (:func:`first_arrivals`), the other extreme: clients
out of step, each prefill nearly alone. Real clients drift between the two (network and
tokenizer jitter). The default was chosen on the engine-overhead fit set, never on the
reported rows: median |TTFT error| 25.0% together vs 68.4% staggered (bias -12% vs -67%),
TPOT 11.4% vs 11.5% (258 fit rows, 2026-12-02, with FP8 KV caches and InferenceMAX's
length range; before those, 60.8% vs 67.5%); neither meets the issue's 15% on TTFT.

Scenario keys that this build lacks (``colocated_workers``, the TP keys) are left out only
where their value would be the default (1); :func:`~.rows.classify` skips rows that need them.
The simulated TTFT and TPOT are means over every request, as the benchmark client reports
(aiconfigurator's ``silicon_*_ms`` are its ``mean_ttft`` and ``mean_tpot``).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sunsim.config import Scenario, scenario_fields
from sunsim.errors import ConfigError
from sunsim.latency.base import LatencyModel
from sunsim.validate.silicon.rows import Case

if TYPE_CHECKING:  # pragma: no cover
    from sunsim.validate.silicon.correction_fit import Correction

#: Requests the simulated benchmark sends per client, by default.
PROMPTS_PER_CLIENT = 10
#: Token budget of an aggregated engine step (vLLM's and TensorRT-LLM's default, tokens).
DEFAULT_TOKEN_BUDGET = 8192
#: How the simulated clients start (:func:`run_case`), and the default.
CLIENT_STARTS = ("staggered", "together")
CLIENT_START = "together"
#: ``max_num_tokens`` of InferenceMAX's TensorRT-LLM runs (:func:`trtllm_max_num_tokens`).
INFERENCEMAX_TRTLLM_MAX_NUM_TOKENS = 16384


def row_scenario(
    case: Case, profile_dir: Path, engine_overhead: str, prompts_per_client: int = 10
) -> Scenario:
    """The scenario reproducing ``case`` (module docstring).

    Raises:
        ConfigError: the scenario is invalid in this build (e.g. a key it needs is missing).
    """
    c = case.concurrency
    kw: dict[str, Any] = {
        "base_model": case.model,
        "served_models": ("model",),
        "gpu": case.gpu,
        "max_concurrency": c,
        "num_prompts": max(prompts_per_client * c, 2),
        **client_lengths(case),
        "latency": "profile",
        "profile": str(profile_dir),
        "engine_overhead": engine_overhead,
        "seed": 0,
        "max_num_seqs": case.max_num_seqs,
        "kv_cache_dtype": case.kv_cache_dtype,
    }
    if case.mode == "agg":
        kw["modes"] = ("colocated",)
        kw["colocated_workers"] = (1,)
        kw["max_num_batched_tokens"] = token_budget(case)
        kw["tensor_parallel_size"] = case.tensor_parallel_size
    else:
        kw["modes"] = ("partitioned",)
        kw["prefill_workers"] = (case.prefill_workers,)
        kw["decode_workers"] = (case.decode_workers,)
        kw["max_num_batched_tokens"] = case.isl * case.prefill_batch_size
        kw["prefill_tensor_parallel_size"] = case.prefill_tensor_parallel_size
        kw["decode_tensor_parallel_size"] = case.decode_tensor_parallel_size
    fields = scenario_fields()
    for key in [k for k in kw if k not in fields]:
        if kw[key] not in (1, (1,), "auto"):
            raise ConfigError(f"scenario key '{key}' = {kw[key]} is not in this build")
        del kw[key]
    return Scenario(**kw)


def token_budget(case: Case) -> int:
    """An aggregated worker's ``max_num_batched_tokens``: the row's documented budget
    (``case.max_num_batched_tokens``, :func:`~.sources.token_budget_of`), else
    ``max(8192, max_num_seqs)`` (vLLM's default for the OpenAI server on GPUs of 70 GiB or
    more, ``EngineArgs`` batch defaults; TensorRT-LLM's ``max_num_tokens`` default is 8192 too)."""
    if case.max_num_batched_tokens is not None:
        return max(case.max_num_batched_tokens, 1)
    return max(DEFAULT_TOKEN_BUDGET, case.max_num_seqs)


def client_lengths(case: Case) -> dict[str, Any]:
    """``input_len``, ``output_len`` and ``range_ratio`` of the closed loop that draws the
    benchmark client's lengths: fixed ISL and OSL, or for a client that draws from ``[low x
    L, L]`` (``case.length_low_ratio`` < 1, :func:`~.sources.client_lengths_of`) the same
    range in sunsim's (vLLM's newer) ``[L' (1 - r), L' (1 + r)]`` form: ``L' = (1 + low) L
    / 2`` and ``r = (1 - low) / (1 + low)`` (the ends agree within a token)."""
    low = case.length_low_ratio
    if low >= 1.0:
        return {"input_len": case.isl, "output_len": case.osl}
    mid = (1.0 + low) / 2.0
    return {
        "input_len": max(1, round(case.isl * mid)),
        "output_len": max(1, round(case.osl * mid)),
        "range_ratio": (1.0 - low) / (1.0 + low),
    }


def first_arrivals(case: Case, prefill: LatencyModel, decode: LatencyModel, n: int) -> list[float]:
    """Send times (seconds) of the ``n`` clients' first requests, spread evenly over the
    shortest latency a request can have, ``L = prefill_time([ISL]) + (OSL - 1) x
    decode_step_time(1, ISL)`` (alone on its worker, at its smallest context): client ``i``
    starts at ``i L / n``. No request can end before the last client starts, so the clients
    start out of step, as a real benchmark's clients are once jitter has spread them (module
    docstring, "client start")."""
    lo = prefill.prefill_time([case.isl]) + (case.osl - 1) * decode.decode_step_time(1, case.isl)
    return [i * lo / n for i in range(n)]


def client_delays(mean_s: float, seed: int = 0, fixed_s: float = 0.0) -> Callable[[], float] | None:
    """A draw of the benchmark client's own delay between a response's end and its next
    request (seconds): exponential with mean ``mean_s`` (one parameter; its value is fitted
    on the fit set, :mod:`.client_fit`), from a generator seeded ``seed``; None for 0.
    Real clients spend time per request outside the server (detokenising and recording the
    response, building and sending the next HTTP request, event-loop scheduling), and that
    time varies, so clients that a fixed ISL/OSL would keep in step drift apart.
    ``fixed_s``: a constant added to every draw (a request's fitted time outside the engine,
    :mod:`.correction_fit`); None when both are 0."""
    if not mean_s > 0:
        return None if not fixed_s > 0 else (lambda: float(fixed_s))
    rng = np.random.default_rng(seed)
    draw = rng.exponential
    return lambda: float(fixed_s + draw(mean_s))


def trtllm_max_num_tokens(case: Case) -> int:
    """``max_num_tokens`` of an aggregated TensorRT-LLM row's engine: 16384 for InferenceMAX's
    runs (``case.length_low_ratio < 1``: their Llama-3.1-70B FP8 ``trtllm-serve`` launch
    passes ``--max_num_tokens 16384``, with no ``--max_batch_size``, so TensorRT-LLM's
    default 2048, above every concurrency run), else TensorRT-LLM's default
    :data:`DEFAULT_TOKEN_BUDGET` (also aiconfigurator-core's ``TRTLLM_DEFAULT_MAX_NUM_TOKENS``),
    at least ``max_num_seqs``."""
    budget = (
        INFERENCEMAX_TRTLLM_MAX_NUM_TOKENS if case.length_low_ratio < 1.0 else DEFAULT_TOKEN_BUDGET
    )
    return max(budget, case.max_num_seqs)


def run_case(
    case: Case,
    prefill_dir: Path,
    decode_dir: Path,
    engine_overhead: str,
    prompts_per_client: int = PROMPTS_PER_CLIENT,
    client_start: str = CLIENT_START,
    client_delay_mean_s: float = 0.0,
    correction: Correction | None = None,
) -> dict[str, Any]:
    """Simulate ``case``; returns ``sim_ttft_ms``, ``sim_tpot_ms`` (means over the finished
    requests), ``num_requests``, ``num_rejected``, ``num_preemptions``, ``wall_s``.
    ``client_start``: ``staggered`` (:func:`first_arrivals`) or ``together`` (every client's
    first request at time 0). ``client_delay_mean_s``: mean of the client-side delay drawn
    per request sent after a request end (:func:`client_delays`; 0: none). ``correction``:
    the row's (backend, GPU) fitted correction (:mod:`.correction_fit`): decode steps x
    ``decode_scale``; ``request_latency_s`` on every TTFT and before each next request.

    Raises:
        ConfigError, ProfileError: the scenario or a profile is unusable in this build, or
            an unknown ``client_start``.
    """
    from sunsim.engine.closed_loop import simulate_closed_loop
    from sunsim.latency.kv_cache_dtype import with_kv_cache_dtype
    from sunsim.latency.overhead import DecodeScaledLatency, with_overhead
    from sunsim.latency.profiled import ProfiledLatency
    from sunsim.replay import closed_loop_workload

    t0 = time.perf_counter()
    s = row_scenario(case, decode_dir, engine_overhead, prompts_per_client)
    wl = closed_loop_workload(s)
    assert wl.closed_loop is not None
    oh = None if engine_overhead == "none" else engine_overhead

    def load(d: Path) -> LatencyModel:
        lat = ProfiledLatency.from_dir(d, model=case.model, precision=case.precision)
        out = with_overhead(with_kv_cache_dtype(lat, case.kv_cache_dtype), oh)
        if correction is not None and correction.decode_scale != 1.0:
            out = DecodeScaledLatency(out, correction.decode_scale, correction.fitted_on)
        return out

    pl, dl = load(prefill_dir), load(decode_dir)
    extra_s = correction.request_latency_s if correction is not None else 0.0
    if client_start not in CLIENT_STARTS:
        raise ConfigError(f"client start '{client_start}': choose {' or '.join(CLIENT_STARTS)}")
    first = min(wl.closed_loop.max_concurrency, wl.closed_loop.num_prompts)
    starts = first_arrivals(case, pl, dl, first) if client_start == "staggered" else None
    cluster = s.cluster(s.modes[0])
    if case.mode == "agg" and case.backend == "sglang":  # prefill-first, decodes paused
        cluster = dataclasses.replace(cluster, colocated_scheduler="sglang")
    if case.mode == "agg" and case.backend == "trtllm":  # whole prompts, no-evict admission
        cluster = dataclasses.replace(
            cluster,
            colocated_scheduler="trtllm",
            max_num_batched_tokens=trtllm_max_num_tokens(case),
        )
    res = simulate_closed_loop(
        wl.closed_loop, cluster, pl, dl, requests=wl.requests,
        first_arrivals_s=starts,
        client_delay_s=client_delays(client_delay_mean_s, fixed_s=extra_s),
    )  # fmt: skip
    rec = res.records
    done = rec[rec["status"] == "finished"]
    nan = math.nan
    return {
        "sim_ttft_ms": (float(done["ttft_s"].mean()) + extra_s) * 1e3 if len(done) else nan,
        "sim_tpot_ms": float(done["tpot_s"].mean()) * 1e3 if len(done) else nan,
        "num_requests": len(rec),
        "num_rejected": int((rec["status"] == "rejected").sum()),
        "num_preemptions": int(rec["num_preemptions"].sum()),
        "method": res.method,
        "decode_scale": correction.decode_scale if correction is not None else 1.0,
        "request_latency_ms": extra_s * 1e3,
        "wall_s": time.perf_counter() - t0,
    }
