"""Outputs scripts can use: ``--json`` on replay and plan (the machine-readable summary on
stdout and nothing else), vLLM's metric names with a schema version, a numeric
``comparison.csv``, and ``summary.json`` still read back by the report reader."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from sunsim.cli import app
from sunsim.metrics.benchmark import SCHEMA_VERSION
from sunsim.replay import DEFAULT_TRACE
from sunsim.runs import read_run

SMALL = [str(DEFAULT_TRACE), "--max-requests", "150", "--latency", "roofline", "--no-progress"]
#: Keys of vLLM's benchmark_serving result JSON that sunsim writes too (same name, same unit).
VLLM_KEYS = (
    "duration", "completed", "failed", "total_input_tokens", "total_output_tokens",
    "request_throughput", "request_goodput", "output_throughput", "total_token_throughput",
    "mean_ttft_ms", "median_ttft_ms", "std_ttft_ms", "p99_ttft_ms",
    "mean_tpot_ms", "median_tpot_ms", "std_tpot_ms", "p99_tpot_ms",
    "mean_itl_ms", "median_itl_ms", "std_itl_ms", "p99_itl_ms",
    "mean_e2el_ms", "median_e2el_ms", "p99_e2el_ms",
)  # fmt: skip
COST_KEYS = ("num_gpus", "usd_per_hour", "usd_per_million_output_tokens",
             "saving_pct_vs_partitioned", "slo_attainment_pct")  # fmt: skip


def _json_run(*args: str) -> dict:
    runner = CliRunner()  # click >= 8.2 keeps stdout and stderr apart
    res = runner.invoke(app, list(args))
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)  # stdout is the JSON document and nothing else
    assert out["schema_version"] == SCHEMA_VERSION
    return out


def _check_designs(designs: dict) -> None:
    assert list(designs) == ["partitioned", "sun", "qsun"]
    for d in designs.values():
        for k in (*VLLM_KEYS, *COST_KEYS):
            assert isinstance(d[k], (int, float)) and not isinstance(d[k], bool), k
        assert d["completed"] + d["failed"] == 150
        assert d["median_tpot_ms"] <= d["p99_tpot_ms"]
        assert d["usd_per_hour"] == d["num_gpus"] * d["gpu_hour_usd"]


def test_replay_json_csv_and_summary(tmp_path: Path):
    out = _json_run("replay", *SMALL, "--json", "--out", str(tmp_path / "r"))
    assert out["kind"] == "replay" and out["slo"] == {
        "ttft_ms": 2000.0, "tpot_ms": 100.0, "attainment_pct": 90.0,
    }  # fmt: skip
    assert out["request_rate"] > 0 and out["gpu"] == "h100"
    _check_designs(out["designs"])
    csv = pd.read_csv(tmp_path / "r" / "comparison.csv")
    assert list(csv["design"]) == ["partitioned", "sun", "qsun"]
    for k in (*VLLM_KEYS, *COST_KEYS):
        assert pd.api.types.is_numeric_dtype(csv[k]), k
    assert csv["mean_ttft_ms"].tolist() == [
        out["designs"][m]["mean_ttft_ms"] for m in csv["design"]
    ]
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["schema_version"] == SCHEMA_VERSION and summary["results"] == out
    assert list(read_run(tmp_path / "r").summaries) == ["partitioned", "sun", "qsun"]


def test_plan_json_with_a_sweep_and_prices(tmp_path: Path):
    out = _json_run("plan", *SMALL, "--json", "--jobs", "1", "--sweep", "rate_scale=1,2",
                    "--gpu-hour-usd", "h100=2", "--out", str(tmp_path / "p"))  # fmt: skip
    assert out["kind"] == "plan" and out["price_source"] == "scenario [cost] gpu_hour_usd"
    _check_designs(out["designs"])
    assert [p["value"] for p in out["sweep"]] == [1.0, 2.0]
    assert out["sweep"][1]["request_rate"] > out["sweep"][0]["request_rate"]
    for d in out["designs"].values():
        assert d["gpu_hour_usd"] == 2.0
    assert json.loads((tmp_path / "p" / "plan.json").read_text())["results"] == out
