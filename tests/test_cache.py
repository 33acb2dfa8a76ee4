"""The content-addressed result cache: keys follow content (not paths or mtimes), profile
files are part of a key, writes are atomic and a damaged entry is a miss; the planner reuses
it across plans and takes an executor, also from inside a daemon (pool worker) process."""

from __future__ import annotations

import concurrent.futures as cf
import json
import math
import multiprocessing
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

from sunsim.cache import Fingerprints, ResultCache, content_key, default_cache_dir
from sunsim.config import Scenario
from sunsim.data import profiles_root
from sunsim.planner import PlanOptions, SimTask, plan, scenario_with, task_key, task_latency
from sunsim.replay import DEFAULT_TRACE

SMALL = Scenario(
    trace=str(DEFAULT_TRACE),
    max_requests=120,
    rate_scale=40.0,
    latency="roofline",
    slo_ttft_s=0.5,
    slo_tpot_s=0.012,
    modes=("partitioned", "sun"),
)


def _key(s: Scenario) -> str:
    fp = Fingerprints()
    return content_key("t", {"s": fp.scenario(s), "lat": fp.scenario_latency(s)})


def _plan_sim_key(s: Scenario) -> str:
    task = SimTask("p0", 1.0, None, False, s.cluster("sun"), s)
    return task_key(task, Fingerprints(), task_latency(task))


