"""The torch profiling harness: modules, real low-bit kernels, a quick CPU profile, the CLI.

Skipped (with the reason) when torch is not installed: ``pip install 'sunsim[profile]'``.
Everything runs on the CPU with one thread, in a few seconds per test.
"""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

torch = pytest.importorskip(
    "torch", reason="needs the profile extra: pip install 'sunsim[profile]'"
)

from typer.testing import CliRunner  # noqa: E402

from sunsim.cli import app  # noqa: E402
from sunsim.errors import ProfileError  # noqa: E402
from sunsim.latency.profile_check import check_profile  # noqa: E402
from sunsim.latency.profiled import ProfiledLatency  # noqa: E402
from sunsim.profiling import ProfileGrid, TimingOptions, profile_model, write_profile  # noqa
from sunsim.profiling.harness import DECODE_COLUMNS, PREFILL_COLUMNS  # noqa: E402
from sunsim.profiling.modules import DecoderModule  # noqa: E402
from sunsim.profiling.quant import (  # noqa: E402
    Linear,
    dequantize_int4,
    dequantize_int8,
    quantize_int4,
    quantize_int8,
)
from sunsim.profiling.timing import device_slug, gpu_key_for  # noqa: E402
from sunsim.specs import MODELS, ModelSpec  # noqa: E402

pytestmark = pytest.mark.torch

TINY_GRID = ProfileGrid((1, 4), (16, 48), (1, 2), (16, 32), 64)
TINY_TIMING = TimingOptions(warmup=1, min_repeats=3, max_repeats=3, time_per_point_s=0.0, passes=1)


@pytest.fixture(autouse=True)
def _one_thread():
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)


def _rel(a, b) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm())


# -- quantised kernels -------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1])
def test_w8a16_matches_bf16_within_quantisation_error(seed):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(384, 512, generator=g).to(torch.bfloat16)
    x = torch.randn(8, 512, generator=g).to(torch.bfloat16)
    lin = Linear(w, "w8a16")
    assert lin.kernel == "aten._weight_int8pack_mm"
    y = lin(x)
    q, s = quantize_int8(w)
    ref = x.float() @ dequantize_int8(q, s).to(torch.bfloat16).float().t()
    assert _rel(y, ref) < 1e-2  # the kernel multiplies exactly the dequantised weights
    assert _rel(y, x.float() @ w.float().t()) < 0.02  # int8 per-channel quantisation error
    assert _rel(dequantize_int8(q, s), w) < 0.02


@pytest.mark.parametrize("seed", [0, 1])
def test_w4a16_matches_bf16_within_quantisation_error(seed):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(256, 512, generator=g).to(torch.bfloat16)
    x = torch.randn(8, 512, generator=g).to(torch.bfloat16)
    lin = Linear(w, "w4a16")
    assert "int4pack" in lin.kernel
    y = lin(x)
    q, sz = quantize_int4(w)
    assert int(q.min()) >= 0 and int(q.max()) <= 15
    ref = x.float() @ dequantize_int4(q, sz).to(torch.bfloat16).float().t()
    assert _rel(y, ref) < 1e-2
    assert _rel(y, x.float() @ w.float().t()) < 0.15  # int4, group 128
    assert _rel(dequantize_int4(q, sz), w) < 0.15


def test_low_bit_weights_are_smaller():
    w = torch.randn(256, 512).to(torch.bfloat16)
    b16, w8, w4 = (Linear(w, p).nbytes for p in ("bf16", "w8a16", "w4a16"))
    assert w8 < 0.6 * b16 and w4 < 0.35 * b16


def test_w4a16_bad_group_is_profile_error():
    with pytest.raises(ProfileError):
        quantize_int4(torch.randn(16, 100))


# -- modules ----------------------------------------------------------------------------------

SMALL = ModelSpec(
    name="small",
    hidden_size=128,
    intermediate_size=256,
    num_layers=2,
    num_heads=4,
    num_kv_heads=2,
    head_dim=32,
    vocab_size=512,
    max_model_len=512,
)


