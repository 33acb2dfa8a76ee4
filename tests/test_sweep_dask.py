"""``sunsim sweep`` on real Dask processes: a scheduler and two workers started with
``dask scheduler`` / ``dask worker`` on 127.0.0.1 give the same table as the default local
cluster; a sweep killed midway and run again runs only the points it had not finished."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import REPO, require_trace

pytestmark = pytest.mark.slow

SWEEP_ENV = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=10)


@pytest.fixture
def dask_cluster(tmp_path: Path):
    """A ``dask scheduler`` and two single-threaded ``dask worker`` processes on 127.0.0.1
    (random free port, no dashboards); yields the scheduler address; stops them after."""
    from distributed import Client

    addr = f"tcp://127.0.0.1:{_free_port()}"
    port = addr.rsplit(":", 1)[1]
    dask = [sys.executable, "-m", "dask"]
    log = open(tmp_path / "dask.log", "w")  # noqa: SIM115  (closed below)
    procs = [
        subprocess.Popen(
            [*dask, "scheduler", "--host", "127.0.0.1", "--port", port, "--no-dashboard"],
            env=SWEEP_ENV,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    ]
    try:
        for i in range(2):
            procs.append(
                subprocess.Popen(
                    [
                        *dask,
                        "worker",
                        addr,
                        "--host",
                        "127.0.0.1",
                        "--nthreads",
                        "1",
                        "--nworkers",
                        "1",
                        "--no-dashboard",
                        "--name",
                        f"w{i}",
                    ],
                    env=SWEEP_ENV,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        with Client(addr, timeout=60) as c:
            c.wait_for_workers(2, timeout=90)
        yield addr
    finally:
        _stop(procs)
        log.close()


def _grid(tmp_path: Path, rates: list[float]) -> Path:
    trace = require_trace("azure_llm_2023_conv.csv")
    p = tmp_path / "grid.toml"
    p.write_text(
        f"""
[trace]
path = "{trace}"
[cluster]
modes = ["partitioned", "sun"]
[latency]
source = "roofline"
[sweep]
kind = "replay"
[sweep.axes]
rate = {{ key = "trace.rate_scale", values = {rates} }}
"""
    )
    return p


def _sweep(grid: Path, out: Path, *args: str, timeout: float = 300) -> str:
    cmd = [sys.executable, "-m", "sunsim", "sweep", str(grid), "--no-progress", "--out", str(out)]
    res = subprocess.run(
        [*cmd, *args], env=SWEEP_ENV, capture_output=True, text=True, timeout=timeout
    )
    assert res.returncode == 0, res.stdout + res.stderr
    return res.stdout


def _counts(text: str) -> tuple[int, int]:
    m = re.search(r"(\d+) points: (\d+) cached, (\d+) run", text)
    assert m, text
    return int(m.group(2)), int(m.group(3))


def test_scheduler_and_two_workers_give_the_local_table(tmp_path: Path, dask_cluster: str):
    grid = _grid(tmp_path, [1.0, 2.0, 4.0, 8.0])
    out = _sweep(
        grid,
        tmp_path / "remote",
        "--scheduler",
        dask_cluster,
        "--max-requests",
        "200",
        "--cache-dir",
        str(tmp_path / "c1"),
    )
    assert f"Dask scheduler {dask_cluster} (2 workers)" in out
    assert _counts(out) == (0, 4)
    local = _sweep(
        grid,
        tmp_path / "local",
        "--max-requests",
        "200",
        "--workers",
        "2",
        "--cache-dir",
        str(tmp_path / "c2"),
    )
    assert "LocalCluster (2 workers)" in local and _counts(local) == (0, 4)
    a = pd.read_parquet(tmp_path / "remote" / "results.parquet")
    b = pd.read_parquet(tmp_path / "local" / "results.parquet")
    assert len(a) == 4 * 2 and a["requests"].eq(200).all()
    pd.testing.assert_frame_equal(a, b)


def test_killed_sweep_reruns_only_the_missing_points(tmp_path: Path):
    rates = [1.0, 1.5, 2.0, 3.0, 4.0, 6.0]
    grid = _grid(tmp_path, rates)
    cache = tmp_path / "cache"
    cmd = [
        sys.executable,
        "-m",
        "sunsim",
        "sweep",
        str(grid),
        "--no-progress",
        "--workers",
        "1",
        "--max-requests",
        "1500",
        "--cache-dir",
        str(cache),
        "--out",
        str(tmp_path / "o"),
    ]
    # its own process group, so that the kill takes the local cluster's processes too
    proc = subprocess.Popen(
        cmd,
        env=SWEEP_ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    entries = lambda: list((cache / "sweep").glob("??/*.json"))  # noqa: E731
    deadline = time.monotonic() + 240
    try:
        while len(entries()) < 2 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    done_before = len(entries())
    assert proc.returncode == -signal.SIGKILL, "the sweep finished before it was killed"
    assert 2 <= done_before < len(rates)
    out = _sweep(
        grid, tmp_path / "o", "--workers", "1", "--max-requests", "1500", "--cache-dir", str(cache)
    )
    cached, ran = _counts(out)
    assert (cached, ran) == (done_before, len(rates) - done_before)
    t = pd.read_parquet(tmp_path / "o" / "results.parquet")
    assert sorted(t["point"].unique()) == list(range(len(rates)))
    assert len(entries()) == len(rates)


def test_plan_on_a_dask_clients_executor(dask_cluster: str):
    from distributed import Client

    from sunsim.config import Scenario
    from sunsim.planner import PlanOptions, plan
    from sunsim.replay import DEFAULT_TRACE

    s = Scenario(
        trace=str(DEFAULT_TRACE),
        max_requests=120,
        rate_scale=40.0,
        latency="roofline",
        slo_ttft_s=0.5,
        slo_tpot_s=0.012,
        modes=("partitioned", "sun"),
    )
    serial = plan(s, PlanOptions(jobs=1))
    with Client(dask_cluster, timeout=60) as client:
        on_dask = plan(s, PlanOptions(), executor=client.get_executor())
    assert on_dask.jobs == 0 and on_dask.num_simulations == serial.num_simulations
    pd.testing.assert_frame_equal(serial.table(), on_dask.table())
