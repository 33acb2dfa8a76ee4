"""The multi-model agent workflow generator and model assignment over session turns."""

from __future__ import annotations

import shlex

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from sunsim.cli import app
from sunsim.errors import ConfigError, TraceError
from sunsim.traces import read_trace
from sunsim.traces.workflows import (
    Lengths,
    WorkflowSpec,
    assign_models,
    assign_turns,
    workflow_trace,
)

runner = CliRunner()


def _spec(**kw) -> WorkflowSpec:
    base = dict(
        models=("plan", "code", "check"),
        num_sessions=40,
        session_rate=2.0,
        loops=3,
        system_prompt_tokens=1100,
        task_tokens=Lengths(300),
        tool_output_tokens=Lengths(700),
        output_tokens=Lengths(120, 900),
        think_time_s=1.5,
        hash_block_tokens=256,
    )
    base.update(kw)
    return WorkflowSpec(**base)


def _common(a: tuple, b: tuple) -> int:
    k = 0
    while k < min(len(a), len(b)) and a[k] == b[k]:
        k += 1
    return k


def test_seeded():
    a = workflow_trace(_spec(), np.random.default_rng(7))
    b = workflow_trace(_spec(), np.random.default_rng(7))
    c = workflow_trace(_spec(), np.random.default_rng(8))
    pd.testing.assert_frame_equal(a, b)
    assert not a["output_tokens"].equals(c["output_tokens"])


