"""Records streamed to Parquet row groups during the run equal the in-memory records, and
the summary made from the columns read back equals the in-memory one."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from sunsim.config import Scenario
from sunsim.engine import records as records_mod
from sunsim.engine import simulate
from sunsim.latency.roofline import RooflineLatency
from sunsim.metrics import summarize
from sunsim.metrics.benchmark import design_metrics
from sunsim.runs.stream import ParquetColumns, ParquetRecordSink
from sunsim.specs import MODELS, SloSpec, get_gpu
from sunsim.traces import synth_trace


def stream_in_chunks(monkeypatch: pytest.MonkeyPatch, chunk_rows: int, drain_rows: int) -> None:
    """Make record tables stream in frames of ``chunk_rows`` and drain every ``drain_rows``
    ended requests (small values exercise chunks completing out of order)."""
    monkeypatch.setattr(records_mod, "_DRAIN_ROWS", drain_rows)
    monkeypatch.setattr(records_mod, "_CHUNK_ROWS", chunk_rows)


@pytest.mark.parametrize("chunk_rows", [97, 1 << 18])
def test_streamed_records_equal_in_memory(tmp_path, monkeypatch, chunk_rows):
    served = ("a", "b", "c")
    df = synth_trace(num_requests=4000, rate=150.0, served=served, rng=np.random.default_rng(5))
    df.loc[7, "prompt_tokens"] = 200_000  # rejected: over max_model_len
    cl = Scenario(served_models=served, decode_workers=(3,), prefill_workers=(2, 1, 1)).cluster(
        "sun", [1.0, 1.0, 1.0]
    )
    lat = RooflineLatency(get_gpu("h100"), MODELS["llama-3.1-8b"], "bf16")
    mem = simulate(df, cl, lat, lat, seed=2)
    stream_in_chunks(monkeypatch, chunk_rows, drain_rows=50)  # drain often, out of order
    path = tmp_path / "records.parquet"
    with ParquetRecordSink(path) as sink:
        streamed = simulate(df, cl, lat, lat, seed=2, records_sink=sink)
    assert streamed.records.empty and streamed.extra["records_streamed"] == len(df)
    assert pq.ParquetFile(path).num_row_groups == -(-len(df) // chunk_rows)
    back = pd.read_parquet(path)
    pd.testing.assert_frame_equal(back, mem.records, check_categorical=True)
    assert (mem.records["status"] == "rejected").sum() == 1
    # the summary read from the file one column at a time is the in-memory summary, exactly
    slo = SloSpec(ttft_s=0.5, tpot_s=0.05)
    cols = ParquetColumns(path)
    a, b = summarize(mem, slo), summarize(streamed, slo, cols)
    assert 0 < a.slo.attainment < 1 and a.requests.rejected == 1
    da, db = a.to_dict(), b.to_dict()
    for d in (da, db):
        d["sim"].pop("wall_s")
    assert json.dumps(da) == json.dumps(db)  # same keys in the same order, same bits
    ma, mb = design_metrics(a, records=mem.records), design_metrics(b, records=cols)
    assert json.dumps(ma) == json.dumps(mb)
    assert all(ma[f"mean_{k}_ms"] > 0 for k in ("ttft", "tpot", "itl", "e2el"))


def test_parquet_columns_summary_with_an_idle_model_and_rejections(tmp_path):
    """A served model without requests keeps its (empty) per-model row, rejected requests
    are counted by reason, and the streamed file's summary is the in-memory one."""
    served = ("a", "idle", "b")
    df = synth_trace(num_requests=600, rate=80.0, served=("b", "a"), rng=np.random.default_rng(1))
    df.loc[[3, 50, 51], "prompt_tokens"] = 300_000  # rejected: over max_model_len
    cl = Scenario(served_models=served, decode_workers=(3,), prefill_workers=(1, 1, 1)).cluster(
        "sun", [1.0, 1.0, 1.0]
    )
    lat = RooflineLatency(get_gpu("h100"), MODELS["llama-3.1-8b"], "bf16")
    mem = simulate(df, cl, lat, lat, seed=0)
    path = tmp_path / "r.parquet"
    with ParquetRecordSink(path) as sink:
        streamed = simulate(df, cl, lat, lat, seed=0, records_sink=sink)
    slo = SloSpec()
    a, b = summarize(mem, slo), summarize(streamed, slo, ParquetColumns(path))
    assert list(a.per_model) == ["b", "a", "idle"]  # first appearance, then unused models
    assert a.per_model["idle"].num_requests == 0 and np.isnan(a.per_model["idle"].ttft_s_p50)
    assert a.requests.rejected == 3 and sum(a.requests.rejected_by_reason.values()) == 3
    da, db = a.to_dict(), b.to_dict()
    for d in (da, db):
        d["sim"].pop("wall_s")
    assert json.dumps(da) == json.dumps(db)


