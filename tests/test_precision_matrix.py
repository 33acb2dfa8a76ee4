"""``sunsim replay`` and ``sunsim plan`` on H100, H200, A100 and B200 for Llama-3.1-8B and
Qwen3-8B in BF16, FP8 (``--precision fp8``) and the QSUN precisions (``--mode qsun
--qsun-precision w8a16|w4a16``) run on the bundled imported profiles and say so.

Which bundled profile directory each (GPU, precision) must use is written out here by hand,
from sunsim/data/profiles/README.md ("What is here"), not taken from the resolver; the label
each must print is built from that directory's ``meta.json`` in the documented format
(``measured (aiconfigurator-core 0.12.0, vllm 0.24.0, h100_sxm)``, ``derived
(aiconfigurator-core 0.12.0: h100_sxm vllm 0.24.0 BF16 x a100_sxm trtllm 1.0.0 W4A16/BF16
ratio)``). Every cell is one replay of 8 requests through the CLI (human output and
summary.json); ``plan`` (plan.json), ``--json`` and ``report`` run on a subset.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sunsim.cli import app
from sunsim.data import profiles_root
from sunsim.latency.catalog import PRECISIONS

GPUS = ("h100", "h200", "a100", "b200")
MODELS = ("llama-3.1-8b", "qwen3-8b")
#: cell -> (``--precision``, design, ``--qsun-precision``)
CELLS = {
    "bf16": ("bf16", "sun", None),
    "fp8": ("fp8", "sun", None),
    "qsun-w8a16": ("bf16", "qsun", "w8a16"),
    "qsun-w4a16": ("bf16", "qsun", "w4a16"),
}
#: (GPU, weight precision) -> the bundled profile directory that must time it (README table).
EXPECTED_DIR = {
    **{(g, p): f"{g}-sxm-aic-vllm-0.24.0" for g in ("h100", "h200", "b200") for p in
       ("bf16", "fp8", "w8a16", "w4a16")},
    ("a100", "bf16"): "a100-sxm-aic-vllm-0.14.0",
    ("a100", "w8a16"): "a100-sxm-aic-trtllm-1.0.0",
    ("a100", "w4a16"): "a100-sxm-aic-trtllm-1.0.0",
}  # fmt: skip


def _label(gpu: str, model: str, precision: str) -> tuple[Path, str]:
    """The directory of (gpu, precision) and the step-time label its meta says it prints."""
    d = profiles_root() / EXPECTED_DIR[(gpu, precision)] / model / precision
    meta = json.loads((d / "meta.json").read_text(encoding="utf-8"))
    src = meta["source"]
    pkg = f"{src['package']} {src['package_version']}"
    if meta["method"] == "measured":
        return d, f"measured ({pkg}, {src['backend']} {src['backend_version']}, {src['system']})"
    assert meta["method"] == "derived", d
    don = src["derived_from"]
    return d, (
        f"derived ({pkg}: {src['system']} {src['backend']} {src['backend_version']} BF16 x "
        f"{don['system']} {don['backend']} {don['backend_version']} "
        f"{precision.upper()}/BF16 ratio)"
    )


def _expected(gpu: str, model: str, precision: str, decode: str) -> tuple[str, list[Path]]:
    """The design's full method label (decode label, then ``; prefill <label>`` when the
    prefill's differs) and the two profile directories (prefill, decode)."""
    pd_, pl = _label(gpu, model, precision)
    dd, dl = _label(gpu, model, decode)
    return (dl if dl == pl else f"{dl}; prefill {pl}"), [pd_, dd]


def _flat(text: str) -> str:
    """``text`` without whitespace (the console wraps long lines at its width)."""
    return "".join(text.split())


def _args(gpu: str, model: str, cell: str) -> list[str]:
    precision, mode, qsun = CELLS[cell]
    args = ["--gpu", gpu, "--model", model, "--precision", precision, "--mode", mode]
    return args + (["--qsun-precision", qsun] if qsun else []) + ["--max-requests", "8"]


