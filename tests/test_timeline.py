"""Hand-checkable timelines: tiny scenarios whose every timestamp is worked out in the comments.

Step times come from :class:`ConstantLatency` (prefill ``prefill_s`` + ``prefill_per_token_s`` x
tokens per batch, decode ``decode_s`` per iteration whatever the batch) and an explicit
``LinkSpec(bandwidth, latency_s)`` with ``kv_bytes_per_token = 1``, so a transfer of ``p``
prompt tokens takes ``latency_s + p / bandwidth`` seconds. Arrival times and KV arrivals are
chosen off iteration boundaries (no ties whose order would depend on event scheduling).

Conventions checked (ARCHITECTURE.md, "A request's life"): prefill emits token 1; a request
with ``o`` output tokens then needs ``o - 1`` decode iterations; a KV arriving while a worker
decodes joins at the first iteration boundary at or after its arrival; TTFT =
``first_token_at - arrived_at``; TPOT = ``(finished_at - first_token_at) / (o - 1)``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import sunsim.engine.decode
from sunsim.engine.cluster import simulate
from sunsim.engine.decode import itl_bin
from sunsim.engine.spec import ClusterSpec
from sunsim.latency.base import ConstantLatency, LatencyModel
from sunsim.metrics import summarize
from sunsim.specs import LinkSpec, SloSpec

H100_BYTES = 80 * 10**9  # sunsim.config.GPUS["h100"].memory_bytes


def requests(*rows) -> pd.DataFrame:
    """Rows of (arrival_s, model, prompt_tokens, output_tokens)."""
    return pd.DataFrame(
        list(rows), columns=["arrival_s", "model", "prompt_tokens", "output_tokens"]
    )


def one_model(**kw) -> ClusterSpec:
    """One model ``a``, one prefill worker, one decode worker (a shared pool)."""
    base = dict(design="sun", served_models=("a",), prefill_workers=(1,), decode_workers=(1,))
    base.update(kw)
    return ClusterSpec(**base)


def tiny_kv(blocks: int, **kw) -> tuple[ClusterSpec, dict]:
    """A cluster whose decode worker holds exactly ``blocks`` KV blocks of 16 tokens.

    KV capacity = (GPU bytes x utilisation - weight bytes - reserve) / (KV bytes per token x
    16): with utilisation 1, no reserve, 1 KV byte per token and weights of
    ``80e9 - 16 * blocks`` bytes, that is ``blocks``.
    """
    cl = one_model(gpu="h100", gpu_memory_utilization=1.0, reserve_bytes=0, **kw)
    return cl, {"weight_bytes": H100_BYTES - 16 * blocks, "kv_bytes_per_token": 1}


def assert_times(rec: pd.DataFrame, expected: dict[int, dict[str, float]]) -> None:
    for i, cols in expected.items():
        got = rec.iloc[i].to_dict()
        for col, want in cols.items():
            if want != want:  # NaN
                assert np.isnan(got[col]), (i, col, got[col])
            else:
                assert got[col] == pytest.approx(want, abs=1e-9), (i, col, got[col], want)


# --------------------------------------------------------------------------------------------
# Prefill batching, FIFO link, 1-token request, continuous batching joining mid-run
# --------------------------------------------------------------------------------------------

# prefill: 1 s per batch whatever its tokens; budget 100 tokens. decode: 0.5 s per iteration.
# link: 0.25 s + bytes / (100 B/s), FIFO per prefill worker.
BATCH_TRACE = requests(
    (0.0, "a", 50, 7),  # r0
    (0.0, "a", 40, 4),  # r1
    (0.0, "a", 20, 1),  # r2: 50 + 40 + 20 = 110 > 100 tokens: waits for the second batch
    (0.5, "a", 30, 3),  # r3: queued behind r2, joins its batch (20 + 30 = 50 <= 100)
    (1.5, "a", 10, 2),  # r4: arrives while batch 2 runs: batch 3
)


def run_batch_trace(latency: LatencyModel | None = None):
    cl = one_model(max_num_batched_tokens=100, link=LinkSpec(bandwidth=100.0, latency_s=0.25))
    lat = latency or ConstantLatency(prefill_s=1.0, decode_s=0.5)
    return simulate(BATCH_TRACE, cl, lat, lat)


def test_prefill_batching_link_fifo_and_joining_mid_run():
    res = run_batch_trace()
    rec = res.records
    # Prefill batches (1 s each): [r0, r1] 0 -> 1; [r2, r3] 1 -> 2; [r4] 2 -> 3.
    # Link (FIFO): r0 at 1.0: 0.25 + 50/100 = 0.75 -> 1.75; r1 waits for the link: 1.75 + 0.25
    #   + 0.40 -> 2.40; r2 has one output token: no transfer; r3 at 2.0 waits for the link
    #   (free at 2.40): 2.40 + 0.25 + 0.30 -> 2.95; r4 at 3.0 (link free): 3.0 + 0.35 -> 3.35.
    # Decode (0.5 s per iteration): r0 starts at once at 1.75; boundaries 2.25, 2.75, 3.25,
    #   3.75, 4.25, 4.75 (6 iterations for 7 tokens). r1's KV arrives at 2.40, mid-iteration:
    #   it joins at the next boundary, 2.75, and needs 3 iterations -> 4.25. r3 (2.95) joins at
    #   3.25, 2 iterations -> 4.25. r4 (3.35) joins at 3.75, 1 iteration -> 4.25.
    nan = float("nan")
    assert_times(
        rec,
        {
            0: dict(
                prefill_started_at=0.0,
                first_token_at=1.0,
                kv_ready_at=1.75,
                decode_started_at=1.75,
                finished_at=4.75,
                ttft_s=1.0,
                tpot_s=3.75 / 6,
                e2e_s=4.75,
            ),
            1: dict(
                prefill_started_at=0.0,
                first_token_at=1.0,
                kv_ready_at=2.40,
                decode_started_at=2.75,
                finished_at=4.25,
                ttft_s=1.0,
                tpot_s=3.25 / 3,
            ),
            # one output token: finished when prefill emits it, never transferred or decoded
            2: dict(
                prefill_started_at=1.0,
                first_token_at=2.0,
                kv_ready_at=nan,
                decode_started_at=nan,
                finished_at=2.0,
                ttft_s=2.0,
                tpot_s=nan,
                e2e_s=2.0,
            ),
            3: dict(
                prefill_started_at=1.0,
                first_token_at=2.0,
                kv_ready_at=2.95,
                decode_started_at=3.25,
                finished_at=4.25,
                ttft_s=1.5,
                tpot_s=2.25 / 2,
            ),
            4: dict(
                prefill_started_at=2.0,
                first_token_at=3.0,
                kv_ready_at=3.35,
                decode_started_at=3.75,
                finished_at=4.25,
                ttft_s=1.5,
                tpot_s=1.25,
            ),
        },
    )
    assert list(rec["status"]) == ["finished"] * 5
    assert rec.loc[2, "decode_worker"] == -1 and (rec.loc[[0, 1, 3, 4], "decode_worker"] == 0).all()
    assert (rec["num_preemptions"] == 0).all()
    # Decode worker: busy 1.75 -> 4.75 = 3 s, 6 iterations; batch sizes per iteration
    # 1, 1, 2, 3, 4, 1 -> 12 tokens (= sum of o - 1), mean batch 12 x 0.5 / 3 = 2, peak 4.
    dw = res.decode_workers.iloc[0]
    assert dw["num_iterations"] == 6 and dw["num_tokens"] == 12 and dw["peak_batch"] == 4
    assert dw["busy_s"] == pytest.approx(3.0) and dw["mean_batch"] == pytest.approx(2.0)
    # KV token-seconds: contexts per iteration (prompt + j at a request's j-th iteration)
    # 51; 52; 53+41; 54+42+31; 55+43+32+11; 56 -> 521 tokens x 0.5 s = 260.5 token-seconds.
    assert dw["kv_occupancy"] == pytest.approx(260.5 / 4.75 / res.kv_capacity_tokens)
    assert res.sim_end_s == pytest.approx(4.75)
    # Prefill worker: 3 batches, 150 tokens, 3 s busy; link: 130 bytes (r2 sends none),
    # busy 0.75 + 0.65 + 0.55 + 0.35 = 2.3 s.
    pw = res.prefill_workers.iloc[0]
    assert pw["num_batches"] == 3 and pw["num_tokens"] == 150
    assert pw["busy_s"] == pytest.approx(3.0)
    assert pw["link_bytes"] == 130 and pw["link_busy_s"] == pytest.approx(2.3)
    # ITL: the first decode token of a request waited since its first token (r0 2.25 - 1.0,
    # r1 3.25 - 1.0, r3 3.75 - 2.0, r4 4.25 - 3.0); the other 8 tokens waited one iteration.
    hist = res.itl_hist
    assert hist.sum() == 12
    assert hist[itl_bin(0.5)] == 8
    assert hist[itl_bin(1.25)] == 2 and hist[itl_bin(2.25)] == 1 and hist[itl_bin(1.75)] == 1


class RecordingLatency(ConstantLatency):
    """ConstantLatency that logs every decode iteration's (batch_size, total_context_tokens)
    and every prefill batch's prompt lengths."""

    def __init__(self, *a, **kw) -> None:
        super().__init__(*a, **kw)
        self.decode_calls: list[tuple[int, int]] = []
        self.prefill_calls: list[list[int]] = []

    def prefill_time(self, prompt_lens):
        self.prefill_calls.append(list(prompt_lens))
        return super().prefill_time(prompt_lens)

    def decode_step_time(self, batch_size, total_context_tokens):
        self.decode_calls.append((batch_size, total_context_tokens))
        return super().decode_step_time(batch_size, total_context_tokens)


