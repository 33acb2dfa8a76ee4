"""Bad input to ``sunsim trace synth``, ``trace info``, ``profile``, ``profile check``,
``validate queueing`` and ``validate engine``, as one table of cases: each exits with code 2
and prints one line naming the option, with no traceback, and writes nothing -- and fails
before any heavy work: the functions that would draw a trace, profile, run the queueing
simulations or start the real engine are replaced by ones that fail the test."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from sunsim.cli import app

runner = CliRunner()

SYNTH = ["trace", "synth", "{out}.csv"]
PROFILE = ["profile", "--model", "tiny-llama", "--device", "cpu", "--quick", "--out", "{out}"]
QUEUEING = ["validate", "queueing"]
ENGINE = ["validate", "engine", "--trace", "{trace}", "--out", "{out}"]

CASES = [
    # trace synth
    ("synth-requests-0", [*SYNTH, "--requests", "0"], ["--requests", ">= 1"]),
    ("synth-requests-neg", [*SYNTH, "--requests", "-5"], ["--requests", ">= 1"]),
    ("synth-requests-float", [*SYNTH, "--requests", "1.5"], ["--requests", "integer"]),
    ("synth-requests-huge", [*SYNTH, "-n", "99999999999"], ["--requests", "<= 50,000,000"]),
    ("synth-duration-0", [*SYNTH, "--duration", "0"], ["--duration", "> 0"]),
    ("synth-duration-inf", [*SYNTH, "--duration", "inf"], ["--duration", "finite"]),
    ("synth-rate-nan", [*SYNTH, "--rate", "nan"], ["--rate", "finite"]),
    ("synth-rate-neg", [*SYNTH, "--rate", "-1"], ["--rate", "> 0"]),
    ("synth-rate-x-duration", [*SYNTH, "--rate", "1e9", "--duration", "1e9"],
     ["--rate x --duration", "50,000,000"]),
    ("synth-both", [*SYNTH, "--requests", "5", "--duration", "5"], ["--requests", "exactly one"]),
    ("synth-burstiness-neg", [*SYNTH, "--burstiness", "-0.5"], ["--burstiness", ">= 0"]),
    ("synth-zipf-nan", [*SYNTH, "--zipf", "nan"], ["--zipf", "finite"]),
    ("synth-seed-neg", [*SYNTH, "--seed", "-1"], ["--seed", ">= 0"]),
    ("synth-seed-huge", [*SYNTH, "--seed", str(2**32)], ["--seed", "32-bit"]),
    ("synth-seed-text", [*SYNTH, "--seed", "abc"], ["--seed", "integer"]),
    ("synth-models-empty", [*SYNTH, "--models", "a,,b"], ["--models", "non-empty"]),
    ("synth-models-dup", [*SYNTH, "--models", "a,a"], ["--models", "distinct"]),
    ("synth-out-dir", ["trace", "synth", "{dir}", "-n", "5"], ["OUT", "is a directory"]),
    ("synth-out-under-file", ["trace", "synth", "{file}/t.csv", "-n", "5"],
     ["OUT", "not an existing directory"]),
    ("synth-out-no-parent", ["trace", "synth", "{out}/t.csv", "-n", "5"],
     ["OUT", "not an existing directory"]),
    # trace info
    ("info-format", ["trace", "info", "{trace}", "--format", "xml"],
     ["--format", "unknown trace format 'xml'", "canonical"]),
    # profile
    ("profile-model", [*PROFILE, "--model", "gpt"], ["--model", "'gpt'", "tiny-llama"]),
    ("profile-precision", [*PROFILE, "--precision", "fp8"], ["--precision", "'fp8'", "w4a16"]),
    ("profile-device", [*PROFILE, "--device", "tpu"], ["--device", "'tpu'", "cpu"]),
    ("profile-statistic", [*PROFILE, "--statistic", "mode"], ["--statistic", "'mode'"]),
    ("profile-layers-0", [*PROFILE, "--layers", "0"], ["--layers", ">= 1"]),
    ("profile-layers-over", [*PROFILE, "--layers", "5"], ["--layers", "<= 4", "tiny-llama"]),
    ("profile-threads-0", [*PROFILE, "--threads", "0"], ["--threads", ">= 1"]),
    ("profile-threads-huge", [*PROFILE, "--threads", "100000"], ["--threads", "<= 1,024"]),
    ("profile-batch-0", [*PROFILE, "--batch-sizes", "0,2"], ["--batch-sizes", ">= 1"]),
    ("profile-batch-text", [*PROFILE, "--batch-sizes", "1,x"], ["--batch-sizes", "integers"]),
    ("profile-batch-huge", [*PROFILE, "--batch-sizes", "1000000"],
     ["--batch-sizes", "<= 65,536"]),
    ("profile-contexts-over", [*PROFILE, "--contexts", "64,100000"],
     ["--contexts", "max_model_len"]),
    ("profile-prompt-many", [*PROFILE, "--prompt-tokens", ",".join(map(str, range(1, 34)))],
     ["--prompt-tokens", "at most 32"]),
    ("profile-prefill-batch-neg", [*PROFILE, "--prefill-batch-sizes", "-1"],
     ["--prefill-batch-sizes", ">= 1"]),
    ("profile-max-prefill-0", [*PROFILE, "--max-prefill-tokens", "0"],
     ["--max-prefill-tokens", ">= 1"]),
    ("profile-repeats-0", [*PROFILE, "--repeats", "0"], ["--repeats", ">= 1"]),
    ("profile-repeats-float", [*PROFILE, "--repeats", "2.5"], ["--repeats", "integer"]),
    ("profile-max-repeats-huge", [*PROFILE, "--max-repeats", "1000000000"],
     ["--max-repeats", "<= 10,000"]),
    ("profile-warmup-neg", [*PROFILE, "--warmup", "-1"], ["--warmup", ">= 0"]),
    ("profile-passes-0", [*PROFILE, "--passes", "0"], ["--passes", ">= 1"]),
    ("profile-time-nan", [*PROFILE, "--time-per-point", "nan"], ["--time-per-point", "finite"]),
    ("profile-time-neg", [*PROFILE, "--time-per-point", "-1"], ["--time-per-point", ">= 0"]),
    ("profile-time-huge", [*PROFILE, "--time-per-point", "1e9"], ["--time-per-point", "<= 600"]),
    ("profile-seed-neg", [*PROFILE, "--seed", "-1"], ["--seed", ">= 0"]),
    ("profile-out-file", [*PROFILE, "--out", "{file}"], ["--out", "not a directory"]),
    ("profile-out-under-file", [*PROFILE, "--out", "{file}/p"], ["--out", "is a file"]),
    ("profile-cuda-graphs-cpu", [*PROFILE, "--cuda-graphs"], ["--cuda-graphs", "--device cuda"]),
    # profile check
    ("check-missing", ["profile", "check", "{out}"], ["PATH", "does not exist"]),
    ("check-file", ["profile", "check", "{file}"], ["PATH", "is a file"]),
    ("check-model", ["profile", "check", "{dir}", "--model", "gpt"], ["--model", "'gpt'"]),
    ("check-precision", ["profile", "check", "{dir}", "-p", "fp4"], ["--precision", "'fp4'"]),
    # validate queueing
    ("queueing-requests-few", [*QUEUEING, "--requests", "10"], ["--requests", "at least 1000"]),
    ("queueing-requests-huge", [*QUEUEING, "-n", "100000000"],
     ["--requests", "<= 10,000,000"]),
    ("queueing-requests-text", [*QUEUEING, "--requests", "many"], ["--requests", "integer"]),
    ("queueing-seed-neg", [*QUEUEING, "--seed", "-1"], ["--seed", ">= 0"]),
    ("queueing-servers-0", [*QUEUEING, "--servers", "0"], ["--servers", ">= 1"]),
    ("queueing-servers-huge", [*QUEUEING, "--servers", "100000000"], ["--servers", "<= 4,096"]),
    ("queueing-servers-many", [*QUEUEING, "--servers", ",".join(map(str, range(1, 18)))],
     ["--servers", "at most 16"]),
    ("queueing-servers-text", [*QUEUEING, "--servers", "two"], ["--servers", "integers"]),
    ("queueing-rhos-nan", [*QUEUEING, "--rhos", "nan"], ["--rhos", "(0, 1)"]),
    ("queueing-rhos-one", [*QUEUEING, "--rhos", "0.5,1"], ["--rhos", "(0, 1)"]),
    ("queueing-rhos-empty", [*QUEUEING, "--rhos", ","], ["--rhos", "empty"]),
    # validate engine
    ("engine-requests-0", [*ENGINE, "--requests", "0"], ["--requests", ">= 1"]),
    ("engine-requests-huge", [*ENGINE, "-n", "100000"], ["--requests", "<= 10,000"]),
    ("engine-threads-0", [*ENGINE, "--threads", "0"], ["--threads", ">= 1"]),
    ("engine-threads-huge", [*ENGINE, "--threads", "5000"], ["--threads", "<= 1,024"]),
    ("engine-seed-neg", [*ENGINE, "--seed", "-1"], ["--seed", ">= 0"]),
    ("engine-seed-float", [*ENGINE, "--seed", "0.5"], ["--seed", "integer"]),
    ("engine-kv-0", [*ENGINE, "--kv-blocks", "0"], ["--kv-blocks", ">= 1"]),
    ("engine-kv-huge", [*ENGINE, "--kv-blocks", "1000000000"], ["--kv-blocks", "GiB"]),
    ("engine-seqs-0", [*ENGINE, "--max-num-seqs", "0"], ["--max-num-seqs", ">= 1"]),
    ("engine-seqs-huge", [*ENGINE, "--max-num-seqs", "100000"], ["--max-num-seqs", "<= 1,024"]),
    ("engine-tokens-0", [*ENGINE, "--max-num-batched-tokens", "0"],
     ["--max-num-batched-tokens", ">= 1"]),
    ("engine-tokens-huge", [*ENGINE, "--max-num-batched-tokens", "10000000"],
     ["--max-num-batched-tokens", "<= 65,536"]),
    ("engine-max-prompt-over", [*ENGINE, "--max-prompt", "100000"],
     ["--max-prompt", "max_model_len"]),
    ("engine-device", [*ENGINE, "--device", "tpu"], ["--device", "'tpu'"]),
    ("engine-model", [*ENGINE, "--model", "gpt"], ["--model", "'gpt'"]),
    ("engine-statistic", [*ENGINE, "--statistic", "mode"], ["--statistic", "'mode'"]),
    ("engine-trace-missing", [*ENGINE, "--trace", "{out}.csv"], ["--trace", "file not found"]),
    ("engine-out-file", [*ENGINE, "--out", "{file}"], ["--out", "not a directory"]),
    ("engine-rate-nan", [*ENGINE, "--rate-scale", "nan"], ["--rate-scale", "finite"]),
    ("engine-rate-span", [*ENGINE, "--rate-scale", "1e-9"], ["--rate-scale", "real time"]),
    ("engine-prompt-scale-0", [*ENGINE, "--prompt-scale", "0"], ["--prompt-scale", "> 0"]),
    ("engine-passes", [*ENGINE, "--passes", "3"], ["--passes", "1 or 2"]),
    ("engine-time-inf", [*ENGINE, "--time-per-point", "inf"], ["--time-per-point", "finite"]),
    ("engine-idle-neg", [*ENGINE, "--prefill-idle", "-1"], ["--prefill-idle", ">= 0"]),
]  # fmt: skip


@pytest.fixture
def no_heavy_work(monkeypatch, tmp_path: Path) -> Path:
    """Replace what would draw, profile, simulate or start the engine with a failure, and run
    in ``tmp_path`` (so default output directories would land there too)."""
    import sunsim.profiling
    import sunsim.traces
    import sunsim.validate.engine
    import sunsim.validate.queueing

    def started(*a, **k):
        raise AssertionError("heavy work started before the bad input was refused")

    monkeypatch.setattr(sunsim.traces, "synth_trace", started)
    monkeypatch.setattr(sunsim.profiling, "profile_model", started)
    monkeypatch.setattr(sunsim.validate.queueing, "run_queueing_checks", started)
    monkeypatch.setattr(sunsim.validate.engine, "run_engine_check", started)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _fill(args: list[str], tmp_path: Path) -> list[str]:
    """Put the case's paths in: {out} (does not exist), {dir} (an empty directory),
    {file} (a file), {trace} (a valid five-request canonical trace)."""
    (tmp_path / "a_dir").mkdir()
    (tmp_path / "a_file").write_text("not a directory\n")
    rows = "".join(f"{i},m,{20 + i},{5 + i}\n" for i in range(5))
    (tmp_path / "trace.csv").write_text("arrival_s,model,prompt_tokens,output_tokens\n" + rows)
    paths = {
        "{out}": str(tmp_path / "out"),
        "{dir}": str(tmp_path / "a_dir"),
        "{file}": str(tmp_path / "a_file"),
        "{trace}": str(tmp_path / "trace.csv"),
    }
    filled = []
    for a in args:
        for k, v in paths.items():
            a = a.replace(k, v)
        filled.append(a)
    return filled


def _tree(d: Path) -> dict[str, bytes | None]:
    return {str(p): (p.read_bytes() if p.is_file() else None) for p in sorted(d.rglob("*"))}


def assert_refused(args: list[str], needles: list[str], tmp_path: Path) -> str:
    before = _tree(tmp_path)
    r = runner.invoke(app, args)
    out = r.output.strip()
    assert r.exit_code == 2, out
    assert "Traceback" not in out
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    assert len(out.splitlines()) == 1, out
    assert out.startswith("error:"), out
    for n in needles:
        assert n in out, (n, out)
    assert _tree(tmp_path) == before  # nothing written, no directory created
    return out


@pytest.mark.parametrize("args, needles", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    args: list[str], needles: list[str], no_heavy_work: Path
):
    assert_refused(_fill(args, no_heavy_work), needles, no_heavy_work)


def test_the_table_covers_every_command():
    heads = {tuple(c[1][:2]) for c in CASES}
    assert len(CASES) >= 40
    for want in (
        ("trace", "synth"),
        ("trace", "info"),
        ("validate", "queueing"),
        ("validate", "engine"),
        ("profile", "check"),
        ("profile", "--model"),
    ):
        assert want in heads, want


def _no_cuda_torch() -> str | None:
    from sunsim.profiling import torch_available

    if not torch_available():
        return "torch is not installed (the message is then the install hint)"
    import torch

    if torch.cuda.is_available():
        return "this machine has CUDA: --device cuda is not bad input here"
    return None


@pytest.mark.parametrize("command", [PROFILE, ENGINE], ids=["profile", "engine"])
def test_cuda_without_cuda_is_one_line(command: list[str], no_heavy_work: Path):
    reason = _no_cuda_torch()
    if reason:
        pytest.skip(reason)
    args = _fill([*command, "--device", "cuda"], no_heavy_work)
    assert_refused(args, ["--device", "'cuda'", "no CUDA device", "--device cpu"], no_heavy_work)


def test_engine_model_too_big_for_memory(monkeypatch, no_heavy_work: Path):
    import sunsim.cli.validate_engine_checks as vec

    monkeypatch.setattr(vec, "memory_bytes", lambda: 8 * 2**30)
    args = _fill([*ENGINE, "--model", "llama-3.1-8b"], no_heavy_work)
    assert_refused(args, ["--model llama-3.1-8b", "GiB", "tiny-llama"], no_heavy_work)


def test_default_out_is_not_created_on_bad_input(no_heavy_work: Path):
    args = _fill(["validate", "engine", "--trace", "{trace}", "--requests", "0"], no_heavy_work)
    assert_refused(args, ["--requests"], no_heavy_work)
    assert not (no_heavy_work / "runs").exists()
