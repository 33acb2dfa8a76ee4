"""Tensor parallelism per pool: a worker is ``tensor_parallel_size`` GPUs.

Hand-checked: the KV capacity of a TP2 decode worker, the roofline step time at TP2 (weights,
FLOPs and KV traffic halved, plus the ring all-reduces over NVLink), every GPU count (workers x
TP) from the cluster to the summary, the comparison table and the plan table; the latency
resolver picks the profile measured at the pool's TP; bad sizes are one line, exit 2.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from sunsim.cli import app
from sunsim.config import Scenario
from sunsim.engine import ClusterSpec, simulate
from sunsim.engine.cluster import kv_capacity_blocks
from sunsim.errors import ConfigError, ProfileError
from sunsim.latency.base import ConstantLatency
from sunsim.latency.calibrated import CalibratedLatency
from sunsim.latency.profile_format import write_profile_dir
from sunsim.latency.resolve import resolve_latency
from sunsim.latency.roofline import RooflineLatency
from sunsim.metrics import comparison_table, summarize, sun_vs_partitioned
from sunsim.planner.results import ModePlan
from sunsim.serialize import as_dict
from sunsim.specs import MODELS, SloSpec, get_gpu
from sunsim.specs.hardware import nvlink_bandwidth
from sunsim.specs.parallel import check_heads_divisible, check_tensor_parallel_size

LLAMA = MODELS["llama-3.1-8b"]
H100 = get_gpu("h100")


# --- KV capacity of a TP2 worker --------------------------------------------------------------


def test_kv_capacity_at_tp2_by_hand():
    # llama-3.1-8b BF16: 16,060,522,496 weight bytes (32 layers x 218,103,808 linear weights,
    # embedding and LM head 4096 x 128256 each, norms; x 2 bytes); KV per token
    # 2 (K, V) x 32 layers x 8 KV heads x 128 x 2 bytes = 131,072; a block of 16 tokens
    # 2,097,152 bytes. H100: 80e9 bytes x 0.9; reserve 2 GiB per GPU.
    lat = RooflineLatency(H100, LLAMA, "bf16", tensor_parallel_size=2)
    assert lat.weight_bytes == 16_060_522_496 and lat.kv_bytes_per_token == 131_072
    cl = ClusterSpec("sun", ("a", "b"), (1, 1), (2,), gpu="h100", decode_tensor_parallel_size=2)
    # (2 x 72e9 - 16,060,522,496 - 2 x 2,147,483,648) / 2,097,152 = 58,958.3 -> 58,958
    assert kv_capacity_blocks(cl, lat) == 58_958
    one = ClusterSpec("sun", ("a", "b"), (1, 1), (2,), gpu="h100")
    # (72e9 - 16,060,522,496 - 2,147,483,648) / 2,097,152 = 25,650.0 -> 25,650
    assert kv_capacity_blocks(one, RooflineLatency(H100, LLAMA, "bf16")) == 25_650
    # two GPUs hold the weights once: twice one GPU's cache plus the weights' bytes in blocks
    assert 58_958 - 2 * 25_650 == int(16_060_522_496 // 2_097_152)


def test_weights_too_large_for_one_gpu_fit_on_two():
    huge = ConstantLatency(weight_bytes=100 * 10**9, kv_bytes_per_token=131_072)
    with pytest.raises(ConfigError, match="larger decode_tensor_parallel_size"):
        kv_capacity_blocks(ClusterSpec("sun", ("a",), (1,), (1,), gpu="h100"), huge)
    cl = ClusterSpec("sun", ("a",), (1,), (1,), gpu="h100", decode_tensor_parallel_size=2)
    assert kv_capacity_blocks(cl, huge) > 0


# --- the roofline at TP2 ----------------------------------------------------------------------


def test_roofline_decode_step_at_tp2_by_hand():
    lat = RooflineLatency(H100, LLAMA, "bf16", tensor_parallel_size=2)
    # batch 8, 8192 context tokens. Bytes per GPU: weights read (linear 13,958,643,712 + LM
    # head 1,050,673,152 + norms 532,480 = 15,009,849,344) / 2, plus KV of 8192 + 8 tokens
    # x 131,072 / 2: 7,504,924,672 + 537,395,200 = 8,042,319,872 bytes at 3.0e12 B/s.
    t_mem = 8_042_319_872 / 3.0e12
    # FLOPs per GPU ((2 x 6,979,321,856 + 2 x 4096 x 128256) x 8 + 4 x 32 x 128 x 32 x 8192)
    # / 2 = 62,184,751,104 at 798e12: far below the memory time.
    assert 62_184_751_104 / 798e12 < t_mem
    # all-reduce: 2 x 32 layers x 4096 x 2 bytes = 524,288 bytes per token, ring factor
    # 2 (2 - 1) / 2 = 1, over 450e9 B/s (NVLink 4, per direction), 8 tokens
    t_ar = 8 * 524_288 * 1.0 / 450e9
    assert lat.decode_step_time(8, 8192) == pytest.approx(t_mem + t_ar, rel=1e-12)
    assert lat.decode_step_time(8, 8192) == pytest.approx(2.690094e-3, rel=1e-6)
    # the hot loop agrees with the single step
    run = lat.decode_run(8, 8192, 3)
    steps = [lat.decode_step_time(8, 8192 + 8 * i) for i in range(3)]
    assert run == pytest.approx(np.cumsum(steps).tolist(), rel=1e-12)
    assert "TP2 (analytic)" in lat.description and lat.method == "analytic"


def test_roofline_prefill_at_tp_and_the_all_reduce_factor():
    one = RooflineLatency(H100, LLAMA, "bf16")
    four = RooflineLatency(H100, LLAMA, "bf16", tensor_parallel_size=4)
    # prefill of 4 x 2048 tokens is compute-bound: a quarter of the time plus 8192 tokens of
    # all-reduce at 2 (4 - 1) / 4 = 1.5 x 524,288 bytes per token over 450e9 B/s
    ar = 8192 * 524_288 * 1.5 / 450e9
    assert four.prefill_time([2048] * 4) == pytest.approx(one.prefill_time([2048] * 4) / 4 + ar)
    assert "TP" not in one.description and one.tensor_parallel_size == 1
    assert nvlink_bandwidth("h100") == 450e9 and nvlink_bandwidth(get_gpu("b200")) == 900e9


# --- sizes allowed ----------------------------------------------------------------------------


@pytest.mark.parametrize("tp", [0, 3, 6, 128, True, 2.0])
def test_bad_sizes_are_refused(tp):
    with pytest.raises(ConfigError, match="tensor_parallel_size"):
        check_tensor_parallel_size(tp)


def test_sizes_must_divide_the_heads():
    assert check_heads_divisible(LLAMA, 8) == 8
    with pytest.raises(ConfigError, match="32 attention heads and 8 KV heads.*at most 8"):
        check_heads_divisible(LLAMA, 16)
    with pytest.raises(ConfigError, match="tiny-llama's 8 attention heads and 2 KV heads"):
        RooflineLatency(H100, MODELS["tiny-llama"], "bf16", tensor_parallel_size=4)


def test_design_records_and_cluster_sizes():
    import dataclasses

    from sunsim.engine.designs import DESIGNS, PoolDesign, PoolScope

    tp2 = dataclasses.replace(
        DESIGNS["sun"], decode=PoolDesign(PoolScope.SHARED, tensor_parallel=2)
    )
    cl = ClusterSpec(tp2, ("a",), (1,), (3,))
    assert (cl.prefill_tensor_parallel_size, cl.decode_tensor_parallel_size) == (1, 2)
    assert ClusterSpec(tp2, ("a",), (1,), (3,), decode_tensor_parallel_size=2).num_gpus == 7
    with pytest.raises(ConfigError, match="runs its decode workers at tensor parallel size 2"):
        ClusterSpec(tp2, ("a",), (1,), (3,), decode_tensor_parallel_size=4)


# --- GPU counts -------------------------------------------------------------------------------


def test_scenario_keys_and_cluster_gpu_counts():
    s = Scenario(tensor_parallel_size=2, decode_tensor_parallel_size=4, decode_workers=(3,))
    assert s.pool_tensor_parallel_size("prefill") == 2
    assert s.pool_tensor_parallel_size("decode") == 4
    for mode in ("partitioned", "sun", "qsun"):
        cl = s.cluster(mode, [1.0, 1.0, 1.0])
        assert (cl.prefill_tensor_parallel_size, cl.decode_tensor_parallel_size) == (2, 4)
        assert cl.num_prefill_gpus == 3 * 2 and cl.num_decode_gpus == 3 * 4
        assert cl.num_gpus == 18
    assert Scenario().cluster("sun").num_gpus == 6  # TP 1: one GPU per worker


def _requests(n: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    return pd.DataFrame(
        {
            "arrival_s": np.cumsum(rng.exponential(0.05, n)),
            "model": rng.choice(["math", "code"], n),
            "prompt_tokens": rng.integers(16, 400, n),
            "output_tokens": rng.integers(1, 60, n),
        }
    )


def test_summary_tables_and_plan_rows_count_gpus():
    slo = SloSpec(2.0, 0.1, 0.9)
    req = _requests()
    sums = {}
    for mode, dw in (("partitioned", (1, 1)), ("sun", (2,))):
        cl = ClusterSpec(
            mode, ("math", "code"), (1, 1), dw, gpu="h100",
            prefill_tensor_parallel_size=2, decode_tensor_parallel_size=4,
        )  # fmt: skip
        pl = RooflineLatency(H100, LLAMA, "bf16", tensor_parallel_size=2)
        dl = RooflineLatency(H100, LLAMA, "bf16", tensor_parallel_size=4)
        res = simulate(req, cl, pl, dl, seed=0)
        s = summarize(res, slo)
        g = s.gpus
        assert (g.prefill, g.decode, g.total) == (4, 8, 12)
        assert (g.prefill_tensor_parallel_size, g.decode_tensor_parallel_size) == (2, 4)
        assert sum(g.decode_per_pool) == 2 and g.prefill_per_model == (1, 1)  # workers
        assert s.throughput.output_tokens_per_s_per_gpu == pytest.approx(
            s.throughput.output_tokens_per_s / 12
        )
        assert type(s).from_dict(json.loads(json.dumps(s.to_dict()))) == s
        sums[mode] = s
        mp = ModePlan(mode, (1, 1), dw, s)
        assert (mp.num_prefill_gpus, mp.num_decode_gpus, mp.num_gpus) == (4, 8, 12)
    t = comparison_table(sums)
    assert t.loc["GPUs (prefill+decode)", "sun"] == "4+8"
    assert t.loc["GPUs per worker (prefill / decode)", "sun"] == "2 / 4"
    assert t.loc["decode workers per pool", "partitioned"] == "1,1"
    assert sun_vs_partitioned(sums)[0].startswith(
        "sun vs partitioned, 2 decode workers (8 GPUs) each"
    )


def test_old_summaries_without_tp_keys_read_as_tp1():
    cl = ClusterSpec("sun", ("a",), (1,), (1,), gpu="h100")
    req = _requests(20).assign(model="a")
    res = simulate(req, cl, ConstantLatency(), ConstantLatency(), seed=0)
    d = summarize(res, SloSpec(2.0, 0.1, 0.9)).to_dict()
    for key in ("prefill_tensor_parallel_size", "decode_tensor_parallel_size"):
        del d["gpus"][key]
    back = type(summarize(res, SloSpec(2.0, 0.1, 0.9))).from_dict(d)
    assert back.gpus.decode_tensor_parallel_size == 1


# --- profiles by TP ---------------------------------------------------------------------------


def _profile(root: Path, slug: str, tp: int | None) -> Path:
    """A tiny llama-3.1-8b BF16 profile under ``root/slug`` (decode and prefill: constant
    step times of 1 ms x TP, so each profile is recognisable by its times)."""
    dec = pd.DataFrame(
        [
            {"batch_size": b, "context_tokens": c, "total_context_tokens": b * c,
             "time_s_median": 1e-3 * (tp or 1) + 1e-6 * b, "time_s_p10": 1e-3,
             "time_s_p90": 1e-3, "repeats": 3}
            for b in (1, 2, 4, 8) for c in (128, 256, 512, 1024)
        ]
    )  # fmt: skip
    pre = pd.DataFrame(
        [
            {"batch_size": b, "prompt_tokens": n, "total_tokens": b * n,
             "time_s_median": 1e-3 * (tp or 1) + 1e-7 * b * n, "time_s_p10": 1e-3,
             "time_s_p90": 1e-3, "repeats": 3}
            for b in (1, 2) for n in (128, 256, 512, 1024)
        ]
    )  # fmt: skip
    meta = {
        "method": "measured",
        "model": "llama-3.1-8b",
        "precision": "bf16",
        "model_spec": as_dict(LLAMA),
        "device_slug": slug,
        "gpu_key": "h100",
        "layers_run": 32,
        "layers_total": 32,
    }
    if tp is not None:
        meta["source"] = {
            "package": "test-package",
            "package_version": "0",
            "backend": "vllm",
            "backend_version": "0",
            "system": "h100_sxm",
            "tensor_parallel_size": tp,
        }
    return write_profile_dir(root, pre, dec, meta)


def test_resolve_picks_the_profile_measured_at_the_pool_tp(tmp_path):
    tp1 = _profile(tmp_path, "h100-test", None)  # no source: TP 1
    tp2 = _profile(tmp_path, "h100-test-tp2", 2)
    for role in ("prefill", "decode"):
        lat, note = resolve_latency(
            "llama-3.1-8b", "h100", "bf16", role, profiles=tmp_path, tensor_parallel_size=2
        )
        assert str(tp2) in note and lat.path == tp2
        assert lat.decode_step_time(1, 128) == pytest.approx(2e-3 + 1e-6, rel=1e-3)
        lat, note = resolve_latency("llama-3.1-8b", "h100", "bf16", role, profiles=tmp_path)
        assert lat.path == tp1
    lat, note = resolve_latency(
        "llama-3.1-8b", "h100", "bf16", "decode", profiles=tmp_path, tensor_parallel_size=4
    )
    assert isinstance(lat, CalibratedLatency) and lat.tensor_parallel_size == 4
    assert "no measured profile for h100 llama-3.1-8b bf16 at tensor_parallel_size 4" in note
    assert "TP4 (per-GPU shares" in note and "analytic (calibrated" in note
    # an explicit profile measured at another size is refused in one line
    with pytest.raises(ProfileError, match="measured at tensor_parallel_size 1, the decode"):
        resolve_latency("llama-3.1-8b", "h100", "bf16", "decode", "profile", tp1,
                        tensor_parallel_size=2)  # fmt: skip
    lat, _ = resolve_latency(
        "llama-3.1-8b", "h100", "bf16", "decode", "profile", tp2, tensor_parallel_size=2
    )
    assert lat.path == tp2


def test_a_bad_profile_tp_is_one_line(tmp_path):
    d = _profile(tmp_path, "h100-test-tp2", 2)
    meta = json.loads((d / "meta.json").read_text())
    meta["source"]["tensor_parallel_size"] = "two"
    (d / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ProfileError, match="source.tensor_parallel_size must be a positive"):
        resolve_latency(
            "llama-3.1-8b", "h100", "bf16", "decode", profiles=tmp_path, tensor_parallel_size=2
        )


# --- the command line -------------------------------------------------------------------------

runner = CliRunner()


def _one_line(result, *needles: str) -> str:
    out = result.output.strip()
    assert result.exit_code == 2, out
    assert "Traceback" not in out and len(out.splitlines()) == 1, out
    for n in needles:
        assert n in out, (n, out)
    return out


@pytest.mark.parametrize("command", ["replay", "plan"])
@pytest.mark.parametrize(
    "args, needles",
    [
        (["--tensor-parallel-size", "3"], ["tensor_parallel_size", "power of two", "got 3"]),
        (["--tensor-parallel-size", "128"], ["--tensor-parallel-size", "<= 64"]),
        (["--decode-tensor-parallel-size", "0"], ["--decode-tensor-parallel-size", ">= 1"]),
        (
            ["--decode-tensor-parallel-size", "16"],
            ["decode_tensor_parallel_size 16", "32 attention heads and 8 KV heads"],
        ),
        (
            ["--model", "tiny-llama", "--tensor-parallel-size", "4"],
            ["tiny-llama's 8 attention heads and 2 KV heads"],
        ),
    ],
)
def test_bad_tensor_parallel_input_is_one_line(command, args, needles, tmp_path):
    extra = ["--jobs", "1"] if command == "plan" else []
    out = tmp_path / "out"
    res = runner.invoke(app, [command, "--no-progress", *extra, "--out", str(out), *args])
    _one_line(res, *needles)
    assert not out.exists()


def test_bad_tensor_parallel_in_a_scenario_file(tmp_path):
    p = tmp_path / "s.toml"
    p.write_text("[cluster]\ntensor_parallel_size = 6\n")
    res = runner.invoke(app, ["replay", "--no-progress", "--scenario", str(p)])
    _one_line(res, "tensor_parallel_size", "power of two", "got 6")


def test_replay_at_tp2_says_so(tmp_path):
    out = tmp_path / "run"
    args = ["replay", "--no-progress", "--max-requests", "60", "--latency", "roofline"]
    args += ["--mode", "sun", "--tensor-parallel-size", "2", "--out", str(out)]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "TP2 (analytic)" in res.output
    gpus = json.loads((out / "summary.json").read_text())["modes"]["sun"]["gpus"]
    assert gpus["total"] == 2 * (3 + 3) and gpus["decode_tensor_parallel_size"] == 2
