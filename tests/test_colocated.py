"""The co-located design: workers that run prefill and decode in one continuous batch with
chunked prefill under ``max_num_batched_tokens`` (vLLM V1's scheduler).

Hand-checked timelines (chunked prefill interleaved with decodes; preemption under a tiny KV
cache), the mixed-batch step time of each latency model, invariants on random workloads
(hypothesis: no request lost, the token budget and ``max_num_seqs`` respected every step,
every output token emitted once, planned decode runs equal single steps), the configuration,
the summaries, and the planner's co-located size.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import sunsim.engine.cluster as simulation
import sunsim.engine.colocated
from sunsim.cli import app
from sunsim.config import Scenario
from sunsim.engine.cluster import simulate
from sunsim.engine.designs import DESIGNS, PoolDesign, PoolScope
from sunsim.engine.spec import ClusterSpec
from sunsim.errors import ConfigError
from sunsim.latency.base import ConstantLatency, LatencyModel
from sunsim.latency.resolve import resolve_latency
from sunsim.latency.roofline import RooflineLatency
from sunsim.metrics import RunSummary, comparison_table, summarize
from sunsim.planner import PlanOptions, plan
from sunsim.replay import DEFAULT_TRACE
from sunsim.specs import SloSpec, get_gpu, get_model

H100_BYTES = 80 * 10**9
SLO = SloSpec(2.0, 0.1, 0.9)


def kv_weights(blocks: int, block_size: int) -> int:
    """Weight bytes that leave ``blocks`` KV blocks on an H100 at utilisation 1, no reserve,
    1 KV byte per token."""
    return H100_BYTES - blocks * block_size


def colo(served=("a",), workers=(1,), **kw) -> ClusterSpec:
    kw.setdefault("gpu_memory_utilization", 1.0)
    kw.setdefault("reserve_bytes", 0)
    return ClusterSpec("colocated", tuple(served), (), (), colocated_workers=tuple(workers), **kw)


def frame(arrival, prompt, output, model=None) -> pd.DataFrame:
    n = len(arrival)
    return pd.DataFrame(
        {
            "arrival_s": arrival,
            "model": model or ["a"] * n,
            "prompt_tokens": prompt,
            "output_tokens": output,
        }
    )


# -- hand-checked timelines --------------------------------------------------------------------


def test_chunked_prefill_interleaves_with_decodes_hand_checked():
    """Budget 16 tokens. t=0: A (4-token prompt, 5 tokens out) and B (40-token prompt, 3 out)
    arrive. Step 1 (0.1 s, it has chunks): A's whole prompt and B's first 12 tokens; A emits
    its first token at 0.1. Steps 2 and 3 (0.1 s each): A decodes (1 token) and B gets
    15, then its last 13 tokens; B's first token at 0.3. Steps 4, 5 decode only (0.01 s):
    A's tokens 4 and 5, B's 2 and 3, both finish at 0.32."""
    lat = ConstantLatency(prefill_s=0.1, decode_s=0.01, weight_bytes=kv_weights(100, 4))
    cl = colo(max_num_batched_tokens=16, max_num_seqs=4, block_size=4)
    res = simulate(frame([0.0, 0.0], [4, 40], [5, 3]), cl, lat, lat)
    r = res.records
    assert r["prefill_started_at"].tolist() == [0.0, 0.0]
    assert r["first_token_at"].tolist() == pytest.approx([0.1, 0.3])
    assert r["finished_at"].tolist() == pytest.approx([0.32, 0.32])
    assert r["tpot_s"].tolist() == pytest.approx([(0.32 - 0.1) / 4, 0.01])
    # the KV is where it decodes: ready at the first token, decode starts then
    assert (r["kv_ready_at"] == r["first_token_at"]).all()
    assert (r["decode_started_at"] == r["first_token_at"]).all()
    assert (r["prefill_worker"] == 0).all() and (r["decode_worker"] == 0).all()
    w = res.decode_workers.iloc[0]
    # decoded tokens: A's 2..5 (steps 2-5), B's 2, 3 (steps 4, 5); first tokens are prefill's
    assert (w["num_iterations"], w["num_tokens"]) == (5, 6)
    assert res.prefill_workers.empty


def test_a_long_prompt_arriving_mid_decode_is_chunked_around_it():
    """Budget 10 tokens; a step with chunks costs 0.05 s + 1 ms per token (chunk tokens and
    decodes), a decode-only step 0.02 s. A (2-token prompt) is decoding when B (30 tokens)
    arrives; B's prompt runs in chunks of 9, 9, 9, 3 beside A's decode tokens."""
    lat = ConstantLatency(
        prefill_s=0.05, decode_s=0.02, prefill_per_token_s=0.001, weight_bytes=kv_weights(50, 4)
    )
    cl = colo(max_num_batched_tokens=10, max_num_seqs=2, block_size=4)
    # alone: A's prompt (0.052 s), 3 decode steps; later B's prompt in chunks of 10, 10, 10
    res = simulate(frame([0.0, 0.15], [2, 30], [4, 2]), cl, lat, lat)
    r = res.records
    assert r["finished_at"][0] == pytest.approx(0.052 + 3 * 0.02)
    assert r["first_token_at"][1] == pytest.approx(0.15 + 3 * 0.06)
    assert r["finished_at"][1] == pytest.approx(0.15 + 3 * 0.06 + 0.02)

    # together: A (8 tokens out) emits token 1 at 0.052; B arrives at 0.07, which cuts A's
    # planned run of decode steps at its first boundary, 0.072 (token 2); then 3 steps of
    # A's decode + 9 of B's tokens (0.06 s) and one of A's decode + B's last 3 (0.054 s):
    # A's tokens 3..6, B's first token at 0.306; then both decode (0.02 s a step)
    res = simulate(frame([0.0, 0.07], [2, 30], [8, 2]), cl, lat, lat)
    r = res.records
    b_first = 0.072 + 3 * 0.06 + 0.054
    assert r["first_token_at"].tolist() == pytest.approx([0.052, b_first])
    assert r["finished_at"].tolist() == pytest.approx([b_first + 2 * 0.02, b_first + 0.02])
    assert r["tpot_s"][0] == pytest.approx((b_first + 0.04 - 0.052) / 7)


def test_preemption_under_a_tiny_kv_cache_hand_checked():
    """4 KV blocks of 4 tokens. A and B (6-token prompts, 8 tokens out) start together
    (2 + 2 blocks). At step 4 both need a third block: the newest, B, is preempted (its
    3 tokens kept, its KV dropped); A finishes at step 8 (0.1 + 7 x 0.01); then B
    recomputes its prompt and 3 tokens (9 tokens, 3 blocks, 0.1 s), emits token 4 at 0.27
    and tokens 5..8 by 0.31."""
    lat = ConstantLatency(prefill_s=0.1, decode_s=0.01, weight_bytes=kv_weights(4, 4))
    cl = colo(max_num_batched_tokens=64, max_num_seqs=4, block_size=4)
    res = simulate(frame([0.0, 0.0], [6, 6], [8, 8]), cl, lat, lat)
    r = res.records
    assert r["status"].tolist() == ["finished", "finished"]
    assert r["num_preemptions"].tolist() == [0, 1]
    assert r["first_token_at"].tolist() == pytest.approx([0.1, 0.1])
    assert r["finished_at"].tolist() == pytest.approx([0.17, 0.31])
    w = res.decode_workers.iloc[0]
    assert w["num_preemptions"] == 1 and w["capacity_tokens"] == 16


def test_a_request_too_large_for_the_cache_is_rejected_not_lost():
    lat = ConstantLatency(weight_bytes=kv_weights(4, 4))
    cl = colo(max_num_batched_tokens=64, max_num_seqs=4, block_size=4)
    res = simulate(frame([0.0, 0.0], [6, 20], [8, 1]), cl, lat, lat)
    assert res.records["status"].tolist() == ["finished", "rejected"]
    assert res.records["reject_reason"][1] == "exceeds_kv_capacity"


# -- mixed-batch step times --------------------------------------------------------------------


class LinearLatency(LatencyModel):
    """prefill_time = p0 + p1 x tokens; decode_step_time = d0 + d1 x batch + d2 x context."""

    description = "linear test latency (analytic)"

    def __init__(self, p0, p1, d0, d1, d2, kv_blocks=10_000, block_size=16):
        self.p0, self.p1, self.d0, self.d1, self.d2 = p0, p1, d0, d1, d2
        self.kv_bytes_per_token = 1
        self.weight_bytes = kv_weights(kv_blocks, block_size)
        self.max_model_len = 1 << 30

    def prefill_time(self, prompt_lens):
        return self.p0 + self.p1 * sum(prompt_lens)

    def decode_step_time(self, batch_size, total_context_tokens):
        return self.d0 + self.d1 * batch_size + self.d2 * total_context_tokens


def test_default_mixed_step_composes_the_two_curves():
    lat = LinearLatency(p0=0.01, p1=1e-4, d0=0.005, d1=1e-4, d2=1e-6)
    # no chunks: the decode step itself
    assert lat.mixed_step_time(8, 4000, []) == lat.decode_step_time(8, 4000)
    # one pass: prefill of the chunk tokens + one token per decode, plus the context term of
    # the decodes' 4000 and the chunk's 300 cached tokens
    want = lat.prefill_time([256, 1, 1, 1, 1, 1, 1, 1, 1]) + 1e-6 * (4000 + 300)
    assert lat.mixed_step_time(8, 4000, [(256, 300)]) == pytest.approx(want)
    # a prefill-only step of fresh prompts is the prefill batch
    assert lat.mixed_step_time(0, 0, [(100, 0), (50, 0)]) == lat.prefill_time([100, 50])
    # constant step times keep working (no context term)
    c = ConstantLatency(prefill_s=0.1, decode_s=0.01, prefill_per_token_s=0.001)
    assert c.mixed_step_time(3, 999, [(10, 5)]) == pytest.approx(0.1 + 0.001 * 13)
    assert c.mixed_step_time(3, 999, []) == 0.01


@pytest.mark.parametrize("gpu", ["h100", "a100"])
def test_roofline_mixed_step_counts_one_weight_read(gpu):
    lat = RooflineLatency(get_gpu(gpu), get_model("llama-3.1-8b"))
    assert lat.mixed_step_time(0, 0, [(512, 0)]) == pytest.approx(lat.prefill_time([512]))
    assert lat.mixed_step_time(32, 32 * 1000, []) == lat.decode_step_time(32, 32 * 1000)
    d, p = lat.decode_step_time(32, 32 * 1000), lat.prefill_time([512])
    m = lat.mixed_step_time(32, 32 * 1000, [(512, 0)])
    # one pass: slower than either alone, faster than both in turn (weights read once)
    assert max(d, p) < m < d + p
    # a chunk after 4096 cached tokens costs more than the same chunk fresh
    assert lat.mixed_step_time(32, 32_000, [(512, 4096)]) > m
    # more chunk tokens never make a step faster
    times = [lat.mixed_step_time(16, 16_000, [(c, 0)]) for c in (1, 64, 512, 4096)]
    assert times == sorted(times)


def test_profiled_mixed_step_is_between_its_parts():
    lat, note = resolve_latency("llama-3.1-8b", "h100", "bf16", "decode")
    if not lat.method.startswith("measured"):
        pytest.skip(f"no bundled measured profile: {note}")
    d = lat.decode_step_time(32, 32 * 1000)
    assert lat.mixed_step_time(32, 32 * 1000, []) == d
    assert 0 < lat.context_attention_time(32, 32 * 1000) < d
    m = lat.mixed_step_time(32, 32 * 1000, [(512, 0)])
    assert d < m < d + lat.prefill_time([512])


# -- invariants on random workloads (hypothesis) -----------------------------------------------


class Recording(LinearLatency):
    """:class:`LinearLatency` that logs every step the workers ask for."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.mixed: list[tuple[int, list[tuple[int, int]]]] = []
        self.runs: list[int] = []

    def mixed_step_time(self, decode_batch, decode_context_tokens, prefill_chunks):
        self.mixed.append((decode_batch, list(prefill_chunks)))
        return super().mixed_step_time(decode_batch, decode_context_tokens, prefill_chunks)

    def decode_run(self, batch_size, first_context_tokens, max_iterations, stop_s=np.inf):
        self.runs.append(batch_size)
        return super().decode_run(batch_size, first_context_tokens, max_iterations, stop_s)