def test_iteration_batch_and_context_seen_by_latency_model(monkeypatch):
    # With single-step runs every decode_step_time call is one iteration (planned runs may
    # price iterations that a KV arrival then cuts off).
    monkeypatch.setattr(sunsim.engine.decode, "MAX_MACRO_ITERATIONS", 1)
    lat = RecordingLatency(prefill_s=1.0, decode_s=0.5)
    run_batch_trace(lat)
    # A request holds prompt + j tokens at its j-th iteration (the prefill's token gets its KV
    # computed at the first one): see the KV token-seconds comment above.
    assert lat.decode_calls == [
        (1, 51),
        (1, 52),
        (2, 53 + 41),
        (3, 54 + 42 + 31),
        (4, 55 + 43 + 32 + 11),
        (1, 56),
    ]
    assert lat.prefill_calls == [[50, 40], [20, 30], [10]]


def test_prefill_per_token_cost_and_arrivals_at_one_instant_batch_together():
    # prefill 0.25 s + 1/128 s per token; two prompts of 64 at t=0 form one batch:
    # 0.25 + 128/128 = 1.25 s. A third at t=0.5 waits: 1.25 -> 1.25 + 0.25 + 0.5 = 2.0.
    lat = ConstantLatency(prefill_s=0.25, prefill_per_token_s=1 / 128, decode_s=0.1)
    cl = one_model(link=LinkSpec(bandwidth=1e3, latency_s=0.0))
    rec = simulate(
        requests((0.0, "a", 64, 1), (0.0, "a", 64, 1), (0.5, "a", 64, 1)), cl, lat, lat
    ).records
    assert list(rec["first_token_at"]) == pytest.approx([1.25, 1.25, 2.0])
    assert list(rec["prefill_started_at"]) == pytest.approx([0.0, 0.0, 1.25])
    assert list(rec["finished_at"]) == pytest.approx([1.25, 1.25, 2.0])
    assert list(rec["ttft_s"]) == pytest.approx([1.25, 1.25, 1.5])