def test_parquet_columns_reads_one_column_and_names_a_missing_one(tmp_path):
    from sunsim.runs import RunDirError

    path = tmp_path / "r.parquet"
    frame = pd.DataFrame({"ttft_s": [0.5, np.nan, 1.5], "num_preemptions": [0, 2, 1]})
    with ParquetRecordSink(path) as sink:
        sink.write(frame.iloc[:2])
        sink.write(frame.iloc[2:])
    cols = ParquetColumns(path)
    assert len(cols) == 3 and sink.num_row_groups == 2
    np.testing.assert_array_equal(cols.values("ttft_s"), [0.5, np.nan, 1.5])
    got = cols.values("num_preemptions", np.array([False, True, True]))
    assert got.dtype == np.int64 and got.tolist() == [2, 1]
    with pytest.raises(
        RunDirError, match=r"r\.parquet: no column 'status'.*re-run `sunsim replay`"
    ):
        cols.labels("status")


@pytest.mark.parametrize("damage", ["truncated", "missing", "rewritten"])
def test_parquet_columns_on_a_damaged_file_is_one_line(tmp_path, damage):
    """A records file that is not (or no longer) readable Parquet is a RunDirError line naming
    the file and how to fix it, whether it breaks before it is opened or between reads."""
    from sunsim.errors import SunsimError, TraceError

    path = tmp_path / "records_sun.parquet"
    pd.DataFrame({"ttft_s": np.arange(1000.0)}).to_parquet(path)
    cols = None
    if damage == "rewritten":  # opened, then truncated before a column is read
        cols = ParquetColumns(path)
    if damage == "missing":
        path.unlink()
    else:
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    with pytest.raises(SunsimError) as e:
        (cols or ParquetColumns(path)).values("ttft_s")
    msg = str(e.value)
    assert not isinstance(e.value, TraceError) and "\n" not in msg
    assert msg.startswith(f"{path}: cannot read the records") and "re-run `sunsim replay`" in msg


def test_replay_stream_records_gives_the_same_run_dir(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from sunsim.cli import app
    from sunsim.metrics import columns

    computed = []  # record figures computed from a streamed file: once per mode
    orig = columns._record_stats
    monkeypatch.setattr(
        columns, "_record_stats", lambda c, slo: computed.append(type(c).__name__) or orig(c, slo)
    )
    runner = CliRunner()
    args = ["replay", "--no-progress", "--max-requests", "400", "--latency", "roofline", "--json"]
    a, b = tmp_path / "mem", tmp_path / "streamed"
    r = runner.invoke(app, [*args, "--out", str(a)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    ja = json.loads(r.stdout)
    computed.clear()
    r = runner.invoke(app, [*args, "--out", str(b), "--stream-records"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert computed == ["ParquetColumns"] * 3  # summarize and design_metrics share them
    assert json.loads(r.stdout) == ja  # vLLM-named metrics, means from the streamed file
    assert ja["designs"]["sun"]["mean_ttft_ms"] > 0
    for mode in ("partitioned", "sun", "qsun"):
        name = f"records_{mode}.parquet"
        pd.testing.assert_frame_equal(pd.read_parquet(a / name), pd.read_parquet(b / name))
    sa, sb = (json.loads((d / "summary.json").read_text())["modes"] for d in (a, b))
    for s in (*sa.values(), *sb.values()):
        s["sim"].pop("wall_s")
    assert sa == sb
    r = runner.invoke(
        app, [*args, "--out", str(tmp_path / "c"), "--stream-records", "--records-format", "csv"]
    )
    assert r.exit_code == 2 and "--stream-records" in r.output
