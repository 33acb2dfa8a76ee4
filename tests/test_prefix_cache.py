"""Prefix caching, the ``prefillshare``/``icarus`` designs' KV sharing and ``kv_aware`` routing.

Timelines use :class:`ConstantLatency`: a prefill batch costs ``0.1 + 0.001 x computed
tokens`` seconds, and (its ``context_attention_time`` being 0) cached context costs nothing
more, so a request that finds ``h`` of its ``p`` prompt tokens cached gets its first token
``0.1 + 0.001 (p - h)`` seconds after its prefill starts. Hash blocks are 512 tokens
(Mooncake's), engine blocks 16: one hash block is 32 engine blocks.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sunsim.engine.cluster import simulate
from sunsim.engine.designs import DESIGNS
from sunsim.engine.prefix_cache import SHARED_NAMESPACE, PrefixCache, chain_keys
from sunsim.engine.spec import ClusterSpec
from sunsim.errors import TraceError
from sunsim.latency.base import ConstantLatency
from sunsim.metrics import summarize
from sunsim.specs import LinkSpec, SloSpec

H100_BYTES = 80 * 10**9
LINK = LinkSpec(bandwidth=1e12, latency_s=0.0)


def frame(*rows, hash_block_tokens: int = 512) -> pd.DataFrame:
    """Rows of (arrival_s, model, prompt_tokens, output_tokens, hash_ids or None), the frame
    the trace side hands :func:`simulate` (``hash_ids`` a tuple per request)."""
    df = pd.DataFrame(
        [r[:4] for r in rows], columns=["arrival_s", "model", "prompt_tokens", "output_tokens"]
    )
    df["hash_ids"] = pd.Series([None if r[4] is None else tuple(r[4]) for r in rows], dtype=object)
    df.attrs["hash_block_tokens"] = hash_block_tokens
    return df


def lat(cache_blocks: int | None = None) -> ConstantLatency:
    """0.1 s + 1 ms per prompt token; KV 1 byte a token. ``cache_blocks``: weights that leave
    exactly that many 16-token blocks on an H100 at utilisation 1 and no reserve."""
    wb = H100_BYTES - 16 * cache_blocks if cache_blocks else 10**9
    return ConstantLatency(
        prefill_s=0.1,
        prefill_per_token_s=0.001,
        decode_s=0.01,
        weight_bytes=wb,
        kv_bytes_per_token=1,
    )


def disagg(design: str = "sun", models=("a",), caching: bool = True, **kw) -> ClusterSpec:
    n = len(models)
    dw = (1,) if DESIGNS[design].shares_decode else (1,) * n
    pw = (1,) * n if DESIGNS[design].num_prefill_pools(n) == n else (n,)  # pooled: n workers
    base = dict(
        design=design,
        served_models=tuple(models),
        prefill_workers=pw,
        decode_workers=dw,
        link=LINK,
        enable_prefix_caching=caching,
        gpu_memory_utilization=1.0,
        reserve_bytes=0,
    )
    base.update(kw)
    return ClusterSpec(**base)


def coloc(design="colocated", models=("a",), caching: bool = True, **kw) -> ClusterSpec:
    d = DESIGNS[design] if isinstance(design, str) else design
    cw = (1,) if d.shares_decode else (1,) * len(models)
    base = dict(
        design=d,
        served_models=tuple(models),
        prefill_workers=(),
        decode_workers=(),
        colocated_workers=cw,
        link=LINK,
        enable_prefix_caching=caching,
        gpu_memory_utilization=1.0,
        reserve_bytes=0,
    )
    base.update(kw)
    return ClusterSpec(**base)


def run(df, cl, latency=None):
    lm = latency or lat()
    return simulate(df, cl, lm, lm)


# -- the hand-checked timeline ----------------------------------------------------------------


SESSION = frame(
    (0.0, "a", 1024, 2, (1, 2)),  # turn 1: two hash blocks
    (10.0, "a", 1536, 2, (1, 2, 3)),  # turn 2 extends turn 1's context by 512 tokens
    (20.0, "a", 1536, 2, (1, 2, 3)),  # the same prompt again: a whole-prompt hit is capped
)


def test_second_call_prefills_only_new_tokens_disaggregated():
    on = run(SESSION, disagg()).records
    off = run(SESSION, disagg(caching=False)).records
    # turn 1: nothing cached: 0.1 + 1.024
    assert on["first_token_at"][0] == pytest.approx(1.124)
    # turn 2: blocks 1, 2 (1024 tokens) cached, 512 computed: 10 + 0.1 + 0.512
    assert on["first_token_at"][1] == pytest.approx(10.612)
    # turn 3: all 3 blocks cached, but at least one token is computed: block 3 (512 tokens)
    # is recomputed (hits are whole hash blocks), 20 + 0.612
    assert on["first_token_at"][2] == pytest.approx(20.612)
    # without caching every call prefills its whole prompt: 10 + 0.1 + 1.536
    assert off["first_token_at"][1] == pytest.approx(11.636)
    assert (on["status"] == "finished").all()
    pc = run(SESSION, disagg()).extra["prefix_cache"]
    assert pc["query_tokens"] == 1024 + 1536 + 1536
    assert pc["hit_tokens"] == pc["prefill_tokens_saved"] == 2048
    assert pc["evictions"] == 0


def test_second_call_prefills_only_new_tokens_colocated():
    rec = run(SESSION, coloc()).records
    # a co-located step with one chunk of c tokens after h cached: 0.1 + 0.001 c
    assert rec["first_token_at"].tolist() == pytest.approx([1.124, 10.612, 20.612])


def test_summary_block_only_with_caching():
    slo = SloSpec()
    on = summarize(run(SESSION, disagg()), slo).to_dict()
    off = summarize(run(SESSION, disagg(caching=False)), slo).to_dict()
    assert on["prefix_cache"]["hit_rate"] == pytest.approx(2048 / 4096)
    assert "prefix_cache" not in off
    no_hashes = summarize(run(SESSION.drop(columns="hash_ids"), disagg()), slo).to_dict()
    assert "prefix_cache" not in no_hashes


def test_caching_without_hits_changes_no_record():
    """Distinct hashes: caching on finds nothing, and every record equals caching off's."""
    df = frame(*[(i * 0.3, "a", 600 + 50 * i, 5, (100 + i, 200 + i)) for i in range(8)])
    for cl_on, cl_off in ((disagg(), disagg(caching=False)), (coloc(), coloc(caching=False))):
        pd.testing.assert_frame_equal(run(df, cl_on).records, run(df, cl_off).records)


