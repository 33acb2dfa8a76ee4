"""Invariants of the cluster simulation, checked on random small workloads (hypothesis), and
determinism (same inputs and seed -> identical records; planned runs of several decode
iterations -> the same records as stepping each iteration on its own).

Times in the generated workloads are dyadic rationals (multiples of 1/64 s, bandwidths of
2^k bytes/s, 1 KV byte per token), so every simulated time is computed exactly in floating
point and ties between a KV arrival and an iteration boundary are resolved identically by the
planned-run and the single-step code paths.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sunsim.engine.cluster as simulation
import sunsim.engine.decode
from sunsim.config import (
    DEFAULT_MODES as MODES,
)  # the disaggregated designs (colocated: test_colocated.py)
from sunsim.engine.cluster import simulate
from sunsim.engine.router import ROUTERS as _ROUTER_REGISTRY
from sunsim.engine.spec import ClusterSpec
from sunsim.latency.base import LatencyModel
from sunsim.metrics import slo_attainment
from sunsim.specs import LinkSpec, SloSpec

ROUTERS = tuple(_ROUTER_REGISTRY)

H100_BYTES = 80 * 10**9
BLOCK = 16


class LinearLatency(LatencyModel):
    """prefill_time = p0 + p1 x tokens; decode_step_time = d0 + d1 x batch + d2 x context.

    Monotone in batch and context, so a batch's prefill never beats a lone prompt's.
    ``kv_blocks`` sizes the decode KV cache (1 KV byte per token on an H100 at utilisation 1,
    no reserve: weight bytes = 80e9 - 16 x blocks).
    """

    def __init__(self, p0, p1, d0, d1, d2, kv_blocks, max_model_len=1 << 30):
        self.p0, self.p1, self.d0, self.d1, self.d2 = p0, p1, d0, d1, d2
        self.kv_bytes_per_token = 1
        self.weight_bytes = H100_BYTES - BLOCK * kv_blocks
        self.max_model_len = max_model_len
        self.description = "linear test latency (analytic)"

    def __repr__(self) -> str:
        return (
            f"LinearLatency(p0={self.p0}, p1={self.p1}, d0={self.d0}, d1={self.d1}, "
            f"d2={self.d2}, kv_blocks={(H100_BYTES - self.weight_bytes) // BLOCK}, "
            f"max_model_len={self.max_model_len})"
        )

    def prefill_time(self, prompt_lens):
        return self.p0 + self.p1 * sum(prompt_lens)

    def decode_step_time(self, batch_size, total_context_tokens):
        return self.d0 + self.d1 * batch_size + self.d2 * total_context_tokens


@dataclass
class Case:
    requests: pd.DataFrame
    cluster: ClusterSpec
    latency: LinearLatency
    seed: int


def dyadic(lo: int, hi: int, denom: int = 64):
    return st.integers(lo, hi).map(lambda k: k / denom)


@st.composite
def cases(draw, modes=MODES, routers=ROUTERS, max_requests=30, tight_kv=None):
    n_models = draw(st.integers(1, 3))
    served = ("math", "code", "tool")[:n_models]
    n = draw(st.integers(1, max_requests))
    if tight_kv is None:
        blocks = draw(st.integers(4, 40))
    else:
        blocks = draw(st.integers(4, 12)) if tight_kv else 10_000
    gaps = draw(st.lists(dyadic(0, 32, 32), min_size=n, max_size=n))
    # prompts up to half a worker's KV cache (longer ones are rejected: some still are)
    prompt = draw(st.lists(st.integers(1, min(120, 8 * blocks)), min_size=n, max_size=n))
    output = draw(st.lists(st.integers(1, 60), min_size=n, max_size=n))
    model = draw(st.lists(st.sampled_from(served), min_size=n, max_size=n))
    mode = draw(st.sampled_from(modes))
    pw = tuple(draw(st.lists(st.integers(1, 2), min_size=n_models, max_size=n_models)))
    if mode == "partitioned":
        dw = tuple(draw(st.lists(st.integers(1, 2), min_size=n_models, max_size=n_models)))
    else:
        dw = (draw(st.integers(1, 4)),)
    cluster = ClusterSpec(
        design=mode,
        served_models=served,
        prefill_workers=pw,
        decode_workers=dw,
        gpu="h100",
        gpu_memory_utilization=1.0,
        reserve_bytes=0,
        max_num_seqs=draw(st.integers(1, 8)),
        max_num_batched_tokens=draw(st.integers(16, 400)),
        prefill_router=draw(st.sampled_from(routers)),
        decode_router=draw(st.sampled_from(routers)),
        link=LinkSpec(bandwidth=float(2 ** draw(st.integers(4, 12))), latency_s=draw(dyadic(0, 8))),
    )
    lat = LinearLatency(
        p0=draw(dyadic(1, 32)),
        p1=draw(dyadic(0, 4, 1024)),
        d0=draw(dyadic(1, 8)),
        d1=draw(dyadic(0, 2, 256)),
        d2=draw(dyadic(0, 2, 4096)),
        kv_blocks=blocks,
        max_model_len=draw(st.sampled_from([1 << 30, 150])),
    )
    df = pd.DataFrame(
        {
            "arrival_s": np.cumsum(gaps),
            "model": model,
            "prompt_tokens": prompt,
            "output_tokens": output,
        }
    )
    return Case(df, cluster, lat, draw(st.integers(0, 3)))


@contextmanager
def capture_sim():
    """Yield a list that receives the :class:`ClusterSim` each ``simulate`` call builds (so the
    workers' final state can be inspected after the run)."""
    sims = []
    orig = simulation.build_result  # called once per run, with the run's ClusterSim

    def capturing(sim, *a, **kw):
        sims.append(sim)
        return orig(sim, *a, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(simulation, "build_result", capturing)
        yield sims


def run(case: Case, **kw):
    return simulate(case.requests, case.cluster, case.latency, case.latency, seed=case.seed, **kw)


PROPS = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@PROPS
@given(cases())
def test_invariants(case):
    with capture_sim() as sims:
        res = run(case)
    sim = sims[0]
    rec = res.records
    req = case.requests
    lat = case.latency
    n = len(req)

    # every request ends exactly once, finished or rejected with a reason
    assert len(rec) == n
    assert set(rec["status"]) <= {"finished", "rejected"}
    fin = rec[rec["status"] == "finished"]
    rej = rec[rec["status"] == "rejected"]
    assert len(fin) + len(rej) == n
    assert (rej["reject_reason"] != "").all() and (fin["reject_reason"] == "").all()
    too_long = (req["prompt_tokens"] + req["output_tokens"]) > lat.max_model_len
    cap = res.kv_capacity_tokens // BLOCK
    blocks_needed = -(-(req["prompt_tokens"] + req["output_tokens"] - 1) // BLOCK)
    want = np.where(
        too_long, "exceeds_max_model_len", np.where(blocks_needed > cap, "exceeds_kv_capacity", "")
    )
    assert list(rec["reject_reason"]) == list(want)
    assert rej["finished_at"].isna().all() and fin["finished_at"].notna().all()

    # order of a request's life; TTFT at least the prefill of its own prompt alone
    eps = 1e-9
    assert (fin["prefill_started_at"] >= fin["arrived_at"] - eps).all()
    own_prefill = fin["prompt_tokens"].map(lambda p: lat.prefill_time([p]))
    assert (fin["first_token_at"] - fin["prefill_started_at"] >= own_prefill - eps).all()
    assert (fin["ttft_s"] >= own_prefill - eps).all() and (fin["ttft_s"] > 0).all()
    assert (fin["finished_at"] >= fin["first_token_at"] - eps).all()
    one = fin[fin["output_tokens"] == 1]
    assert (one["finished_at"] == one["first_token_at"]).all()
    assert one["kv_ready_at"].isna().all() and (one["decode_worker"] == -1).all()
    dec = fin[fin["output_tokens"] > 1]
    assert (dec["kv_ready_at"] >= dec["first_token_at"] - eps).all()
    assert (dec["decode_started_at"] >= dec["kv_ready_at"] - eps).all()
    # o - 1 decode iterations, each at least d0 + d1 (a batch of one, no context)
    min_step = lat.d0 + lat.d1
    assert (
        dec["finished_at"] - dec["decode_started_at"] >= (dec["output_tokens"] - 1) * min_step - eps
    ).all()
    assert (dec["tpot_s"] > 0).all()

    # every output token decoded exactly once; preemptions add up
    dw = res.decode_workers
    assert dw["num_tokens"].sum() == int((dec["output_tokens"] - 1).sum())
    assert dw["num_preemptions"].sum() == rec["num_preemptions"].sum()
    assert (dw["peak_batch"] <= case.cluster.max_num_seqs).all()

    # KV blocks and router loads conserved: everything back to zero
    for w in sim.decode_workers:
        assert (w.kv.num_seqs, w.kv.sum_offset, w.load, w.load_tokens) == (0, 0, 0, 0), w.wid
        assert not any(w.kv.residue_count) and not w.running and not w.waiting and not w.pending
        assert w.kv.blocks_at(w.iteration + 1) == 0
    for w in sim.prefill_workers:
        assert (w.load, w.load_tokens, len(w.queue)) == (0, 0, 0)
    assert not any(getattr(r, "held", None) for r in sim.pool_routers)  # central queues
    assert (dw["kv_occupancy"] <= 1 + 1e-12).all()

    # partitioned: a request is decoded only by its own model's pool
    pool_of = dict(zip(dw["worker"], dw["pool"]))
    if not case.cluster.design.shares_decode:
        assert all(pool_of[w] == m for w, m in zip(dec["decode_worker"], dec["model"]))
    else:
        assert all(pool_of[w] == "shared" for w in dec["decode_worker"])


def assert_same_records(a: pd.DataFrame, b: pd.DataFrame, atol: float = 1e-9) -> None:
    assert list(a.columns) == list(b.columns)
    for c in a.columns:
        if pd.api.types.is_float_dtype(a[c]):
            np.testing.assert_allclose(
                a[c].to_numpy(), b[c].to_numpy(), rtol=0, atol=atol, equal_nan=True, err_msg=c
            )
        else:
            assert (a[c] == b[c]).all(), c


# derandomize: a fixed set of examples. Random ones sometimes hit a known tie-order
# difference (see test_planned_runs_tie_with_another_event_known_difference below).
@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(cases(tight_kv=True))
def test_planned_runs_equal_single_steps_hypothesis(case):
    planned = run(case)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sunsim.engine.decode, "MAX_MACRO_ITERATIONS", 1)
        single = run(case)
    assert_same_records(planned.records, single.records)
    for col in ("num_iterations", "num_tokens", "num_preemptions", "peak_batch"):
        assert list(planned.decode_workers[col]) == list(single.decode_workers[col]), col
    np.testing.assert_allclose(
        planned.decode_workers["busy_s"], single.decode_workers["busy_s"], rtol=1e-12, atol=1e-9
    )


@pytest.mark.xfail(
    strict=True,
    reason="known: SimPy orders events of one instant by creation; a planned run's end timer "
    "is created earlier than the single-step one, so a tie with another event (here a prefill "
    "ending exactly when a decode request finishes) is resolved differently, and the least-loaded "
    "decode router sees a different load (v0.1.0 too)",
)
def test_planned_runs_tie_with_another_event_known_difference(monkeypatch):
    df = pd.DataFrame(
        {
            "arrival_s": [0, 0, 0, 0, 0, 0, 0, 0.1875, 1.1875],
            "model": ["math"] * 9,
            "prompt_tokens": [1, 1, 1, 1, 1, 10, 1, 1, 1],
            "output_tokens": [1, 1, 1, 1, 1, 18, 1, 1, 2],
        }
    )
    lat = LinearLatency(p0=0.046875, p1=0.0, d0=0.046875, d1=0.0, d2=0.0, kv_blocks=4)
    cl = ClusterSpec(
        design="sun",
        served_models=("math", "code"),
        prefill_workers=(1, 1),
        decode_workers=(2,),
        max_num_seqs=1,
        max_num_batched_tokens=16,
        gpu_memory_utilization=1.0,
        reserve_bytes=0,
        prefill_router="round_robin",
        link=LinkSpec(bandwidth=32.0, latency_s=0.078125),
    )
    planned = simulate(df, cl, lat, lat)
    monkeypatch.setattr(sunsim.engine.decode, "MAX_MACRO_ITERATIONS", 1)
    single = simulate(df, cl, lat, lat)
    assert_same_records(planned.records, single.records)


# --------------------------------------------------------------------------------------------
# Determinism on a fixed, larger workload
# --------------------------------------------------------------------------------------------


def fixed_workload(n: int = 600, seed: int = 7, rate: float = 40.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "arrival_s": np.cumsum(rng.exponential(1 / rate, n)),
            "model": rng.choice(["math", "code", "tool"], size=n, p=[0.6, 0.3, 0.1]),
            "prompt_tokens": rng.integers(1, 400, n),
            "output_tokens": rng.integers(1, 120, n),
        }
    )


def fixed_cluster(
    mode: str = "sun",
    router: str = "least_loaded",
    kv_blocks: int = 10_000,
    decode_workers: tuple[int, ...] = (3,),
):
    cl = ClusterSpec(
        design=mode,
        served_models=("math", "code", "tool"),
        prefill_workers=(2, 1, 1),
        decode_workers=decode_workers,
        gpu_memory_utilization=1.0,
        reserve_bytes=0,
        max_num_seqs=16,
        max_num_batched_tokens=1024,
        prefill_router=router,
        decode_router=router,
        link=LinkSpec(bandwidth=2.0**14, latency_s=1e-3),
    )
    lat = LinearLatency(p0=0.01, p1=1e-5, d0=0.01, d1=2e-4, d2=1e-6, kv_blocks=kv_blocks)
    return cl, lat


@pytest.mark.parametrize("router", ROUTERS)
def test_same_inputs_and_seed_give_identical_records(router):
    df = fixed_workload()
    cl, lat = fixed_cluster(router=router, kv_blocks=40)
    a = simulate(df, cl, lat, lat, seed=3)
    b = simulate(df, cl, lat, lat, seed=3)
    pd.testing.assert_frame_equal(a.records, b.records)
    pd.testing.assert_frame_equal(a.decode_workers, b.decode_workers)
    pd.testing.assert_frame_equal(a.prefill_workers, b.prefill_workers)
    assert a.num_events == b.num_events
    if router == "power_of_two":
        # the seed drives the random choices
        c = simulate(df, cl, lat, lat, seed=4)
        assert not (c.records["decode_worker"] == a.records["decode_worker"]).all()


@pytest.mark.parametrize("kv_blocks", [40, 10_000], ids=["tight_kv_preempts", "roomy_kv"])
@pytest.mark.parametrize("mode", ["partitioned", "sun"])
def test_planned_runs_equal_single_steps(monkeypatch, kv_blocks, mode):
    df = fixed_workload()
    cl, lat = fixed_cluster(
        mode=mode, kv_blocks=kv_blocks, decode_workers=(1, 1, 1) if mode == "partitioned" else (3,)
    )
    planned = simulate(df, cl, lat, lat)
    num_pre = int(planned.records["num_preemptions"].sum())
    if kv_blocks == 40:
        assert num_pre > 0
    else:
        assert num_pre == 0
    monkeypatch.setattr(sunsim.engine.decode, "MAX_MACRO_ITERATIONS", 1)
    single = simulate(df, cl, lat, lat)
    assert_same_records(planned.records, single.records)
    assert list(planned.decode_workers["num_iterations"]) == list(
        single.decode_workers["num_iterations"]
    )
    # planned runs take far fewer events
    assert planned.num_events < single.num_events


# --------------------------------------------------------------------------------------------
# More decode workers never lower SLO attainment (at a fixed seed, on a fixed trace)
# --------------------------------------------------------------------------------------------
#
# Not true in general. Routers that commit a request to one worker's queue when its prefill
# ends (round_robin, least_loaded, least_kv, power_of_two) can put it behind a long request on
# a busy worker in the larger pool and beside an idle one in the smaller. Hypothesis found, e.g.:
#   round_robin, sun, max_num_seqs 1, decode 0.109375 s per iteration, four decoded requests
#   arriving together (3, 2, 2 and 4 output tokens): with 2 workers the fourth goes to the
#   worker that is free; with 3 it goes to worker 0, behind the first -> attainment 0.867 ->
#   0.800 (SLO TTFT 0.5 s, TPOT 0.2 s);
#   least_loaded, sun, max_num_seqs 1, 3 -> 4 workers, 19 requests arriving at 0 s behind a
#   FIFO link: with 4 workers all four hold one request when a short one is routed, the tie
#   goes to worker 0 behind a long one -> attainment 0.842 -> 0.789.
# With max_num_seqs > 1 even the central queue is not monotone per request (a request that
# joined a batch on one worker goes to an idle worker and the iteration boundaries shift).
#
# It holds for the central FCFS queue with one request per worker (max_num_seqs = 1): the
# pool is then a c-server FCFS queue in which a request's slot is held from its dispatch to its
# finish; by induction over requests in dispatch order (the same order with c or c + 1
# workers), the sorted vector of slot-free times with c + 1 workers is componentwise no later
# (the monotonicity of the Kiefer-Wolfowitz recursion, Kiefer & Wolfowitz 1955), so every
# dispatch, KV arrival (FIFO links, same order) and finish is no later, TPOT no larger, and
# prefill does not depend on decode (no preemption with one request per worker).


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    cases(routers=("central",)),
    st.integers(0, 2),
    st.sampled_from([0.25, 0.5, 1.0, 2.0]),
    st.sampled_from([0.05, 0.1, 0.2, 0.5]),
)
def test_more_decode_workers_never_lower_attainment_central_queue(case, pool, ttft, tpot):
    cl = replace(case.cluster, max_num_seqs=1)
    pool = pool % len(cl.decode_workers)
    more = list(cl.decode_workers)
    more[pool] += 1
    cl_more = replace(cl, decode_workers=tuple(more))
    slo = SloSpec(ttft_s=ttft, tpot_s=tpot)
    a = simulate(case.requests, cl, case.latency, case.latency, seed=case.seed).records
    b = simulate(case.requests, cl_more, case.latency, case.latency, seed=case.seed).records
    assert slo_attainment(b, slo) >= slo_attainment(a, slo)
    # stronger: no request finishes later, prefill is untouched
    fin = (a["status"] == "finished").to_numpy()
    assert (b["finished_at"].to_numpy()[fin] <= a["finished_at"].to_numpy()[fin] + 1e-9).all()
    np.testing.assert_array_equal(a["first_token_at"].to_numpy(), b["first_token_at"].to_numpy())