# --------------------------------------------------------------------------------------------
# max_num_seqs: a full batch makes later KV wait in the decode queue
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("max_num_seqs", [1, 2])
def test_max_num_seqs_queueing(max_num_seqs):
    # prefill 0.25 + 1/128 s per token: a 64-token prompt takes 0.75 s. r0 0 -> 0.75;
    # r1 (arrives 0.1) 0.75 -> 1.5. Link 0.0625 + 64 / 256 = 0.3125 s: r0's KV at 1.0625,
    # r1's at 1.8125. Decode 0.1 s per iteration: r0 needs 12 iterations, 1.0625 -> 2.2625.
    lat = ConstantLatency(prefill_s=0.25, prefill_per_token_s=1 / 128, decode_s=0.1)
    cl = one_model(max_num_seqs=max_num_seqs, link=LinkSpec(bandwidth=256.0, latency_s=0.0625))
    rec = simulate(requests((0.0, "a", 64, 13), (0.1, "a", 64, 3)), cl, lat, lat).records
    assert_times(
        rec,
        {
            0: dict(
                first_token_at=0.75,
                kv_ready_at=1.0625,
                decode_started_at=1.0625,
                finished_at=2.2625,
            ),
            1: dict(prefill_started_at=0.75, first_token_at=1.5, kv_ready_at=1.8125),
        },
    )
    if max_num_seqs == 1:
        # r1 waits for r0 to leave the batch: 2.2625, then 2 iterations -> 2.4625.
        assert_times(
            rec, {1: dict(decode_started_at=2.2625, finished_at=2.4625, tpot_s=(2.4625 - 1.5) / 2)}
        )
    else:
        # r1 joins at the first boundary after 1.8125: 1.0625 + 0.1 k >= 1.8125 -> k = 8,
        # 1.8625; 2 iterations -> 2.0625.
        assert_times(rec, {1: dict(decode_started_at=1.8625, finished_at=2.0625)})