@pytest.mark.parametrize("qk_norm", [False, True])
def test_decode_step_continues_prefill(qk_norm):
    """Prefill L tokens, then one decode step at position L == last logits of a prefill of
    L + 1 tokens: checks RoPE positions, the KV cache and grouped-query attention."""
    spec = ModelSpec(**{**SMALL.__dict__, "qk_norm": qk_norm})
    mod = DecoderModule(spec, precision="bf16", max_positions=64, seed=3)
    ids = mod.random_ids(2, 9)
    kv_full = mod.new_kv(2, 9, random=False)
    want = mod.prefill(ids, kv_full)
    kv = mod.new_kv(2, 9)
    kv8 = mod.new_kv(2, 8, random=False)
    mod.prefill(ids[:, :8], kv8)
    for (k, v), (k8, v8) in zip(kv, kv8):
        k[:, :, :8] = k8
        v[:, :, :8] = v8
    got = mod.decode_step(ids[:, 8], kv, 8)
    assert got.shape == (2, spec.vocab_size)
    assert _rel(got, want) < 0.03


def test_decoder_quantised_layers_use_real_kernels():
    mod = DecoderModule(SMALL, precision="w4a16", max_positions=32)
    assert "int4pack" in mod.kernel
    kv = mod.new_kv(3, 17)
    out = mod.decode_step(mod.random_ids(3), kv, 16)
    assert out.shape == (3, SMALL.vocab_size) and torch.isfinite(out.float()).all()
    with pytest.raises(ProfileError):
        DecoderModule(SMALL, layers_run=3)


def test_device_slug_and_gpu_key():
    assert device_slug("cuda", "NVIDIA H100 80GB HBM3") == "nvidia-h100-80gb-hbm3"
    assert (
        device_slug("cpu", "Intel(R) Xeon(R) Platinum 8480+ CPU @ 2.0GHz", 8)
        == "cpu-intel-xeon-platinum-8480-8t"
    )
    assert gpu_key_for("NVIDIA H200") == "h200" and gpu_key_for("NVIDIA A100-SXM4-80GB") == "a100"
    assert gpu_key_for("Intel(R) Xeon(R) Processor") is None


# -- a quick profile --------------------------------------------------------------------------


def test_quick_profile_schema(tmp_path):
    prof = profile_model(
        "tiny-llama",
        "cpu",
        "bf16",
        quick=True,
        grid=TINY_GRID,
        timing=TINY_TIMING,
        threads=1,
        command="pytest",
    )
    d = write_profile(prof, tmp_path)
    assert d == tmp_path / prof.meta["device_slug"] / "tiny-llama" / "bf16"
    assert prof.meta["device_slug"].endswith("-quick")
    dec = pd.read_csv(d / "decode.csv")
    pre = pd.read_csv(d / "prefill.csv")
    assert list(dec.columns[: len(DECODE_COLUMNS)]) == list(DECODE_COLUMNS)
    assert list(pre.columns[: len(PREFILL_COLUMNS)]) == list(PREFILL_COLUMNS)
    assert len(dec) == 4 and len(pre) == 4  # 2 x 2 decode, 2 x 2 prefill (all <= 64 tokens)
    assert (dec["total_context_tokens"] == dec["batch_size"] * dec["context_tokens"]).all()
    assert (dec["time_s_p10"] <= dec["time_s_median"]).all()
    assert (dec["time_s_median"] <= dec["time_s_p90"]).all()
    assert (dec["time_s_min"] <= dec["time_s_p10"]).all()
    assert (dec["repeats"] == 3).all()
    meta = json.loads((d / "meta.json").read_text())
    for key in (
        "device_name",
        "device_kind",
        "device_slug",
        "gpu_key",
        "torch_version",
        "cuda_version",
        "threads",
        "dtype",
        "weight_quantisation",
        "model_spec",
        "grid",
        "method",
        "layers_run",
        "layers_total",
        "scaling",
        "copy_bandwidth_bytes_per_s",
        "matmul_flops_per_s",
        "date",
        "sunsim_version",
        "command",
    ):
        assert key in meta, key
    assert meta["method"] == "measured" and meta["threads"] == 1
    assert meta["device_kind"] == "cpu" and meta["gpu_key"] is None
    assert meta["model_spec"] == {**MODELS["tiny-llama"].__dict__}
    assert meta["layers_run"] == meta["layers_total"] == 4
    assert meta["copy_bandwidth_bytes_per_s"] > 0 and meta["matmul_flops_per_s"] > 0
    assert meta["probes"] == 1  # quick: one probe; a full profile probes before every pass
    assert meta["fit_statistic"] == "min"  # auto on a CPU: the fastest repeat
    lat = ProfiledLatency.from_dir(d, model="tiny-llama", precision="bf16")
    assert lat.time_column == "time_s_min" and "fastest repeat" in lat.description
    assert lat.decode_step_time(4, 4 * 48) == pytest.approx(
        float(dec[(dec.batch_size == 4) & (dec.context_tokens == 48)]["time_s_min"].iloc[0]),
        rel=0.1,
    )  # exact when the correction is not shrunk toward the fit (noisy CPUs)
    assert math.isfinite(check_profile(d).attrs["median_mape_pct"])


