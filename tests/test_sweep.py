"""``sunsim sweep``: grid files expand to the product of their axes plus explicit points, bad
grids are one line naming file and key (exit 2), a sweep run twice answers every point from
the cache with the same table, and a plan sweep gives each point's plan."""

from __future__ import annotations

import concurrent.futures as cf
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from sunsim.cache import ResultCache
from sunsim.cli import app
from sunsim.replay import DEFAULT_TRACE
from sunsim.sweep import read_grid, run_sweep

BASE = f"""
[trace]
path = "{DEFAULT_TRACE}"
max_requests = 120
rate_scale = 20.0

[latency]
source = "roofline"

[cluster]
modes = ["partitioned", "sun"]
"""


def _grid(tmp_path: Path, sweep: str, base: str = BASE, name: str = "grid.toml") -> Path:
    p = tmp_path / name
    p.write_text(base + "\n" + sweep)
    return p


REPLAY_GRID = """
[sweep]
kind = "replay"
[sweep.axes]
rate = { key = "trace.rate_scale", values = [10.0, 40.0] }
"models.zipf" = [0.5, 1.5]
[[sweep.points]]
rate = 80.0
decode_workers = [5]
"""


def test_grid_expands_axes_then_explicit_points(tmp_path: Path):
    g = read_grid(_grid(tmp_path, REPLAY_GRID))
    assert g.kind == "replay" and [a.name for a in g.axes] == ["rate", "models.zipf"]
    assert len(g.points) == 5
    assert [p.scenario.rate_scale for p in g.points] == [10.0, 10.0, 40.0, 40.0, 80.0]
    assert [p.scenario.zipf for p in g.points[:4]] == [0.5, 1.5, 0.5, 1.5]
    last = g.points[-1].scenario
    assert last.decode_workers == (5,) and last.zipf is None and last.max_requests == 120
    cols = g.column_values(g.points[-1])
    assert cols == {"rate": 80.0, "models.zipf": None, "decode_workers": "5"}
    assert g.columns["decode_workers"] == ("cluster", "decode_workers")
    # --max-requests reaches every point; an axis over the same key would still win
    g2 = read_grid(_grid(tmp_path, REPLAY_GRID), {"trace": {"max_requests": 50}})
    assert {p.scenario.max_requests for p in g2.points} == {50}


@pytest.mark.parametrize(
    "sweep, words",
    [
        ("", "no [sweep] table"),
        ('[sweep]\nkind = "simulate"\n[sweep.axes]\nrate_scale = [1.0]', "[sweep] kind"),
        ('[sweep]\nkind = "replay"\nfoo = 1\n[sweep.axes]\nrate_scale = [1.0]', "foo"),
        ('[sweep]\nkind = "replay"', "no points"),
        ('[sweep]\n[sweep.axes]\n"trace.speed" = [1.0]', "trace.speed"),
        ("[sweep]\n[sweep.axes]\nrate_scale = []", "axes.rate_scale"),
        ("[sweep]\n[sweep.axes]\nrate_scale = 2.0", "axes.rate_scale"),
        ('[sweep]\n[sweep.axes]\nr = { key = "trace.rate_scale", vals = [1] }', "axes.r"),
        ("[sweep]\n[sweep.axes]\nrate_scale = [1.0, -2.0]", "rate_scale"),
        ('[sweep]\n[sweep.axes]\n"cluster.max_num_seqs" = ["many"]', "max_num_seqs"),
        ("[sweep]\n[[sweep.points]]\nnot_a_key = 3", "not_a_key"),
        ('[plan]\nslo_kind = "attainment"\n[sweep]\n[sweep.axes]\nrate_scale = [1.0]', "[plan]"),
        ('[sweep]\nkind = "plan"\n[sweep.axes]\nrate_scale = [1.0]\n[plan]\nbogus = 1', "bogus"),
        ("[sweep\n", "not valid TOML"),
    ],
)
def test_bad_grid_is_one_line_naming_file_and_key(tmp_path: Path, sweep: str, words: str):
    p = _grid(tmp_path, sweep)
    res = CliRunner().invoke(app, ["sweep", str(p), "--no-progress", "--out", str(tmp_path / "o")])
    assert res.exit_code == 2, res.output
    out = " ".join(res.output.split())
    assert words in out and str(p) in out, out
    assert "Traceback" not in res.output and len(res.output.strip().splitlines()) <= 3
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "args, words",
    [
        (["--workers", "0"], "--workers"),
        (["--max-requests", "0"], "--max-requests"),
        (["--scheduler", "tcp://127.0.0.1:1"], "--scheduler"),
    ],
)
def test_bad_sweep_options_are_one_line(tmp_path: Path, args, words, monkeypatch):
    monkeypatch.setattr("sunsim.sweep.cluster.CONNECT_TIMEOUT_S", 2)
    p = _grid(tmp_path, "[sweep]\n[sweep.axes]\nrate_scale = [30.0]")
    res = CliRunner().invoke(
        app, ["sweep", str(p), "--no-progress", "--out", str(tmp_path / "o"), *args]
    )
    assert res.exit_code == 2, res.output
    assert words in res.output and "Traceback" not in res.output