def test_contexts_grow_as_specified():
    spec = _spec()
    df = workflow_trace(spec, np.random.default_rng(1))
    assert len(df) == 40 * 3 * 3 and df["session_id"].nunique() == 40
    assert df["arrival_s"].iloc[0] == 0.0 and df["arrival_s"].is_monotonic_increasing
    for _, s in df.groupby("session_id"):
        s = s.sort_values("turn")
        assert s["turn"].tolist() == list(range(9))
        assert s["arrival_s"].is_monotonic_increasing
        p, o = s["prompt_tokens"].to_numpy(), s["output_tokens"].to_numpy()
        assert p[0] == 1100 + 300  # system prompt + task
        # each call's prompt = previous prompt + its output (+ the tool output after an act)
        tool = np.array([700 if k % 3 == 1 else 0 for k in range(8)])
        assert (p[1:] - p[:-1] - o[:-1] == tool).all()
        ids = s["hash_ids"].tolist()
        assert [len(x) for x in ids] == [-(-int(x) // 256) for x in p]
        for k in range(8):  # the next call repeats this call's full blocks, no more
            assert _common(ids[k], ids[k + 1]) == p[k] // 256


def test_system_prompt_shared_across_sessions_only():
    df = workflow_trace(_spec(), np.random.default_rng(2))
    first = df[df["turn"] == 0]["hash_ids"].tolist()
    # 1100 shared tokens: 4 full blocks of 256 in every session; the task after it differs
    assert all(_common(first[0], x) == 4 for x in first[1:])
    assert df.attrs == {"hash_block_tokens": 256, "hash_ids_source": "session structure"}


def test_session_arrivals_poisson_rate():
    df = workflow_trace(_spec(num_sessions=3000, loops=1), np.random.default_rng(3))
    starts = np.sort(df[df["turn"] == 0]["arrival_s"].to_numpy())
    gaps = np.diff(starts)
    assert gaps.mean() == pytest.approx(0.5, rel=0.08)  # 1 / session_rate
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, rel=0.1)  # exponential: CV 1


@pytest.mark.parametrize(
    "n,policy,expected",
    [
        (3, "plan_act_check", [0, 1, 2, 0, 1, 2]),
        (8, "plan_act_check", [0, 1, 7, 0, 2, 7, 0, 3, 7]),
        (2, "plan_act_check", [0, 1, 1, 0, 1, 1]),
        (1, "plan_act_check", [0, 0, 0, 0]),
        (4, "round_robin", [0, 1, 2, 3, 0, 1]),
    ],
)
def test_assign_turns(n, policy, expected):
    assert assign_turns(np.arange(len(expected)), n, policy).tolist() == expected


def test_eight_models_all_used():
    df = workflow_trace(
        _spec(models=tuple(f"m{i}" for i in range(8)), loops=6), np.random.default_rng(0)
    )
    counts = df["model"].value_counts()
    assert set(counts.index) == {f"m{i}" for i in range(8)}
    assert counts["m0"] == counts["m7"] == 40 * 6  # plan and check each loop


def test_assign_models_needs_sessions():
    with pytest.raises(TraceError, match="needs a trace with sessions"):
        assign_models(pd.DataFrame({"arrival_s": [0.0]}), ["a"], "round_robin")
    with pytest.raises(ConfigError, match="unknown model assignment 'x'"):
        assign_turns(np.arange(3), 2, "x")


def test_bad_lengths():
    assert Lengths.parse("600", "--x") == Lengths(600)
    assert Lengths.parse("600,4000", "--x") == Lengths(600, 4000)
    for bad in ("", "a", "1,2,3", "-4", "400,100"):
        with pytest.raises(ConfigError, match="--x"):
            Lengths.parse(bad, "--x")


# --- CLI ------------------------------------------------------------------------------------------


def test_cli_workflow_writes_reads_back_and_regenerates(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(
        app,
        ["trace", "workflow", "w.csv", "--sessions", "12", "--models", "a,b,c,d", "--seed", "5"],
        catch_exceptions=False,
    )
    assert r.exit_code == 0, r.output
    assert "wrote 108 calls of 12 sessions" in r.output
    t = read_trace(tmp_path / "w.csv")
    df = t.requests
    assert list(df.columns[-3:]) == ["session_id", "turn", "hash_ids"]
    assert t.sessions.hash_ids_source == "trace" and t.sessions.num_sessions == 12
    gen = workflow_trace(
        WorkflowSpec(models=("a", "b", "c", "d"), num_sessions=12), np.random.default_rng(5)
    )
    assert df["hash_ids"].tolist() == gen["hash_ids"].tolist()
    assert df["source_model"].tolist() == gen["model"].astype(str).tolist()
    cmd = r.output.split("regenerate with (seed 5): ")[1].strip().replace("\n", "")
    first = (tmp_path / "w.csv").read_bytes()
    (tmp_path / "w.csv").unlink()
    r2 = runner.invoke(app, shlex.split(cmd)[1:], catch_exceptions=False)
    assert r2.exit_code == 0, r2.output
    assert (tmp_path / "w.csv").read_bytes() == first


def test_cli_assign_over_session_turns(tmp_path):
    src = tmp_path / "s.csv"
    src.write_text(
        "arrival_s,prompt_tokens,output_tokens,session_id\n0,600,10,1\n1,700,10,2\n2,900,10,1\n"
    )
    out = tmp_path / "o.csv"
    r = runner.invoke(
        app,
        [
            "trace",
            "assign",
            str(src),
            str(out),
            "--models",
            "x,y",
            "--assign-models",
            "round_robin",
        ],
        catch_exceptions=False,
    )
    assert r.exit_code == 0, r.output
    df = read_trace(out).requests
    assert df["source_model"].tolist() == ["x", "x", "y"]
    assert df["turn"].tolist() == [0, 0, 1]
    assert _common(df["hash_ids"][0], df["hash_ids"][2]) == 1  # 600 tokens: one full block


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--sessions", "0"], "--sessions: must be >= 1"),
        (["--session-rate", "0"], "--session-rate: must be > 0"),
        (["--models", "a,a"], "served model names must be unique"),
        (["--tool-output-tokens", "5,x"], "--tool-output-tokens: expected N"),
        (["--assign-models", "zig"], "--assign-models"),
        (["--hash-block-tokens", "0"], "--hash-block-tokens: must be >= 1"),
    ],
)
def test_cli_workflow_bad_options_exit_2(tmp_path, args, needle):
    r = runner.invoke(
        app, ["trace", "workflow", str(tmp_path / "w.csv"), *args], catch_exceptions=False
    )
    assert r.exit_code == 2, r.output
    out = r.output.strip()
    assert len(out.splitlines()) == 1 and out.startswith("error:") and needle in out, out
    assert not (tmp_path / "w.csv").exists()


def test_cli_assign_without_sessions_exit_2(tmp_path):
    src = tmp_path / "s.csv"
    src.write_text("arrival_s,prompt_tokens,output_tokens\n0,600,10\n")
    r = runner.invoke(
        app,
        ["trace", "assign", str(src), str(tmp_path / "o.csv"), "--models", "x"],
        catch_exceptions=False,
    )
    assert r.exit_code == 2 and "needs a trace with sessions" in r.output
    assert len(r.output.strip().splitlines()) == 1


def test_replay_records_carry_session_and_turn(tmp_path):
    trace = tmp_path / "w.csv"
    r = runner.invoke(app, ["trace", "workflow", str(trace), "--sessions", "4", "--loops", "1"])
    assert r.exit_code == 0, r.output
    out = tmp_path / "run"
    args = ["replay", str(trace), "--models", "planner,coder,critic", "--mode", "sun"]
    r = runner.invoke(app, [*args, "--out", str(out), "--records-format", "csv", "--no-progress"])
    assert r.exit_code == 0, r.output
    rec = pd.read_csv(out / "records_sun.csv")
    src = read_trace(trace).requests
    assert rec["session_id"].tolist() == src["session_id"].tolist()
    assert rec["turn"].tolist() == src["turn"].tolist()
    assert "hash_ids" not in rec.columns