@dataclass
class Case:
    requests: pd.DataFrame
    cluster: ClusterSpec
    latency: Recording


def dyadic(lo: int, hi: int, denom: int = 64):
    return st.integers(lo, hi).map(lambda k: k / denom)


@st.composite
def cases(draw, tight_kv=None):
    n_models = draw(st.integers(1, 3))
    served = ("math", "code", "tool")[:n_models]
    n = draw(st.integers(1, 30))
    block = draw(st.sampled_from([4, 16]))
    tight = draw(st.booleans()) if tight_kv is None else tight_kv
    blocks = draw(st.integers(4, 16)) if tight else 10_000
    # arrivals off the dyadic grid of step times, so that none ties with a step boundary
    gaps = draw(st.lists(dyadic(0, 32, 32), min_size=n, max_size=n))
    arrival = np.cumsum(gaps) + 1.0 / 3 * 2**-12
    seqs = draw(st.integers(1, 8))
    cl = ClusterSpec(
        "colocated",
        served,
        (),
        (),
        colocated_workers=tuple(
            draw(st.lists(st.integers(1, 2), min_size=n_models, max_size=n_models))
        ),
        gpu_memory_utilization=1.0,
        reserve_bytes=0,
        block_size=block,
        max_num_seqs=seqs,
        max_num_batched_tokens=draw(st.integers(max(seqs, 8), 200)),
        decode_router=draw(st.sampled_from(["round_robin", "least_loaded", "power_of_two"])),
    )
    lat = Recording(
        p0=draw(dyadic(1, 32)),
        p1=draw(dyadic(0, 4, 1024)),
        d0=draw(dyadic(1, 8)),
        d1=draw(dyadic(0, 2, 256)),
        d2=draw(dyadic(0, 2, 4096)),
        kv_blocks=blocks,
        block_size=block,
    )
    df = pd.DataFrame(
        {
            "arrival_s": arrival,
            "model": draw(st.lists(st.sampled_from(served), min_size=n, max_size=n)),
            "prompt_tokens": draw(st.lists(st.integers(1, 150), min_size=n, max_size=n)),
            "output_tokens": draw(st.lists(st.integers(1, 40), min_size=n, max_size=n)),
        }
    )
    return Case(df, cl, lat)