# --------------------------------------------------------------------------------------------
# Preemption with recompute, and rejections
# --------------------------------------------------------------------------------------------


def test_preemption_recomputes_and_finishes(monkeypatch):
    # KV capacity 4 blocks of 16 tokens (64 tokens). Two requests, prompt 16, 20 output tokens
    # each (up to 16 + 19 = 35 tokens: 3 blocks, each fits alone, both together do not).
    # prefill 1 s per batch; link 32 B/s, no latency; decode 1 s per iteration.
    cl, mem = tiny_kv(4, link=LinkSpec(bandwidth=32.0, latency_s=0.0))
    lat = RecordingLatency(prefill_s=1.0, decode_s=1.0, **mem)
    res = simulate(requests((0.0, "a", 16, 20), (0.0, "a", 16, 20)), cl, lat, lat)
    assert res.kv_capacity_tokens == 64
    rec = res.records
    # Both prefill in one batch 0 -> 1; link FIFO: A's 16 bytes 1.0 -> 1.5, B's 1.5 -> 2.0.
    # A runs from 1.5; its iteration k (k = 1, 2, ...) spans 1.5 + (k-1) .. 1.5 + k and A
    #   holds 16 + k tokens. B arrives at 2.0 and joins at the boundary 2.5 (k = 2), when
    #   A holds 18 tokens (2 blocks) and B needs ceil(17/16) = 2 blocks: 4 <= 4.
    # B holds 15 + k tokens at iteration k. At k = 17 A needs 33 tokens (3 blocks) and B 32
    #   (2 blocks): 5 > 4, so the newest, B, is preempted at 1.5 + 16 = 17.5, having emitted
    #   1 + 15 = 16 tokens; its KV is dropped.
    # Recompute: B's prompt + 15 generated tokens with KV = 31 tokens on the prefill worker
    #   17.5 -> 18.5, then 31 bytes over the link: 18.5 + 31/32 = 19.46875.
    # A: iterations 17, 18, 19 end at 18.5, 19.5, 20.5: A finishes at 20.5 (19 iterations).
    #   At the boundary 19.5 B waits (A holds 35 tokens = 3 blocks, B needs ceil(32/16) = 2).
    # B is admitted at 20.5 and needs its last 4 tokens: 4 iterations -> 24.5.
    assert_times(
        rec,
        {
            0: dict(
                first_token_at=1.0,
                kv_ready_at=1.5,
                decode_started_at=1.5,
                finished_at=20.5,
                tpot_s=19.5 / 19,
            ),
            # kv_ready_at and decode_started_at keep their first values
            1: dict(
                first_token_at=1.0,
                kv_ready_at=2.0,
                decode_started_at=2.5,
                finished_at=24.5,
                tpot_s=23.5 / 19,
            ),
        },
    )
    assert list(rec["num_preemptions"]) == [0, 1]
    assert list(rec["status"]) == ["finished", "finished"]
    assert lat.prefill_calls == [[16, 16], [31]]
    dw = res.decode_workers.iloc[0]
    # 19 iterations of A (the first 15 of B among them) + 4 of B; every output token once:
    # 19 + 19 decode tokens.
    assert dw["num_preemptions"] == 1 and dw["num_iterations"] == 23 and dw["num_tokens"] == 38
    assert dw["peak_batch"] == 2 and dw["busy_s"] == pytest.approx(23.0)
    # KV token-seconds: A sum_{k=1}^{19} (16 + k) = 494; B's first stint
    # sum_{j=1}^{15} (16 + j) = 360; B's last 4 iterations 32 + 33 + 34 + 35 = 134.
    assert dw["kv_occupancy"] == pytest.approx((494 + 360 + 134) / 24.5 / 64)
    pw = res.prefill_workers.iloc[0]
    assert pw["num_batches"] == 2 and pw["num_tokens"] == 16 + 16 + 31
    assert pw["link_bytes"] == 63
    s = summarize(res, SloSpec())
    assert s["requests"]["preemptions"] == 1 and s["requests"]["preempted_requests"] == 1

    # The same with every iteration stepped on its own: identical records.
    monkeypatch.setattr(sunsim.engine.decode, "MAX_MACRO_ITERATIONS", 1)
    lat1 = ConstantLatency(prefill_s=1.0, decode_s=1.0, **mem)
    rec1 = simulate(requests((0.0, "a", 16, 20), (0.0, "a", 16, 20)), cl, lat1, lat1).records
    pd.testing.assert_frame_equal(rec, rec1)