# -- eviction order ---------------------------------------------------------------------------


def test_lru_eviction_order_unit():
    c = PrefixCache(capacity_blocks=3, block_size=16)
    for k in (1, 2, 3):
        c.release(c.insert([k], [16], owner=0, room=3))  # each alone, then unreferenced
    c.pin([1])  # 1 is used again: it leaves the LRU list ...
    c.release([1])  # ... and comes back as the most recently used: order 2, 3, 1
    assert list(c.lru) == [2, 3, 1]
    c.release(c.insert([4], [16], owner=0, room=3))
    assert 2 not in c.entries and list(c.lru) == [3, 1, 4]
    c.pin([3])
    c.insert([5, 6], [16, 16], owner=0, room=3)  # 1 then 4 go; 3 is pinned and stays
    assert set(c.entries) == {3, 5, 6} and c.num_evictions == 3
    assert c.insert([7], [16], owner=0, room=3) == []  # everything pinned: 7 not cached
    assert c.num_blocks == 3 and c.free_blocks == 0


def test_eviction_order_in_a_tiny_prefill_cache():
    """A prefill worker whose KV holds 64 blocks (two hash blocks)."""
    df = frame(
        (0.0, "a", 512, 1, (1,)),  # A
        (10.0, "a", 512, 1, (2,)),  # B
        (20.0, "a", 512, 1, (3,)),  # C: room for its 32 blocks evicts A (least recent)
        (30.0, "a", 1024, 1, (2, 4)),  # B hits (512); C is evicted for its 32 new blocks
        (40.0, "a", 1024, 1, (1, 5)),  # A was evicted: no hit
    )
    res = run(df, disagg(), lat(cache_blocks=64))
    rec = res.records
    assert rec["first_token_at"].tolist() == pytest.approx([0.612, 10.612, 20.612, 30.612, 41.124])
    pc = res.extra["prefix_cache"]
    assert pc["hit_tokens"] == 512
    # evicted: A (for C: A is older than B, so D still finds B), C (for D's block 4), then
    # B and 4 (E computes 64 new blocks: the whole cache)
    assert pc["evictions"] == 4 and pc["evicted_blocks"] == 128


# -- which designs share KV across models -------------------------------------------------


CROSS = frame(
    (0.0, "a", 1024, 2, (1, 2)),  # the planner reads the context
    (10.0, "b", 1536, 2, (1, 2, 3)),  # the coder reads it plus 512 new tokens
)