def run(case: Case):
    sims = []
    orig = simulation.build_result  # called once per run, with the run's ClusterSim

    def capturing(sim, *a, **kw):
        sims.append(sim)
        return orig(sim, *a, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(simulation, "build_result", capturing)
        res = simulate(case.requests, case.cluster, case.latency, case.latency)
    return res, sims[0]


PROPS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@PROPS
@given(cases())
def test_invariants(case):
    res, sim = run(case)
    rec, req, cl, lat = res.records, case.requests, case.cluster, case.latency
    # every request ends exactly once; rejected only when its context can never fit
    assert len(rec) == len(req)
    fin = rec[rec["status"] == "finished"]
    rej = rec[rec["status"] == "rejected"]
    assert len(fin) + len(rej) == len(req)
    need = -(-(req["prompt_tokens"] + req["output_tokens"] - 1) // cl.block_size)
    cap = res.kv_capacity_tokens // cl.block_size
    assert list(rec["status"] == "rejected") == list(need > cap)
    # the token budget and max_num_seqs every step
    for d, chunks in lat.mixed:
        assert d + sum(c for c, _ in chunks) <= cl.max_num_batched_tokens
        assert d + len(chunks) <= cl.max_num_seqs and all(c >= 1 for c, _ in chunks)
    assert all(1 <= b <= cl.max_num_seqs for b in lat.runs)
    # a request's life in order, on one worker of its own model's pool
    eps = 1e-9
    assert (fin["prefill_started_at"] >= fin["arrived_at"] - eps).all()
    assert (fin["first_token_at"] >= fin["prefill_started_at"] + lat.p0 - eps).all()
    assert (fin["finished_at"] >= fin["first_token_at"] - eps).all()
    dec = fin[fin["output_tokens"] > 1]
    assert (dec["kv_ready_at"] == dec["first_token_at"]).all()
    assert (dec["decode_started_at"] == dec["first_token_at"]).all()
    assert (dec["decode_worker"] == dec["prefill_worker"]).all()
    one = fin[fin["output_tokens"] == 1]
    assert (one["finished_at"] == one["first_token_at"]).all() and one["kv_ready_at"].isna().all()
    pool_of = dict(zip(res.decode_workers["worker"], res.decode_workers["pool"]))
    assert all(pool_of[w] == m for w, m in zip(fin["prefill_worker"], fin["model"]))
    # every output token emitted exactly once: decode steps, first tokens, recomputes
    ws = sim.decode_workers
    emitted = sum(w.stats.num_tokens + w.stats.num_fresh_gaps for w in ws) + len(fin)
    assert emitted == int(fin["output_tokens"].sum())
    assert res.decode_workers["num_preemptions"].sum() == rec["num_preemptions"].sum()
    # everything released
    for w in ws:
        assert (w.kv.num_seqs, w.kv.sum_offset, w.load, w.load_tokens) == (0, 0, 0, 0)
        assert not w.running and not w.waiting and w.partial is None and not w.busy


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(cases(tight_kv=True))
def test_planned_decode_runs_equal_single_steps(case):
    planned, _ = run(case)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sunsim.engine.colocated, "MAX_MACRO_ITERATIONS", 1)
        single, _ = run(case)
    for c in planned.records.columns:
        a, b = planned.records[c], single.records[c]
        if pd.api.types.is_float_dtype(a):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-9, equal_nan=True, err_msg=c)
        else:
            assert (a == b).all(), c
    for col in ("num_iterations", "num_tokens", "num_preemptions"):
        assert list(planned.decode_workers[col]) == list(single.decode_workers[col]), col