def test_same_trace_bytes_elsewhere_and_touched_give_the_same_key(tmp_path: Path):
    copy = tmp_path / "copy.csv"
    shutil.copyfile(DEFAULT_TRACE, copy)
    os.utime(copy, (1_000_000, 1_000_000))  # another mtime, another path
    a, b = SMALL, scenario_with(SMALL, trace=str(copy))
    assert _key(a) == _key(b)
    assert _plan_sim_key(a) == _plan_sim_key(b)
    # one byte more: another key, whatever the mtime
    st = copy.stat()
    copy.write_bytes(copy.read_bytes() + b"\n")
    os.utime(copy, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert _key(b) != _key(a)
    assert _plan_sim_key(b) != _plan_sim_key(a)


def test_changed_profile_file_gives_another_key(tmp_path: Path):
    src = next(p for p in profiles_root().glob("h100-*/llama-3.1-8b/bf16") if p.is_dir())
    prof = tmp_path / "prof" / "llama-3.1-8b" / "bf16"
    shutil.copytree(src, prof)
    s = scenario_with(SMALL, latency="profile", profile=str(prof), modes=("sun",))
    k1, t1 = _key(s), _plan_sim_key(s)
    assert (k1, t1) == (_key(s), _plan_sim_key(s))  # deterministic
    decode = prof / "decode.csv"
    df = pd.read_csv(decode)
    for c in ("time_s_median", "time_s_p10", "time_s_p90"):
        df[c] = df[c] * 1.1  # a slower device, re-measured
    df.to_csv(decode, index=False)
    assert _key(s) != k1
    assert _plan_sim_key(s) != t1


def test_scenario_settings_are_in_the_key():
    assert _key(SMALL) != _key(scenario_with(SMALL, slo_ttft_s=0.6))
    assert _key(SMALL) != _key(scenario_with(SMALL, gpu="a100"))


def test_result_cache_round_trip_and_damaged_entries(tmp_path: Path):
    c = ResultCache(tmp_path, "ns")
    value = {"rows": [{"a": 1.5, "b": float("nan"), "c": "x", "d": True}], "n": 3}
    c.put("ab" + "0" * 62, value)
    fresh = ResultCache(tmp_path, "ns")  # another process's view: from disk
    got = fresh.get("ab" + "0" * 62)
    assert got["n"] == 3 and got["rows"][0]["a"] == 1.5 and math.isnan(got["rows"][0]["b"])
    assert fresh.disk_keys() == ["ab" + "0" * 62]
    assert not list((tmp_path / "ns").rglob("*.tmp"))  # no temporary file left
    # a torn or foreign file is a miss, never an error
    p = tmp_path / "ns" / "cd" / ("cd" + "1" * 62 + ".json")
    p.parent.mkdir(parents=True)
    p.write_text('{"key": "cd')
    assert ResultCache(tmp_path, "ns").get("cd" + "1" * 62) is None
    p.write_text(json.dumps({"key": "other", "value": 1}))
    assert ResultCache(tmp_path, "ns").get("cd" + "1" * 62) is None
    assert ResultCache(None, "ns").get("ab" + "0" * 62) is None  # memory only


def _write_many(root: str, key: str, n: int) -> int:
    c = ResultCache(root, "race")
    bad = 0
    for _ in range(n):
        c.put(key, {"payload": list(range(2000))})
        if ResultCache(root, "race").get(key) is None:
            bad += 1
    return bad


def test_concurrent_writers_never_leave_a_torn_entry(tmp_path: Path):
    key = "ef" + "2" * 62
    with cf.ProcessPoolExecutor(2) as ex:
        bad = sum(ex.map(_write_many, [str(tmp_path)] * 2, [key] * 2, [40] * 2))
    assert bad == 0
    assert ResultCache(tmp_path, "race").get(key)["payload"][-1] == 1999
    assert not list((tmp_path / "race").rglob("*.tmp"))


def test_default_cache_dir_follows_the_environment(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("SUNSIM_CACHE_DIR", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("SUNSIM_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert default_cache_dir() == tmp_path / "x" / "sunsim"


def test_plans_share_the_cache_on_disk(tmp_path: Path):
    opts = PlanOptions(jobs=1, cache_dir=str(tmp_path))
    r1 = plan(SMALL, opts)
    assert r1.num_cached == 0 and r1.num_simulations > 0
    r2 = plan(SMALL, opts)
    # every search simulation comes from the cache; only each mode's final run (whose
    # records are kept, so never cached) is simulated again
    assert r2.num_simulations == len(SMALL.modes)
    assert r2.num_cached >= r1.num_simulations - len(SMALL.modes)
    pd.testing.assert_frame_equal(r1.table(), r2.table())


def _plan_in_worker(jobs: int) -> tuple[int, list[int]]:
    r = plan(SMALL, PlanOptions(jobs=jobs))
    return r.jobs, [r.points[0].modes[m].num_gpus for m in SMALL.modes]


def test_plan_takes_an_executor_and_runs_inside_a_pool_worker():
    serial = plan(SMALL, PlanOptions(jobs=1))
    with cf.ProcessPoolExecutor(2) as ex:
        given = plan(SMALL, PlanOptions(jobs=1), executor=ex)
    # a multiprocessing.Pool worker is a daemon process (as a Dask worker is): plan(jobs=2)
    # there runs serially instead of failing with "daemonic processes are not allowed to
    # have children"
    with multiprocessing.Pool(1) as pool:
        jobs, gpus = pool.apply_async(_plan_in_worker, (2,)).get(timeout=300)
    assert given.jobs == 0 and jobs == 1
    pd.testing.assert_frame_equal(serial.table(), given.table())
    assert gpus == [serial.points[0].modes[m].num_gpus for m in SMALL.modes]


def test_unwritable_cache_dir_is_one_line(tmp_path: Path):
    from typer.testing import CliRunner

    from sunsim.cli import app

    f = tmp_path / "file"
    f.write_text("x")
    res = CliRunner().invoke(
        app,
        [
            "plan",
            str(DEFAULT_TRACE),
            "--max-requests",
            "50",
            "--latency",
            "roofline",
            "--no-progress",
            "--jobs",
            "1",
            "--cache-dir",
            str(f / "sub"),
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert res.exit_code == 2, res.output
    assert "--cache-dir" in res.output and "Traceback" not in res.output


@pytest.mark.parametrize("bad", ["", "x"])
def test_memory_only_cache_has_no_directory(bad):
    c = ResultCache(None, bad)
    c.put("k", 1)
    assert c.get("k") == 1 and c.directory is None and c.disk_keys() == []
