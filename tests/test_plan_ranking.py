"""The planner's question across GPU types (cheapest configuration per design, ranked), load
as requests per second, and grids over load, skew, SLO and the number of models."""

from __future__ import annotations

import concurrent.futures as cf
import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from sunsim.cache import ResultCache
from sunsim.cli import app
from sunsim.config import Scenario
from sunsim.errors import ConfigError
from sunsim.planner import PlanOptions, parse_gpus, parse_sweep, plan, plan_gpus, scenario_with
from sunsim.planner.ranking import _mark_cheapest, _with_savings
from sunsim.replay import load_workload
from sunsim.sweep import read_grid, run_sweep
from sunsim.sweep.grid import served_names

runner = CliRunner()


@pytest.fixture
def tiny_trace(tmp_path):
    """30 short requests, one every 2 s (mean rate 30 / 58 s), models round-robin: a load
    one worker per pool serves well inside any SLO below."""
    n = 30
    df = pd.DataFrame(
        {
            "arrival_s": np.arange(n) * 2.0,
            "model": [("math", "code", "tool")[i % 3] for i in range(n)],
            "prompt_tokens": 200,
            "output_tokens": 20,
        }
    )
    p = tmp_path / "tiny.csv"
    df.to_csv(p, index=False)
    return p


def _tiny(trace, **kw) -> Scenario:
    base = dict(trace=str(trace), latency="roofline", modes=("partitioned", "sun", "colocated"))
    return Scenario(**{**base, **kw})


# --- the cheapest configuration per design, ranked ----------------------------------------


def test_cheapest_per_design_by_hand():
    """Hand-built rows: per design the lowest $/hour wins (ties: $/M tokens, then GPU order);
    designs are ranked by it; savings against partitioned's cheapest."""
    rows = [
        ("h100", "partitioned", 6, 24.0, 1.0),
        ("a100", "partitioned", 8, 20.0, 1.1),
        ("h100", "sun", 4, 16.0, 0.8),
        ("a100", "sun", 6, 15.0, 0.9),
        ("h200", "sun", 3, 15.0, 0.7),  # same $/hour as a100, fewer $/M: wins the tie
        ("h100", "colocated", 3, 12.0, 0.6),
        ("a100", "colocated", 5, 12.0, 0.6),  # a full tie: the GPU named first (h100) wins
    ]
    df = pd.DataFrame(
        rows, columns=["gpu", "mode", "num_gpus", "usd_per_hour", "usd_per_million_output_tokens"]
    )
    out = _mark_cheapest(df, ("h100", "h200", "a100"))
    best = _with_savings(out[out["cheapest"]].sort_values("rank", ignore_index=True))
    assert list(best["mode"]) == ["colocated", "sun", "partitioned"]
    assert list(best["gpu"]) == ["h100", "h200", "a100"]
    assert list(best["rank"]) == [1.0, 2.0, 3.0]
    assert best["saving_usd_per_hour_vs_partitioned"].tolist() == [8.0, 5.0, 0.0]
    assert best["saving_pct_vs_partitioned"].tolist() == pytest.approx([40.0, 25.0, 0.0])
    assert out["rank"].isna().sum() == len(rows) - 3


def test_plan_gpus_on_a_tiny_trace(tiny_trace):
    """At a load one worker per pool serves, each design's planned size is its floor (one
    worker per pool) on every GPU, so the cheapest GPU is the one with the lowest price, and
    the ranking follows the GPU counts: colocated 3, sun 3+1, partitioned 3+3."""
    prices = (("h100", 1.0), ("a100", 2.0))
    s = _tiny(tiny_trace, gpu_hour_usd=prices)
    gp = plan_gpus(s, ("a100", "h100"), PlanOptions(jobs=1))
    table = gp.table()
    assert len(table) == 6 and not gp.failures
    floors = {"colocated": 3, "sun": 4, "partitioned": 6}
    for r in table.to_dict(orient="records"):
        assert r["num_gpus"] == floors[r["mode"]], r
        assert r["usd_per_hour"] == pytest.approx(r["num_gpus"] * dict(prices)[r["gpu"]])
        per_m = r["usd_per_hour"] / (r["throughput_tok_s"] * 3600) * 1e6
        assert r["usd_per_million_output_tokens"] == pytest.approx(per_m)
    best = gp.ranking()
    assert list(best["mode"]) == ["colocated", "sun", "partitioned"]
    assert set(best["gpu"]) == {"h100"}
    assert best["usd_per_hour"].tolist() == pytest.approx([3.0, 4.0, 6.0])
    assert best["saving_pct_vs_partitioned"].tolist() == pytest.approx([50.0, 100 / 3, 0.0])