def test_a_shared_colocated_pool_is_one_more_design_entry():
    """Issue 11's shared-base variant: the same workers, one pool serving every model."""
    shared = dataclasses.replace(
        DESIGNS["colocated"], name="colocated_shared", decode=PoolDesign(PoolScope.SHARED)
    )
    lat = ConstantLatency(prefill_s=0.05, decode_s=0.01, weight_bytes=kv_weights(1000, 16))
    cl = ClusterSpec(
        shared, ("a", "b"), (), (), colocated_workers=(2,), gpu_memory_utilization=1.0,
        reserve_bytes=0,
    )  # fmt: skip
    res = simulate(frame([0, 0, 0, 0], [10] * 4, [3] * 4, ["a", "b", "a", "b"]), cl, lat, lat)
    assert (res.records["status"] == "finished").all()
    assert set(res.decode_workers["pool"]) == {"shared"} and len(res.decode_workers) == 2
    assert cl.num_gpus == 2 and cl.decode_pool_names == ["shared"]


# -- configuration, summaries, planner -----------------------------------------------------------


def test_scenario_counts_colocated_workers_per_model():
    s = Scenario(modes="colocated", colocated_workers=(3,))
    cl = s.cluster("colocated")
    assert cl.colocated_workers == (3, 3, 3) and cl.num_gpus == 9
    assert (cl.prefill_workers, cl.decode_workers, cl.num_prefill_gpus) == ((), (), 0)
    assert Scenario(colocated_workers=(1, 2, 3)).cluster("colocated").colocated_workers == (1, 2, 3)
    assert "colocated" not in Scenario().modes and "colocated" in Scenario(modes="all").modes
    # the disaggregated designs are untouched by the key
    assert Scenario(colocated_workers=(5,)).cluster("sun") == Scenario().cluster("sun")


