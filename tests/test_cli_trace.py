"""CLI tests for ``sunsim trace info`` and ``sunsim trace synth`` through typer's CliRunner."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from conftest import require_trace
from typer.testing import CliRunner

from sunsim.cli import app

runner = CliRunner()


def _run(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def _one_line_error(result, *needles: str) -> str:
    assert result.exit_code == 2, result.output
    out = result.output.strip()
    assert "Traceback" not in out
    assert len(out.splitlines()) == 1, out
    assert out.startswith("error:")
    for n in needles:
        assert n in out, (n, out)
    return out


def test_info_real_burstgpt():
    r = _run("trace", "info", str(require_trace("burstgpt_1_head.csv")))
    assert r.exit_code == 0, r.output
    for needle in (
        "burstgpt",
        "54, 3 failed (3 excluded)",
        "51",
        "ChatGPT 36",
        "GPT-4 15",
        "inter-arrival CV",
    ):
        assert needle in r.output
    r = _run("trace", "info", str(require_trace("burstgpt_1_head.csv")), "--keep-failed")
    assert "54, 3 failed (0 excluded)" in r.output and "ChatGPT 38" in r.output


def test_info_real_azure_code():
    r = _run("trace", "info", str(require_trace("azure_llm_2023_code.csv")), "--format", "azure")
    assert r.exit_code == 0, r.output
    assert "8,819" in r.output and "2.567 req/s" in r.output and "p50 1469" in r.output


def test_synth_writes_and_prints_regenerating_command(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = _run(
        "trace",
        "synth",
        "a.csv",
        "--requests",
        "300",
        "--rate",
        "4",
        "--burstiness",
        "1.5",
        "--models",
        "math,code",
        "--zipf",
        "0.8",
        "--seed",
        "42",
    )
    assert r.exit_code == 0, r.output
    assert "wrote 300 requests" in r.output and "seed 42" in r.output
    cmd = r.output.split("regenerate with (seed 42): ", 1)[1].strip()
    assert cmd.startswith("sunsim trace synth a.csv --requests 300")
    args = shlex.split(cmd)[1:]
    args[2] = "b.csv"
    r2 = _run(*args)
    assert r2.exit_code == 0, r2.output
    assert Path("a.csv").read_bytes() == Path("b.csv").read_bytes()
    header = Path("a.csv").read_text().splitlines()[0]
    assert header == "arrival_s,model,prompt_tokens,output_tokens"
    info = _run("trace", "info", "a.csv")
    assert info.exit_code == 0 and "canonical" in info.output and "300" in info.output


def test_synth_default_duration(tmp_path):
    out = tmp_path / "d.csv"
    r = _run("trace", "synth", str(out), "--rate", "2", "--seed", "1")
    assert r.exit_code == 0, r.output
    assert "--duration 600" in r.output and out.is_file()


CASES = {
    # name: (file name, content, strings the one-line message must contain)
    "empty": ("empty.csv", "", ["empty.csv", "empty"]),
    "header_only": (
        "hdr.csv",
        "TIMESTAMP,ContextTokens,GeneratedTokens\n",
        ["hdr.csv", "no data rows"],
    ),
    "unknown_format": (
        "what.csv",
        "a,b,c\n1,2,3\n",
        ["what.csv", "unknown trace format", "--format"],
    ),
    "missing_column": (
        "mc.csv",
        "arrival_s,prompt_tokens\n0,1\n",
        ["mc.csv", "missing column 'output_tokens'"],
    ),
    "non_numeric": (
        "nn.csv",
        "arrival_s,prompt_tokens,output_tokens\n0,1,1\n1,lots,1\n",
        ["nn.csv", "row 2", "column 'prompt_tokens'", "'lots'"],
    ),
    "non_integer": (
        "ni.csv",
        "arrival_s,prompt_tokens,output_tokens\n0,1.5,1\n",
        ["ni.csv", "row 1", "column 'prompt_tokens'", "whole number"],
    ),
    "zero_prompt": (
        "zp.csv",
        "arrival_s,prompt_tokens,output_tokens\n0,0,1\n",
        ["zp.csv", "row 1", "column 'prompt_tokens'", ">= 1"],
    ),
    "negative_output": (
        "no.csv",
        "arrival_s,prompt_tokens,output_tokens\n0,3,1\n1,3,-2\n",
        ["no.csv", "row 2", "column 'output_tokens'"],
    ),
    "bad_timestamp": (
        "ts.csv",
        "TIMESTAMP,ContextTokens,GeneratedTokens\nyesterday,1,1\n",
        ["ts.csv", "row 1", "column 'TIMESTAMP'", "'yesterday'"],
    ),
    "bad_json": (
        "mc.jsonl",
        '{"timestamp": 0, "input_length": 1, "output_length": 1}\n{oops\n',
        ["mc.jsonl", "row 2", "malformed JSON"],
    ),
    "out_of_order": (
        "oo.csv",
        "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46,5,1\n"
        "2020-11-16 18:15:46,5,1\n",
        ["oo.csv", "row 2", "column 'TIMESTAMP'", "earlier than row 1", "sort the file"],
    ),
    "tz_mixed_with_naive": (
        "tz.csv",
        "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46Z,5,1\n"
        "2023-11-16 18:15:47,5,1\n",
        ["tz.csv", "row 2", "has no UTC offset"],
    ),
    "huge_token": (
        "ht.csv",
        "arrival_s,prompt_tokens,output_tokens\n0,1e30,1\n",
        ["ht.csv", "row 1", "column 'prompt_tokens'", "<= 10,000,000"],
    ),
    "duplicate_column": (
        "dc.csv",
        "arrival_s,prompt_tokens,output_tokens,output_tokens\n0,1,1,1\n",
        ["dc.csv", "column 'output_tokens' appears twice"],
    ),
    "binary": ("bin.csv", bytes(range(256)), ["bin.csv", "binary file"]),
    "latin1": (
        "l1.csv",
        "arrival_s,model,prompt_tokens,output_tokens\n0,caf\xe9,1,1\n".encode("latin1"),
        ["l1.csv", "row 1", "not UTF-8"],
    ),
    "json_not_object": (
        "no.jsonl",
        '{"timestamp": 0, "input_length": 1, "output_length": 1}\n[1, 2]\n',
        ["no.jsonl", "row 2", "expected a JSON object"],
    ),
}


def _write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    p = tmp_path / name
    if isinstance(content, bytes):
        p.write_bytes(content)
    else:
        p.write_text(content)
    return p


@pytest.mark.parametrize("case", sorted(CASES))
def test_info_bad_input_exit_2_one_line(tmp_path, case):
    name, text, needles = CASES[case]
    p = _write(tmp_path, name, text)
    _one_line_error(_run("trace", "info", str(p)), *needles)


@pytest.mark.parametrize(
    "case", ["out_of_order", "tz_mixed_with_naive", "huge_token", "binary", "json_not_object"]
)
def test_replay_bad_trace_exit_2_one_line(tmp_path, case):
    name, text, needles = CASES[case]
    p = _write(tmp_path, name, text)
    out = tmp_path / "r"
    r = _run(
        "replay",
        str(p),
        "--max-requests",
        "5",
        "--latency",
        "roofline",
        "--no-progress",
        "--out",
        str(out),
    )
    _one_line_error(r, *needles)
    assert not (out / "summary.json").exists()


def test_info_directory_and_utc_offsets(tmp_path):
    _one_line_error(_run("trace", "info", str(tmp_path)), "is a directory")
    p = _write(
        tmp_path,
        "tz.csv",
        "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46+00:00,5,1\n"
        "2023-11-16 20:15:48+02:00,5,1\n",
    )
    r = _run("trace", "info", str(p))
    assert r.exit_code == 0, r.output
    assert " 2.0 s (0.0 min)" in r.output  # the span, after converting both rows to UTC


def test_info_missing_file_and_bad_format(tmp_path):
    _one_line_error(_run("trace", "info", str(tmp_path / "gone.csv")), "gone.csv", "file not found")
    p = tmp_path / "ok.csv"
    p.write_text("arrival_s,prompt_tokens,output_tokens\n0,1,1\n")
    _one_line_error(_run("trace", "info", str(p), "--format", "xml"), "unknown trace format 'xml'")


def test_synth_bad_settings_exit_2(tmp_path):
    out = tmp_path / "x.csv"
    _one_line_error(
        _run("trace", "synth", str(out), "--requests", "5", "--duration", "5"), "exactly one"
    )
    _one_line_error(_run("trace", "synth", str(out), "--rate", "0"), "rate")
    _one_line_error(_run("trace", "synth", str(out), "--zipf", "-1"), "Zipf")
    assert not out.exists()