def test_rejections_counted_never_lost():
    # KV capacity 4 blocks = 64 tokens; max_model_len 100. A request needs
    # ceil((prompt + output - 1) / 16) blocks at its last iteration.
    cl, mem = tiny_kv(4, link=LinkSpec(bandwidth=1e3, latency_s=0.0))
    lat = ConstantLatency(prefill_s=0.5, decode_s=0.25, max_model_len=100, **mem)
    rec = simulate(
        requests(
            (0.0, "a", 60, 6),  # 65 tokens > 64: exceeds_kv_capacity
            (0.1, "a", 90, 20),  # 110 > 100 = max_model_len (checked first)
            (0.2, "a", 49, 16),  # 64 tokens = 4 blocks exactly: fits, finishes
            (0.3, "a", 1, 1),  # trivially fine
            (0.4, "a", 100, 1),  # 101 > 100 (prompt + output > max_model_len)
        ),
        cl,
        lat,
        lat,
    ).records
    assert list(rec["status"]) == ["rejected", "rejected", "finished", "finished", "rejected"]
    assert list(rec["reject_reason"]) == [
        "exceeds_kv_capacity",
        "exceeds_max_model_len",
        "",
        "",
        "exceeds_max_model_len",
    ]
    rej = rec[rec["status"] == "rejected"]
    assert rej[["first_token_at", "finished_at", "ttft_s", "e2e_s"]].isna().all().all()
    # the lone 4-block request: prefill 0.2 -> 0.7, KV 0.049 s later, 15 iterations of 0.25 s
    assert rec.loc[2, "finished_at"] == pytest.approx(0.7 + 0.049 + 15 * 0.25)
    # the 1-token request queues behind it on the prefill worker: 0.7 -> 1.2
    assert rec.loc[3, "finished_at"] == pytest.approx(0.7 + 0.5)


def test_rejected_counts_add_up_in_summary():
    cl, mem = tiny_kv(4, link=LinkSpec(bandwidth=1e3, latency_s=0.0))
    lat = ConstantLatency(prefill_s=0.5, decode_s=0.25, max_model_len=100, **mem)
    res = simulate(
        requests((0.0, "a", 60, 6), (0.1, "a", 90, 20), (0.2, "a", 49, 16)), cl, lat, lat
    )
    s = summarize(res, SloSpec(ttft_s=10, tpot_s=10))
    assert s["requests"] == {
        "total": 3,
        "finished": 1,
        "rejected": 2,
        "rejected_by_reason": {"exceeds_kv_capacity": 1, "exceeds_max_model_len": 1},
        "preempted_requests": 0,
        "preemptions": 0,
    }
    # rejected requests count as SLO misses
    assert s["slo"]["attainment"] == pytest.approx(1 / 3)