def _decode_precision(cell: str) -> str:
    precision, _, qsun = CELLS[cell]
    return qsun or precision


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("gpu", GPUS)
def test_replay_runs_on_the_bundled_profile_and_says_so(
    tmp_path: Path, gpu: str, model: str, cell: str
) -> None:
    out_dir = tmp_path / "run"
    res = CliRunner().invoke(
        app, ["replay", *_args(gpu, model, cell), "--no-progress", "-o", str(out_dir)]
    )
    precision, mode, _ = CELLS[cell]
    if gpu == "a100" and precision == "fp8":  # no FP8 tensor cores: one line, exit 2
        assert res.exit_code == 2, res.output
        err = res.stderr.strip()
        assert "\n" not in err and err.startswith("error: --precision: fp8")
        assert "no FP8 tensor cores" in err and "Traceback" not in res.output
        assert not (out_dir / "summary.json").exists()
        return
    assert res.exit_code == 0, res.output
    method, dirs = _expected(gpu, model, precision, _decode_precision(cell))
    flat = _flat(res.stdout)
    assert _flat(f"step times: {mode}: {method}") in flat
    for role, d in zip(("prefill", "decode"), dirs, strict=True):
        assert _flat(f"latency {role}: ") in flat and _flat(f"from {d}") in flat
    assert "analytic" not in method and "roofline" not in res.stdout.split("sunsim replay on")[0]
    summary = json.loads((out_dir / "summary.json").read_text(encoding="utf-8"))
    assert summary["modes"][mode]["method"] == method
    assert summary["results"]["step_times"][mode]["method"] == method
    assert [s.rsplit(" from ", 1)[1] for s in summary["latency_sources"]] == [str(d) for d in dirs]


#: plan on a subset: one (GPU, model) per GPU, the FP8 weights with a QSUN decode where FP8
#: runs (prefill at FP8, qsun's decode at its own precision).
PLANS = [
    ("h100", "qwen3-8b", "fp8", "w8a16"),
    ("h200", "llama-3.1-8b", "bf16", "fp8"),
    ("a100", "qwen3-8b", "bf16", "w4a16"),
    ("b200", "llama-3.1-8b", "fp8", "w4a16"),
]


@pytest.mark.parametrize(("gpu", "model", "precision", "qsun"), PLANS)
def test_plan_runs_on_the_bundled_profiles_and_says_so(
    tmp_path: Path, gpu: str, model: str, precision: str, qsun: str
) -> None:
    out_dir = tmp_path / "plan"
    args = ["plan", "--gpu", gpu, "--model", model, "--precision", precision, "--mode"]
    args += ["sun,qsun", "--qsun-precision", qsun, "--max-requests", "8", "--jobs", "1"]
    res = CliRunner().invoke(app, [*args, "--no-replays", "--no-progress", "-o", str(out_dir)])
    assert res.exit_code == 0, res.output
    want = {
        "sun": _expected(gpu, model, precision, precision)[0],
        "qsun": _expected(gpu, model, precision, qsun)[0],
    }
    by: dict[str, list[str]] = {}  # designs with the same source are listed together
    for m, x in want.items():
        by.setdefault(x, []).append(m)
    line = "step times: " + " | ".join(f"{', '.join(ms)}: {x}" for x, ms in by.items())
    assert _flat(line) in _flat(res.stdout)
    plan = json.loads((out_dir / "plan.json").read_text(encoding="utf-8"))
    got = {m: v["method"] for m, v in plan["results"]["step_times"].items()}
    assert got == want


@pytest.mark.slow
def test_replay_json_and_report_say_where_fp8_step_times_came_from(tmp_path: Path) -> None:
    """``--json`` carries ``step_times`` per design; ``sunsim report`` of the run names the
    full source in its answer table (B200, FP8 weights: FP8 prefill, qsun's W4A16 decode)."""
    out_dir = tmp_path / "run"
    args = ["replay", "--gpu", "b200", "--precision", "fp8", "--mode", "qsun"]
    args += ["--max-requests", "8", "--no-progress", "--json", "-o", str(out_dir)]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    got = json.loads(res.stdout)["step_times"]["qsun"]
    model = "llama-3.1-8b"
    method, _ = _expected("b200", model, "fp8", "w4a16")
    assert got["method"] == method and "; prefill measured (" in method
    assert f"{model} fp8" in got["prefill"] and f"{model} w4a16" in got["decode"]
    res = CliRunner().invoke(app, ["report", str(out_dir)])
    assert res.exit_code == 0, res.output
    assert method in (out_dir / "report.md").read_text(encoding="utf-8")