@pytest.mark.parametrize(
    "cluster, hit",
    [
        (disagg("partitioned", models=("a", "b")), 0),
        (disagg("sun", models=("a", "b")), 0),
        (disagg("prefillshare", models=("a", "b")), 1024),
        (coloc("colocated", models=("a", "b")), 0),
        (coloc("icarus", models=("a", "b")), 1024),
        # the same shared worker with per-model keys: no cross-model hit
        (
            coloc(
                dataclasses.replace(DESIGNS["icarus"], kv_shared_across_models=False), ("a", "b")
            ),
            0,
        ),
    ],
    ids=["partitioned", "sun", "prefillshare", "colocated", "icarus", "shared-worker-per-model"],
)
def test_cross_model_hits_only_where_the_design_shares_kv(cluster, hit):
    res = run(CROSS, cluster)
    assert res.extra["prefix_cache"]["hit_tokens"] == hit
    assert res.records["first_token_at"][1] == pytest.approx(10.1 + 0.001 * (1536 - hit))


def test_chain_keys_namespaces():
    assert chain_keys([1, 2], 0) != chain_keys([1, 2], 1)
    assert chain_keys([1, 2], SHARED_NAMESPACE)[0] == chain_keys([1, 9], SHARED_NAMESPACE)[0]
    # chaining: block 2 after a different block 1 is a different key
    assert chain_keys([1, 2], 0)[1] != chain_keys([7, 2], 0)[1]


# -- KV-aware routing --------------------------------------------------------------------------


ROUTE = frame(
    (0.0, "a", 512, 1, (1,)),  # -> worker 0 (tie)
    (0.05, "a", 512, 1, (2,)),  # worker 0 busy with 512 queued tokens -> worker 1
    (10.0, "a", 1024, 1, (2, 5)),  # both idle: worker 1 holds block 2
)


@pytest.mark.parametrize(
    "router, worker, ttft", [("kv_aware", 1, 0.612), ("least_loaded", 0, 1.124)]
)
def test_kv_aware_routing_picks_the_worker_with_the_prefix(router, worker, ttft):
    rec = run(ROUTE, disagg(prefill_workers=(2,), prefill_router=router)).records
    assert rec["prefill_worker"].tolist()[:2] == [0, 1]
    assert rec["prefill_worker"][2] == worker
    assert rec["first_token_at"][2] - rec["arrived_at"][2] == pytest.approx(ttft)


def test_kv_aware_weighs_load_against_overlap():
    """Worker 1 holds the prefix but has 2048 tokens queued: cost 512 + 2048 there against
    1024 on idle worker 0, so the request goes to worker 0."""
    df = frame(
        (0.0, "a", 512, 1, (1,)),
        (0.01, "a", 512, 1, (2,)),
        (10.0, "a", 2048, 1, (8, 9, 10, 11)),  # worker 0 (tie), busy until 12.148
        (10.01, "a", 2048, 1, (12, 13, 14, 15)),  # worker 1 (less queued)
        (10.02, "a", 1024, 1, (1, 6)),  # worker 0: 2048 + 512 vs worker 1: 2048 + 1024
    )
    rec = run(df, disagg(prefill_workers=(2,), prefill_router="kv_aware")).records
    assert rec["prefill_worker"].tolist() == [0, 1, 0, 1, 0]


# -- bad input ----------------------------------------------------------------------------------


def test_hash_count_must_fit_the_prompt():
    df = frame((0.0, "a", 1024, 2, (1, 2, 3)))
    with pytest.raises(TraceError, match="row 0.*3 hash_ids for 1024 prompt tokens"):
        run(df, disagg())


# -- no request lost or double-counted under eviction -----------------------------------------