@pytest.mark.parametrize(
    "kw, words",
    [
        ({"prefill_workers": (1,)}, "no prefill or decode pools"),
        ({"colocated_workers": (1, 1)}, "needs 1 co-located worker count"),
        ({"colocated_workers": ()}, "needs 1 co-located worker count"),
        ({"colocated_workers": (0,)}, "at least 1 worker"),
        ({"max_num_seqs": 512, "max_num_batched_tokens": 256}, "max_num_batched_tokens (256)"),
    ],
)
def test_bad_colocated_clusters_are_one_line(kw, words):
    args = {"prefill_workers": (), "decode_workers": (), "colocated_workers": (1,)} | kw
    with pytest.raises(ConfigError, match=words.replace("(", r"\(").replace(")", r"\)")):
        ClusterSpec("colocated", ("a",), **args)


def test_disaggregated_designs_refuse_colocated_workers():
    with pytest.raises(ConfigError, match="no co-located workers"):
        ClusterSpec("sun", ("a",), (1,), (1,), colocated_workers=(1,))


@pytest.mark.parametrize(
    "args, words",
    [
        (["--colocated-workers", "0"], "colocated"),
        (["--colocated-workers", "1,2"], "co-located worker count"),
    ],
)
def test_bad_colocated_option_is_one_line_exit_2(args, words, tmp_path):
    r = CliRunner().invoke(
        app, ["replay", "--mode", "colocated", "--no-progress", "--out", str(tmp_path), *args]
    )
    assert r.exit_code == 2, r.output
    assert words in r.output and "Traceback" not in r.output


