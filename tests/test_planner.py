"""Planner: the returned counts meet the SLO and one fewer does not; more load never needs
fewer workers; a plan repeats from its directory; impossible SLOs fail fast with one line."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from sunsim.cli import app
from sunsim.config import Scenario
from sunsim.data import default_trace
from sunsim.errors import ConfigError, SunsimError
from sunsim.planner import (
    CountSearch,
    PlanOptions,
    SimTask,
    cluster_with,
    load_plan_toml,
    meets_prefill_goal,
    meets_slo,
    parse_sweep,
    plan,
    plan_to_toml_dict,
    read_plan_dir,
    run_task,
    scenario_with,
    task_requests,
    write_plan,
)
from sunsim.replay import DEFAULT_TRACE, load_workload

# A small, busy scenario: 300 requests of the bundled synthetic trace at 40x its rate, tight
# SLOs, so that pools need more than one worker.
SMALL = Scenario(
    trace=str(DEFAULT_TRACE),
    max_requests=300,
    rate_scale=40.0,
    latency="roofline",
    slo_ttft_s=0.5,
    slo_tpot_s=0.012,
)
CLI_SMALL = [
    str(DEFAULT_TRACE),
    "--max-requests",
    "300",
    "--rate-scale",
    "40",
    "--latency",
    "roofline",
    "--slo-ttft",
    "0.5",
    "--slo-tpot",
    "0.012",
    "--no-progress",
    "--jobs",
    "1",
]


@pytest.fixture(scope="module")
def small_plan():
    return plan(SMALL, PlanOptions(jobs=1))


def _eval(s: Scenario, mode: str, prefill, decode, model=None, prefill_only=False):
    wl = load_workload(s)
    cl = s.cluster(mode, [1.0] * len(s.served_models))
    models = (model,) if model else s.served_models
    cl = cluster_with(
        cl, served_models=models, prefill_workers=tuple(prefill), decode_workers=tuple(decode)
    )
    task = SimTask("w", 1.0, model, prefill_only, cl, s)
    ev, _ = run_task(task, task_requests(task, {"w": wl.requests}))
    return ev


def test_counts_meet_the_slo_and_one_fewer_does_not(small_plan):
    pp = small_plan.points[0]
    served = list(SMALL.served_models)
    goal = PlanOptions().prefill_goal(SMALL.slo)
    assert set(pp.modes) == {"partitioned", "sun", "qsun"}
    checked = 0
    for mode, mp in pp.modes.items():
        # the final full simulation meets the SLO, per model and overall
        s = mp.summary
        assert s["slo"]["attainment"] >= SMALL.slo_attainment
        for m in served:
            assert s["per_model"][m]["slo_attainment"] >= SMALL.slo_attainment
        if mode == "partitioned":
            for j, m in enumerate(served):
                n = mp.decode_workers[j]
                if n > 1:
                    ev = _eval(SMALL, mode, [mp.prefill_workers[j]], [n - 1], model=m)
                    assert not meets_slo(ev, SMALL.slo, "attainment", [m]), (m, n)
                    checked += 1
        else:
            n = mp.decode_workers[0]
            if n > 1:
                ev = _eval(SMALL, mode, mp.prefill_workers, [n - 1])
                assert not meets_slo(ev, SMALL.slo, "attainment", served), (mode, n)
                checked += 1
    # prefill: one fewer worker misses the prefill target
    mp = pp.modes["sun"]
    for j, m in enumerate(served):
        n = mp.prefill_workers[j]
        if n > 1:
            ev = _eval(SMALL, "partitioned", [n - 1], [1], model=m, prefill_only=True)
            assert not meets_prefill_goal(ev, goal)
            checked += 1
    assert checked >= 3, "the small scenario should need more than one worker somewhere"


def test_search_log_is_consistent(small_plan):
    """Every count the search called met is >= the answer; every failing one is below it."""
    for mode, mp in small_plan.points[0].modes.items():
        ans = dict(
            zip(
                ["shared"] if mode != "partitioned" else list(SMALL.served_models),
                mp.decode_workers,
            )
        )
        for e in mp.evaluations:
            if e["phase"] != "decode":
                continue
            n = ans[e["pool"]]
            assert e["met"] == (e["workers"] >= n), (mode, e)


def test_attainment_is_monotone_in_decode_workers():
    s = SMALL
    att = [_eval(s, "sun", [3, 2, 1], [n])["attainment"] for n in (1, 2, 3, 4)]
    assert all(b >= a - 1e-12 for a, b in zip(att, att[1:])), att


def test_more_load_never_needs_fewer_workers():
    s = scenario_with(SMALL, rate_scale=40.0, max_requests=200)
    r = plan(s, PlanOptions(jobs=2, sweep=("rate_scale", (10.0, 40.0, 120.0))))
    df = r.table()
    for _, g in df.groupby("mode"):
        g = g.sort_values("sweep_value")
        assert g["num_decode_gpus"].is_monotonic_increasing, g
        assert g["num_prefill_gpus"].is_monotonic_increasing, g
    assert (
        df[df.sweep_value == 120.0]["num_gpus"].max() > df[df.sweep_value == 10.0]["num_gpus"].min()
    )
    # goodput at the scenario's own workers: every rate up to it is met, the next rate
    # evaluated above it is not, and bisection (3 steps) narrowed the bracket between the
    # highest grid rate met (10) and the first missed (40) to (40 - 10) / 2**3
    gp = r.goodput.attrs["goodput"]
    assert set(gp) == {"partitioned", "sun", "qsun"}
    for mode, g in gp.items():
        met = r.goodput[r.goodput["mode"] == mode].set_index("rate_scale")["met"].sort_index()
        assert {10.0, 40.0, 120.0} <= set(met.index), met
        assert not met[40.0] and 10.0 <= g < 40.0, (mode, g, met)
        assert met[g] and met[met.index <= g].all(), (mode, g, met)
        above = met[met.index > g]
        assert not above.iloc[0], (mode, g, met)
        assert above.index[0] - g <= (40.0 - 10.0) / 2**3 + 1e-9, (mode, g, met)


def test_plan_is_reproducible_from_its_directory(tmp_path: Path):
    runner = CliRunner()
    d1, d2 = tmp_path / "p1", tmp_path / "p2"
    res = runner.invoke(app, ["plan", *CLI_SMALL, "--zipf", "1.2", "--out", str(d1)])
    assert res.exit_code == 0, res.output
    for f in (
        "plan.json",
        "plan.csv",
        "scenario.toml",
        "evaluations.csv",
        "replay_sun/summary.json",
        "replay_partitioned/records_partitioned.parquet",
    ):
        assert (d1 / f).exists(), f
    res = runner.invoke(
        app,
        [
            "plan",
            "--scenario",
            str(d1 / "scenario.toml"),
            "--no-cache",
            "--no-progress",
            "--jobs",
            "1",
            "--out",
            str(d2),
        ],
    )
    assert res.exit_code == 0, res.output
    a, b = pd.read_csv(d1 / "plan.csv"), pd.read_csv(d2 / "plan.csv")
    cols = [
        "mode",
        "decode_workers",
        "prefill_workers",
        "num_gpus",
        "slo_attainment",
        "throughput_per_gpu",
        "tpot_s_p90",
    ]
    pd.testing.assert_frame_equal(a[cols], b[cols])
    read = read_plan_dir(d1)
    assert list(read.table["mode"]) == ["partitioned", "sun", "qsun"]
    assert [p.name for p in read.replay_dirs] == [f"replay_{m}" for m in read.table["mode"]]
    assert read.sweep is None and read.goodput is None and len(read.evaluations) > 0
    assert set(read.reference_summaries()) == {"partitioned", "sun", "qsun"}
    j = json.loads((d2 / "plan.json").read_text())
    assert j["stats"]["cached"] == 0 and j["slo"]["ttft_s"] == 0.5
    # the replay of a final configuration repeats with `sunsim replay --scenario`
    res = runner.invoke(
        app,
        [
            "replay",
            "--scenario",
            str(d1 / "replay_sun" / "scenario.toml"),
            "--no-progress",
            "--out",
            str(tmp_path / "r"),
        ],
    )
    assert res.exit_code == 0, res.output
    s1 = json.loads((d1 / "replay_sun" / "summary.json").read_text())["modes"]["sun"]
    s2 = json.loads((tmp_path / "r" / "summary.json").read_text())["modes"]["sun"]
    assert s1["slo"]["attainment"] == s2["slo"]["attainment"]
    # planning again in the same directory reuses the cache
    res = runner.invoke(
        app,
        [
            "plan",
            "--scenario",
            str(d1 / "scenario.toml"),
            "--no-progress",
            "--jobs",
            "1",
            "--out",
            str(d1),
        ],
    )
    assert res.exit_code == 0, res.output
    assert json.loads((d1 / "plan.json").read_text())["stats"]["cached"] > 0


@pytest.mark.parametrize(
    "opts, words",
    [
        (["--slo-ttft", "0.001"], "TTFT SLO"),
        (["--slo-tpot", "0.0005"], "TPOT SLO"),
    ],
)
def test_impossible_slo_is_one_line_exit_2(opts, words, tmp_path: Path):
    runner = CliRunner()
    out_dir = tmp_path / "never-written"
    args = [a for a in CLI_SMALL]
    for k in ("--slo-ttft", "--slo-tpot"):  # drop the defaults being replaced
        if k in opts:
            i = args.index(k)
            del args[i : i + 2]
    res = runner.invoke(app, ["plan", *args, *opts, "--out", str(out_dir)])
    assert res.exit_code == 2, res.output
    out = res.output.strip()
    assert words in out and len(out.splitlines()) <= 3 and "Traceback" not in out
    assert not (out_dir / "plan.json").exists()


def test_search_cap_gives_a_clear_error():
    s = CountSearch(1, 8, "sun shared decode pool")
    calls = []
    while (n := s.propose()) is not None:
        calls.append(n)
        s.update(n, False, 0.1 * n / 8)
    assert calls == [1, 2, 4, 8] and s.answer is None
    assert "max-workers 8" in s.failure and "sun shared decode pool" in s.failure


def test_cap_reached_in_plan_is_a_config_error():
    with pytest.raises(ConfigError, match="max-workers 1"):
        plan(SMALL, PlanOptions(jobs=1, max_workers=1))


@settings(max_examples=60, deadline=None)
@given(need=st.integers(1, 3000), start=st.integers(1, 3000))
def test_gallop_bisect_finds_the_threshold(need, start):
    s = CountSearch(start, 4096, "x")
    calls = []
    while (n := s.propose()) is not None:
        calls.append(n)
        s.update(n, n >= need, min(1.0, n / need))
    assert s.answer == need
    assert need == 1 or (need - 1) in calls  # one fewer was tried and failed
    assert len(calls) <= 2 * 12 + 2  # logarithmic, not a sweep


def test_stuck_attainment_stops_early():
    s = CountSearch(1, 4096, "sun shared decode pool")
    calls = 0
    while (n := s.propose()) is not None:
        calls += 1
        s.update(n, False, 0.5)  # more workers never help
    assert s.answer is None and "cannot meet" in s.failure and calls < 12


def test_parse_sweep_and_options():
    assert parse_sweep("rate=1,2,4") == ("request_rate", (1.0, 2.0, 4.0))
    assert parse_sweep("rate_scale=1,2,4") == ("rate_scale", (1.0, 2.0, 4.0))
    assert parse_sweep("zipf=0,0.5") == ("zipf", (0.0, 0.5))
    for bad in ("rate", "foo=1", "zipf=a"):
        with pytest.raises(ConfigError):
            parse_sweep(bad)
    with pytest.raises(ConfigError):
        PlanOptions(slo_kind="mean")


def test_percentile_kind_meets_its_bounds():
    r = plan(scenario_with(SMALL, max_requests=200), PlanOptions(jobs=1, slo_kind="percentile"))
    for mp in r.points[0].modes.values():
        lat = mp.summary["latency_s"]
        assert lat["ttft_s_p90"] <= SMALL.slo_ttft_s + 1e-9
        assert lat["tpot_s_p90"] <= SMALL.slo_tpot_s + 1e-9


# --- plan directories: the trace path, and bad files as a table of cases -----------------------


def test_plan_scenario_toml_has_an_absolute_trace_path(small_plan, tmp_path, monkeypatch):
    default = dataclasses.replace(small_plan, scenario=scenario_with(SMALL, trace=None))
    assert plan_to_toml_dict(default)["trace"]["path"] == str(default_trace().resolve())
    monkeypatch.chdir(default_trace().parent)
    rel = dataclasses.replace(small_plan, scenario=scenario_with(SMALL, trace=default_trace().name))
    path = Path(plan_to_toml_dict(rel)["trace"]["path"])
    assert path.is_absolute() and path == default_trace().resolve()
    write_plan(rel, tmp_path / "p", replays=False)
    monkeypatch.chdir(tmp_path)  # the plan repeats from elsewhere
    s, opts = load_plan_toml(tmp_path / "p" / "scenario.toml")
    assert Path(s.trace) == default_trace().resolve() and opts == PlanOptions()


@pytest.fixture(scope="module")
def plan_dir(small_plan, tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("plan")
    write_plan(small_plan, d, replays=False)
    return d


def _set_json(**changes):
    def edit(d: Path) -> None:
        j = json.loads((d / "plan.json").read_text())
        for k, v in changes.items():
            if v is None:
                del j[k]
            else:
                j[k] = v
        (d / "plan.json").write_text(json.dumps(j))

    return edit


def _write(name: str, text: str):
    return lambda d: (d / name).write_text(text)


@pytest.mark.parametrize(
    "edit, file, words",
    [
        (lambda d: (d / "plan.json").unlink(), "plan.json", "missing"),
        (_write("plan.json", '{"kind": "plan", "points": ['), "plan.json", "not valid JSON"),
        (_write("plan.json", "[1, 2]"), "plan.json", "expected a JSON object"),
        (_set_json(kind="replay"), "plan.json", "not a sunsim plan"),
        (_set_json(points=None), "plan.json", "missing key(s) points"),
        (_set_json(points=[]), "plan.json", "non-empty list"),
        (_set_json(reference_point=3), "plan.json", "reference_point"),
        (_set_json(reference_point="0"), "plan.json", "reference_point"),
        (lambda d: (d / "plan.csv").unlink(), "plan.csv", "missing"),
        (_write("plan.csv", "a,b\n1,2\n"), "plan.csv", "missing column(s) mode"),
        (_write("plan.csv", 'mode,x\n"sun,1\n'), "plan.csv", "cannot read"),
        (_write("goodput.csv", "mode,rate_scale\nsun,1\n"), "goodput.csv", "column(s) met"),
        (_write("scenario.toml", "[trace\npath = 1"), "scenario.toml", "not valid TOML"),
    ],
)
def test_bad_plan_directory_is_one_line_naming_the_file(plan_dir, tmp_path, edit, file, words):
    import shutil

    d = tmp_path / "copy"
    shutil.copytree(plan_dir, d)
    assert read_plan_dir(d).meta["kind"] == "plan"  # the copy reads before the edit
    edit(d)
    with pytest.raises(SunsimError) as e:
        read_plan_dir(d)
    msg = str(e.value)
    assert str(d / file) in msg and words in msg and "\n" not in msg, msg
    from sunsim.runs import RunDirError

    # a damaged plan directory is not a bad setting; scenario.toml is the plan's settings
    assert isinstance(e.value, ConfigError if file == "scenario.toml" else RunDirError)


def test_read_plan_dir_refuses_a_missing_directory(tmp_path):
    with pytest.raises(SunsimError, match="no such plan directory"):
        read_plan_dir(tmp_path / "nowhere")


@pytest.mark.parametrize(
    "text, words",
    [
        ("[plan]\nfoo = 1\n", "unknown key 'foo' in [plan]"),
        ("[plan]\nsweep = 3\n", "sweep must be"),
        ('[plan]\nsweep = {key = "rate_scale", values = ["a"]}\n', "list of numbers"),
        ('[plan]\nsweep = {key = "speed", values = [1]}\n', "unknown key 'speed'"),
        ('[plan]\nslo_kind = "mean"\n', "--slo-kind"),
        ("plan = 3\n", "[plan] must be a table"),
        ("[plan\n", "not valid TOML"),
        ("[nonsense]\nx = 1\n", "unknown section [nonsense]"),
    ],
)
def test_bad_plan_toml_is_one_line(tmp_path, text, words):
    p = tmp_path / "scenario.toml"
    p.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_plan_toml(p)
    assert words in str(e.value) and "\n" not in str(e.value), str(e.value)
