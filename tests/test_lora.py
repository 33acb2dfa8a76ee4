"""The ``lora`` design: multi-LoRA co-located workers on one shared base.

Hand-checked timelines on constant step times (the adapter cost per step, the adapter loads,
``max_loras`` per batch with vLLM's skip-and-keep-place rule), the adapter arithmetic of
:mod:`sunsim.engine.lora_spec`, the KV memory the slots take, the scenario, the planner's
size, and bad input as one line with exit code 2.
"""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from sunsim.cli import app
from sunsim.config import Scenario
from sunsim.engine.cluster import kv_capacity_blocks, simulate
from sunsim.engine.lora_spec import LoraSpec, adapter_params, lora_spec
from sunsim.engine.spec import ClusterSpec
from sunsim.errors import ConfigError
from sunsim.latency.base import ConstantLatency
from sunsim.specs import get_gpu, get_model

H100_BYTES = 80 * 10**9
LAT = ConstantLatency(prefill_s=0.1, decode_s=0.01, weight_bytes=H100_BYTES - 10_000)


def lora_cluster(lora: LoraSpec, served=("a", "b"), workers=1, **kw) -> ClusterSpec:
    kw.setdefault("gpu_memory_utilization", 1.0)
    kw.setdefault("reserve_bytes", 0)
    kw.setdefault("max_num_batched_tokens", 16)
    kw.setdefault("max_num_seqs", 8)
    kw.setdefault("block_size", 4)
    return ClusterSpec("lora", tuple(served), (), (), colocated_workers=(workers,), lora=lora, **kw)


def frame(arrival, model, prompt, output) -> pd.DataFrame:
    return pd.DataFrame(
        {"arrival_s": arrival, "model": model, "prompt_tokens": prompt, "output_tokens": output}
    )


def rec(df, lora, **kw):
    return simulate(df, lora_cluster(lora, **kw), LAT, LAT).records


# -- hand-checked timelines -------------------------------------------------------------------


def test_adapter_cost_per_step_hand_checked():
    """A (model a) and B (model b), 4-token prompts, 3 tokens out, at t=0, max_loras 2.
    Step 1 (both prompts, 8 tokens, 2 adapters, both loaded): 0.1 + 2 x 0.05 (loads)
    + 2 x 0.001 (reads) + 8 x 0.0005 = 0.206: first tokens. Decode steps (2 tokens, 2
    adapters, resident): 0.01 + 0.002 + 0.001 = 0.013 each; tokens 2, 3: finish 0.232."""
    lora = LoraSpec(max_loras=2, read_s=0.001, token_s=0.0005, load_s=0.05)
    r = rec(frame([0.0, 0.0], ["a", "b"], [4, 4], [3, 3]), lora)
    assert r["first_token_at"].tolist() == pytest.approx([0.206, 0.206])
    assert r["finished_at"].tolist() == pytest.approx([0.232, 0.232])


def test_overhead_per_adapter_scales_the_base_step():
    """Same requests, no derived terms, ``overhead_per_adapter`` 0.5: every step x (1 + 0.5 x 2):
    step 1 0.2, decode steps 0.02: finish at 0.24."""
    lora = LoraSpec(max_loras=2, overhead_per_adapter=0.5)
    r = rec(frame([0.0, 0.0], ["a", "b"], [4, 4], [3, 3]), lora)
    assert r["first_token_at"].tolist() == pytest.approx([0.2, 0.2])
    assert r["finished_at"].tolist() == pytest.approx([0.24, 0.24])


def test_one_adapter_costs_less_than_two():
    """The cost grows with the distinct adapters of the batch: both requests on adapter a
    (1 distinct) finish before the same requests on a and b (2 distinct)."""
    lora = LoraSpec(max_loras=2, read_s=0.001)
    one = rec(frame([0.0, 0.0], ["a", "a"], [4, 4], [3, 3]), lora)
    two = rec(frame([0.0, 0.0], ["a", "b"], [4, 4], [3, 3]), lora)
    assert one["finished_at"].max() == pytest.approx(0.1 + 0.001 + 2 * 0.011)
    assert two["finished_at"].max() == pytest.approx(0.1 + 0.002 + 2 * 0.012)


def test_max_loras_skips_a_request_that_keeps_its_place():
    """max_loras 1. A (a), B (b), C (a) at t=0, 4-token prompts, 3 tokens out. Step 1 admits
    A and C (B's adapter would be a second one: skipped, not blocking C): 0.1 s; decodes 0.01
    s: A and C finish at 0.12. Then B: prefill from 0.12, first token 0.22, finish 0.24."""
    lora = LoraSpec(max_loras=1)
    r = rec(frame([0.0, 0.0, 0.0], ["a", "b", "a"], [4, 4, 4], [3, 3, 3]), lora)
    assert r["prefill_started_at"].tolist() == pytest.approx([0.0, 0.12, 0.0])
    assert r["first_token_at"].tolist() == pytest.approx([0.1, 0.22, 0.1])
    assert r["finished_at"].tolist() == pytest.approx([0.12, 0.24, 0.12])
    # with two slots B joins the first step
    r2 = rec(frame([0.0, 0.0, 0.0], ["a", "b", "a"], [4, 4, 4], [3, 3, 3]), LoraSpec(2))
    assert r2["prefill_started_at"].tolist() == [0.0, 0.0, 0.0]


