"""TensorRT-LLM's co-located scheduler (:mod:`sunsim.engine.trtllm_colocated`): hand-checked
timelines (admission refused by the no-evict reservation, whole-prompt context steps), no
request lost under random loads, and the option's errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_sglang_colocated import H100_BYTES, colo, frame
from typer.testing import CliRunner

from sunsim.cli.app import app
from sunsim.config import Scenario
from sunsim.engine import cluster as simulation
from sunsim.engine.cluster import simulate
from sunsim.errors import ConfigError
from sunsim.latency.base import ConstantLatency


def test_admission_refused_by_the_no_evict_reservation_hand_checked() -> None:
    """A 40-token cache (10 blocks of 4). t=0: A (8-token prompt, 12 out: reserves
    ceil(20/4) = 5 blocks) and B (4-token prompt, 20 out: 6 blocks). 5 + 6 > 10, so B waits
    although its prompt's one block fits now: A's context step 0..0.1 (first token), 11
    decode steps to 0.21 (done, its 5 blocks released); then B's context step to 0.31 and
    19 decode steps to 0.50. vLLM admits both at once (first tokens at 0.1)."""
    lat = ConstantLatency(prefill_s=0.1, decode_s=0.01, weight_bytes=H100_BYTES - 40)
    work = frame([0.0, 0.0], [8, 4], [12, 20])
    kw = {"max_num_batched_tokens": 16, "max_num_seqs": 4, "block_size": 4}
    r = simulate(work, colo(colocated_scheduler="trtllm", **kw), lat, lat).records
    assert r["prefill_started_at"].tolist() == pytest.approx([0.0, 0.21])
    assert r["first_token_at"].tolist() == pytest.approx([0.1, 0.31])
    assert r["finished_at"].tolist() == pytest.approx([0.21, 0.50])
    assert r["num_preemptions"].tolist() == [0, 0]
    v = simulate(work, colo(**kw), lat, lat).records
    assert v["first_token_at"].tolist() == pytest.approx([0.1, 0.1])


def test_a_context_runs_its_whole_prompt_in_one_step_hand_checked() -> None:
    """Budget 16 tokens; a step with contexts costs 0.1 s + 0.01 s per token (decodes count
    one token each), a decode-only step 0.01 s. t=0: A and B, 10-token prompts, 2 out.
    TensorRT-LLM: step 1 is A's whole prompt alone (B's 10 do not fit the 6 left; no
    chunking): 0.2 s, A's first token at 0.2; step 2 is A's decode and B's whole prompt
    (11 tokens, 0.21 s): B's first token and A's last at 0.41; B's last at 0.42. vLLM
    chunks B: step 1 holds A's 10 and B's first 6 (0.26 s), so A's first token is later."""
    lat = ConstantLatency(
        prefill_s=0.1, decode_s=0.01, prefill_per_token_s=0.01, weight_bytes=H100_BYTES - 400
    )
    work = frame([0.0, 0.0], [10, 10], [2, 2])
    kw = {"max_num_batched_tokens": 16, "max_num_seqs": 4, "block_size": 4}
    r = simulate(work, colo(colocated_scheduler="trtllm", **kw), lat, lat).records
    assert r["prefill_started_at"].tolist() == pytest.approx([0.0, 0.2])
    assert r["first_token_at"].tolist() == pytest.approx([0.2, 0.41])
    assert r["finished_at"].tolist() == pytest.approx([0.41, 0.42])
    v = simulate(work, colo(**kw), lat, lat).records
    assert v["first_token_at"].tolist() == pytest.approx([0.26, 0.41])


def test_max_batch_size_caps_the_requests_of_a_step() -> None:
    """max_num_seqs 2: the third request waits for a finish, whatever the budget and cache."""
    lat = ConstantLatency(prefill_s=0.1, decode_s=0.01, weight_bytes=H100_BYTES - 4000)
    work = frame([0.0, 0.0, 0.0], [4, 4, 4], [3, 5, 2])
    cl = colo(colocated_scheduler="trtllm", max_num_batched_tokens=64, max_num_seqs=2)
    r = simulate(work, cl, lat, lat).records
    # A, B: context step to 0.1, A done after 2 decodes (0.12); C's context step beside B's
    # 4th token to 0.22; B's 5th and C's 2nd token at 0.23
    assert r["first_token_at"].tolist() == pytest.approx([0.1, 0.1, 0.22])
    assert r["finished_at"].tolist() == pytest.approx([0.12, 0.23, 0.23])


def test_an_arrival_joins_the_step_after_next_overlap_scheduler_hand_checked() -> None:
    """A decodes from 0.1 (one token per 0.01 s); B (4-token prompt, 2 out) arrives at 0.125,
    during A's 4th token's step (0.12..0.13). The step from 0.13 was scheduled at 0.12,
    before B arrived, so B's context runs in the step after it, 0.14..0.24 (beside A's 6th
    token): B's tokens at 0.24, 0.25; A's 7th..10th at 0.25..0.28. Without the overlap
    scheduler (vLLM's worker here) B's context would start at 0.13."""
    lat = ConstantLatency(prefill_s=0.1, decode_s=0.01, weight_bytes=H100_BYTES - 4000)
    cl = colo(colocated_scheduler="trtllm", max_num_batched_tokens=16, max_num_seqs=4)
    work = frame([0.0, 0.125], [4, 4], [10, 2])
    r = simulate(work, cl, lat, lat).records
    assert r["prefill_started_at"].tolist() == pytest.approx([0.0, 0.14])
    assert r["first_token_at"].tolist() == pytest.approx([0.1, 0.24])
    assert r["finished_at"].tolist() == pytest.approx([0.28, 0.25])
    v = simulate(work, colo(max_num_batched_tokens=16, max_num_seqs=4), lat, lat).records
    assert v["prefill_started_at"].tolist() == pytest.approx([0.0, 0.13])


