"""Cost arithmetic (sunsim.metrics.cost), the default prices (sunsim.specs.pricing), the
[cost] scenario table and --gpu-hour-usd, and the vLLM-named metrics (sunsim.metrics.benchmark),
checked against numbers worked out by hand."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from sunsim.cli import app
from sunsim.config import Scenario, scenario_from_toml_dict, scenario_to_toml_dict
from sunsim.errors import ConfigError
from sunsim.metrics import RunSummary
from sunsim.metrics.benchmark import design_metrics, metrics_frame
from sunsim.metrics.cost import design_costs, usd_per_hour, usd_per_million_tokens
from sunsim.specs import GPUS
from sunsim.specs.pricing import GPU_HOUR_USD, PRICE_SOURCE, gpu_hour_usd

GOLDEN = Path(__file__).parent / "data" / "summary_v0.1.0.json"


def _summary(mode: str, gpus: int, tok_s: float) -> RunSummary:
    """A real summary with its GPU count and throughput set by hand."""
    s = RunSummary.from_dict(json.loads(GOLDEN.read_text())["modes"]["sun"])
    g = dataclasses.replace(s.gpus, total=gpus, prefill=gpus // 2, decode=gpus - gpus // 2)
    t = dataclasses.replace(s.throughput, output_tokens_per_s=tok_s)
    return dataclasses.replace(s, mode=mode, gpus=g, throughput=t)


def test_every_gpu_has_a_default_price():
    for gpu in GPUS:
        assert GPU_HOUR_USD[gpu] > 0, gpu
    # Modal's per-second H100 rate, $0.001097/s, is $3.9492/h
    assert GPU_HOUR_USD["h100"] == pytest.approx(0.001097 * 3600)


def test_cost_arithmetic_by_hand():
    sums = {"partitioned": _summary("partitioned", 6, 1000.0), "sun": _summary("sun", 4, 1000.0)}
    c = design_costs(sums, "h100", {"h100": 2.5})
    # 6 GPUs x $2.50 = $15/h; 1000 tok/s = 3.6M tok/h -> $15 / 3.6 = $4.1667 per M tokens
    assert c["partitioned"].usd_per_hour == pytest.approx(15.0)
    assert c["partitioned"].usd_per_million_output_tokens == pytest.approx(15 / 3.6)
    assert c["partitioned"].saving_usd_per_hour == 0 and c["partitioned"].saving_pct == 0
    # 4 GPUs x $2.50 = $10/h, $10 / 3.6 = $2.7778/M; saves $5/h = 1/3 of $15
    assert c["sun"].usd_per_hour == pytest.approx(10.0)
    assert c["sun"].usd_per_million_output_tokens == pytest.approx(10 / 3.6)
    assert c["sun"].saving_usd_per_hour == pytest.approx(5.0)
    assert c["sun"].saving_pct == pytest.approx(100 / 3)
    assert c["sun"].gpus_by_type == {"h100": 4} and c["sun"].num_gpus == 4
    assert c["sun"].price_source == "scenario [cost] gpu_hour_usd"


def test_default_price_and_missing_baseline():
    c = design_costs({"sun": _summary("sun", 6, 500.0)}, "h100")
    assert c["sun"].usd_per_hour == pytest.approx(6 * 3.9492)
    # 500 tok/s = 1.8M tok/h: $23.6952 / 1.8 = $13.164 per M
    assert c["sun"].usd_per_million_output_tokens == pytest.approx(23.6952 / 1.8)
    assert math.isnan(c["sun"].saving_pct) and c["sun"].price_source == PRICE_SOURCE


def test_helpers_and_errors():
    assert usd_per_hour({"h100": 2, "h200": 1}, {"h100": 3.0, "h200": 4.5}) == 10.5
    assert usd_per_million_tokens(36.0, 10.0) == pytest.approx(1000.0)  # 36k tok/h
    assert math.isnan(usd_per_million_tokens(10.0, 0.0))
    assert gpu_hour_usd("H100", {"h100": 1.25}) == 1.25
    with pytest.raises(ConfigError, match=r"no price per GPU-hour for GPU 'tpu'.*\[cost\]"):
        gpu_hour_usd("tpu")
    with pytest.raises(ConfigError, match="positive number"):
        gpu_hour_usd("h100", {"h100": 0})


def test_cost_table_in_the_scenario():
    s = scenario_from_toml_dict({"cost": {"gpu_hour_usd": {"H100": 2.5, "a100": 1}}})
    assert s.gpu_prices == {"h100": 2.5, "a100": 1}
    assert scenario_to_toml_dict(s)["cost"] == {"gpu_hour_usd": {"h100": 2.5, "a100": 1}}
    assert Scenario().gpu_prices == {}
    for bad, word in (({"h100": "2.5"}, "expected a number"), ({"h100": -1}, "> 0"),
                      ({"tpu": 1.0}, "unknown GPU 'tpu'")):  # fmt: skip
        with pytest.raises(ConfigError, match=r"f\.toml: \[cost\] gpu_hour_usd: .*" + word):
            scenario_from_toml_dict({"cost": {"gpu_hour_usd": bad}}, source="f.toml")


def test_gpu_hour_usd_option_is_one_line():
    r = CliRunner().invoke(app, ["replay", "--gpu-hour-usd", "h100=cheap", "--no-progress"])
    assert r.exit_code == 2
    assert "--gpu-hour-usd: expected GPU=DOLLARS" in r.output and "Traceback" not in r.output


def test_vllm_metrics_by_hand():
    s = _summary("sun", 2, 100.0)
    s = dataclasses.replace(
        s, throughput=dataclasses.replace(s.throughput, window_s=10.0, output_tokens=1000)
    )
    # two finished requests: 3 and 5 output tokens; decode spans 0.2 s and 0.8 s
    rec = pd.DataFrame(
        {
            "model": ["a", "b", "a"],
            "status": ["finished", "finished", "rejected"],
            "reject_reason": ["", "", "exceeds_kv_capacity"],
            "num_preemptions": [0, 1, 0],
            "prompt_tokens": [100, 300, 50],
            "output_tokens": [3, 5, 4],
            "first_token_at": [1.0, 2.0, np.nan],
            "finished_at": [1.2, 2.8, np.nan],
            "arrived_at": [0.9, 1.5, 3.0],
            "ttft_s": [0.1, 0.5, np.nan],
            "tpot_s": [0.1, 0.2, np.nan],
            "e2e_s": [0.3, 1.3, np.nan],
        }
    )
    m = design_metrics(s, design_costs({"sun": s}, "h100", {"h100": 2.0})["sun"], rec)
    assert m["design"] == "sun" and m["num_gpus"] == 2 and m["usd_per_hour"] == 4.0
    assert m["duration"] == 10.0 and m["total_input_tokens"] == 400  # finished only
    assert m["total_token_throughput"] == pytest.approx((400 + 1000) / 10)
    assert m["mean_ttft_ms"] == pytest.approx(300.0) and m["std_ttft_ms"] == pytest.approx(200.0)
    assert m["mean_tpot_ms"] == pytest.approx(150.0)
    # token-weighted mean ITL: (0.2 + 0.8) s over (2 + 4) intervals = 166.7 ms
    assert m["mean_itl_ms"] == pytest.approx(1000 / 6)
    assert m["median_ttft_ms"] == pytest.approx(s.latency_s.ttft_s_p50 * 1e3)
    assert m["slo_attainment_pct"] == pytest.approx(100 * s.slo.attainment)
    row = metrics_frame({"sun": m})
    assert row.loc[0, "usd_per_hour"] == 4.0 and pd.api.types.is_float_dtype(row["p99_itl_ms"])
