"""``kv_cache_dtype`` (vLLM's ``--kv-cache-dtype``): FP8 KV-cache bytes, the measured FP8-KV
import from aiconfigurator-core's tables, the derived estimate elsewhere, the scenario key and
CLI option (with a bad value), and the silicon rows' KV dtype."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from test_profile_import import GRID, HEAD, SHAPES, gemm_ms, gen_ms, needs_aic, write_db
from typer.testing import CliRunner

from sunsim.cli import app
from sunsim.config import Scenario
from sunsim.engine.capacity import kv_capacity_blocks
from sunsim.errors import ConfigError, ProfileError
from sunsim.latency.kv_cache_dtype import (
    FP8_ATTENTION_RATIO,
    FP8KVCacheLatency,
    kv_bytes_per_element,
    latency_kv_cache_dtype,
    with_kv_cache_dtype,
)
from sunsim.latency.profiled import ProfiledLatency
from sunsim.latency.roofline import RooflineLatency
from sunsim.profiling.aic import import_profile, write_imported
from sunsim.specs import get_gpu, get_model
from sunsim.validate.silicon.rows import Case, kv_cache_dtype_of


def _fp8_attention(root: Path) -> Path:
    """Add FP8 KV-cache attention rows at 0.6 x the BF16 ones to the hand-written tables."""
    a = root / "h100_sxm" / "attention" / "vllm" / "0.24.0"
    for name in ("context_attention_perf.parquet", "generation_attention_perf.parquet"):
        df = pd.read_parquet(a / name)
        fp8 = df.assign(kv_cache_dtype="fp8", latency=df["latency"] * 0.6)
        pd.concat([df, fp8]).to_parquet(a / name)
    return root


def test_kv_bytes_per_element_and_bad_value() -> None:
    assert kv_bytes_per_element("auto") == 2 and kv_bytes_per_element("fp8") == 1
    with pytest.raises(ConfigError, match="kv_cache_dtype 'fp4': choose one of auto, fp8"):
        kv_bytes_per_element("fp4")


def test_fp8_kv_import_uses_the_fp8_attention_rows_and_halves_kv_bytes(tmp_path: Path) -> None:
    db = _fp8_attention(write_db(tmp_path))
    bf = import_profile("h100", "vllm", "tiny-llama", data_root=db, grid=GRID)
    f8 = import_profile("h100", "vllm", "tiny-llama", data_root=db, grid=GRID, kv_cache_dtype="fp8")
    spec = get_model("tiny-llama")
    b, c = 4, 256
    pick = (f8.decode.batch_size == b) & (f8.decode.context_tokens == c)
    # only the attention differs: 0.6 x the BF16 generation attention, every layer
    diff = float(bf.decode[pick].time_s_median.iloc[0] - f8.decode[pick].time_s_median.iloc[0])
    assert diff == pytest.approx(spec.num_layers * 0.4 * gen_ms(b, c + 1) / 1e3, rel=1e-9)
    layer = sum(gemm_ms(b, n, k) for n, k in SHAPES.values()) + 0.6 * gen_ms(b, c + 1)
    assert f8.composer.decode(b, c).gemm == pytest.approx(
        spec.num_layers * (layer - 0.6 * gen_ms(b, c + 1)) + gemm_ms(b, *HEAD)
    )
    assert f8.meta.source["kv_cache_dtype"] == "fp8" and "kv_cache_dtype" not in bf.meta.source
    assert f8.meta.device_slug.endswith("-kvfp8")
    lat = ProfiledLatency.from_dir(write_imported(f8, tmp_path / "out"))
    assert lat.kv_bytes_per_token == spec.kv_bytes_per_token(1)
    assert latency_kv_cache_dtype(lat) == "fp8" and with_kv_cache_dtype(lat, "fp8") is lat
    # no FP8 KV-cache rows in the plain tables: refused in one line
    with pytest.raises(ProfileError, match="fp8 KV cache"):
        import_profile("h100", "vllm", "tiny-llama", data_root=write_db(tmp_path / "b"),
                       grid=GRID, kv_cache_dtype="fp8")  # fmt: skip
    with pytest.raises(ProfileError, match="--kv-cache-dtype 'int4'"):
        import_profile("h100", "vllm", "tiny-llama", data_root=db, grid=GRID, kv_cache_dtype="int4")


def test_derived_fp8_kv_halves_the_attention_share_and_says_derived() -> None:
    roof = RooflineLatency(get_gpu("h100"), get_model("llama-3.1-8b"), "bf16")
    f8 = with_kv_cache_dtype(roof, "fp8")
    assert isinstance(f8, FP8KVCacheLatency) and f8.method.startswith("derived (")
    assert f8.kv_bytes_per_token * 2 == roof.kv_bytes_per_token
    b, c = 64, 64 * 4096
    want = roof.decode_step_time(b, c) - (1 - FP8_ATTENTION_RATIO) * roof.context_attention_time(
        b, c
    )
    assert f8.decode_step_time(b, c) == pytest.approx(want)
    assert f8.decode_step_time(b, c) < roof.decode_step_time(b, c)
    assert f8.prefill_time([1024]) == roof.prefill_time([1024])
    assert with_kv_cache_dtype(roof, "auto") is roof


def test_capacity_holds_twice_the_blocks_with_fp8_kv() -> None:
    s = Scenario(modes=("colocated",), gpu="h100", base_model="llama-3.1-8b")
    cluster = s.cluster("colocated")
    roof = RooflineLatency(get_gpu("h100"), get_model("llama-3.1-8b"), "bf16")
    bf, f8 = (
        kv_capacity_blocks(cluster, roof),
        kv_capacity_blocks(cluster, with_kv_cache_dtype(roof, "fp8")),
    )
    assert f8 in (2 * bf, 2 * bf + 1)


def test_scenario_key_and_cli_option(tmp_path: Path) -> None:
    assert Scenario().kv_cache_dtype == "auto"
    with pytest.raises(ConfigError, match="kv"):
        Scenario(kv_cache_dtype="fp4")
    run = CliRunner().invoke(app, ["replay", "--max-concurrency", "2", "--kv-cache-dtype", "fp4"])
    assert run.exit_code == 2 and len(run.output.strip().splitlines()) == 1
    assert "--kv-cache-dtype" in run.output and "auto, fp8" in run.output
    out = tmp_path / "r"
    args = ["replay", "--max-concurrency", "2", "--num-prompts", "4", "--input-len", "512"]
    args += ["--output-len", "16", "--mode", "colocated", "--kv-cache-dtype", "fp8"]
    run = CliRunner().invoke(app, [*args, "--no-progress", "-o", str(out)])
    assert run.exit_code == 0, run.output
    assert "KV cache fp8" in run.output and "derived" in run.output


def test_silicon_rows_take_fp8_kv_for_fp8_checkpoints() -> None:
    assert kv_cache_dtype_of({}, "fp8") == "fp8" and kv_cache_dtype_of({}, "bf16") == "auto"
    assert kv_cache_dtype_of({"kv_cache_dtype": "auto"}, "fp8") == "auto"
    assert kv_cache_dtype_of({"kvcache_quant_mode": "fp8"}, "bf16") == "fp8"


@needs_aic
def test_real_tables_fp8_kv_decode_is_faster_at_long_contexts() -> None:
    kw = {"tensor_parallel_size": 2}
    bf = import_profile("h200", "trtllm", "llama-3.1-70b", "fp8", **kw)
    f8 = import_profile("h200", "trtllm", "llama-3.1-70b", "fp8", kv_cache_dtype="fp8", **kw)
    a, b = bf.composer.decode(64, 4096), f8.composer.decode(64, 4096)
    assert b.attention < 0.7 * a.attention and b.gemm == a.gemm and b.comm == a.comm
    assert f8.meta.source["kv_cache_dtype"] == "fp8"


def test_inferencemax_rows_draw_lengths_like_its_client() -> None:
    from sunsim.engine.closed_loop import draw_lengths
    from sunsim.validate.silicon.mapping import client_lengths
    from sunsim.validate.silicon.rows import Case, classify, client_lengths_of

    src = "source_file=2026-04-06.csv; model=Llama-3.1-70B; silicon_concurrency=8; wip=False"
    assert client_lengths_of({"silicon_data_source": src}) == 0.8
    assert client_lengths_of({"silicon_data_source": "x; silicon_concurrency=8"}) == 1.0
    row = {
        "id": "r", "mode": "agg", "backend": "vllm", "system": "h100_sxm",
        "model_path": "meta-llama/Llama-3.1-8B-Instruct", "gemm_quant_mode": "", "isl": 1024,
        "osl": 8192, "concurrency": 8, "batch_size": 8, "tp_size": 1,
        "silicon_ttft_ms": 100.0, "silicon_tpot_ms": 10.0, "silicon_data_source": src,
    }  # fmt: skip
    case = classify(row, for_fit=True)
    assert isinstance(case, Case) and case.length_low_ratio == 0.8
    kw = client_lengths(case)
    rng = __import__("numpy").random.default_rng(0)
    for length, key in ((1024, "input_len"), (8192, "output_len")):
        got = draw_lengths(rng, kw[key], kw["range_ratio"], 20000)
        # bench_serving: uniform integers in [int(0.8 L), L]; sunsim's form agrees within 1
        assert abs(int(got.min()) - int(0.8 * length)) <= 1 and abs(int(got.max()) - length) <= 1
    fixed = classify(row | {"silicon_data_source": "x"}, for_fit=True)
    assert isinstance(fixed, Case) and client_lengths(fixed) == {
        "input_len": 1024,
        "output_len": 8192,
    }


@needs_aic
def test_validate_silicon_runs_an_fp8_row_on_an_fp8_kv_profile(tmp_path: Path) -> None:
    from sunsim.validate.silicon.mapping import row_scenario
    from sunsim.validate.silicon.rows import REQUIRED_COLUMNS, classify, in_fit_set
    from sunsim.validate.silicon.run import validate_silicon

    rid = next(f"fp8row{i}" for i in range(100) if not in_fit_set(f"fp8row{i}"))
    row = {
        "id": rid, "mode": "agg", "backend": "vllm", "system": "h100_sxm",
        "model_path": "nvidia/Llama-3.1-8B-Instruct-FP8", "precision": "fp8",
        "gemm_quant_mode": "fp8", "isl": 1024, "osl": 64, "batch_size": 4, "tp_size": 1,
        "pp_size": 1, "attention_dp_size": 1, "silicon_ttft_ms": 100.0, "silicon_tpot_ms": 10.0,
        "silicon_data_source": "x; silicon_concurrency=4",
    }  # fmt: skip
    case = classify(row | {"concurrency": 4.0})
    assert isinstance(case, Case) and case.kv_cache_dtype == "fp8"
    assert row_scenario(case, Path("/p"), "none").kv_cache_dtype == "fp8"
    csv = tmp_path / "s.csv"
    cols = [*REQUIRED_COLUMNS, "silicon_data_source"]
    pd.DataFrame([row]).reindex(columns=cols).to_csv(csv, index=False)
    res = validate_silicon(csv, overhead=False).set_index("id").loc[rid]
    assert res["status"] == "ok" and res["kv_cache_dtype"] == "fp8"
    assert str(res["profile"]).endswith("-kvfp8")


def test_profile_import_cli_bad_kv_cache_dtype_is_one_line() -> None:
    args = ["profile", "import", "--gpu", "h100", "--kv-cache-dtype", "int4"]
    run = CliRunner().invoke(app, args)
    assert run.exit_code == 2 and len(run.output.strip().splitlines()) == 1
    assert "--kv-cache-dtype 'int4'" in run.output