def test_plan_gpus_ranks_around_a_gpu_that_misses_the_slo(tiny_trace):
    """TPOT <= 6.5 ms: a BF16 decode step on A100 (roofline, ~8 ms) can never meet it, QSUN's
    W4A16 step can; so partitioned and sun are planned on H100 only, qsun on the cheaper
    A100, and the failures say why."""
    s = _tiny(tiny_trace, modes=("partitioned", "sun", "qsun"), slo_tpot_s=0.0065)
    gp = plan_gpus(s, ("h100", "a100"), PlanOptions(jobs=1))
    assert set(gp.failures["a100"]) == {"partitioned", "sun"}
    assert "TPOT SLO 6.50 ms" in gp.failures["a100"]["sun"]
    best = gp.ranking().set_index("mode")
    assert best.loc["qsun", "gpu"] == "a100" and best.loc["sun", "gpu"] == "h100"
    assert list(gp.ranking()["mode"]) == ["qsun", "sun", "partitioned"]
    with pytest.raises(ConfigError, match="no design meets the SLO on any of a100"):
        plan_gpus(scenario_with(s, modes=("sun",)), ("a100",), PlanOptions(jobs=1))


def test_plan_gpus_cli_writes_numbers(tiny_trace, tmp_path):
    out = tmp_path / "p"
    res = runner.invoke(
        app,
        ["plan", str(tiny_trace), "--latency", "roofline", "--mode", "partitioned,sun",
         "--gpus", "h100,a100", "--no-progress", "--jobs", "1", "--no-replays", "--out",
         str(out)],
        catch_exceptions=False,
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "cheapest configuration per design on h100, a100" in res.output
    # each ranked configuration's full step-time label, not just "analytic"
    sources = next(line for line in res.output.splitlines() if line.startswith("step times: "))
    assert "sun on a100" in sources and "partitioned on a100" in sources
    assert sources.endswith(": analytic")  # --latency roofline: the plain roofline
    assert max(len(line) for line in res.output.splitlines() if "┃" in line or "│" in line) <= 80
    csv = pd.read_csv(out / "plan.csv")
    assert len(csv) == 4 and csv["usd_per_hour"].dtype.kind == "f"
    assert csv["cheapest"].sum() == 2
    doc = json.loads((out / "plan.json").read_text())
    assert doc["kind"] == "plan-gpus" and [r["mode"] for r in doc["ranking"]] == [
        "sun",
        "partitioned",
    ]
    assert all(r["gpu"] == "a100" for r in doc["ranking"])  # the default prices: A100 is cheaper
    assert (out / "a100" / "sun" / "plan.json").is_file()


# --- load in requests per second -----------------------------------------------------------


def test_request_rate_sets_the_mean_rate(tiny_trace):
    native = load_workload(_tiny(tiny_trace))
    assert native.info["mean_rate"] == pytest.approx(30 / 58)
    w = load_workload(_tiny(tiny_trace, request_rate=6.0))
    assert w.info["mean_rate"] == pytest.approx(6.0)
    scale = 6.0 / (30 / 58)
    same = load_workload(_tiny(tiny_trace, rate_scale=scale))
    np.testing.assert_allclose(w.requests["arrival_s"], same.requests["arrival_s"], rtol=1e-12)


def test_request_rate_bad_input(tiny_trace):
    with pytest.raises(ConfigError, match="not both"):
        _tiny(tiny_trace, request_rate=5.0, rate_scale=2.0)
    with pytest.raises(ConfigError, match="request-rate"):
        Scenario(max_concurrency=4, request_rate=5.0)
    with pytest.raises(ConfigError):
        _tiny(tiny_trace, request_rate=-1.0)


def test_plan_sweep_in_requests_per_second(tiny_trace):
    assert parse_sweep("rate=2,4") == ("request_rate", (2.0, 4.0))
    s = _tiny(tiny_trace, modes=("sun",))
    r = plan(s, PlanOptions(jobs=1, sweep=("request_rate", (2.0, 8.0))))
    assert [pp.sweep_value for pp in r.points] == [2.0, 8.0]
    assert [pp.workload_info["mean_rate"] for pp in r.points] == pytest.approx([2.0, 8.0])
    assert r.native_rate == pytest.approx(30 / 58)
    gp = r.goodput
    assert gp["request_rate"].to_numpy() == pytest.approx(gp["rate_scale"].to_numpy() * 30 / 58)
    by_scale = plan(s, PlanOptions(jobs=1, sweep=("rate_scale", (8.0 * 58 / 30,))))
    a, b = r.points[1].modes["sun"], by_scale.points[0].modes["sun"]
    assert (a.prefill_workers, a.decode_workers) == (b.prefill_workers, b.decode_workers)


# --- grids over load, skew, SLO and the number of models -----------------------------------


def test_served_names():
    assert served_names(["math", "code", "tool"], 2) == ["math", "code"]
    assert served_names(["math", "code", "tool"], 5) == ["math", "code", "tool", "model4", "model5"]
    assert served_names(["model4"], 3) == ["model4", "model2", "model3"]


def _grid(tmp_path, trace, axes: str):
    p = tmp_path / "grid.toml"
    p.write_text(
        f'[trace]\npath = "{trace}"\n[cluster]\nmodes = ["sun"]\n[latency]\nsource = "roofline"\n'
        f'[sweep]\nkind = "replay"\n[sweep.axes]\n{axes}'
    )
    return p


def test_grid_axes_num_models_and_request_rate(tmp_path, tiny_trace):
    g = read_grid(
        _grid(tmp_path, tiny_trace, 'request_rate = [1.0, 4.0]\nnum_models = [2, 4]\n'
              '"slo.tpot_s" = [0.05]\nzipf = [1.5]\n')
    )  # fmt: skip
    assert [len(p.scenario.served_models) for p in g.points] == [2, 4, 2, 4]
    assert g.points[1].scenario.served_models == ("math", "code", "tool", "model4")
    assert [g.column_values(p)["num_models"] for p in g.points] == [2, 4, 2, 4]
    with cf.ThreadPoolExecutor(1) as pool:
        res = run_sweep(g, pool, ResultCache(None, "sweep"))
    t = res.table
    assert "error" not in t or t["error"].isna().all()
    assert t.groupby("point")["request_rate"].first().tolist() == pytest.approx([1, 1, 4, 4])
    assert (t["usd_per_hour"] == t["num_gpus"] * 3.9492).all()


@pytest.mark.parametrize("value", ["0", "2.5", "true"])
def test_grid_bad_num_models(tmp_path, tiny_trace, value):
    with pytest.raises(ConfigError, match="num_models"):
        read_grid(_grid(tmp_path, tiny_trace, f"num_models = [{value}]\n"))


# --- bad input: one line, exit code 2 -----------------------------------------------------


@pytest.mark.parametrize(
    "args, needles",
    [
        (["--gpus", "h100,tpu9"], ["--gpus", "unknown GPU 'tpu9'"]),
        (["--gpus", ","], ["--gpus", "no GPU"]),
        (["--gpus", "h100", "--gpu", "a100"], ["--gpu", "--gpus", "not both"]),
        (["--request-rate", "-2"], ["--request-rate", "> 0"]),
        (["--sweep", "rate=-1,2"], ["--sweep rate", "> 0 req/s"]),
        (["--request-rate", "3", "--rate-scale", "2"], ["not both"]),
    ],
)
def test_plan_bad_input_one_line(tiny_trace, args, needles):
    res = runner.invoke(
        app, ["plan", str(tiny_trace), "--no-progress", "--jobs", "1", *args],
        catch_exceptions=False,
    )  # fmt: skip
    out = res.output.strip()
    assert res.exit_code == 2, out
    assert "Traceback" not in out and len(out.splitlines()) == 1, out
    for n in needles:
        assert n in out, (n, out)


def test_parse_gpus():
    assert parse_gpus("H100, h200,h100") == ("h100", "h200")
    with pytest.raises(ConfigError, match="unknown GPU"):
        parse_gpus("h100,x")
    assert scenario_with(Scenario(), gpu="a100").gpu == "a100"
