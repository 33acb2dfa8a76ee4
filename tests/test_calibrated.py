"""The calibrated roofline (sunsim.latency.calibrated) and its fit (sunsim.latency.calibrate):
the fit recovers known efficiencies, the label says calibrated, the held-out split never trains
on the held-out GPU, ``latency = "calibrated"`` is selectable, bad coefficient files fail in
one line."""

from __future__ import annotations

import dataclasses
import itertools
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from sunsim.cli import app
from sunsim.config import Scenario
from sunsim.data import profiles_root
from sunsim.errors import ProfileError
from sunsim.latency import calibrate
from sunsim.latency.calibrated import (
    CalibratedLatency,
    Coefficients,
    _unit_probes,
    coefficients_path,
    load_coefficients,
)
from sunsim.latency.profile_format import read_meta, write_profile_dir
from sunsim.latency.resolve import resolve_latency
from sunsim.latency.roofline import RooflineLatency
from sunsim.specs import get_gpu, get_model

LABEL = "analytic (calibrated on h100_sxm, h200_sxm, a100_sxm, b200_sxm aiconfigurator-core 0.12.0)"
TRUE = Coefficients(0.62, 0.55, 0.9, 0.4, 3e-5, 6e-5, eta_weights_low_bit={"w4a16": 0.3})
BUNDLED_META = profiles_root() / "h100-sxm-aic-vllm-0.24.0" / "llama-3.1-8b" / "bf16"


def _synthetic(root: Path, gpu: str, model: str, precision: str = "bf16") -> None:
    """A profile whose times are TRUE's predictions (bundled meta, renamed device)."""
    meta = read_meta(BUNDLED_META).to_dict()
    spec = get_model(model)
    slug = f"{gpu}-synthetic"
    meta.update(
        model=model,
        precision=precision,
        model_spec={**meta["model_spec"], **_spec_dict(spec)},
        device_slug=slug,
        gpu_key=gpu,
        modules=["prefill", "decode"] if precision == "bf16" else ["decode"],
        grid=None,
        source={**meta["source"], "system": f"{gpu}_sxm"},
    )
    lat = CalibratedLatency(get_gpu(gpu), spec, precision, TRUE)

    def rows(pairs, kind):
        out = []
        for b, n in pairs:
            t = lat.decode_step_time(b, b * n) if kind == "decode" else lat.prefill_time([n] * b)
            tok = "context_tokens" if kind == "decode" else "prompt_tokens"
            tot = "total_context_tokens" if kind == "decode" else "total_tokens"
            out.append(
                {"batch_size": b, tok: n, tot: b * n, "time_s_median": t, "time_s_p10": t}
                | {"time_s_p90": t, "repeats": 1}
            )
        return pd.DataFrame(out)

    dec = rows(itertools.product((1, 4, 16, 64, 256), (128, 1024, 8192)), "decode")
    pre = rows(itertools.product((1, 4), (128, 1024, 4096)), "prefill")
    write_profile_dir(root, pre if precision == "bf16" else None, dec, meta)


def _spec_dict(spec) -> dict:
    d = dataclasses.asdict(spec)
    return {k: d[k] for k in read_meta(BUNDLED_META).to_dict()["model_spec"] if k in d}


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("profiles")
    for gpu, model in itertools.product(("h100", "a100", "b200"), ("llama-3.1-8b", "qwen3-8b")):
        _synthetic(root, gpu, model)
    _synthetic(root, "a100", "llama-3.1-8b", "w4a16")
    return root


def test_fit_recovers_known_efficiencies(synthetic_root):
    profs = calibrate.load_profiles(synthetic_root)
    assert len(profs) == 7
    got = calibrate.fit(profs)
    for want, have in zip(TRUE.vector(), got.vector()):
        assert have == pytest.approx(want, rel=0.01)
    assert got.eta_weights_low_bit["w4a16"] == pytest.approx(0.3, rel=0.01)