@pytest.mark.parametrize("router", ["central", "least_loaded"])
def test_more_decode_workers_fixed_trace(router):
    # On a fixed trace of 600 requests the attainment grows with the decode pool for the
    # central queue (guaranteed at max_num_seqs 1, observed here at 16) and, on this trace,
    # for least_loaded too.
    df = fixed_workload(rate=60.0)
    slo = SloSpec(ttft_s=1.0, tpot_s=0.03)
    att = []
    for k in (1, 2, 3, 4):
        cl, lat = fixed_cluster(router=router, decode_workers=(k,))
        att.append(slo_attainment(simulate(df, cl, lat, lat).records, slo))
    assert att == sorted(att) and att[0] < att[-1], att


@pytest.mark.parametrize("router", ["power_of_two", "central"])
def test_progress_callback_does_not_change_records(router):
    # simulate() with on_progress runs the event loop in slices (env.run(until=...)); the
    # CLI always passes one
    df = fixed_workload()
    cl, lat = fixed_cluster(router=router, kv_blocks=40)
    fractions = []
    a = simulate(df, cl, lat, lat, seed=1)
    b = simulate(df, cl, lat, lat, seed=1, on_progress=fractions.append)
    pd.testing.assert_frame_equal(a.records, b.records)
    assert fractions[-1] == 1.0 and fractions == sorted(fractions)
