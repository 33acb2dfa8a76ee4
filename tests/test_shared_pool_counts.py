"""Worker counts of shared pools in scenarios: a per-model list holds each model's part of a
shared pool (zeros allowed, the pool at least 1), a per-model pool's 0 is refused in one
line, and a plan's ``replay_<mode>/scenario.toml`` rebuilds the planned cluster exactly
(a shared pool of k workers over n models was written as one count, read back as n x k)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from sunsim.cli import app
from sunsim.config import Scenario, load_scenario
from sunsim.config.cluster_of import scenario_counts, shared_pool_split
from sunsim.config.fields import ScenarioFieldError
from sunsim.planner import PlanOptions, plan
from sunsim.replay import run_replay
from sunsim.runs.plan_dir import write_plan

MODELS = ("planner", "coder", "critic")
MODES = ("sun", "prefillshare", "lora", "icarus", "colocated")


@pytest.mark.parametrize(
    "k, n, parts",
    [(1, 3, (1, 0, 0)), (2, 3, (1, 1, 0)), (5, 3, (2, 2, 1)), (6, 3, (2, 2, 2)), (4, 1, (4,))],
)
def test_shared_pool_split_sums_back(k, n, parts):
    assert shared_pool_split(k, n) == parts and sum(parts) == k


def test_one_zero_part_gives_a_shared_pool_of_one():
    s = Scenario(served_models=MODELS, modes=("prefillshare",), prefill_workers=(1, 0, 0))
    assert s.cluster("prefillshare").prefill_workers == (1,)
    s = Scenario(served_models=MODELS, modes=("lora", "icarus"), colocated_workers=(1, 0, 0))
    assert s.cluster("lora").colocated_workers == (1,)
    assert s.cluster("icarus").num_gpus == 1
    s = Scenario(served_models=MODELS, modes=("sun",), decode_workers=(2, 0, 0))
    assert s.cluster("sun").decode_workers == (2,)
    # a one-count key keeps its meaning: every model's (summed), or decode's total
    s = Scenario(served_models=MODELS, modes=("prefillshare",), prefill_workers=(1,))
    assert s.cluster("prefillshare").prefill_workers == (3,)


@pytest.mark.parametrize(
    "changes, key, words",
    [
        (
            {"modes": ("partitioned", "prefillshare"), "prefill_workers": (1, 0, 0)},
            "prefill_workers",
            "model 'coder' in design 'partitioned': each model's pool needs at least 1",
        ),
        (
            {"modes": ("partitioned",), "decode_workers": (2, 0, 3)},
            "decode_workers",
            "model 'coder' in design 'partitioned'",
        ),
        (
            {"modes": ("colocated",), "colocated_workers": (0,)},
            "colocated_workers",
            "model 'planner' in design 'colocated'",
        ),
        (
            {"modes": ("prefillshare",), "prefill_workers": (0, 0, 0)},
            "prefill_workers",
            "must be >= 1 in all for design 'prefillshare', got [0, 0, 0]",
        ),
        ({"modes": ("sun",), "decode_workers": (0,)}, "decode_workers", "design 'sun'"),
        ({"modes": ("lora",), "colocated_workers": (0,)}, "colocated_workers", "design 'lora'"),
    ],
)
def test_an_empty_pool_is_one_line_naming_key_model_and_design(changes, key, words):
    with pytest.raises(ScenarioFieldError) as ei:
        Scenario(served_models=MODELS, **changes)
    msg = str(ei.value)
    assert ei.value.field == key and words in msg and "\n" not in msg, msg


@pytest.mark.parametrize(
    "args, words",
    [
        (["--mode", "partitioned", "--prefill-workers", "1,0,0"], "--prefill-workers: 0 "),
        (["--mode", "colocated", "--colocated-workers", "2,0,1"], "design 'colocated'"),
    ],
)
def test_cli_refuses_a_zero_in_a_per_model_pool(args, words):
    res = CliRunner().invoke(app, ["replay", "--models", ",".join(MODELS), *args])
    assert res.exit_code == 2, res.output
    assert words in res.output and "Traceback" not in res.output, res.output
    assert "at least 1 worker" in res.output


def test_scenario_counts_keep_per_model_pools_and_a_shared_decode_total():
    assert scenario_counts("partitioned", 3, (1, 2, 1), (2, 1, 1)) == {
        "prefill_workers": (1, 2, 1),
        "decode_workers": (2, 1, 1),
    }
    assert scenario_counts("sun", 3, (1, 1, 1), (4,)) == {
        "prefill_workers": (1, 1, 1),
        "decode_workers": (4,),
    }
    assert scenario_counts("prefillshare", 3, (2,), (1, 1, 1))["prefill_workers"] == (1, 1, 0)
    assert scenario_counts("icarus", 3, (), (), (4,)) == {"colocated_workers": (2, 1, 1)}
    assert scenario_counts("colocated", 3, (), (), (1, 2, 1)) == {"colocated_workers": (1, 2, 1)}


@pytest.fixture(scope="module")
def workflow(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wf") / "wf.csv"
    args = ["trace", "workflow", str(out), "--sessions", "20", "--models", ",".join(MODELS)]
    res = CliRunner().invoke(app, [*args, "--seed", "3"])
    assert res.exit_code == 0, res.output
    return out


@pytest.fixture(scope="module", params=[1.0, 20.0], ids=["light", "busy"])
def plan_dir(workflow: Path, tmp_path_factory, request):
    """Light load: every shared pool has 1 worker for 3 models; busy: lora's and icarus's
    pools have 8 (not a multiple of 3), prefillshare's prefill pool 3 (roofline step times,
    seen at 04:40 UTC on 2026-12-02; the test checks the rebuild, not these counts)."""
    s = Scenario(
        trace=str(workflow),
        served_models=MODELS,
        modes=MODES,
        latency="roofline",
        enable_prefix_caching=True,
        rate_scale=request.param,
        slo_ttft_s=0.3,
        slo_tpot_s=0.02,
    )
    r = plan(s, PlanOptions(jobs=1))
    out = tmp_path_factory.mktemp("plan") / "plan"
    write_plan(r, out, records_format="csv")
    return r, out


def test_plan_replays_rebuild_the_planned_cluster(plan_dir):
    """Each ``replay_<mode>/scenario.toml``, read back and re-run, has the plan's counts per
    pool and GPU count; the shared pools here are smaller than the number of models."""
    r, out = plan_dir
    modes = r.points[r.reference].modes
    shared = [modes["prefillshare"].prefill_workers[0]]
    shared += [modes[m].colocated_workers[0] for m in ("lora", "icarus")]
    assert any(k % len(MODELS) for k in shared)  # one count x 3 models cannot give k
    for mode, mp in modes.items():
        s = load_scenario(out / f"replay_{mode}" / "scenario.toml")
        assert s.modes == (mode,)
        cl = s.cluster(mode)
        assert cl.prefill_workers == mp.prefill_workers, mode
        assert cl.decode_workers == mp.decode_workers, mode
        assert cl.colocated_workers == mp.colocated_workers, mode
        assert cl.num_gpus == mp.num_gpus, mode
        rr = run_replay(s)
        assert rr.summaries[mode].gpus.total == mp.num_gpus, mode
