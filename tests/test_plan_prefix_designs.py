"""``sunsim plan`` sizes the prefix-sharing designs: ``prefillshare``'s one shared prefill pool
and its per-model decode pools, and ``icarus``'s shared co-located pool.

The workload is a generated plan -> act -> check workflow over three models (hash ids from its
session structure), compressed in time so that pools need more than one worker; step times
are the roofline's, prefix caching is on and requests go to the worker holding their longest
cached prefix (``kv_aware``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from sunsim.cli import app
from sunsim.config import Scenario
from sunsim.engine.spec import ClusterSpec
from sunsim.errors import ConfigError
from sunsim.planner import (
    PlanOptions,
    SimTask,
    cluster_with,
    meets_prefill_goal,
    meets_slo,
    plan,
    run_task,
    task_requests,
)
from sunsim.replay import load_workload

MODELS = ("planner", "coder", "critic")


@pytest.fixture(scope="module")
def workflow(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wf") / "wf.csv"
    args = ["trace", "workflow", str(out), "--sessions", "60", "--models", ",".join(MODELS)]
    res = CliRunner().invoke(app, [*args, "--seed", "1"])
    assert res.exit_code == 0, res.output
    return out


@pytest.fixture(scope="module")
def scenario(workflow: Path) -> Scenario:
    return Scenario(
        trace=str(workflow),
        served_models=MODELS,
        modes=("partitioned", "prefillshare", "icarus"),
        rate_scale=40.0,
        latency="roofline",
        slo_ttft_s=0.3,
        slo_tpot_s=0.02,
        enable_prefix_caching=True,
        prefill_router="kv_aware",
        decode_router="kv_aware",
    )


@pytest.fixture(scope="module")
def planned(scenario: Scenario):
    return plan(scenario, PlanOptions(jobs=1))


def _eval(s: Scenario, mode: str, prefill=(), decode=(), prefill_only=False):
    """The planner's evaluation of ``mode`` at these counts on every model's requests
    (``decode``: the co-located counts for a co-located design)."""
    cl = s.cluster(mode)
    if cl.design.colocated:
        cl = cluster_with(cl, colocated_workers=tuple(decode))
    else:
        cl = cluster_with(cl, prefill_workers=tuple(prefill), decode_workers=tuple(decode))
    task = SimTask("w", 1.0, None, prefill_only, cl, s)
    ev, _ = run_task(task, task_requests(task, {"w": load_workload(s).requests}))
    return ev


def test_prefillshare_has_one_prefill_pool_and_a_decode_pool_per_model(planned, scenario):
    mp = planned.points[0].modes["prefillshare"]
    assert len(mp.prefill_workers) == 1  # one shared pool, one count
    assert len(mp.decode_workers) == len(MODELS)
    assert mp.num_gpus == mp.prefill_workers[0] + sum(mp.decode_workers)
    s = mp.summary
    assert s["slo"]["attainment"] >= scenario.slo_attainment
    for m in MODELS:
        assert s["per_model"][m]["slo_attainment"] >= scenario.slo_attainment
    table = planned.table().set_index("mode")
    assert table.loc["prefillshare", "prefill_workers"] == str(mp.prefill_workers[0])
    assert table.loc["prefillshare", "num_gpus"] == mp.num_gpus


def test_prefillshare_counts_are_the_fewest(planned, scenario):
    """One fewer shared prefill worker misses the prefill goal; one fewer decode worker in a
    pool of more than one misses that model's SLO (the other pools as planned)."""
    mp = planned.points[0].modes["prefillshare"]
    goal = PlanOptions().prefill_goal(scenario.slo)
    (n,) = mp.prefill_workers
    one_each = (1,) * len(MODELS)
    assert n > 1, "the scenario should need more than one prefill worker"
    assert meets_prefill_goal(_eval(scenario, "prefillshare", (n,), one_each, True), goal, MODELS)
    assert not meets_prefill_goal(
        _eval(scenario, "prefillshare", (n - 1,), one_each, True), goal, MODELS
    )
    checked = 0
    for j, m in enumerate(MODELS):
        d = list(mp.decode_workers)
        if d[j] > 1:
            d[j] -= 1
            ev = _eval(scenario, "prefillshare", mp.prefill_workers, d)
            assert not meets_slo(ev, scenario.slo, "attainment", [m], overall=False), m
            checked += 1
    assert checked >= 1, "the scenario should need more than one decode worker somewhere"


def test_shared_prefill_needs_fewer_workers_than_per_model_pools(planned):
    """With content-keyed caching, a prompt prefilled for the planner is a hit for the coder
    and the critic: the one shared pool needs fewer prefill workers than the per-model pools
    together."""
    modes = planned.points[0].modes
    assert modes["prefillshare"].prefill_workers[0] < sum(modes["partitioned"].prefill_workers)


def test_icarus_shared_pool_is_the_fewest(planned, scenario):
    mp = planned.points[0].modes["icarus"]
    (n,) = mp.colocated_workers
    assert mp.num_gpus == n and mp.prefill_workers == () and mp.decode_workers == ()
    assert n > 1
    ev = _eval(scenario, "icarus", decode=(n - 1,))
    assert not meets_slo(ev, scenario.slo, "attainment", MODELS)


def test_scenario_counts_pool_into_one_prefill_count():
    """``prefill_workers = 2`` gives partitioned 2 per model and prefillshare one pool of the
    same 2 x 3 workers (same GPUs at fixed counts); a ClusterSpec with per-model counts for
    the shared pool is refused with a one-line reason."""
    s = Scenario(served_models=MODELS, prefill_workers=(2,), decode_workers=(3,))
    assert s.cluster("partitioned").prefill_workers == (2, 2, 2)
    ps = s.cluster("prefillshare")
    assert ps.prefill_workers == (6,)
    assert ps.decode_workers == (1, 1, 1)
    assert ps.num_gpus == s.cluster("partitioned").num_gpus
    with pytest.raises(ConfigError, match="one shared prefill pool: give one count"):
        ClusterSpec("prefillshare", MODELS, (2, 2, 2), (1, 1, 1))


def test_cli_plans_every_prefix_design(workflow: Path, tmp_path: Path):
    """The command of issue 12 that failed ("needs 3 decode worker count(s)") now plans."""
    res = CliRunner().invoke(
        app,
        [
            "plan",
            str(workflow),
            "--models",
            ",".join(MODELS),
            "--mode",
            "partitioned,sun,prefillshare,icarus,colocated",
            "--enable-prefix-caching",
            "--latency",
            "roofline",
            "--jobs",
            "1",
            "--no-progress",
            "--out",
            str(tmp_path / "plan"),
        ],
    )
    assert res.exit_code == 0, res.output
    import pandas as pd

    table = pd.read_csv(tmp_path / "plan" / "plan.csv").set_index("mode")
    assert list(table.index) == ["partitioned", "sun", "prefillshare", "icarus", "colocated"]
    assert str(table.loc["prefillshare", "prefill_workers"]).isdigit()  # one pooled count