def test_missing_grid_file_is_one_line(tmp_path: Path):
    res = CliRunner().invoke(app, ["sweep", str(tmp_path / "nope.toml"), "--no-progress"])
    assert res.exit_code == 2 and "nope.toml" in res.output


def test_second_run_is_all_cached_with_the_same_table(tmp_path: Path):
    g = read_grid(_grid(tmp_path, REPLAY_GRID))
    cache = ResultCache(tmp_path / "cache", "sweep")
    with cf.ThreadPoolExecutor(1) as ex:
        first = run_sweep(g, ex, cache)
    assert (len(first.cached), len(first.ran), first.failed) == (0, 5, [])
    t = first.table
    assert len(t) == 5 * 2 and list(t.columns[:3]) == ["point", "rate", "models.zipf"]
    assert set(t["mode"]) == {"partitioned", "sun"}
    assert t["slo_attainment"].between(0, 1).all() and (t["throughput_tok_s"] > 0).all()
    # more load on the same cluster never raises attainment here
    sun = t[(t["mode"] == "sun") & (t["point"] < 4)].set_index("point")["slo_attainment"]
    assert sun[2] <= sun[0] and sun[3] <= sun[1]
    again = run_sweep(g, None, ResultCache(tmp_path / "cache", "sweep"))
    assert (len(again.cached), len(again.ran)) == (5, 0)
    pd.testing.assert_frame_equal(first.table, again.table)


def test_plan_sweep_gives_each_points_plan(tmp_path: Path):
    sweep = """
[slo]
ttft_s = 0.5
tpot_s = 0.012
[sweep]
kind = "plan"
[sweep.axes]
rate = { key = "trace.rate_scale", values = [10.0, 40.0] }
[plan]
max_workers = 64
"""
    p = _grid(tmp_path, sweep)
    res = CliRunner().invoke(
        app, ["sweep", str(p), "--no-progress", "--workers", "1", "--out", str(tmp_path / "o")]
    )
    assert res.exit_code == 0, res.output
    assert "2 points: 0 cached, 2 run" in res.output
    t = pd.read_parquet(tmp_path / "o" / "results.parquet")
    assert list(t["point"]) == [0, 0, 1, 1] and list(t["mode"]) == ["partitioned", "sun"] * 2
    gpus = t.set_index(["point", "mode"])["num_gpus"]
    assert gpus[(1, "sun")] >= gpus[(0, "sun")]  # four times the load, no fewer GPUs
    assert (t["slo_attainment"] >= 0.9).all()
    md = (tmp_path / "o" / "sweep.md").read_text()
    assert "| point | rate | mode | GPUs | tok/s/GPU |" in md and "step times: analytic" in md
    # the planned GPUs against the load axis, per design, as SVG and PNG, linked from sweep.md
    assert "![gpus_vs_rate](gpus_vs_rate.svg)" in md
    svg = (tmp_path / "o" / "gpus_vs_rate.svg").read_text()
    assert (
        "partitioned" in svg
        and "sun" in svg
        and (tmp_path / "o" / "gpus_vs_rate.png").stat().st_size
    )
    # the same grid again: both points from the cache, no cluster started
    res = CliRunner().invoke(app, ["sweep", str(p), "--no-progress", "--out", str(tmp_path / "o")])
    assert res.exit_code == 0 and "2 points: 2 cached, 0 run" in res.output, res.output
    assert "nothing to run" in (tmp_path / "o" / "sweep.md").read_text()