def test_precision_in_a_scenario_file_and_its_errors(tmp_path: Path) -> None:
    """``[cluster] precision`` round-trips through the run's scenario.toml; fp8 on the A100
    from a file is one line naming the file and key; an unknown precision lists the choices."""
    from sunsim.config import load_scenario
    from sunsim.errors import ConfigError

    f = tmp_path / "s.toml"
    f.write_text('[cluster]\ngpu = "h200"\nprecision = "fp8"\nqsun_precision = "fp8"\n')
    s = load_scenario(f)
    assert (s.precision, s.decode_precision("qsun"), s.decode_precision("sun")) == (
        "fp8",
        "fp8",
        "fp8",
    )
    assert s.prefill_precision == "fp8"
    f.write_text('[cluster]\ngpu = "a100"\nprecision = "fp8"\n')
    with pytest.raises(ConfigError) as e:
        load_scenario(f)
    assert str(f) in str(e.value) and "precision" in str(e.value) and "\n" not in str(e.value)
    res = CliRunner().invoke(app, ["replay", "--precision", "int3", "--max-requests", "8"])
    assert res.exit_code == 2 and "bf16" in res.stderr and "fp8" in res.stderr


@pytest.mark.slow
def test_readme_precisions_table_is_the_generated_one() -> None:
    """The README's "Precisions" table is ``python -m sunsim.latency.catalog``'s output (every
    cell resolved as replay/plan resolve it), and it agrees with this file's hand-written
    expectations for the 8B models at one GPU per worker."""
    from sunsim.latency.catalog import catalog_markdown

    readme = Path(__file__).resolve().parents[1] / "README.md"
    if not readme.is_file():
        pytest.skip("no README.md next to tests/")
    text = readme.read_text(encoding="utf-8")
    start = text.index("<!-- precisions-table: python -m sunsim.latency.catalog -->\n")
    block = text[start:].split("\n", 1)[1].split("\n<!-- /precisions-table -->")[0]
    table = catalog_markdown()
    assert block == table, "README Precisions table is stale: python -m sunsim.latency.catalog"
    cells = {}
    for r in table.splitlines()[2:]:
        c = [x.strip() for x in r.split("|")[1:-1]]
        cells.update({(c[0], c[1], c[2], p): v for p, v in zip(PRECISIONS, c[3:], strict=True)})
    for gpu in GPUS:
        for model in MODELS:
            for p in PRECISIONS:
                got = cells[(gpu, model, "1", p)]
                if (gpu, p) not in EXPECTED_DIR:
                    assert got == "refused (exit 2)"
                    continue
                d = profiles_root() / EXPECTED_DIR[(gpu, p)] / model / p
                src = json.loads((d / "meta.json").read_text(encoding="utf-8"))["source"]
                want = "measured" if "derived_from" not in src else "derived"
                assert got.startswith(f"{want} (")
                assert want == "derived" or f"{src['backend']} {src['backend_version']}" in got


def test_plan_gpus_with_fp8_ranks_the_gpus_that_run_it(tmp_path: Path) -> None:
    """``plan --gpus h100,a100 --precision fp8``: the A100 (no FP8 tensor cores) is listed as
    a failure with the reason, the H100 is planned on its measured FP8 profile."""
    args = ["plan", "--gpus", "h100,a100", "--precision", "fp8", "--mode", "sun"]
    args += ["--max-requests", "8", "--jobs", "1", "--no-replays", "--no-progress"]
    res = CliRunner().invoke(app, [*args, "-o", str(tmp_path / "p")])
    assert res.exit_code == 0, res.output
    flat = _flat(res.stdout)
    assert _flat("sun on a100: precision: fp8 (W8A8) on a100") in flat
    assert _flat(f"from {_label('h100', 'llama-3.1-8b', 'fp8')[0]}") in flat