def test_quick_profile_quantised_is_decode_only_and_scaled(tmp_path):
    prof = profile_model(
        "tiny-llama",
        "cpu",
        "w8a16",
        quick=True,
        grid=TINY_GRID,
        timing=TINY_TIMING,
        layers=2,
        threads=1,
    )
    d = write_profile(prof, tmp_path)
    assert not (d / "prefill.csv").exists()
    m = prof.meta
    assert m["modules"] == ["decode"] and "BF16" in m["prefill_note"]
    assert m["weight_quantisation"]["kernel"] == "aten._weight_int8pack_mm"
    assert m["layers_run"] == 2 and m["layers_total"] == 4 and m["scaling"]["scaled"]
    dec = prof.decode
    assert (dec["base_s_median"] > 0).all()
    # full model = base + layers x 4/2: the scaled estimate exceeds twice the 2 layers
    assert (dec["layers_s_median"] > 0).all()
    assert (dec["time_s_median"] > 2 * dec["layers_s_median"] * 0.8).all()
    lat = ProfiledLatency.from_dir(d)
    assert not lat.has_prefill and lat.precision == "w8a16"


def test_cli_profile_quick_and_check(tmp_path):
    r = CliRunner().invoke(
        app,
        [
            "profile",
            "--model",
            "tiny-llama",
            "--device",
            "cpu",
            "--precision",
            "w4a16",
            "--quick",
            "--threads",
            "1",
            "--out",
            str(tmp_path),
            "--batch-sizes",
            "1,2",
            "--contexts",
            "16,32",
            "--repeats",
            "3",
            "--max-repeats",
            "3",
            "--warmup",
            "1",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "decode / roofline" in r.output and "wrote" in r.output
    dirs = list(tmp_path.glob("*/tiny-llama/w4a16/decode.csv"))
    assert len(dirs) == 1
    r = CliRunner().invoke(app, ["profile", "check", str(dirs[0].parent)])
    assert r.exit_code == 0, r.output
    assert "median held-out MAPE" in r.output


def test_cli_profile_bad_input_exit_2(tmp_path):
    r = CliRunner().invoke(
        app,
        [
            "profile",
            "--model",
            "tiny-llama",
            "--device",
            "cpu",
            "--quick",
            "--cuda-graphs",
            "--out",
            str(tmp_path),
        ],
    )
    assert r.exit_code == 2 and "Traceback" not in r.output and "cuda" in r.output
    r = CliRunner().invoke(
        app,
        [
            "profile",
            "--model",
            "tiny-llama",
            "--device",
            "cpu",
            "--quick",
            "--batch-sizes",
            "x",
            "--out",
            str(tmp_path),
        ],
    )
    assert r.exit_code == 2 and "--batch-sizes" in r.output


def test_pooled_probes_take_the_best_as_ceiling():
    from sunsim.profiling.harness import _pool_probes

    slow = {
        "copy_bandwidth_bytes_per_s": 5e9,
        "copy_bandwidth_median_bytes_per_s": 4e9,
        "copy_bytes": 1024,
        "matmul_flops_per_s": 2e11,
        "matmul_median_flops_per_s": 1e11,
        "matmul_n": 64,
    }
    fast = {
        **slow,
        "copy_bandwidth_bytes_per_s": 9e9,
        "copy_bandwidth_median_bytes_per_s": 8e9,
        "matmul_flops_per_s": 6e11,
        "matmul_median_flops_per_s": 5e11,
    }
    p = _pool_probes([slow, fast, slow])
    assert p["copy_bandwidth_bytes_per_s"] == 9e9 and p["matmul_flops_per_s"] == 6e11
    assert p["copy_bandwidth_median_bytes_per_s"] == 4e9  # median of the three medians
    assert p["matmul_median_flops_per_s"] == 1e11 and p["probes"] == 3