def test_a_failing_point_is_reported_not_cached_and_does_not_stop_the_sweep(tmp_path: Path):
    sweep = """
[slo]
tpot_s = 0.012
[sweep]
kind = "plan"
[sweep.axes]
"slo.ttft_s" = [0.5, 0.0001]
"""
    g = read_grid(_grid(tmp_path, sweep))
    cache = ResultCache(tmp_path / "cache", "sweep")
    with cf.ThreadPoolExecutor(1) as ex:
        r = run_sweep(g, ex, cache)
    assert r.failed == [1] and r.ran == [0]
    err = r.table.loc[r.table["point"] == 1, "error"]
    assert len(err) == 1 and "TTFT" in err.iloc[0]
    assert r.table.loc[r.table["point"] == 0, "error"].isna().all()
    assert len(cache.disk_keys()) == 1  # only the point that succeeded
    with cf.ThreadPoolExecutor(1) as ex:
        again = run_sweep(g, ex, ResultCache(tmp_path / "cache", "sweep"))
    assert again.cached == [0] and again.failed == [1]


def test_only_the_sweep_imports_dask():
    import subprocess
    import sys

    code = (
        "import sys, sunsim.cli, sunsim.replay, sunsim.planner, sunsim.sweep, sunsim.cache;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_sweep_figures_give_median_gpus_against_each_axis(tmp_path: Path):
    """GPUs against skew and against the number of models: per design, the median over the
    other axis of the planned GPUs; failed points left out; one SVG+PNG per axis."""
    from types import SimpleNamespace

    from sunsim.sweep.figures import gpus_by_axis, write_figures

    rows = []
    for z, n, part, sun in [
        (0.5, 2, 4, 3),
        (0.5, 8, 16, 9),
        (1.5, 2, 5, 3),
        (1.5, 8, 20, 11),
    ]:
        for mode, g in (("partitioned", part), ("sun", sun)):
            rows.append({"zipf": z, "num_models": n, "mode": mode, "num_gpus": g})
    rows.append({"zipf": 1.5, "num_models": 4, "mode": "sun", "num_gpus": 99, "error": "x"})
    t = pd.DataFrame(rows).assign(method="analytic")
    axes = [
        SimpleNamespace(name="zipf", section="models", key="zipf"),
        SimpleNamespace(name="num_models", section="models", key="num_models"),
    ]
    r = SimpleNamespace(grid=SimpleNamespace(kind="plan", axes=axes), table=t)
    f = gpus_by_axis(r)  # type: ignore[arg-type]
    assert f["num_models"].loc[8, "partitioned"] == 18 and f["num_models"].loc[2, "sun"] == 3
    assert f["zipf"].loc[1.5, "partitioned"] == 12.5 and 4 not in f["num_models"].index
    svgs = write_figures(r, tmp_path)  # type: ignore[arg-type]
    assert [p.name for p in svgs] == ["gpus_vs_zipf.svg", "gpus_vs_num_models.svg"]
    assert "number of served models" in (tmp_path / "gpus_vs_num_models.svg").read_text()
    r.grid.kind = "replay"
    assert gpus_by_axis(r) == {}  # type: ignore[arg-type]