def test_held_out_never_trains_on_the_held_out_gpu(synthetic_root, monkeypatch):
    profs = calibrate.load_profiles(synthetic_root)
    seen: list[set[str]] = []
    real_fit = calibrate.fit

    def spy(ps):
        seen.append({p.gpu for p in ps})
        return real_fit(ps)

    monkeypatch.setattr(calibrate, "fit", spy)
    rows = calibrate.held_out(profs)
    held = [r["gpu"] for r in rows]
    assert list(dict.fromkeys(held)) == ["h100", "a100", "b200"]
    assert [g for g in seen] == [{"a100", "b200"}, {"h100", "b200"}, {"h100", "a100"}]
    for r in rows:
        assert r["gpu"] not in r["trained_on"]
        # exact synthetic data: the held-out GPU is predicted (nearly) exactly
        assert r["calibrated_median_pct"] < 1.0


def test_bundled_label_says_calibrated_and_names_the_profiles():
    c = load_coefficients()
    assert c.label == LABEL
    assert len(c.provenance["profiles"]) == 8 and c.provenance["sunsim_version"]
    lat = CalibratedLatency(get_gpu("l40s"), get_model("llama-3.1-8b"))
    assert lat.method == LABEL and "calibrated" in lat.description and "measured" not in LABEL
    q = CalibratedLatency(get_gpu("h100"), get_model("llama-3.1-8b"), "w4a16")
    assert "w4a16 weight reads at the efficiency fitted on a100-sxm-aic-trtllm" in q.description


def test_parts_are_the_roofline_bytes_and_flops():
    """At unit efficiencies the memory-bound decode step is the roofline's bytes / bandwidth,
    and the GEMM-bound prefill its FLOPs / rate (the coefficients read off the probes)."""
    gpu, model = get_gpu("h100"), get_model("qwen3-8b")
    unit = Coefficients(1.0, 1.0, 1.0, 1.0, 0.0, 0.0)
    lat = CalibratedLatency(gpu, model, "bf16", unit)
    by, fl = _unit_probes(gpu, model, "bf16")
    for b, c in ((1, 100), (7, 7 * 3000), (64, 64 * 512)):
        t = lat.decode_step_time(b, c)
        assert t == pytest.approx(by.decode_step_time(b, c) / gpu.mem_bw_datasheet, rel=1e-9)
    lens = [4000, 3000, 17]
    parts = lat.prefill_components(lens)
    want = fl.prefill_time(lens) / gpu.bf16_flops_datasheet
    assert parts["weights_or_gemm"] + parts["attention"] == pytest.approx(want, rel=1e-9)
    assert lat.prefill_time(lens) == pytest.approx(want, rel=1e-9)


def test_decode_run_equals_summed_steps():
    lat = CalibratedLatency(get_gpu("b200"), get_model("llama-3.1-8b"), "bf16", TRUE)
    run = lat.decode_run(16, 16 * 700, 50)
    t, ctx = 0.0, 16 * 700
    for got in run:
        t += lat.decode_step_time(16, ctx)
        ctx += 16
        assert got == pytest.approx(t, rel=1e-12)
    assert len(lat.decode_run(16, 16 * 700, 50, stop_s=run[9])) == 10


def test_calibrated_is_closer_than_the_roofline_on_a_measured_gpu():
    """The bundled coefficients against the bundled H100 profile (in sample): closer than the
    plain roofline at medium batch (the point of calibrating), and never a measurement."""
    lat, _ = resolve_latency("llama-3.1-8b", "h100", "bf16", "decode", "calibrated")
    meas, _ = resolve_latency("llama-3.1-8b", "h100", "bf16", "decode", "auto")
    roof = RooflineLatency(get_gpu("h100"), get_model("llama-3.1-8b"))
    m = meas.decode_step_time(32, 32 * 1024)
    assert abs(lat.decode_step_time(32, 32 * 1024) / m - 1) < abs(
        roof.decode_step_time(32, 32 * 1024) / m - 1
    )