def test_slots_are_least_recently_used():
    """1-token requests A (a) t=0, B (b) t=1, C (a) t=2, load 0.05 s. One slot: every request
    swaps its adapter in (first token = arrival + 0.1 + 0.05). Two slots: C finds a resident."""
    df = frame([0.0, 1.0, 2.0], ["a", "b", "a"], [4, 4, 4], [1, 1, 1])
    one = rec(df, LoraSpec(1, load_s=0.05))
    assert one["finished_at"].tolist() == pytest.approx([0.15, 1.15, 2.15])
    two = rec(df, LoraSpec(2, load_s=0.05))
    assert two["finished_at"].tolist() == pytest.approx([0.15, 1.15, 2.1])


def test_every_worker_serves_every_model():
    """One shared pool of 2 workers: a's two requests go to different workers (least loaded)."""
    df = frame([0.0, 0.0], ["a", "a"], [4, 4], [2, 2])
    r = rec(df, LoraSpec(1), workers=2)
    assert sorted(r["decode_worker"].tolist()) == [0, 1]


# -- arithmetic ---------------------------------------------------------------------------


def test_adapter_arithmetic_llama_8b_rank_16_on_h100():
    """Llama-3.1-8B (h 4096, 32 heads x 128, 8 KV heads, 32 layers), q/k/v/o at rank 16:
    16 x 32 x ((4096 + 4096) + 2 x (4096 + 1024) + (4096 + 4096)) = 13,631,488 weights,
    27,262,976 bytes in BF16; read once per step at the H100's 3.0 TB/s, copied at 64 GB/s."""
    m, gpu = get_model("llama-3.1-8b"), get_gpu("h100")
    assert adapter_params(m, 16) == 16 * 32 * 26624 == 13_631_488
    spec = lora_spec(m, gpu, max_loras=4, max_lora_rank=16)
    assert spec.adapter_bytes == 27_262_976
    assert spec.read_s == pytest.approx(27_262_976 / gpu.mem_bw)
    assert spec.token_s == pytest.approx(2 * 13_631_488 / gpu.bf16_flops)
    assert spec.load_s == pytest.approx(27_262_976 / 64e9)
    assert spec.reserved_bytes == 4 * 27_262_976
    assert spec.step_time(0.01, 3, 10) == pytest.approx(0.01 + 3 * spec.read_s + 10 * spec.token_s)
    tp2 = lora_spec(m, gpu, max_loras=4, max_lora_rank=16, tensor_parallel_size=2)
    assert tp2.read_s == pytest.approx(spec.read_s / 2)


def test_slots_take_kv_memory():
    """(memory - weights - max_loras x adapter bytes) / (KV bytes x block) blocks."""
    lat = ConstantLatency(weight_bytes=H100_BYTES - 1000, kv_bytes_per_token=1)
    cl = lora_cluster(LoraSpec(3, adapter_bytes=100), block_size=4)
    assert kv_capacity_blocks(cl, lat) == (1000 - 300) // 4


# -- configuration -------------------------------------------------------------------------


def test_scenario_builds_the_lora_cluster():
    s = Scenario(modes=("lora",), served_models=("a", "b", "c"), max_loras=2, max_lora_rank=8)
    cl = s.cluster("lora")
    assert cl.colocated_workers == (6,)  # the shared pool: 2 per model, summed
    assert cl.lora is not None and cl.lora.max_loras == 2 and cl.lora.max_lora_rank == 8
    assert cl.num_gpus == 6
    assert s.cluster("sun").lora is None


def test_bad_lora_cluster_is_refused():
    with pytest.raises(ConfigError, match="needs its LoRA adapters"):
        ClusterSpec("lora", ("a",), (), (), colocated_workers=(1,))
    with pytest.raises(ConfigError, match="max_loras must be >= 1"):
        LoraSpec(0)
    with pytest.raises(ConfigError, match="max_lora_rank must be >= 1"):
        lora_spec(get_model("llama-3.1-8b"), get_gpu("h100"), 1, 0)
    with pytest.raises(ConfigError, match="has no LoRA adapters"):
        ClusterSpec("sun", ("a",), (1,), (1,), lora=LoraSpec(1))


runner = CliRunner()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--max-loras", "0"], "--max-loras: must be >= 1"),
        (["--max-lora-rank", "0"], "--max-lora-rank: must be >= 1"),
    ],
)
def test_cli_bad_lora_options_one_line_exit_2(args, needle, tmp_path):
    r = runner.invoke(
        app, ["replay", "--no-progress", "--mode", "lora", "--out", str(tmp_path / "o"), *args]
    )
    out = r.output.strip()
    assert r.exit_code == 2, out
    assert len(out.splitlines()) == 1 and "Traceback" not in out
    assert needle in out


def test_replay_and_plan_run_lora(tmp_path):
    """The design runs end to end on the bundled trace (roofline), and the planner sizes it."""
    from sunsim.planner import PlanOptions, plan
    from sunsim.replay import run_replay

    s = Scenario(
        modes=("lora", "colocated"),
        served_models=("a", "b", "c"),
        latency="roofline",
        max_requests=200,
        colocated_workers=(1,),
    )
    rr = run_replay(s)
    summ = rr.summaries["lora"]
    assert summ.requests.finished + summ.requests.rejected == 200
    assert summ.gpus.colocated == 3 and summ.gpus.colocated_per_pool == (3,)
    assert summ.latency.decode.endswith("+ LoRA adapter cost (derived, sunsim/engine/lora_spec.py)")
    assert "LoRA" not in rr.summaries["colocated"].latency.decode
    p = plan(s, PlanOptions(jobs=1))
    mp = p.points[0].modes["lora"]
    assert len(mp.colocated_workers) == 1 and mp.colocated_workers[0] >= 1