@st.composite
def workloads(draw):
    n = draw(st.integers(1, 25))
    H = draw(st.sampled_from([32, 64]))
    t = 0.0
    rows = []
    for _ in range(n):
        t += draw(st.floats(0.0, 0.3))
        nb = draw(st.integers(1, 6))
        prompt = draw(st.integers((nb - 1) * H + 1, nb * H))
        # a small alphabet: prefixes repeat, and evictions happen in a tiny cache
        hashes = tuple(draw(st.lists(st.integers(0, 3), min_size=nb, max_size=nb)))
        model = draw(st.sampled_from(["a", "b"]))
        rows.append((t, model, prompt, draw(st.integers(1, 40)), hashes))
    return frame(*rows, hash_block_tokens=H)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    workloads(),
    st.sampled_from(["sun", "prefillshare", "colocated", "icarus"]),
    st.sampled_from(["least_loaded", "kv_aware"]),
)
def test_no_request_lost_or_double_counted_under_eviction(df, design, router):
    # 40 blocks of 16 tokens: a few hash blocks; the decode/co-located KV is as small
    latency = lat(cache_blocks=40)
    if DESIGNS[design].colocated:
        cl = coloc(
            design,
            models=("a", "b"),
            decode_router=router,
            max_num_batched_tokens=256,
        )
    else:
        pw = (3,) if design == "prefillshare" else (2, 1)  # 3 workers, one shared pool
        cl = disagg(design, models=("a", "b"), prefill_workers=pw, prefill_router=router)
    res = run(df, cl, latency)
    rec = res.records
    assert len(rec) == len(df)
    done = rec["status"] == "finished"
    assert (done | (rec["status"] == "rejected")).all()
    assert (rec.loc[done, "first_token_at"] >= rec.loc[done, "arrived_at"]).all()
    assert (rec.loc[done, "finished_at"] >= rec.loc[done, "first_token_at"]).all()
    pc = res.extra["prefix_cache"]
    assert 0 <= pc["hit_tokens"] <= pc["query_tokens"]
    # within capacity: 40 blocks on each of the 3 prefill workers, or the one co-located
    # worker per pool (icarus: one; colocated: one per model)
    per_worker = {"colocated": 2, "icarus": 1}.get(design, 3)
    assert pc["peak_cached_blocks"] <= 40 * per_worker


def test_pins_are_released_at_the_end():
    """After a run every cached block is unreferenced (no request keeps a pin)."""
    from sunsim.engine.cluster import ClusterSim
    from sunsim.engine.prefix_hooks import enable_prefix_caching

    df = frame(
        *[(i * 0.05, "ab"[i % 2], 520 + 20 * i, 3 + i, (i % 3, i % 2, i)) for i in range(12)],
        hash_block_tokens=256,
    )
    for cl in (disagg("prefillshare", models=("a", "b")), coloc("icarus", models=("a", "b"))):
        lm = lat(cache_blocks=60)
        sim = ClusterSim(cl, lm, lm, len(df), np.random.default_rng(0))
        model_idx = df["model"].map({"a": 0, "b": 1}).to_numpy()
        sim.records.set_inputs(
            df["arrival_s"].to_numpy(float),
            model_idx,
            df["prompt_tokens"].to_numpy(),
            df["output_tokens"].to_numpy(),
        )
        assert enable_prefix_caching(sim, df, model_idx.tolist())
        sim.start_arrivals(
            df["arrival_s"].tolist(),
            model_idx.tolist(),
            df["prompt_tokens"].tolist(),
            df["output_tokens"].tolist(),
        )
        sim.env.run()
        assert sim.num_done == len(df)
        caches = [
            w.prefix
            for w in (*sim.prefill_workers, *sim.decode_workers)
            if getattr(w, "prefix", None)
        ]
        assert caches
        for wp in caches:
            assert wp.pins == {}
            c = wp.cache
            assert c.free_blocks == c.num_blocks <= c.capacity_blocks
            assert sum(c.blocks_by_owner.values()) == c.num_blocks


# -- ICaRus's paired decode ----------------------------------------------------------------------


def test_icarus_pairs_decode_rows():
    """ICaRus's decoding step runs an encoder and a decoder row per request: the step of B
    requests over C context tokens is the base module's step of 2B rows over 2C tokens."""
    from sunsim.latency.paired import PairedDecodeLatency
    from sunsim.latency.roofline import RooflineLatency
    from sunsim.specs import MODELS, get_gpu

    inner = RooflineLatency(get_gpu("h100"), MODELS["llama-3.1-8b"], "bf16")
    p = PairedDecodeLatency(inner)
    assert p.decode_step_time(8, 4000) == inner.decode_step_time(16, 8000)
    assert p.decode_step_time(8, 4000) > inner.decode_step_time(8, 4000)
    assert p.decode_run(4, 100, 5) == inner.decode_run(8, 200, 5)
    assert p.prefill_time([300, 20]) == inner.prefill_time([300, 20])
    assert p.mixed_step_time(3, 90, [(50, 10)]) == inner.mixed_step_time(6, 180, [(50, 10)])
    assert p.kv_bytes_per_token == inner.kv_bytes_per_token
    # the icarus design decodes with it; its description says so
    df = frame((0.0, "a", 100, 20, None), (0.0, "b", 100, 20, None))
    res = simulate(df, coloc("icarus", ("a", "b")), inner, inner)
    assert "paired decode" in res.decode_latency


def test_scenario_key_reaches_the_cluster():
    from sunsim.config import Scenario

    s = Scenario(served_models=("a", "b"), enable_prefix_caching=True)
    assert s.cluster("prefillshare").enable_prefix_caching
    assert s.cluster("icarus").colocated_workers == (sum(s.colocated_workers * 2),)
    assert not Scenario(served_models=("a", "b")).cluster("sun").enable_prefix_caching


