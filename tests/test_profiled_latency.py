"""ProfiledLatency: schema checks, the fit, interpolation/extrapolation, errors, check, CLI.

These tests need no torch: they write synthetic profiles (known formulas) in the schema
``sunsim profile`` writes, plus read the bundled measured profiles under ``profiles/``.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from sunsim.cli import app
from sunsim.data import profiles_root
from sunsim.errors import ProfileError
from sunsim.latency.base import LatencyModel
from sunsim.latency.profile_check import check_profile
from sunsim.latency.profiled import (
    PREFILL_FORMS,
    ProfiledLatency,
    find_profile,
    fit_nnls,
    resolve_profile,
    select_form,
)
from sunsim.profiling.analysis import roofline_ratios, roofline_summary
from sunsim.serialize import as_dict
from sunsim.specs import MODELS, weight_bytes

ROOT = Path(__file__).resolve().parents[1]
PROFILES = profiles_root()

DEC_B = (1, 2, 4, 8, 16, 32)
DEC_C = (128, 256, 512, 1024, 2048)
PRE_B = (1, 2, 4)
PRE_L = (64, 128, 256, 512, 1024)


def dec_linear(b: float, c_total: float) -> float:
    return 0.010 + 2e-4 * b + 3e-8 * c_total


def pre_distserve(lens) -> float:
    return 0.004 + 5e-5 * sum(lens) + 2e-9 * sum(x * x for x in lens)


def write_profile(
    d: Path,
    *,
    model: str = "tiny-llama",
    precision: str = "bf16",
    dec=dec_linear,
    pre=pre_distserve,
    gpu_key=None,
    slug="cpu-test-1t",
    quick=False,
    prefill: bool | None = None,
    drop=(),
) -> Path:
    """A synthetic profile in ``d/<slug>/<model>/<precision>`` from formulas."""
    p = d / slug / model / precision
    p.mkdir(parents=True, exist_ok=True)
    rows = [
        {
            "batch_size": b,
            "context_tokens": c,
            "total_context_tokens": b * c,
            "time_s_median": dec(b, b * c),
            "time_s_p10": dec(b, b * c) * 0.98,
            "time_s_p90": dec(b, b * c) * 1.02,
            "repeats": 9,
        }
        for c in DEC_C
        for b in DEC_B
        if (b, c) not in drop
    ]
    pd.DataFrame(rows).to_csv(p / "decode.csv", index=False)
    with_prefill = precision == "bf16" if prefill is None else prefill
    if with_prefill:
        rows = [
            {
                "batch_size": b,
                "prompt_tokens": l,
                "total_tokens": b * l,
                "time_s_median": pre([l] * b),
                "time_s_p10": pre([l] * b),
                "time_s_p90": pre([l] * b),
                "repeats": 5,
            }
            for b in PRE_B
            for l in PRE_L
            if b * l <= 2048
        ]
        pd.DataFrame(rows).to_csv(p / "prefill.csv", index=False)
    meta = {
        "schema_version": 1,
        "method": "measured",
        "quick": quick,
        "model": model,
        "precision": precision,
        "model_spec": as_dict(MODELS[model]),
        "modules": ["prefill", "decode"] if with_prefill else ["decode"],
        "device_kind": "cpu" if gpu_key is None else "cuda",
        "device_name": "Test Device",
        "device_slug": slug,
        "gpu_key": gpu_key,
        "layers_run": 2,
        "layers_total": MODELS[model].num_layers,
        "copy_bandwidth_bytes_per_s": 10e9,
        "matmul_flops_per_s": 1e12,
    }
    (p / "meta.json").write_text(json.dumps(meta))
    return p


# -- the fit ---------------------------------------------------------------------------------


def test_nnls_recovers_distserve_form_exactly():
    pts = []
    for b in PRE_B:
        for l in PRE_L:
            pts.append((b, l, b * l, b * l * l, pre_distserve([l] * b)))
    form, coef, loo = select_form(pts, PREFILL_FORMS)
    got = dict(zip(form, coef))
    assert got["1"] == pytest.approx(0.004, rel=1e-6)
    assert got["T"] == pytest.approx(5e-5, rel=1e-6)
    assert got["L2"] == pytest.approx(2e-9, rel=1e-6)
    assert got.get("B", 0.0) == pytest.approx(0.0, abs=1e-9)
    assert loo < 1e-6


def test_nnls_is_non_negative_and_relative():
    rows = [[1.0, x] for x in (1, 2, 4, 8)]
    t = [1.0, 2.0, 4.0, 8.0]  # t = x: a = 0, b = 1
    a, b = fit_nnls(rows, t)
    assert a >= 0 and b == pytest.approx(1.0, rel=1e-9)


def test_profiled_exact_for_synthetic_linear(tmp_path):
    d = write_profile(tmp_path)
    lat = ProfiledLatency.from_dir(d, model="tiny-llama", precision="bf16")
    assert isinstance(lat, LatencyModel)
    assert lat.method == "measured"
    for b in (1, 3, 7, 32, 100, 1000):
        for c in (10, 128, 700, 2048, 50000):
            assert lat.decode_step_time(b, b * c) == pytest.approx(dec_linear(b, b * c), rel=1e-6)
    for lens in ([64], [100, 300], [1024, 1024], [5000], [7] * 33):
        assert lat.prefill_time(lens) == pytest.approx(pre_distserve(lens), rel=1e-6)
    assert lat.decode_step_time(0, 0) == 0.0
    assert lat.prefill_time([]) == 0.0


def curved(b: float, c_total: float) -> float:
    """Not in the fitted family: the ratio field has to carry the curvature."""
    return 0.01 * (1 + 0.3 * math.log(b)) + 4e-8 * c_total * (1 + 0.05 * math.sqrt(b))


def test_interpolates_measured_points_and_between(tmp_path):
    d = write_profile(tmp_path, dec=curved)
    lat = ProfiledLatency.from_dir(d)
    for b in DEC_B:  # exact at every measured point
        for c in DEC_C:
            assert lat.decode_step_time(b, b * c) == pytest.approx(curved(b, b * c), rel=1e-9)
    for b in (3, 6, 12, 24):  # between grid points: within 2 %
        for c in (180, 700, 1500):
            assert lat.decode_step_time(b, b * c) == pytest.approx(curved(b, b * c), rel=0.02)


def test_extrapolates_with_fitted_form(tmp_path):
    d = write_profile(tmp_path, dec=curved)
    lat = ProfiledLatency.from_dir(d)
    # Beyond the largest batch size the ratio is clamped: time follows the fitted form.
    for c in (256, 1024):
        t1, t2 = lat.decode_step_time(64, 64 * c), lat.decode_step_time(512, 512 * c)
        f1, f2 = lat.fitted_decode_time(64, 64 * c), lat.fitted_decode_time(512, 512 * c)
        assert t2 / t1 == pytest.approx(f2 / f1, rel=1e-9)
    # Continuous at the grid's edge.
    edge = lat.decode_step_time(32, 32 * 2048)
    assert lat.decode_step_time(33, 33 * 2048) == pytest.approx(edge, rel=0.05)
    assert lat.decode_step_time(32, 32 * 2100) == pytest.approx(edge, rel=0.05)


def test_grid_holes_are_filled(tmp_path):
    d = write_profile(tmp_path, drop={(32, 2048), (16, 2048)})
    lat = ProfiledLatency.from_dir(d)
    assert lat.decode_step_time(32, 32 * 2048) == pytest.approx(dec_linear(32, 32 * 2048), rel=1e-6)


def test_memory_model_from_spec(tmp_path):
    d = write_profile(tmp_path, precision="w4a16")
    lat = ProfiledLatency.from_dir(d)
    assert lat.weight_bytes == weight_bytes(MODELS["tiny-llama"], "w4a16")
    assert lat.kv_bytes_per_token == MODELS["tiny-llama"].kv_bytes_per_token()
    assert lat.max_model_len == MODELS["tiny-llama"].max_model_len
    for word in ("tiny-llama", "w4a16", "measured", "Test Device"):
        assert word in lat.description


# -- errors ----------------------------------------------------------------------------------


def _one_line(e: pytest.ExceptionInfo) -> str:
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_wrong_model_is_one_line_error(tmp_path):
    d = write_profile(tmp_path)
    with pytest.raises(ProfileError) as e:
        ProfiledLatency.from_dir(d, model="llama-3.1-8b")
    msg = _one_line(e)
    assert "meta.json" in msg and "tiny-llama" in msg and "llama-3.1-8b" in msg


def test_wrong_precision_is_one_line_error(tmp_path):
    d = write_profile(tmp_path)
    with pytest.raises(ProfileError) as e:
        ProfiledLatency.from_dir(d, precision="w4a16")
    msg = _one_line(e)
    assert "bf16" in msg and "w4a16" in msg


@pytest.mark.parametrize("victim", ["decode.csv", "prefill.csv", "meta.json"])
def test_missing_file(tmp_path, victim):
    d = write_profile(tmp_path)
    (d / victim).unlink()
    with pytest.raises(ProfileError) as e:
        ProfiledLatency.from_dir(d)
    assert victim in _one_line(e)


def test_fit_statistic_min_fits_the_fastest_repeat(tmp_path):
    d = write_profile(tmp_path)
    for f, scale in (("decode.csv", 0.8), ("prefill.csv", 0.7)):
        df = pd.read_csv(d / f)
        df["time_s_min"] = df["time_s_median"] * scale
        df.to_csv(d / f, index=False)
    med = ProfiledLatency.from_dir(d)
    meta = json.loads((d / "meta.json").read_text())
    (d / "meta.json").write_text(json.dumps({**meta, "fit_statistic": "min"}))
    fast = ProfiledLatency.from_dir(d)
    assert med.time_column == "time_s_median" and fast.time_column == "time_s_min"
    assert "fastest repeat" in fast.description and "fastest" not in med.description
    assert fast.decode_step_time(8, 8 * 512) == pytest.approx(
        0.8 * med.decode_step_time(8, 8 * 512), rel=1e-6
    )
    assert fast.prefill_time([256, 256]) == pytest.approx(
        0.7 * med.prefill_time([256, 256]), rel=1e-6
    )
    (d / "meta.json").write_text(json.dumps({**meta, "fit_statistic": "mode"}))
    with pytest.raises(ProfileError) as e:
        ProfiledLatency.from_dir(d)
    assert "fit_statistic 'mode'" in _one_line(e)
    (d / "meta.json").write_text(json.dumps({**meta, "fit_statistic": "min"}))
    pd.read_csv(d / "decode.csv").drop(columns=["time_s_min"]).to_csv(d / "decode.csv", index=False)
    with pytest.raises(ProfileError) as e:
        ProfiledLatency.from_dir(d)
    assert "time_s_min" in _one_line(e) and "decode.csv" in _one_line(e)


def test_bad_columns_and_values(tmp_path):
    d = write_profile(tmp_path)
    df = pd.read_csv(d / "decode.csv").drop(columns=["time_s_median"])
    df.to_csv(d / "decode.csv", index=False)
    with pytest.raises(ProfileError) as e:
        ProfiledLatency.from_dir(d)
    assert "time_s_median" in _one_line(e)
    d = write_profile(tmp_path / "b")
    df = pd.read_csv(d / "decode.csv")
    df.loc[3, "total_context_tokens"] = 7
    df.to_csv(d / "decode.csv", index=False)
    with pytest.raises(ProfileError) as e:
        ProfiledLatency.from_dir(d)
    assert "row 4" in _one_line(e)


def test_resolve_profile_levels(tmp_path):
    p = write_profile(tmp_path)
    write_profile(tmp_path, precision="w4a16")
    dev = tmp_path / "cpu-test-1t"
    assert resolve_profile(dev, "tiny-llama", "bf16") == p
    assert resolve_profile(dev / "tiny-llama", "tiny-llama", "bf16") == p
    assert resolve_profile(p, "tiny-llama", "bf16") == p
    with pytest.raises(ProfileError) as e:
        resolve_profile(dev, "tiny-llama", "w8a16")
    msg = _one_line(e)
    assert "tiny-llama/bf16" in msg and "tiny-llama/w4a16" in msg
    with pytest.raises(ProfileError):
        resolve_profile(tmp_path / "nope", "tiny-llama", "bf16")


def test_find_profile_by_gpu_key(tmp_path):
    cpu = write_profile(tmp_path)
    h100 = write_profile(tmp_path, gpu_key="h100", slug="nvidia-h100-80gb-hbm3")
    write_profile(tmp_path, gpu_key="h200", slug="nvidia-h200-quick", quick=True)
    assert find_profile(tmp_path, "h100", "tiny-llama", "bf16") == h100
    assert find_profile(tmp_path, None, "tiny-llama", "bf16") == cpu
    assert find_profile(tmp_path, "h200", "tiny-llama", "bf16") is None  # quick: never used
    assert find_profile(tmp_path, "h100", "tiny-llama", "w4a16") is None
    assert find_profile(tmp_path / "missing", "h100", "tiny-llama", "bf16") is None


def test_decode_only_profile_prefill(tmp_path):
    q = write_profile(tmp_path / "alone", precision="w4a16")
    lat = ProfiledLatency.from_dir(q)
    assert not lat.has_prefill
    with pytest.raises(ProfileError) as e:
        lat.prefill_time([100])
    assert "decode-only" in _one_line(e)
    write_profile(tmp_path / "pair")
    q = write_profile(tmp_path / "pair", precision="w4a16")
    lat = ProfiledLatency.from_dir(q)
    assert lat.has_prefill and "prefill from bf16" in lat.description
    assert lat.prefill_time([100, 200]) == pytest.approx(pre_distserve([100, 200]), rel=1e-6)
    assert not ProfiledLatency.from_dir(q, prefill_from_bf16=False).has_prefill


# -- check and roofline ratios ----------------------------------------------------------------


def test_check_profile_synthetic(tmp_path):
    d = write_profile(tmp_path, dec=curved)
    df = check_profile(d)
    assert list(df.columns) == [
        "module",
        "slice",
        "points",
        "mape_pct",
        "max_ape_pct",
        "fit_only_mape_pct",
    ]
    assert set(df["module"]) == {"decode", "prefill"}
    assert df[df.module == "decode"]["points"].sum() == len(DEC_B) * len(DEC_C)
    assert 0 <= df.attrs["median_mape_pct"] < 5.0
    # the interpolation beats the bare fit on a curved surface
    dec = df[df.module == "decode"]
    assert dec["mape_pct"].mean() < dec["fit_only_mape_pct"].mean()


def test_roofline_ratios_columns(tmp_path):
    d = write_profile(tmp_path)
    df = roofline_ratios(d)
    assert {"module", "batch_size", "tokens", "time_s", "roofline_s", "ratio"} <= set(df.columns)
    dec = df[df.module == "decode"]
    assert (dec["ratio"] > 0).all()
    assert (dec["bytes_moved"] > weight_bytes(MODELS["tiny-llama"], "bf16") * 0.5).all()
    s = roofline_summary(df)
    assert s["decode_ratio_min"] <= s["decode_ratio_median"] <= s["decode_ratio_max"]
    assert 0 < s["prefill_fraction_median"]


def _bundled() -> list[Path]:
    return sorted(p.parent for p in PROFILES.glob("*/*/*/meta.json"))


@pytest.mark.skipif(not _bundled(), reason="no bundled profiles under profiles/")
def test_bundled_profiles_check():
    for d in _bundled():
        lat = ProfiledLatency.from_dir(d)
        src = lat.profile_meta.source  # imported profiles name their source
        if src is None:
            assert lat.method == "measured"
        else:  # measured or derived, with package, backend and system (and tp N when > 1)
            m = lat.profile_meta.method
            assert m in ("measured", "derived") and lat.method.startswith(
                f"{m} (aiconfigurator-core {src['package_version']}"
            )
            assert f"{src['backend']} {src['backend_version']}" in lat.method
            assert src["system"] in lat.method
            tp = src["tensor_parallel_size"]
            assert (f"tp {tp})" in lat.method) == (tp > 1)
        df = check_profile(d)
        med = df.attrs["median_mape_pct"]
        assert math.isfinite(med) and med >= 0
        assert med <= 5.0, (d, med)  # the target of the profile issue
        t = lat.decode_step_time(8, 8 * 1000)
        assert t > 0 and math.isfinite(t)
        if lat.has_prefill:
            assert lat.prefill_time([100, 300]) > 0


# -- CLI ---------------------------------------------------------------------------------------


def test_cli_check_prints_median(tmp_path):
    write_profile(tmp_path)
    r = CliRunner().invoke(app, ["profile", "check", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert "median held-out MAPE" in r.output


def test_cli_check_wrong_model_exit_2(tmp_path):
    d = write_profile(tmp_path)
    r = CliRunner().invoke(app, ["profile", "check", str(d), "--model", "llama-3.1-8b"])
    assert r.exit_code == 2
    assert "Traceback" not in r.output
    assert "tiny-llama" in r.output and "llama-3.1-8b" in r.output
    r = CliRunner().invoke(app, ["profile", "check", str(d), "--precision", "w8a16"])
    assert r.exit_code == 2 and "Traceback" not in r.output


def test_cli_check_missing_exit_2(tmp_path):
    r = CliRunner().invoke(app, ["profile", "check", str(tmp_path / "none")])
    assert r.exit_code == 2
    assert "Traceback" not in r.output and "error" in r.output


def test_import_without_torch():
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import sunsim.profiling, sunsim.latency.profiled\n"
        "from sunsim.profiling._torch import require_torch\n"
        "from sunsim.errors import ProfileError\n"
        "try:\n    require_torch()\nexcept ProfileError as e:\n    print('OK', e)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.startswith("OK") and "pip install 'sunsim[profile]'" in r.stdout


@pytest.mark.parametrize(
    "profile", ["cpu-intel-xeon-1t/tiny-llama/bf16", "h100-sxm-aic-vllm-0.24.0/llama-3.1-8b/bf16"]
)
def test_inlined_decode_step_equals_the_surface(profile):
    """decode_step_time inlines Surface.correction for speed; both must give the same seconds,
    inside the grid, on its edges and outside it."""
    lat = ProfiledLatency.from_dir(profiles_root() / profile)
    for b, c in [(1, 100), (3, 5000), (17, 40000), (64, 262144), (300, 1_000_000)]:
        want = lat._decode.apply(lat.fitted_decode_time(b, c), b, c / b)
        assert lat.decode_step_time(b, c) == pytest.approx(want, rel=1e-12)
