"""``--stream-records`` with session arrivals (``after_previous``): the engine numbers calls
in send order, the streamed file holds the records in trace order, equal to the in-memory
records bit for bit; its summary is the in-memory one. Closed-loop clients refuse the option
in one line (they keep their records in memory)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from test_records_stream import stream_in_chunks
from test_session_loop import LAT, cluster
from typer.testing import CliRunner

from sunsim.cli import app
from sunsim.engine.session_loop import simulate_sessions
from sunsim.metrics import summarize
from sunsim.runs.stream import ParquetColumns, ParquetRecordSink
from sunsim.specs import SloSpec


def _sessions(n_sessions: int = 60, seed: int = 3) -> pd.DataFrame:
    """Sessions of 1-6 calls; later calls wait for their previous call, so they are sent in
    another order than the trace's rows; a few calls are too long (rejected on arrival)."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n_sessions):
        t = s * 0.3
        for k in range(int(rng.integers(1, 7))):
            t += float(rng.exponential(0.5))
            prompt = 200_000 if rng.random() < 0.05 else int(rng.integers(100, 3000))
            rows.append((t, str(rng.choice(["a", "b"])), prompt, int(rng.integers(1, 30)), s, k))
    cols = ["arrival_s", "model", "prompt_tokens", "output_tokens", "session_id", "turn"]
    return pd.DataFrame(rows, columns=cols).sort_values("arrival_s", ignore_index=True)


@pytest.mark.parametrize("design", ["sun", "partitioned", "colocated"])
@pytest.mark.parametrize("chunk_rows", [7, 64, 1 << 18])
def test_streamed_session_records_equal_in_memory(tmp_path, monkeypatch, design, chunk_rows):
    df = _sessions()
    cl = cluster(design, ("a", "b"))
    mem = simulate_sessions(df, cl, LAT, LAT, think_time_s=0.2, seed=4)
    order = mem.records["arrived_at"].to_numpy()
    assert (np.diff(order) < 0).any()  # sent in another order than the trace's rows
    assert (mem.records["status"] == "rejected").any()
    stream_in_chunks(monkeypatch, chunk_rows, drain_rows=5)
    path = tmp_path / "records.parquet"
    with ParquetRecordSink(path) as sink:
        streamed = simulate_sessions(df, cl, LAT, LAT, think_time_s=0.2, seed=4, records_sink=sink)
    assert streamed.records.empty and sink.num_rows == len(df)
    assert sink.num_row_groups == -(-len(df) // chunk_rows)  # trace-order chunks
    pd.testing.assert_frame_equal(pd.read_parquet(path), mem.records, check_categorical=True)
    slo = SloSpec(ttft_s=1.0, tpot_s=0.02)
    a, b = summarize(mem, slo), summarize(streamed, slo, ParquetColumns(path))
    da, db = a.to_dict(), b.to_dict()
    for d in (da, db):
        d["sim"].pop("wall_s")
    assert json.dumps(da) == json.dumps(db)


@pytest.fixture(scope="module")
def workflow_trace(tmp_path_factory):
    d = tmp_path_factory.mktemp("workflow")
    trace = d / "workflow.csv"
    args = ["trace", "workflow", str(trace), "--models", "a,b,c", "-n", "30"]
    res = CliRunner().invoke(app, [*args, "--session-rate", "4"])
    assert res.exit_code == 0, res.output
    return trace


@pytest.mark.parametrize("arrivals", ["after_previous", "timestamp"])
def test_replay_stream_records_with_sessions_gives_the_same_run_dir(
    workflow_trace, tmp_path, arrivals
):
    """Session replays stream (they used to ignore the option), and the streamed records
    keep the trace's ``session_id`` and ``turn`` columns as the in-memory ones do."""
    args = ["replay", str(workflow_trace), "--models", "a,b,c", "--latency", "roofline"]
    args += ["--mode", "sun,partitioned", "--no-progress", "--json"]
    args += ["--session-arrivals", arrivals]
    a, b = tmp_path / "mem", tmp_path / "streamed"
    runner = CliRunner()
    ra = runner.invoke(app, [*args, "--out", str(a)], catch_exceptions=False)
    assert ra.exit_code == 0, ra.output
    rb = runner.invoke(app, [*args, "--out", str(b), "--stream-records"], catch_exceptions=False)
    assert rb.exit_code == 0, rb.output
    assert json.loads(ra.stdout) == json.loads(rb.stdout)
    for mode in ("sun", "partitioned"):
        name = f"records_{mode}.parquet"
        ma, mb = pd.read_parquet(a / name), pd.read_parquet(b / name)
        assert {"session_id", "turn"} <= set(mb.columns)
        pd.testing.assert_frame_equal(ma, mb)
    sa, sb = (json.loads((d / "summary.json").read_text())["modes"] for d in (a, b))
    for s in (*sa.values(), *sb.values()):
        s["sim"].pop("wall_s")
    assert sa == sb


def test_closed_loop_refuses_stream_records_in_one_line(tmp_path):
    args = ["replay", "--max-concurrency", "4", "--num-prompts", "20", "--latency", "roofline"]
    args += ["--no-progress", "--stream-records", "--out", str(tmp_path / "r")]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2, res.output
    assert "--stream-records" in res.output and "closed-loop" in res.output
    assert "Traceback" not in res.output
    assert [ln for ln in res.output.splitlines() if "error" in ln.lower()] == [
        ln for ln in res.output.splitlines() if "--stream-records" in ln
    ]  # one line
    assert not (tmp_path / "r" / "records_sun.parquet").exists()
