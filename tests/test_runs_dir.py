"""sunsim.runs: writing a run directory, reading it back, preparing ``--out``; and
``sunsim report`` on damaged run directories: one line naming the file, exit 2, no traceback.
"""

from __future__ import annotations

import json
import os
import shutil
import tomllib
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from sunsim.cli import app
from sunsim.metrics import RunSummary
from sunsim.replay import DEFAULT_TRACE
from sunsim.runs import (
    PLAN,
    REPLAY,
    RunDirError,
    detect_kind,
    prepare_run_dir,
    read_run,
)

SMALL = ["--max-requests", "120", "--latency", "roofline", "--no-progress"]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small replay run of all three designs, written by ``sunsim replay``."""
    d = tmp_path_factory.mktemp("runs") / "run"
    res = CliRunner().invoke(app, ["replay", str(DEFAULT_TRACE), *SMALL, "--out", str(d)])
    assert res.exit_code == 0, res.output
    return d


@pytest.fixture
def run_dir(pristine: Path, tmp_path: Path) -> Path:
    """A fresh copy of the pristine run to damage."""
    return Path(shutil.copytree(pristine, tmp_path / "run"))


# --- write and read back -----------------------------------------------------------------


def test_read_run_gives_back_what_was_written(pristine: Path):
    run = read_run(pristine)
    meta = json.loads((pristine / "summary.json").read_text())
    assert run.kind == REPLAY == meta["kind"] == detect_kind(pristine)
    assert list(run.summaries) == ["partitioned", "sun", "qsun"] == list(meta["modes"])
    for mode, s in run.summaries.items():
        assert isinstance(s, RunSummary)
        assert s == RunSummary.from_dict(meta["modes"][mode])
        assert len(run.records[mode]) == s.requests.total == 120
        assert run.records[mode].equals(pd.read_parquet(pristine / f"records_{mode}.parquet"))
        assert len(run.timelines[mode]) and len(run.decode_workers[mode])
        assert int(run.itl[mode]["tokens"].sum()) > 0
    assert "modes" not in run.meta and run.meta["model_counts"]
    assert run.method == "analytic"
    assert "[trace]" in run.scenario_toml


def test_scenario_toml_trace_path_is_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # a relative trace path on the command line is written as an absolute one, so the
    # scenario repeats the run from any directory
    monkeypatch.chdir(tmp_path)
    shutil.copy(DEFAULT_TRACE, tmp_path / "trace.csv")
    res = CliRunner().invoke(app, ["replay", "trace.csv", *SMALL, "--mode", "sun", "--out", "r"])
    assert res.exit_code == 0, res.output
    text = (tmp_path / "r" / "scenario.toml").read_text()
    path = Path(tomllib.loads(text)["trace"]["path"])
    assert path.is_absolute() and path == (tmp_path / "trace.csv").resolve()
    first = text.splitlines()[0]
    assert first.endswith(str((tmp_path / "r" / "scenario.toml").resolve()))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    res = CliRunner().invoke(
        app,
        ["replay", "--scenario", str(tmp_path / "r" / "scenario.toml"), "--no-progress",
         "--out", "again"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    again = read_run(elsewhere / "again")
    assert again.records["sun"].equals(read_run(tmp_path / "r").records["sun"])


def test_default_trace_in_scenario_toml_is_absolute(pristine: Path):
    path = Path(tomllib.loads((pristine / "scenario.toml").read_text())["trace"]["path"])
    assert path.is_absolute() and path.samefile(DEFAULT_TRACE)


# --- prepare_run_dir ----------------------------------------------------------------------


def test_prepare_run_dir_creates_nested_directories(tmp_path: Path):
    out = tmp_path / "a" / "b"
    assert prepare_run_dir(out, force=False) == out and out.is_dir()
    assert list(out.iterdir()) == []  # the write check leaves nothing behind
    assert prepare_run_dir(out, force=False) == out  # an empty directory is fine


@pytest.mark.parametrize("marker", ["summary.json", "plan.json"])
def test_prepare_run_dir_refuses_a_run_unless_forced(tmp_path: Path, marker: str):
    out = tmp_path / "out"
    out.mkdir()
    (out / marker).write_text("{}")
    (out / "records_sun.parquet").write_bytes(b"old")
    (out / "replay_sun").mkdir()
    (out / "replay_sun" / "summary.json").write_text("{}")
    (out / "notes.txt").write_text("mine")
    with pytest.raises(RunDirError, match="already holds a run.*--force"):
        prepare_run_dir(out, force=False)
    assert (out / marker).exists()
    prepare_run_dir(out, force=True)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]  # the user's file stays


def test_prepare_run_dir_refuses_a_file(tmp_path: Path):
    f = tmp_path / "f"
    f.write_text("x")
    with pytest.raises(RunDirError, match="not a directory"):
        prepare_run_dir(f, force=True)


def test_prepare_run_dir_refuses_an_unwritable_directory(tmp_path: Path):
    if os.geteuid() == 0:
        pytest.skip("running as root: every directory is writable")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(RunDirError, match="cannot write there"):
            prepare_run_dir(ro / "out", force=False)
    finally:
        ro.chmod(0o700)


def test_prepare_run_dir_under_a_file_is_one_error(tmp_path: Path):
    # works as root too: a directory cannot be made below a regular file
    (tmp_path / "f").write_text("x")
    with pytest.raises(RunDirError, match="cannot write there"):
        prepare_run_dir(tmp_path / "f" / "out", force=False)


# --- sunsim report on damaged run directories -----------------------------------------------


def _edit_json(name: str, edit: Callable[[dict], object]) -> Callable[[Path], None]:
    def apply(d: Path) -> None:
        data = json.loads((d / name).read_text())
        edit(data)
        (d / name).write_text(json.dumps(data))

    return apply


def _records_to_csv(d: Path) -> Path:
    """Turn the sun records into CSV (as --records-format csv writes them)."""
    df = pd.read_parquet(d / "records_sun.parquet")
    (d / "records_sun.parquet").unlink()
    p = d / "records_sun.csv"
    df.to_csv(p, index=False)
    return p


def _truncate(p: Path, frac: float = 0.5) -> None:
    data = p.read_bytes()
    p.write_bytes(data[: int(len(data) * frac)])


def _csv_truncated(d: Path) -> None:
    _truncate(_records_to_csv(d), 0.6)


def _csv_bad_value(d: Path) -> None:
    p = _records_to_csv(d)
    df = pd.read_csv(p)
    df["ttft_s"] = df["ttft_s"].astype(object)
    df.loc[3, "ttft_s"] = "fast"
    df.to_csv(p, index=False)


def _parquet_edit(edit: Callable[[pd.DataFrame], pd.DataFrame]) -> Callable[[Path], None]:
    def apply(d: Path) -> None:
        p = d / "records_sun.parquet"
        edit(pd.read_parquet(p)).to_parquet(p, index=False)

    return apply


def _csv_edit(name: str, edit: Callable[[pd.DataFrame], pd.DataFrame]) -> Callable[[Path], None]:
    def apply(d: Path) -> None:
        p = d / name
        edit(pd.read_csv(p)).to_csv(p, index=False)

    return apply


def _write(name: str, data: bytes) -> Callable[[Path], None]:
    return lambda d: (d / name).write_bytes(data)


def _del_mode_key(key: str) -> Callable[[dict], None]:
    return lambda s: s["modes"]["sun"].pop(key)


def _set_total(s: dict) -> None:
    s["modes"]["sun"]["requests"]["total"] = "120"


def _set_per_model(s: dict) -> None:
    s["modes"]["sun"]["per_model"]["math"] = [1, 2]


def _plan_without_csv(d: Path) -> None:
    meta = {
        "kind": "plan",
        "options": {},
        "slo": {},
        "reference_point": 0,
        "table": [],
        "points": [{}],
    }
    (d / "plan.json").write_text(json.dumps(meta))


DAMAGE = {
    # summary.json
    "summary truncated": (
        lambda d: _truncate(d / "summary.json"),
        "summary.json",
        "not valid JSON",
    ),
    "summary empty": (_write("summary.json", b""), "summary.json", "not valid JSON"),
    "summary not UTF-8": (
        _write("summary.json", b"\xff\xfe\x00garbage"),
        "summary.json",
        "cannot read",
    ),
    "summary a list": (_write("summary.json", b"[1, 2]"), "summary.json", "expected a JSON object"),
    "summary without modes": (
        _edit_json("summary.json", lambda s: s.pop("modes")),
        "summary.json",
        'no "modes"',
    ),
    "summary of another kind": (
        _edit_json("summary.json", lambda s: s.update(kind="plan")),
        "summary.json",
        "not 'replay'",
    ),
    "mode without latency_s": (
        _edit_json("summary.json", _del_mode_key("latency_s")),
        "summary.json",
        "modes.sun.latency_s: missing",
    ),
    "count as a string": (
        _edit_json("summary.json", _set_total),
        "summary.json",
        "modes.sun.requests.total: expected an integer",
    ),
    "per-model not an object": (
        _edit_json("summary.json", _set_per_model),
        "summary.json",
        "modes.sun.per_model.math: expected an object",
    ),
    "trace facts not an object": (
        _edit_json("summary.json", lambda s: s.update(trace="x")),
        "summary.json",
        '"trace" should be an object',
    ),
    # records
    "records missing": (
        lambda d: (d / "records_sun.parquet").unlink(),
        "records_sun.parquet/.csv",
        "missing",
    ),
    "records garbage": (
        _write("records_sun.parquet", b"not a parquet file at all"),
        "records_sun.parquet",
        "cannot read records",
    ),
    "records truncated": (
        lambda d: _truncate(d / "records_sun.parquet"),
        "records_sun.parquet",
        "cannot read records",
    ),
    "records without ttft_s": (
        _parquet_edit(lambda df: df.drop(columns="ttft_s")),
        "records_sun.parquet",
        "missing column(s) ttft_s",
    ),
    "records short of rows": (
        _parquet_edit(lambda df: df.iloc[:50]),
        "records_sun.parquet",
        "50 rows but summary.json counts 120",
    ),
    "records csv truncated": (
        _csv_truncated,
        "records_sun.csv",
        "rows but summary.json counts 120",
    ),
    "records csv bad value": (
        _csv_bad_value,
        "records_sun.csv",
        "row 4, column 'ttft_s': not a number",
    ),
    "records csv empty": (
        lambda d: _records_to_csv(d).write_bytes(b""),
        "records_sun.csv",
        "cannot read records",
    ),
    # per-mode CSVs
    "timeline wrong columns": (
        _csv_edit("timeline_sun.csv", lambda df: df.rename(columns={"t_s": "time"})),
        "timeline_sun.csv",
        "missing column(s) t_s",
    ),
    "decode workers empty": (
        _write("decode_workers_sun.csv", b""),
        "decode_workers_sun.csv",
        "cannot read",
    ),
    "decode workers wrong columns": (
        _write("decode_workers_sun.csv", b"a,b\n1,2\n"),
        "decode_workers_sun.csv",
        "missing column(s) worker, pool",
    ),
    "batch time not numbers": (
        _csv_edit("batch_time_sun.csv", lambda df: df.assign(seconds="lots")),
        "batch_time_sun.csv",
        "column 'seconds': not a number",
    ),
    "kv time binary": (
        _write("kv_time_sun.csv", bytes(range(256)) * 4),
        "kv_time_sun.csv",
        "cannot read",
    ),
    "itl wrong columns": (
        _csv_edit("itl_sun.csv", lambda df: df.drop(columns="tokens")),
        "itl_sun.csv",
        "missing column(s) tokens",
    ),
    # plan directories
    "plan.json truncated": (
        _write("plan.json", b'{"kind": "plan", "poi'),
        "plan.json",
        "not valid JSON",
    ),
    "plan without plan.csv": (_plan_without_csv, "plan.csv", "missing"),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_report_on_a_damaged_run_is_one_line(run_dir: Path, case: str):
    damage, file, message = DAMAGE[case]
    damage(run_dir)
    res = CliRunner().invoke(app, ["report", str(run_dir)])
    out = res.output.strip()
    assert res.exit_code == 2, out
    assert "Traceback" not in out
    assert res.exception is None or isinstance(res.exception, SystemExit)
    assert len(out.splitlines()) == 1, out
    assert out.startswith("error:") and file in out and message in out, out
    assert not (run_dir / "report.html").exists()


def test_a_missing_worker_csv_is_an_empty_frame(run_dir: Path):
    # optional per-mode CSVs may be missing (e.g. copied without them): the report still works
    (run_dir / "timeline_sun.csv").unlink()
    run = read_run(run_dir)
    assert run.timelines["sun"].empty and list(run.timelines["sun"].columns)[:2] == [
        "worker",
        "t_s",
    ]
    res = CliRunner().invoke(app, ["report", str(run_dir)])
    assert res.exit_code == 0, res.output


def test_detect_kind(tmp_path: Path, pristine: Path):
    assert detect_kind(pristine) == REPLAY
    (tmp_path / "plan.json").write_text("{}")
    assert detect_kind(tmp_path) == PLAN
    with pytest.raises(RunDirError, match="no such directory"):
        detect_kind(tmp_path / "nope")


def test_plan_without_replays_reads_summaries_from_plan_json(tmp_path: Path):
    d = tmp_path / "plan"
    args = ["plan", str(DEFAULT_TRACE), *SMALL, "--mode", "partitioned,sun", "--jobs", "1"]
    args += ["--no-replays", "--out", str(d)]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    run = read_run(d)
    meta = json.loads((d / "plan.json").read_text())
    ref = meta["points"][meta["reference_point"]]["modes"]
    assert run.kind == PLAN and list(run.summaries) == list(ref)
    for mode, s in run.summaries.items():
        assert s == RunSummary.from_dict(ref[mode]["summary"])
    assert run.records == {} and run.plan_table is not None and len(run.plan_table) == len(ref)
    res = CliRunner().invoke(app, ["report", str(d)])
    assert res.exit_code == 0, res.output
    figs = d / "report_figures"
    assert (d / "report.html").stat().st_size > 0 and (figs / "gpus_cost.png").exists()
    assert not (figs / "ttft_cdf.png").exists()  # no records: left out, no placeholder