# -- cached KV by model over time ------------------------------------------------------------


def test_kv_timeline_integrates_by_bin():
    """Bins of 1 s: 2 blocks from 0.5 s, 4 from 1.5 s, the run ends at 2.5 s: bin means 1,
    3 and (the last bin: over its 0.5 s) 4 blocks; bytes = blocks x bytes per block."""
    from sunsim.engine.prefix_timeline import KvTimeline, kv_timeline_frame

    tl = KvTimeline(1.0, 2)
    tl.update(0.5, {0: 2})
    tl.update(1.5, {0: 4, 1: 0})
    df = kv_timeline_frame([tl], 2.5, 16, ["a", "b"])
    a = df[df["model"] == "a"]
    assert a["t_s"].tolist() == [0.0, 1.0, 2.0]
    assert a["cached_kv_bytes"].tolist() == pytest.approx([16.0, 48.0, 64.0])
    assert (df.loc[df["model"] == "b", "cached_kv_bytes"] == 0).all()


def test_kv_timeline_of_the_hand_checked_session():
    """SESSION on one prefill worker, 1 byte of KV a token, 16-token blocks (16 bytes each),
    bins of 20 / 200 = 0.1 s: turn 1's 64 blocks are cached when its prefill ends (1.124 s),
    turn 2 adds block 3's 32 at 10.612 s; nothing is evicted."""
    tl = run(SESSION, disagg()).extra["prefix_kv_timeline"]
    kv = tl.set_index("t_s")["cached_kv_bytes"]
    at = {round(t, 6): v for t, v in kv.items()}
    assert at[1.0] == 0.0
    assert at[1.1] == pytest.approx(64 * 16 * 0.76)  # cached for 0.076 of the 0.1 s bin
    assert at[5.0] == pytest.approx(64 * 16)
    assert at[10.6] == pytest.approx((64 * 0.012 + 96 * 0.088) / 0.1 * 16)
    assert at[15.0] == pytest.approx(96 * 16)
    off = run(SESSION, disagg(caching=False)).extra
    assert "prefix_kv_timeline" not in off


def test_replay_prints_the_prefix_rows(prefix_run_dir, tmp_path):
    """``sunsim replay`` prints each design's hit rate, tokens saved and evictions (the
    figures of its summary.json); a run without caching prints none of these rows."""
    import json

    from typer.testing import CliRunner

    from sunsim.cli import app

    trace = str(prefix_run_dir.parent / "workflow.csv")
    args = ["replay", trace, "--models", "a,b,c", "--mode", "sun", "--latency", "roofline"]
    args += ["--gpu-memory-utilization", "0.24", "--no-progress", "--out"]
    res = CliRunner().invoke(app, [*args, str(tmp_path / "on"), "--enable-prefix-caching"])
    assert res.exit_code == 0, res.output
    pc = json.loads((tmp_path / "on" / "summary.json").read_text())["modes"]["sun"]
    pc = pc["prefix_cache"]
    line = next(ln for ln in res.output.splitlines() if "prefix evictions" in ln)
    assert f"{pc['evictions']:,}" in line and pc["evictions"] > 0
    line = next(ln for ln in res.output.splitlines() if "prefix hit rate" in ln)
    assert f"{pc['hit_rate']:.1%}" in line
    res = CliRunner().invoke(app, [*args, str(tmp_path / "off")])
    assert res.exit_code == 0, res.output
    assert "prefix hit rate" not in res.output


def test_lora_workers_keep_their_class_and_adapter_rules_with_caching():
    """The cache hooks are a component (``worker.prefix``), not a class swap: a ``lora``
    worker stays a LoraWorker and its second call of a session hits the cache."""
    from sunsim.engine.cluster import ClusterSim
    from sunsim.engine.lora import LoraWorker
    from sunsim.engine.lora_spec import LoraSpec
    from sunsim.engine.prefix_hooks import enable_prefix_caching

    cl = coloc("lora", models=("a",), lora=LoraSpec(1))
    sim = ClusterSim(cl, lat(), lat(), 3, np.random.default_rng(0))
    assert enable_prefix_caching(sim, SESSION, [0, 0, 0])
    assert all(type(w) is LoraWorker and w.prefix is not None for w in sim.decode_workers)
    res = run(SESSION, coloc("lora", models=("a",), lora=LoraSpec(1)))
    assert res.extra["prefix_cache"]["hit_tokens"] == 2048