def test_latency_calibrated_is_selectable():
    s = Scenario(latency="calibrated", gpu="l40s")
    assert s.latency == "calibrated"
    for role in ("prefill", "decode"):
        lat, note = resolve_latency("llama-3.1-8b", "h100", "bf16", role, "calibrated")
        assert isinstance(lat, CalibratedLatency) and "(asked for)" in note and LABEL in note
    # auto: a measured profile where there is one, else the calibrated roofline, saying so
    lat, note = resolve_latency("llama-3.1-8b", "l40s", "bf16", "decode", "auto")
    assert isinstance(lat, CalibratedLatency) and "no measured profile" in note
    lat, _ = resolve_latency("llama-3.1-8b", "h100", "bf16", "decode", "auto")
    assert lat.method.startswith("measured")


def test_replay_with_latency_calibrated_says_so(tmp_path):
    r = CliRunner().invoke(
        app,
        ["replay", "--no-progress", "--max-requests", "40", "--mode", "sun", "--gpu", "l40s"]
        + ["--latency", "calibrated", "--out", str(tmp_path / "run")],
        catch_exceptions=False,
    )
    assert r.exit_code == 0, r.output
    assert "calibrated roofline L40S-48GB" in r.output.replace("\n", "")


@pytest.mark.parametrize(
    ("text", "what"),
    [
        ("{not json", "not valid JSON"),
        ('{"label": "analytic (calibrated on x)"}', "no 'coefficients' object"),
        ("COEF:eta_kv=-0.5", "key 'eta_kv' must be a positive number"),
        ("COEF:eta_gemm=null", "key 'eta_gemm' must be a positive number"),
        ("LABEL:measured", "key 'label' must start with 'analytic (calibrated'"),
    ],
)
def test_bad_coefficient_file_is_one_line(tmp_path, text, what):
    p = tmp_path / "c.json"
    if text.startswith(("COEF:", "LABEL:")):
        doc = json.loads(coefficients_path().read_text())
        kind, kv = text.split(":", 1)
        if kind == "COEF":
            k, v = kv.split("=")
            doc["coefficients"][k] = json.loads(v)
        else:
            doc["label"] = kv
        text = json.dumps(doc)
    p.write_text(text)
    with pytest.raises(ProfileError) as e:
        load_coefficients(p)
    msg = str(e.value)
    assert what in msg and str(p) in msg and "\n" not in msg
    assert "python -m sunsim.latency.calibrate" in msg


def test_missing_coefficient_file_is_one_line(tmp_path):
    with pytest.raises(ProfileError, match="missing calibration coefficients"):
        load_coefficients(tmp_path / "nope.json")


def test_refit_with_no_profiles_exits_2_in_one_line(tmp_path):
    out = tmp_path / "c.json"
    r = subprocess.run(
        [sys.executable, "-m", "sunsim.latency.calibrate", "--profiles", str(tmp_path)]
        + ["--out", str(out)],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parents[1],
    )
    assert r.returncode == 2 and not out.exists()
    assert r.stderr.count("\n") == 1 and "no measured BF16 GPU profile" in r.stderr
    assert "Traceback" not in r.stderr


def test_replay_with_a_corrupted_coefficient_file_exits_2_in_one_line(tmp_path, monkeypatch):
    import sunsim.latency.calibrated as calibrated

    bad = tmp_path / "roofline_calibration.json"
    bad.write_text('{"label": "analytic (calibrated on x)", "coefficients": {"eta_kv": 0}}')
    monkeypatch.setattr(calibrated, "coefficients_path", lambda: bad)
    r = CliRunner().invoke(
        app,
        ["replay", "--no-progress", "--max-requests", "20", "--gpu", "l40s"]
        + ["--out", str(tmp_path / "run")],
    )
    assert r.exit_code == 2, r.output
    errs = [ln for ln in r.output.splitlines() if str(bad) in ln]  # after the trace's summary
    assert len(errs) == 1 and "must be a positive number" in errs[0]
    assert "Traceback" not in r.output
