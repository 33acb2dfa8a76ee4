"""The per-step engine overhead (sunsim.latency.overhead): the fit recovers known
coefficients, the wrapper adds them to every step, the bundled coefficients carry their
provenance and were fitted only on fit-set rows."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from sunsim.cli import app
from sunsim.config import Scenario
from sunsim.errors import ConfigError
from sunsim.latency.base import ConstantLatency, LatencyModel
from sunsim.latency.overhead import (
    EngineOverhead,
    OverheadLatency,
    fit_overhead,
    load_overhead,
    overhead_path,
    with_overhead,
)
from sunsim.replay import resolve_latency
from sunsim.validate.silicon.overhead_fit import row_samples
from sunsim.validate.silicon.rows import in_fit_set


def _features(rng: np.random.Generator, n: int) -> np.ndarray:
    steps = rng.integers(1, 4, n).astype(float)
    seqs = steps * rng.integers(1, 257, n)
    tokens = seqs + rng.integers(0, 8192, n)
    return np.column_stack([steps, seqs, tokens])


def test_fit_recovers_known_coefficients_exactly() -> None:
    rng = np.random.default_rng(0)
    x = _features(rng, 50)
    true = np.array([2e-3, 15e-6, 0.4e-6])  # 2 ms/step, 15 us/seq, 0.4 us/token
    a, b, c = fit_overhead(x, x @ true)
    assert (a, b, c) == pytest.approx(tuple(true), rel=1e-6)


def test_fit_recovers_coefficients_under_noise_and_weights() -> None:
    rng = np.random.default_rng(1)
    x = _features(rng, 400)
    true = np.array([1e-3, 20e-6, 0.1e-6])
    kernel = rng.uniform(5e-3, 50e-3, len(x))
    y = x @ true * rng.normal(1.0, 0.02, len(x))
    a, b, c = fit_overhead(x, y, 1.0 / (kernel + y))
    assert a == pytest.approx(1e-3, rel=0.15)
    assert b == pytest.approx(20e-6, rel=0.1)
    assert c == pytest.approx(0.1e-6, rel=0.15)


def test_fit_is_non_negative() -> None:
    rng = np.random.default_rng(2)
    x = _features(rng, 30)
    y = x @ np.array([3e-3, -5e-6, 0.2e-6])  # a negative per-sequence term
    a, b, c = fit_overhead(x, y)
    assert min(a, b, c) >= 0.0 and b == 0.0


def test_fit_bad_shapes() -> None:
    with pytest.raises(ValueError, match="at least 3"):
        fit_overhead(np.ones((2, 3)), np.ones(2))
    with pytest.raises(ValueError, match=r"\(n, 3\)"):
        fit_overhead(np.ones((5, 2)), np.ones(5))


OH = EngineOverhead("vllm", 2e-3, 10e-6, 1e-6, "a test")


def test_wrapper_adds_overhead_per_step() -> None:
    inner = ConstantLatency(prefill_s=0.05, decode_s=0.01, prefill_per_token_s=1e-5)
    lat = OverheadLatency(inner, OH)
    assert lat.prefill_time([100, 300]) == pytest.approx(
        0.05 + 400e-5 + 2e-3 + 2 * 10e-6 + 400 * 1e-6
    )
    assert lat.decode_step_time(8, 1000) == pytest.approx(0.01 + 2e-3 + 8 * 11e-6)
    assert lat.description.endswith("+ engine overhead (fitted on a test)")
    assert lat.method == "analytic + engine overhead (fitted)"
    assert lat.kv_bytes_per_token == inner.kv_bytes_per_token


@pytest.mark.parametrize("stop_s", [float("inf"), 0.05, 0.0])
def test_wrapper_decode_run_equals_stepping(stop_s: float) -> None:
    inner = ConstantLatency(decode_s=0.01)
    lat = OverheadLatency(inner, OH)
    fast = lat.decode_run(4, 100, 20, stop_s)
    slow = LatencyModel.decode_run(lat, 4, 100, 20, stop_s)
    assert fast == pytest.approx(slow, rel=1e-12)


def test_bundled_coefficients_provenance_and_split() -> None:
    data = json.loads(overhead_path().read_text())
    assert "silicon_sample.csv" in data["source"] and data["command"].startswith("python -m")
    assert data["backends"], "no backend fitted"
    for backend, f in data["backends"].items():
        assert min(f["a_s"], f["b_s"], f["c_s"]) >= 0
        assert f["rows"] and all(in_fit_set(r) for r in f["rows"])  # never a reported row
        assert f["num_rows"] == len(f["rows"])
        oh = load_overhead(backend)
        assert "fit set" in oh.fitted_on


def test_load_overhead_errors(tmp_path) -> None:
    with pytest.raises(ConfigError, match="unknown backend"):
        load_overhead("tgi")
    p = tmp_path / "o.json"
    p.write_text(json.dumps({"backends": {}, "command": "refit"}))
    with pytest.raises(ConfigError, match="no fitted engine overhead for vllm.*refit"):
        load_overhead("vllm", p)
    assert with_overhead(ConstantLatency(), "none").description.startswith("constant")


def test_scenario_engine_overhead_wraps_the_latency() -> None:
    backend = sorted(json.loads(overhead_path().read_text())["backends"])[0]
    s = Scenario(latency="roofline", engine_overhead=backend)
    lat, note = resolve_latency(s, "bf16", "decode")
    assert isinstance(lat, OverheadLatency) and "engine overhead (fitted on" in note
    plain, _ = resolve_latency(s.replace(engine_overhead="none"), "bf16", "decode")
    assert not isinstance(plain, OverheadLatency)


def test_cli_engine_overhead_without_fit_is_one_line(tmp_path) -> None:
    fitted = json.loads(overhead_path().read_text())["backends"]
    missing = [b for b in ("vllm", "sglang", "trtllm") if b not in fitted]
    if not missing:
        pytest.skip("every backend has fitted coefficients")
    r = CliRunner().invoke(
        app,
        ["replay", "--engine-overhead", missing[0], "--max-requests", "5", "--mode", "sun"]
        + ["--out", str(tmp_path / "r")],
    )
    assert r.exit_code == 2 and "no fitted engine overhead" in r.output
    assert "Traceback" not in r.output


def test_row_samples_by_hand() -> None:
    from sunsim.validate.silicon.rows import Case

    lat = ConstantLatency(prefill_s=0.1, decode_s=0.01)
    case = Case(
        "r", "agg", "llama-3.1-8b", "m", "h100", "vllm", "", "bf16", 100, 10, 4, 1, 1, 1, 1, 1,
        4, 1, 0.5, 0.02,
    )  # fmt: skip
    samples = row_samples(case, lat, lat)
    assert len(samples) == 1  # C > 1: no TTFT sample
    x, kernel, measured = samples[0]
    assert x == pytest.approx([1.0, 4.4, 44.0])  # one step, 4 + 4/10 seqs, 4 + 4*100/10 tokens
    mixed = getattr(lat, "mixed_step_time", None)
    want = 0.01 + 0.4 * ((mixed(4, 420, [(100, 0)]) - 0.01) if mixed else 0.1)
    assert kernel == pytest.approx(want) and measured == 0.02