def test_partitioned_pools_and_shared_pool():
    # Two models, one prefill worker each; 2 decode workers: partitioned gives one to each
    # model, sun shares both (least_loaded: fewest assigned, ties to the lowest index).
    lat = ConstantLatency(prefill_s=1.0, decode_s=0.5)
    trace = requests((0.0, "a", 10, 5), (0.1, "a", 10, 5), (0.2, "b", 10, 5))
    link = LinkSpec(bandwidth=1e3, latency_s=0.0)
    part = simulate(
        trace,
        ClusterSpec(
            design="partitioned",
            served_models=("a", "b"),
            prefill_workers=(1, 1),
            decode_workers=(1, 1),
            link=link,
        ),
        lat,
        lat,
    )
    # a's requests both on worker 0 (a's pool), b's on worker 1
    assert list(part.records["decode_worker"]) == [0, 0, 1]
    assert list(part.decode_workers["pool"]) == ["a", "b"]
    sun = simulate(
        trace,
        ClusterSpec(
            design="sun",
            served_models=("a", "b"),
            prefill_workers=(1, 1),
            decode_workers=(2,),
            link=link,
        ),
        lat,
        lat,
    )
    # r0 is routed at 1.0 (both empty) -> worker 0, decodes 1.01 -> 3.01; r2 (model b, its own
    # prefill worker, 0.2 -> 1.2) is routed at 1.2: worker 0 has 1, worker 1 has 0 -> worker 1;
    # r1 (prefill 1 -> 2) is routed at 2.0: both hold one request -> the lowest index, 0.
    assert list(sun.records["decode_worker"]) == [0, 0, 1]
    assert list(sun.decode_workers["pool"]) == ["shared", "shared"]


@pytest.mark.parametrize("router", ["central", "least_loaded"])
def test_central_queue_vs_least_loaded(router):
    # Two decode workers, one request each at a time (max_num_seqs = 1). prefill 0.5 s per
    # batch; link 0.25 s + bytes / 100 B/s; decode 1 s per iteration.
    cl = one_model(
        decode_workers=(2,),
        max_num_seqs=1,
        decode_router=router,
        link=LinkSpec(bandwidth=100.0, latency_s=0.25),
    )
    lat = ConstantLatency(prefill_s=0.5, decode_s=1.0)
    rec = simulate(
        requests((0.0, "a", 50, 6), (0.0, "a", 50, 3), (0.25, "a", 20, 2)), cl, lat, lat
    ).records
    # A and B prefill together 0 -> 0.5; A -> worker 0, B -> worker 1. Link: A 0.5 -> 1.25,
    # B 1.25 -> 2.0. A decodes 1.25 -> 6.25 (5 iterations), B 2.0 -> 4.0 (2 iterations).
    assert_times(
        rec,
        {
            0: dict(kv_ready_at=1.25, decode_started_at=1.25, finished_at=6.25),
            1: dict(kv_ready_at=2.0, decode_started_at=2.0, finished_at=4.0),
        },
    )
    assert list(rec["decode_worker"][:2]) == [0, 1]
    if router == "central":
        # C's prefill ends at 1.0 with both workers full: it waits in the pool's queue, its
        # KV on the prefill worker. B finishes at 4.0 on worker 1: C is sent there, the
        # transfer starts then: 4.0 + 0.25 + 0.2 = 4.45, one iteration -> 5.45.
        assert_times(
            rec,
            {
                2: dict(
                    first_token_at=1.0, kv_ready_at=4.45, decode_started_at=4.45, finished_at=5.45
                )
            },
        )
        assert rec.loc[2, "decode_worker"] == 1
    else:
        # least_loaded commits C at 1.0 to the lowest-index of two equally loaded workers,
        # worker 0, behind A: the transfer waits for the link (free at 2.0) -> 2.45, and C
        # waits for A to finish at 6.25 -> 7.25, while worker 1 idles from 4.0.
        assert_times(
            rec,
            {
                2: dict(
                    first_token_at=1.0, kv_ready_at=2.45, decode_started_at=6.25, finished_at=7.25
                )
            },
        )
        assert rec.loc[2, "decode_worker"] == 0
