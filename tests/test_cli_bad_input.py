"""Bad input to ``sunsim replay`` and ``sunsim plan``, as a table of cases per command: each
exits with code 2 and prints one line naming the file and key, or the option, with no
traceback, before any simulation. Also ``--version``, ``python -m sunsim`` and the help."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import get_args

import pytest
from typer.testing import CliRunner

from sunsim import __version__
from sunsim.build_info import engine_build
from sunsim.cli import app
from sunsim.config.choices import LatencySource
from sunsim.specs import GPUS

runner = CliRunner()
COMMANDS = ("replay", "plan")


def run(command: str, *args: str):
    extra = ["--jobs", "1"] if command == "plan" else []
    return runner.invoke(app, [command, "--no-progress", *extra, *args], catch_exceptions=False)


def assert_one_line(result, *needles: str) -> str:
    out = result.output.strip()
    assert result.exit_code == 2, out
    assert "Traceback" not in out
    assert len(out.splitlines()) == 1, out
    assert out.startswith("error:"), out
    for n in needles:
        assert n in out, (n, out)
    return out


FILE_CASES = [
    ('[cluster]\nmax_num_seqs = "256"\n', ["[cluster] max_num_seqs", "expected an integer"]),
    ("[cluster]\nblock_size = 16.5\n", ["[cluster] block_size", "got 16.5"]),
    ("[cluster]\nkv_block_tokens = 16.5\n", ["[cluster] kv_block_tokens", "expected an integer"]),
    ('[trace]\nkeep_failed = "no"\n', ["[trace] keep_failed", "true or false"]),
    ("[cluster]\ndecode_workers = [true]\n", ["[cluster] decode_workers", "integer"]),
    ("[cluster]\nmax_num_seqs = 100000000\n", ["[cluster] max_num_seqs", "<= 65536"]),
    ("[cluster]\ndecode_workers = 1000000\n", ["[cluster] decode_workers", "4096"]),
    ("[cluster]\nlink_gbps = -5\n", ["[cluster] link_gbps", "> 0"]),
    ("[cluster]\nlink_gbps = 0\n", ["[cluster] link_gbps", "> 0"]),
    ("[cluster]\nlink_latency_us = -1\n", ["[cluster] link_latency_us", ">= 0"]),
    ("[run]\nseed = -1\n", ["[run] seed", ">= 0"]),
    ("[run]\nseed = 0.5\n", ["[run] seed", "expected an integer"]),
    ('[cluster]\ngpu = "tpu"\n', ["[cluster] gpu", "unknown GPU 'tpu'"]),
    ("[cluster]\nbogus = 1\n", ["unknown key 'bogus' in [cluster]"]),
    ('[clusters]\ngpu = "h100"\n', ["unknown section [clusters]"]),
    ("[cluster\ngpu = 'h100'\n", ["not valid TOML", "line 1"]),
    ("[slo]\nattainment = 2\n", ["[slo] attainment", "<= 1"]),
]


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("text, needles", FILE_CASES)
def test_bad_scenario_file(command: str, text: str, needles: list[str], tmp_path: Path):
    p = tmp_path / "scenario.toml"
    p.write_text(text)
    out = tmp_path / "out"
    assert_one_line(run(command, "--scenario", str(p), "--out", str(out)), str(p), *needles)
    assert not out.exists()  # nothing was written: the error came before the --out check


OPTION_CASES = [
    (["--max-num-seqs", "0"], ["--max-num-seqs", ">= 1", "got 0"]),
    (["--max-num-seqs", "100000"], ["--max-num-seqs", "<= 65536"]),
    (["--max-num-seqs", "abc"], ["--max-num-seqs", "integer"]),
    (["--block-size", "16.5"], ["--block-size", "integer"]),
    (["--seed", "-1"], ["--seed", ">= 0"]),
    (["--link-gbps", "0"], ["--link-gbps", "> 0"]),
    (["--link-gbps", "-5"], ["--link-gbps", "> 0"]),
    (["--link-latency-us", "-1"], ["--link-latency-us", ">= 0"]),
    (["--decode-workers", "5000"], ["--decode-workers", "4096"]),
    (["--decode-workers", "1.5"], ["--decode-workers", "integers", "'1.5'"]),
    (["--prefill-workers", ""], ["--prefill-workers", "empty"]),
    (["--shares", "a,b,c"], ["--shares", "numbers"]),
    (["--window", "5"], ["--window", "START,END"]),
    (["--window", "5,1"], ["window", "START < END"]),
    (["--gpu", "tpu"], ["--gpu", "unknown GPU 'tpu'", "h100"]),
    (["--mode", "shared"], ["--mode", "unknown mode 'shared'"]),
    (["--latency", "guess"], ["--latency", "unknown latency source 'guess'"]),
    (["--model-map", "ChatGPT"], ["--model-map", "SOURCE=SERVED"]),
    (["--slo-attainment", "1.5"], ["--slo-attainment", "<= 1"]),
    (["--rate-scale", "0"], ["--rate-scale", "> 0"]),
    (["--max-requests", "0"], ["--max-requests", ">= 1"]),
    (["--gpu-memory-utilization", "2"], ["--gpu-memory-utilization", "<= 1"]),
]


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("args, needles", OPTION_CASES)
def test_bad_option(command: str, args: list[str], needles: list[str], tmp_path: Path):
    out = tmp_path / "out"
    assert_one_line(run(command, "--out", str(out), *args), *needles)
    assert not out.exists()


@pytest.mark.parametrize(
    "args, needles",
    [
        (["--max-workers", "100000"], ["--max-workers", "4096"]),
        (["--max-workers", "0"], ["--max-workers"]),
        (["--jobs", "0"], ["--jobs"]),
        (["--slo-kind", "mean"], ["--slo-kind"]),
        (["--sweep", "foo=1"], ["--sweep"]),
    ],
)
def test_bad_plan_option(args: list[str], needles: list[str], tmp_path: Path):
    assert_one_line(run("plan", "--out", str(tmp_path / "o"), *args), *needles)


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("marker", ["summary.json", "plan.json"])
def test_out_holding_a_run_is_refused(command: str, marker: str, tmp_path: Path):
    out = tmp_path / "used"
    out.mkdir()
    (out / marker).write_text("{}")
    assert_one_line(run(command, "--out", str(out)), f"--out {out}", marker, "--force")
    assert (out / marker).read_text() == "{}"


@pytest.mark.parametrize("command", COMMANDS)
def test_unwritable_out_is_found_before_simulating(command: str, tmp_path: Path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    out = blocker / "run"  # cannot be created, even by root
    assert_one_line(run(command, "--out", str(out)), f"--out {out}", "cannot write")
    assert_one_line(run(command, "--out", str(blocker)), "not a directory")


def test_plan_again_from_its_own_scenario_needs_no_force(tmp_path: Path):
    from sunsim.cli.plan import _repeats_itself

    d = tmp_path / "p"
    assert _repeats_itself(d / "scenario.toml", d)
    assert not _repeats_itself(tmp_path / "other.toml", d) and not _repeats_itself(None, d)


def test_replay_force_writes_over_a_run(tmp_path: Path):
    out = tmp_path / "used"
    out.mkdir()
    (out / "summary.json").write_text("{}")
    args = ["--max-requests", "30", "--mode", "sun", "--latency", "roofline", "--out", str(out)]
    r = run("replay", *args, "--force")
    assert r.exit_code == 0, r.output
    assert '"modes"' in (out / "summary.json").read_text()


def test_version():
    want = f"sunsim {__version__} (engine: {engine_build()})"
    r = runner.invoke(app, ["--version"])
    assert r.exit_code == 0 and r.output.strip() == want
    p = subprocess.run(
        [sys.executable, "-m", "sunsim", "--version"], capture_output=True, text=True, check=True
    )
    assert p.stdout.strip() == want


@pytest.mark.parametrize("command", COMMANDS)
def test_help_shows_defaults_and_choices_from_the_scenario(command: str):
    r = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"}, terminal_width=200)
    assert r.exit_code == 0, r.output
    text = " ".join(r.output.split())
    gpus, sources = "|".join(GPUS), "|".join(get_args(LatencySource))
    assert f"[{gpus}]" in text and f"[{sources}]" in text  # every choice, from its registry
    row = text[text.index("--decode-workers") : text.index("--qsun-precision")]
    assert "[default: (3)]" in row, row  # the model's default, not a copy


@pytest.mark.parametrize(
    "table, needles",
    [
        ("[plan]\njobs = true\n", ["[plan] jobs", "expected an integer"]),
        ("[plan]\nmax_workers = 100000\n", ["[plan] max_workers", "4096"]),
        ("[plan]\nbogus = 1\n", ["unknown key 'bogus' in [plan]"]),
        ('[plan]\nslo_kind = "mean"\n', ["slo-kind"]),
    ],
)
def test_bad_plan_table(table: str, needles: list[str], tmp_path: Path):
    p = tmp_path / "scenario.toml"
    p.write_text("[cluster]\ngpu = 'h100'\n" + table)
    args = ["plan", "--no-progress", "--scenario", str(p), "--out", str(tmp_path / "o")]
    assert_one_line(runner.invoke(app, args, catch_exceptions=False), *needles)
