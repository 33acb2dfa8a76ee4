"""The real-execution check (``sunsim validate engine``): a tiny run end to end.

Two torch worker processes (prefill, decode) replay a few requests of the Azure conversation
trace on a tiny model, with a KV cache of 3 blocks so that running requests outgrow it and are
preempted and recomputed; the same slice is simulated with the profile the engine measured of
its own kernels. The tests check that every request finished in both, that the comparison
file is complete, and that the engine's bookkeeping is consistent; never the timing errors
(tests do not assert on wall-clock time). Skipped when torch or the trace is missing.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

pytest.importorskip("torch", reason="needs the profile extra: pip install 'sunsim[profile]'")

from conftest import require_trace  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from sunsim.cli import app  # noqa: E402
from sunsim.specs import ModelSpec  # noqa: E402
from sunsim.validate.engine import (  # noqa: E402
    COMPARED,
    GOAL_TPOT_MEDIAN,
    GOAL_TTFT_MEDIAN,
    EngineCheckOptions,
    analyze_engine_check,
    load_engine_raw,
    run_engine_check,
)

pytestmark = pytest.mark.torch

MICRO = ModelSpec(
    name="micro-llama",
    hidden_size=128,
    intermediate_size=384,
    num_layers=2,
    num_heads=4,
    num_kv_heads=2,
    head_dim=32,
    vocab_size=1024,
    max_model_len=4096,
)


def _opts(trace: str, **kw) -> EngineCheckOptions:
    base = dict(
        trace=trace,
        num_requests=5,
        rate_scale=1000.0,
        prompt_scale=0.02,
        output_scale=0.3,
        max_prompt=14,
        max_output=20,
        model=MICRO,
        max_num_seqs=4,
        kv_blocks=3,
        max_num_batched_tokens=64,
        warmup=1,
        min_repeats=2,
        max_repeats=3,
        time_per_point_s=0.0,
        profile_passes=1,
        link_tokens=(16, 64),
        link_repeats=2,
        decode_batch_sizes=(1, 2, 4),
        decode_contexts=(16, 32),
        prefill_batch_sizes=(1, 2, 4),
        prefill_prompt_tokens=(16, 32),
    )
    base.update(kw)
    return EngineCheckOptions(**base)


@pytest.fixture(scope="module")
def tiny_check(tmp_path_factory):
    trace = require_trace("azure_llm_2023_conv.csv")
    out = tmp_path_factory.mktemp("engine")
    return run_engine_check(_opts(str(trace)), out, command="pytest tiny engine run")


def test_every_request_finishes_in_engine_and_simulation(tiny_check):
    r = tiny_check
    comp = r.comparison
    assert len(comp) == 5
    assert (comp["status_measured"] == "finished").all()
    assert (comp["status_simulated"] == "finished").all()
    s = r.summary["requests"]
    assert s["finished_measured"] == s["finished_simulated"] == s["compared"] == 5
    # the engine emitted every token: first token from the prefill, the rest in decode
    eng = r.engine_records
    assert eng["first_token_at"].notna().all() and eng["finished_at"].notna().all()
    assert (eng["finished_at"] >= eng["first_token_at"]).all()
    assert (eng["first_token_at"] > eng["prefill_started_at"]).all()
    assert (eng["prefill_started_at"] >= eng["arrived_at"] - 1e-3).all()


def test_comparison_file_is_complete(tiny_check):
    out = tiny_check.out_dir
    comp = pd.read_csv(out / "comparison.csv")
    assert len(comp) == 5
    want = {
        "request_id",
        "prompt_tokens",
        "output_tokens",
        "arrived_at",
        "status_measured",
        "status_simulated",
        "ttft_rel_error",
        "tpot_rel_error",
        "e2e_rel_error",
    }
    want |= {f"{c}_{k}" for c in COMPARED for k in ("measured", "simulated")}
    assert want <= set(comp.columns)
    assert (
        comp[
            [
                "ttft_s_measured",
                "ttft_s_simulated",
                "e2e_s_measured",
                "e2e_s_simulated",
                "ttft_rel_error",
            ]
        ]
        .notna()
        .all()
        .all()
    )
    multi = comp["output_tokens"] > 1
    assert comp.loc[multi, ["tpot_s_measured", "tpot_s_simulated"]].notna().all().all()
    for name in (
        "iterations.csv",
        "engine_records.csv",
        "sim_records.csv",
        "link.csv",
        "prefill_batches.csv",
        "measured_vs_simulated.png",
        "engine_raw.json",
    ):
        assert (out / name).stat().st_size > 0, name
    summary = json.loads((out / "summary.json").read_text())
    for key in ("ttft", "tpot", "decode_step", "prefill_batch"):
        assert {"median_abs", "p90_abs", "median", "n"} <= set(summary["errors"][key])
    assert set(summary["goal"]) >= {"tpot_met", "ttft_met"}
    assert summary["statistic"]["primary"] == "split"
    assert {"errors_mean_profile", "errors_median_profile", "errors_level_matched"} <= set(summary)


def test_profile_is_the_engines_own_and_loads(tiny_check):
    from sunsim.latency.profiled import ProfiledLatency

    lat = ProfiledLatency.from_dir(tiny_check.profile_dir, model="micro-llama", precision="bf16")
    assert lat.method == "measured" and lat.has_prefill
    assert "sunsim validate engine" == lat.meta["measured_by"]
    dec = pd.read_csv(tiny_check.profile_dir / "decode.csv")
    assert len(dec) == 3 * 2 and (dec["time_s_median"] > 0).all()


def test_kv_capacity_bites_and_iterations_are_consistent(tiny_check):
    r = tiny_check
    it = r.iterations
    cfg = r.config
    assert cfg["kv_blocks"] == 3
    assert len(it) > 0
    assert (it["blocks_used"] <= 3).all() and (it["batch_size"] <= 4).all()
    # every decode iteration emits one token per running request
    decoded = int(it["batch_size"].sum())
    eng = r.engine_records
    # tokens after the first, plus the ones decoded again after a preemption are not
    # re-emitted: a recompute re-creates the KV of tokens already emitted
    assert decoded == int((eng["output_tokens"] - 1).sum())
    # 3 blocks hold three 1-block contexts, which outgrow 16 tokens: preemption must happen
    assert r.summary["decode"]["preemptions_simulated"] >= 1
    assert r.summary["decode"]["preemptions_measured"] >= 1
    assert (
        int(r.comparison["num_preemptions_measured"].sum())
        == r.summary["decode"]["preemptions_measured"]
    )
    # recomputes went back through the prefill process
    assert int(r.prefill_batches["recomputes"].sum()) == r.summary["decode"]["preemptions_measured"]
    assert (it["predicted_s"] > 0).all()


def test_reanalysis_from_raw_gives_the_same_comparison(tiny_check, tmp_path):
    raw, cfg, req = load_engine_raw(tiny_check.out_dir)
    again = analyze_engine_check(raw, cfg, req, tiny_check.options, tmp_path)
    pd.testing.assert_frame_equal(again.comparison, tiny_check.comparison)


def test_cli_engine_runs_and_reports_the_goal(tmp_path):
    trace = require_trace("azure_llm_2023_conv.csv")
    out = tmp_path / "cli"
    res = CliRunner().invoke(
        app,
        [
            "validate",
            "engine",
            "--trace",
            str(trace),
            "--model",
            "tiny-llama",
            "--requests",
            "3",
            "--rate-scale",
            "1000",
            "--prompt-scale",
            "0.02",
            "--output-scale",
            "0.1",
            "--max-prompt",
            "14",
            "--max-output",
            "6",
            "--max-num-seqs",
            "2",
            "--max-num-batched-tokens",
            "32",
            "--passes",
            "1",
            "--time-per-point",
            "0",
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    # the goal line, with the check's own errors and verdicts (rich may wrap the line)
    summary = json.loads((out / "summary.json").read_text())
    e, g = summary["errors"], summary["goal"]
    verdict = {True: "met", False: "missed"}
    want = (
        f"goal: median TPOT error {100 * e['tpot']['median_abs']:.1f}% <= "
        f"{100 * GOAL_TPOT_MEDIAN:.0f}%: {verdict[g['tpot_met']]}; median TTFT error "
        f"{100 * e['ttft']['median_abs']:.1f}% <= {100 * GOAL_TTFT_MEDIAN:.0f}%: "
        f"{verdict[g['ttft_met']]}"
    )
    assert want in " ".join(res.output.split())
    assert g["tpot_met"] == (e["tpot"]["median_abs"] <= GOAL_TPOT_MEDIAN)
    assert g["ttft_met"] == (e["ttft"]["median_abs"] <= GOAL_TTFT_MEDIAN)
    comp = pd.read_csv(out / "comparison.csv")
    assert len(comp) == 3 and (comp["status_measured"] == "finished").all()


def test_bad_options_are_one_line_errors(tmp_path):
    res = CliRunner().invoke(
        app, ["validate", "engine", "--statistic", "mode", "--out", str(tmp_path)]
    )
    assert res.exit_code == 2
    assert "--statistic must be split, mean or median" in res.output