# -- no request lost --------------------------------------------------------------------------


@st.composite
def loads(draw):  # type: ignore[no-untyped-def]
    n = draw(st.integers(1, 30))
    block = draw(st.sampled_from([4, 16]))
    kv_tokens = draw(st.sampled_from([64, 256, 100_000]))
    budget = draw(st.integers(16, 200))
    seqs = draw(st.integers(1, min(8, budget)))
    gaps = draw(st.lists(st.integers(0, 64), min_size=n, max_size=n))
    df = pd.DataFrame(
        {
            "arrival_s": np.cumsum(gaps) / 256.0 + 1.0 / 3 * 2**-12,
            "model": ["a"] * n,
            "prompt_tokens": draw(st.lists(st.integers(1, budget), min_size=n, max_size=n)),
            "output_tokens": draw(st.lists(st.integers(1, 40), min_size=n, max_size=n)),
        }
    )
    cl = colo(
        colocated_scheduler="trtllm", block_size=block, max_num_seqs=seqs,
        max_num_batched_tokens=budget,
    )  # fmt: skip
    lat = ConstantLatency(
        prefill_s=draw(st.sampled_from([0.01, 0.05])), decode_s=0.004,
        prefill_per_token_s=draw(st.sampled_from([0.0, 1e-4])),
        weight_bytes=H100_BYTES - kv_tokens,
    )  # fmt: skip
    return df, cl, lat


@settings(
    max_examples=120, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)  # fmt: skip
@given(loads())
def test_no_request_is_lost_nothing_is_preempted_and_everything_is_released(load) -> None:  # type: ignore[no-untyped-def]
    df, cl, lat = load
    sims = []
    orig = simulation.build_result  # called once per run, with the run's ClusterSim

    def capturing(sim, *a, **kw):  # type: ignore[no-untyped-def]
        sims.append(sim)
        return orig(sim, *a, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(simulation, "build_result", capturing)
        res = simulate(df, cl, lat, lat)
    rec = res.records
    assert len(rec) == len(df)
    fin = rec[rec["status"] == "finished"]
    cap = res.kv_capacity_tokens // cl.block_size
    need = -(-(df["prompt_tokens"] + df["output_tokens"] - 1) // cl.block_size)
    # rejected only when it can never fit (the arrival check); everything else finishes
    assert list(rec["status"] == "rejected") == list(need > cap)
    assert (rec["num_preemptions"].fillna(0) == 0).all()
    eps = 1e-9
    assert (fin["prefill_started_at"] >= fin["arrived_at"] - eps).all()
    assert (fin["first_token_at"] > fin["prefill_started_at"]).all()
    assert (fin["finished_at"] >= fin["first_token_at"] - eps).all()
    (w,) = sims[0].decode_workers
    assert (w.reserved_blocks, w.kv.num_seqs, w.load, w.load_tokens) == (0, 0, 0, 0)
    assert not w.running and not w.waiting and not w.busy


# -- bad input ------------------------------------------------------------------------------


def test_a_prompt_over_the_token_budget_is_one_line() -> None:
    lat = ConstantLatency(prefill_s=0.1, decode_s=0.01, weight_bytes=H100_BYTES - 4000)
    cl = colo(colocated_scheduler="trtllm", max_num_batched_tokens=16, max_num_seqs=4)
    with pytest.raises(ConfigError, match=r"prompt \(17 tokens\) exceeds max_num_batched_tok"):
        simulate(frame([0.0], [17], [2]), cl, lat, lat)


def test_unknown_scheduler_and_refused_combinations_are_one_line() -> None:
    with pytest.raises(ConfigError, match="colocated_scheduler 'x': choose vllm, sglang or trt"):
        colo(colocated_scheduler="x")
    with pytest.raises(ConfigError, match="trtllm is not simulated with enable_prefix_caching"):
        colo(colocated_scheduler="trtllm", enable_prefix_caching=True)


def test_scenario_key_and_cli_option_exit_2(tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert Scenario().colocated_scheduler == "vllm"
    assert Scenario(colocated_scheduler="trtllm").cluster("colocated").colocated_scheduler == (
        "trtllm"
    )
    run = CliRunner().invoke(
        app, ["replay", "--max-concurrency", "2", "--colocated-scheduler", "x"]
    )
    assert run.exit_code == 2 and len(run.output.strip().splitlines()) == 1, run.output
    assert "--colocated-scheduler" in run.output and "vllm, sglang, trtllm" in run.output
    args = ["replay", "--max-concurrency", "2", "--num-prompts", "4", "--input-len", "512"]
    args += ["--output-len", "8", "--mode", "colocated", "--colocated-scheduler", "trtllm"]
    run = CliRunner().invoke(app, [*args, "--no-progress", "-o", str(tmp_path / "r")])
    assert run.exit_code == 0, run.output
