"""``sunsim replay`` through typer's CliRunner: the run directory, repeating a run from its
scenario.toml, one-line errors for bad input (exit code 2), and a real Azure trace."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import require_trace
from typer.testing import CliRunner

from sunsim.cli import app

runner = CliRunner()
MODES = ("partitioned", "sun", "qsun")


def replay(*args: str):
    return runner.invoke(app, ["replay", "--no-progress", *args], catch_exceptions=False)


@pytest.fixture(scope="module")
def default_run(tmp_path_factory) -> tuple[Path, str]:
    """The bundled default trace, first 300 requests, all three modes."""
    out = tmp_path_factory.mktemp("replay") / "run"
    r = replay("--max-requests", "300", "--out", str(out))
    assert r.exit_code == 0, r.output
    return out, r.output


def _table_header(output: str) -> str:
    """The line of the comparison table that names the modes (its header row)."""
    lines = [ln for ln in output.splitlines() if "partitioned" in ln and "┃" in ln]
    assert lines, output
    return lines[0]


def test_replay_default_trace_writes_run_dir(default_run):
    run_dir, output = default_run
    header = _table_header(output)
    cells = [c.strip() for c in header.split("┃") if c.strip()]
    assert cells == list(MODES), header  # one column per mode, as whole cells ("sunsim" is not)
    for m in MODES:
        assert (run_dir / f"records_{m}.parquet").is_file()
        assert (run_dir / f"decode_workers_{m}.csv").is_file()
    assert (run_dir / "scenario.toml").is_file()
    assert "SLO attainment" in output and "wrote" in output
    summary = json.loads((run_dir / "summary.json").read_text())
    assert set(summary["modes"]) == set(MODES)
    for m in MODES:
        req = summary["modes"][m]["requests"]
        assert req["total"] == 300 and req["finished"] + req["rejected"] == 300
        rec = pd.read_parquet(run_dir / f"records_{m}.parquet")
        assert len(rec) == 300 and rec["request_id"].tolist() == list(range(300))


def test_rerun_from_scenario_gives_identical_records(default_run, tmp_path):
    default_run = default_run[0]
    out2 = tmp_path / "again"
    r = replay("--scenario", str(default_run / "scenario.toml"), "--out", str(out2))
    assert r.exit_code == 0, r.output
    for m in MODES:
        a = pd.read_parquet(default_run / f"records_{m}.parquet")
        b = pd.read_parquet(out2 / f"records_{m}.parquet")
        pd.testing.assert_frame_equal(a, b)
    import tomllib

    assert tomllib.loads((default_run / "scenario.toml").read_text()) == tomllib.loads(
        (out2 / "scenario.toml").read_text()
    )


def one_line_error(result, *needles: str) -> str:
    out = result.output.strip()
    assert result.exit_code == 2, out
    assert "Traceback" not in out
    assert len(out.splitlines()) == 1, out
    assert out.startswith("error:"), out
    for n in needles:
        assert n in out, (n, out)
    return out


@pytest.mark.parametrize(
    "args,needles",
    [
        (["--model", "gpt-9"], ["unknown model 'gpt-9'", "llama-3.1-8b"]),
        (["--gpu", "tpu"], ["unknown GPU 'tpu'", "h100"]),
        (["--mode", "shared"], ["unknown mode 'shared'", "partitioned"]),
        (["--decode-workers", "1,2"], ["decode worker", "got 2"]),
        (["--decode-workers", "x"], ["--decode-workers", "'x'"]),
        (["--decode-workers", "0"], ["--decode-workers", ">= 1", "got 0"]),
        (["--mode", "sun", "--decode-workers", "0"], ["--decode-workers", ">= 1", "got 0"]),
        (["--router", "fastest"], ["--router", "unknown decode router 'fastest'", "least_loaded"]),
        (["--slo-ttft", "-1"], ["--slo-ttft", "> 0", "got -1"]),
        (["--mode", "partitioned", "--decode-workers", "2"], ["2 decode workers", "3 models"]),
    ],
)
def test_bad_options_exit_2_one_line(args, needles, tmp_path):
    one_line_error(replay("--max-requests", "20", "--out", str(tmp_path / "o"), *args), *needles)


def test_bad_scenario_files_exit_2_one_line(tmp_path):
    bad_key = tmp_path / "bad_key.toml"
    bad_key.write_text("[cluster]\nbogus = 1\n")
    one_line_error(replay("--scenario", str(bad_key)), str(bad_key), "'bogus'", "[cluster]")
    bad_toml = tmp_path / "bad.toml"
    bad_toml.write_text("[cluster\ngpu = 'h100'\n")
    one_line_error(replay("--scenario", str(bad_toml)), str(bad_toml), "not valid TOML", "line 1")
    bad_section = tmp_path / "bad_section.toml"
    bad_section.write_text("[clusters]\ngpu = 'h100'\n")
    one_line_error(replay("--scenario", str(bad_section)), "[clusters]")
    one_line_error(replay("--scenario", str(tmp_path / "nope.toml")), "nope.toml")
    plan_toml = tmp_path / "plan.toml"
    plan_toml.write_text("[cluster]\ngpu = 'h100'\n[plan]\nmax_decode_workers = 8\n")
    one_line_error(
        replay("--scenario", str(plan_toml)),
        "[plan]",
        "sunsim plan --scenario",
        "replay_<mode>/scenario.toml",
    )


def test_missing_trace_file_exit_2(tmp_path):
    missing = tmp_path / "no_such_trace.csv"
    one_line_error(replay(str(missing)), str(missing), "not found")


def test_real_azure_conv_trace_all_modes(tmp_path):
    trace = require_trace("azure_llm_2023_conv.csv")
    out = tmp_path / "azure"
    r = replay(
        str(trace), "--max-requests", "2000", "--zipf", "1.2", "--mode", "all", "--out", str(out)
    )
    assert r.exit_code == 0, r.output
    summary = json.loads((out / "summary.json").read_text())
    assert "Zipf alpha 1.2" in summary["labelling"]
    for m in MODES:
        req = summary["modes"][m]["requests"]
        assert req["total"] == 2000
        assert req["finished"] + req["rejected"] == req["total"]
        rec = pd.read_parquet(out / f"records_{m}.parquet")
        assert len(rec) == 2000
        assert (rec["status"] == "finished").sum() == req["finished"]
        assert rec["model"].astype(str).isin(["math", "code", "tool"]).all()


def test_relative_trace_reproduces_from_anywhere(tmp_path, monkeypatch):
    """A run's scenario.toml stores the trace absolute: repeat it from another directory."""
    import shutil
    import tomllib

    from sunsim.replay import DEFAULT_TRACE

    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    work.mkdir()
    elsewhere.mkdir()
    shutil.copy(DEFAULT_TRACE, work / "t.csv")
    monkeypatch.chdir(work)
    args = ["--max-requests", "40", "--mode", "sun", "--latency", "roofline"]
    r = replay("t.csv", *args, "--out", "run")
    assert r.exit_code == 0, r.output
    saved = tomllib.loads((work / "run" / "scenario.toml").read_text())
    assert saved["trace"]["path"] == str(work / "t.csv")
    monkeypatch.chdir(elsewhere)
    r = replay("--scenario", str(work / "run" / "scenario.toml"), "--out", "again")
    assert r.exit_code == 0, r.output
    a = pd.read_parquet(work / "run" / "records_sun.parquet")
    pd.testing.assert_frame_equal(a, pd.read_parquet(elsewhere / "again" / "records_sun.parquet"))