def test_summary_counts_colocated_gpus_and_reads_back():
    lat = ConstantLatency(prefill_s=0.05, decode_s=0.01, weight_bytes=kv_weights(1000, 16))
    res = simulate(frame([0.0, 0.1], [10, 20], [3, 4]), colo(workers=(2,)), lat, lat)
    s = summarize(res, SLO)
    assert (s.gpus.prefill, s.gpus.decode, s.gpus.colocated, s.gpus.total) == (0, 0, 2, 2)
    assert s.gpus.colocated_per_pool == (2,)
    assert RunSummary.from_dict(s.to_dict()) == s
    assert comparison_table({"colocated": s})["colocated"]["GPUs (prefill+decode)"] == (
        "2 co-located"
    )
    # a disaggregated summary keeps its keys (no co-located ones) and reads back
    lat2 = ConstantLatency(prefill_s=0.05, decode_s=0.01, weight_bytes=kv_weights(1000, 16))
    cl = ClusterSpec("sun", ("a",), (1,), (1,), gpu_memory_utilization=1.0, reserve_bytes=0)
    d = summarize(simulate(frame([0.0], [10], [3]), cl, lat2, lat2), SLO).to_dict()
    assert set(d["gpus"]) == {
        "prefill",
        "decode",
        "total",
        "decode_per_pool",
        "prefill_per_model",
        "prefill_tensor_parallel_size",
        "decode_tensor_parallel_size",
    }
    assert RunSummary.from_dict(d).gpus.colocated == 0


def test_planner_sizes_colocated_workers_per_model():
    s = Scenario(
        trace=str(DEFAULT_TRACE),
        max_requests=300,
        rate_scale=40.0,
        latency="roofline",
        slo_ttft_s=0.5,
        slo_tpot_s=0.012,
        modes=("colocated",),
    )
    r = plan(s, PlanOptions(jobs=1))
    mp = r.points[0].modes["colocated"]
    assert (mp.prefill_workers, mp.decode_workers) == ((), ())
    assert len(mp.colocated_workers) == 3 and all(n >= 1 for n in mp.colocated_workers)
    assert mp.num_gpus == sum(mp.colocated_workers) == mp.summary.gpus.total
    for m in s.served_models:
        assert mp.summary.per_model[m].slo_attainment >= s.slo_attainment
    row = r.table().iloc[0]
    assert row["num_colocated_gpus"] == mp.num_gpus and row["num_decode_gpus"] == 0
    # the search's log: every count at or above a pool's answer met the SLO, none below
    ans = dict(zip(s.served_models, mp.colocated_workers))
    assert mp.evaluations and all(
        e["met"] == (e["workers"] >= ans[e["pool"]]) for e in mp.evaluations
    )
    assert max(mp.colocated_workers) > 1, "the busy scenario should need more than one worker"
