"""Closed-loop workloads (sunsim.engine.closed_loop): hand-checked timelines at C = 1 and 2,
the concurrency cap, no request lost (also with rejections), seeded lengths, and the
scenario/CLI path (``sunsim replay --max-concurrency``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from sunsim.cli import app
from sunsim.config import Scenario
from sunsim.engine.closed_loop import ClosedLoopWorkload, draw_lengths, simulate_closed_loop
from sunsim.engine.spec import ClusterSpec
from sunsim.errors import ConfigError
from sunsim.latency.base import ConstantLatency
from sunsim.specs import LinkSpec

#: A link that moves KV in no time, so the timeline is prefill + decode steps only.
INSTANT = LinkSpec(bandwidth=1e30, latency_s=0.0)


def _cluster(models: tuple[str, ...] = ("a",), decode: int = 1, **kw: object) -> ClusterSpec:
    return ClusterSpec(
        design="partitioned",
        served_models=models,
        prefill_workers=(1,) * len(models),
        decode_workers=(decode,) * len(models),
        link=INSTANT,
        **kw,  # type: ignore[arg-type]
    )


def _in_flight_peak(rec: pd.DataFrame) -> int:
    """Most requests in flight at once; an end and an arrival at the same instant count the
    end first (the client sends its next request as the last one ends)."""
    end = rec["finished_at"].fillna(rec["arrived_at"])  # rejected: ends on arrival
    events = sorted([(t, 0) for t in end] + [(t, 1) for t in rec["arrived_at"]])
    now = peak = 0
    for _t, kind in events:
        now += 1 if kind else -1
        peak = max(peak, now)
    return peak


def test_c1_timeline_by_hand() -> None:
    # prefill 0.5 s, 3 output tokens: token 1 at +0.5 s, then 2 decode steps of 0.1 s:
    # each request takes 0.7 s and the next one arrives exactly when it finishes.
    lat = ConstantLatency(prefill_s=0.5, decode_s=0.1)
    w = ClosedLoopWorkload(1, 4, 10, 3, served_models=("a",))
    rec = simulate_closed_loop(w, _cluster(), lat, lat).records
    assert rec["arrived_at"].tolist() == pytest.approx([0.0, 0.7, 1.4, 2.1])
    assert rec["first_token_at"].tolist() == pytest.approx([0.5, 1.2, 1.9, 2.6])
    assert rec["finished_at"].tolist() == pytest.approx([0.7, 1.4, 2.1, 2.8])
    assert rec["arrived_at"].iloc[1:].tolist() == rec["finished_at"].iloc[:-1].tolist()


def test_c2_timeline_by_hand() -> None:
    # two clients: requests 0 and 1 at t=0 share one prefill batch (0.5 s) and decode
    # together; both end at 0.7 s, when 2 and 3 arrive; 4 arrives at 1.4 s.
    lat = ConstantLatency(prefill_s=0.5, decode_s=0.1)
    w = ClosedLoopWorkload(2, 5, 10, 3, served_models=("a",))
    rec = simulate_closed_loop(w, _cluster(), lat, lat).records
    assert rec["arrived_at"].tolist() == pytest.approx([0.0, 0.0, 0.7, 0.7, 1.4])
    assert rec["finished_at"].tolist() == pytest.approx([0.7, 0.7, 1.4, 1.4, 2.1])
    assert rec["ttft_s"].tolist() == pytest.approx([0.5] * 5)
    assert rec["tpot_s"].tolist() == pytest.approx([0.1] * 5)


def test_c2_unequal_lengths_next_arrives_at_each_end() -> None:
    # request 0 has 2 output tokens (ends at 0.6 s), request 1 has 4 (ends at 0.8 s):
    # request 2 arrives at 0.6 s, request 3 at 0.8 s.
    lat = ConstantLatency(prefill_s=0.5, decode_s=0.1)
    w = ClosedLoopWorkload(2, 4, 10, 3, served_models=("a",))
    req = w.requests().assign(output_tokens=[2, 4, 2, 2])
    rec = simulate_closed_loop(w, _cluster(), lat, lat, requests=req).records
    assert rec["finished_at"].iloc[:2].tolist() == pytest.approx([0.6, 0.8])
    assert rec["arrived_at"].iloc[2:].tolist() == pytest.approx([0.6, 0.8])


@pytest.mark.parametrize("c", [1, 3, 16])
def test_never_more_than_c_in_flight_and_none_lost(c: int) -> None:
    lat = ConstantLatency(prefill_s=0.01, decode_s=0.002, prefill_per_token_s=1e-5)
    w = ClosedLoopWorkload(c, 200, 64, 20, range_ratio=0.5, served_models=("a", "b"), seed=c)
    res = simulate_closed_loop(w, _cluster(("a", "b"), decode=2), lat, lat)
    rec = res.records
    assert len(rec) == 200 and (rec["status"] == "finished").all()
    assert rec["arrived_at"].notna().all()
    assert _in_flight_peak(rec) == c
    # each client's next request arrives exactly at some request's end
    ends = set(rec["finished_at"].round(12))
    later = rec["arrived_at"].iloc[c:].round(12)
    assert set(later) <= ends


def test_rejected_requests_end_and_free_their_client() -> None:
    # max_model_len 40: prompts of 30-50 tokens + 3-7 outputs are rejected when over 40
    lat = ConstantLatency(prefill_s=0.1, decode_s=0.01, max_model_len=40)
    w = ClosedLoopWorkload(2, 50, 40, 5, range_ratio=0.25, served_models=("a",), seed=1)
    rec = simulate_closed_loop(w, _cluster(), lat, lat).records
    rejected = rec["status"] == "rejected"
    assert rejected.any() and (~rejected).any()
    total = rec["prompt_tokens"] + rec["output_tokens"]
    assert (rejected == (total > 40)).all()
    assert rec["arrived_at"].notna().all()
    assert _in_flight_peak(rec) <= 2


def test_one_token_outputs_finish_at_prefill() -> None:
    lat = ConstantLatency(prefill_s=0.2, decode_s=0.01)
    w = ClosedLoopWorkload(1, 3, 8, 1, served_models=("a",))
    rec = simulate_closed_loop(w, _cluster(), lat, lat).records
    assert rec["arrived_at"].tolist() == pytest.approx([0.0, 0.2, 0.4])


def test_lengths_models_seeded() -> None:
    w = ClosedLoopWorkload(4, 1000, 1000, 100, range_ratio=0.1, served_models=("a", "b", "c"))
    a, b = w.requests(), w.requests()
    pd.testing.assert_frame_equal(a, b)
    assert a["prompt_tokens"].between(900, 1100).all()
    assert a["output_tokens"].between(90, 110).all()
    assert a["prompt_tokens"].nunique() > 100
    assert a["model"].tolist()[:4] == ["a", "b", "c", "a"]  # round-robin
    fixed = draw_lengths(np.random.default_rng(0), 7, 0.0, 5)
    assert fixed.tolist() == [7] * 5
    shared = ClosedLoopWorkload(
        1, 3000, 10, 10, served_models=("a", "b"), shares=(3.0, 1.0)
    ).requests()
    assert (shared["model"] == "a").mean() == pytest.approx(0.75, abs=0.03)


def test_bad_workloads() -> None:
    with pytest.raises(ConfigError, match="max_concurrency"):
        ClosedLoopWorkload(0, 10, 10, 10)
    with pytest.raises(ConfigError, match="range_ratio"):
        ClosedLoopWorkload(1, 10, 10, 10, range_ratio=1.0)
    with pytest.raises(ConfigError, match="shares"):
        ClosedLoopWorkload(1, 10, 10, 10, served_models=("a", "b"), shares=(1.0,))
    with pytest.raises(ConfigError, match="replaces the trace"):
        Scenario(max_concurrency=4, trace="x.csv")
    with pytest.raises(ConfigError, match="zipf"):
        Scenario(max_concurrency=4, zipf=1.0)


def test_cli_replay_closed_loop(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["replay", "--max-concurrency", "8", "--num-prompts", "40", "--input-len", "256"]
    args += ["--output-len", "32", "--mode", "sun", "--latency", "roofline", "--no-progress"]
    r = CliRunner().invoke(app, [*args, "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "closed loop: 8 clients, 40 requests, 256 -> 32 tokens" in r.output
    rec = pd.read_parquet(out / "records_sun.parquet")
    assert len(rec) == 40 and _in_flight_peak(rec) == 8
    toml = (out / "scenario.toml").read_text()
    assert "max_concurrency = 8" in toml and "path =" not in toml
    again = CliRunner().invoke(
        app, ["replay", "--scenario", str(out / "scenario.toml"), "--out", str(tmp_path / "b")]
    )
    assert again.exit_code == 0, again.output
    rec2 = pd.read_parquet(tmp_path / "b" / "records_sun.parquet")
    pd.testing.assert_frame_equal(rec, rec2)


@pytest.mark.parametrize(
    "args, msg",
    [
        (["--max-concurrency", "0"], "--max-concurrency: must be >= 1"),
        (["--max-concurrency", "2", "--range-ratio", "1.5"], "--range-ratio: must be < 1"),
        (["--max-concurrency", "2", "--num-prompts", "x"], "--num-prompts"),
    ],
)
def test_cli_bad_closed_loop_options(args: list[str], msg: str) -> None:
    r = CliRunner().invoke(app, ["replay", *args])
    assert r.exit_code == 2
    assert msg in r.output and "Traceback" not in r.output


def test_cli_plan_refuses_closed_loop() -> None:
    r = CliRunner().invoke(app, ["plan", "--max-concurrency", "4"])
    assert r.exit_code == 2 and "closed-loop" in r.output
