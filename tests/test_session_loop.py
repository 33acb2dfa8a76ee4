"""Session-dependent arrivals (``session_arrivals = "after_previous"``,
:mod:`sunsim.engine.session_loop`): a session's next call arrives when its previous call
ends plus think time.

Timelines use :class:`ConstantLatency` as ``tests/test_prefix_cache.py`` does: a prefill batch
costs ``0.1 + 0.001 x computed tokens`` s, a decode step 0.01 s, the KV link is instant
(1 TB/s, no latency), so a call of ``p`` prompt and 2 output tokens on an idle cluster
finishes ``0.1 + 0.001 p + 0.01`` s after it arrives. Calls over 100,000 tokens are
rejected (``max_model_len``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from sunsim.cli import app
from sunsim.engine.designs import DESIGNS
from sunsim.engine.session_loop import session_chains, simulate_sessions, think_times
from sunsim.engine.spec import ClusterSpec
from sunsim.errors import ConfigError
from sunsim.latency.base import ConstantLatency
from sunsim.specs import LinkSpec

LINK = LinkSpec(bandwidth=1e12, latency_s=0.0)
LAT = ConstantLatency(
    prefill_s=0.1, prefill_per_token_s=0.001, decode_s=0.01, weight_bytes=10**9,
    kv_bytes_per_token=1, max_model_len=100_000,
)  # fmt: skip


def cluster(design: str = "sun", models=("a",), caching: bool = False) -> ClusterSpec:
    n = len(models)
    if DESIGNS[design].colocated:
        cw = (1,) if DESIGNS[design].shares_decode else (1,) * n
        pools = dict(prefill_workers=(), decode_workers=(), colocated_workers=cw)
    else:
        dw = (1,) if DESIGNS[design].shares_decode else (1,) * n
        pw = (1,) * DESIGNS[design].num_prefill_pools(n)
        pools = dict(prefill_workers=pw, decode_workers=dw)
    return ClusterSpec(
        design=design, served_models=tuple(models), link=LINK, enable_prefix_caching=caching,
        gpu_memory_utilization=1.0, reserve_bytes=0, **pools,
    )  # fmt: skip


def frame(rows, hashes=None) -> pd.DataFrame:
    """rows: (arrival_s, model, prompt_tokens, output_tokens, session_id, turn)."""
    df = pd.DataFrame(
        rows,
        columns=["arrival_s", "model", "prompt_tokens", "output_tokens", "session_id", "turn"],
    )
    if hashes is not None:
        df["hash_ids"] = pd.Series([None if h is None else tuple(h) for h in hashes], dtype=object)
        df.attrs["hash_block_tokens"] = 512
    return df


# -- the hand-checked timeline ----------------------------------------------------------------


def test_turn_two_arrives_at_the_end_of_turn_one_plus_think():
    """Session 0: turn 0 at 0 s (1024 tokens), turn 1 at 0.2 s in the trace (think 0.2 s from
    the trace's gap); session 1: turn 0 at 1.0 s (500 tokens).

    Turn 0 finishes at 0.1 + 1.024 + 0.01 = 1.134 s, so session 0's turn 1 arrives at
    1.134 + 0.2 = 1.334 s, after session 1's first call (1.0 s): the calls are sent in
    another order than the trace's rows, and the records come back in trace order."""
    df = frame(
        [
            (0.0, "a", 1024, 2, 0, 0),
            (0.2, "a", 1024, 2, 0, 1),
            (1.0, "a", 500, 2, 1, 0),
        ]
    )
    rec = simulate_sessions(df, cluster(), LAT, LAT).records
    assert rec["request_id"].tolist() == [0, 1, 2]
    assert rec["prompt_tokens"].tolist() == [1024, 1024, 500]
    assert rec["finished_at"][0] == pytest.approx(1.134)
    assert rec["arrived_at"][1] == rec["finished_at"][0] + 0.2  # exactly end + think
    assert rec["arrived_at"][1] == pytest.approx(1.334)
    assert rec["arrived_at"][2] == 1.0  # a first call keeps its timestamp
    # session 1's call (1.0 s) waits for the prefill worker until 1.124, then 0.1 + 0.5
    assert rec["first_token_at"][2] == pytest.approx(1.724)
    # session 0's turn 1 queued behind it: prefill 1.724 .. 1.724 + 0.1 + 1.024
    assert rec["first_token_at"][1] == pytest.approx(2.848)
    # at the trace's timestamps instead, turn 1 would arrive at 0.2 s
    off = simulate_sessions(df.assign(session_id=[0, 1, 2], turn=0), cluster(), LAT, LAT)
    assert off.records["arrived_at"].tolist() == [0.0, 0.2, 1.0]


def test_stated_think_time_is_drawn_once_per_call():
    df = frame([(0.0, "a", 100, 2, 0, 0), (5.0, "a", 100, 2, 0, 1), (9.0, "a", 100, 2, 0, 2)])
    nxt, first = session_chains(df)
    assert nxt.tolist() == [1, 2, -1] and first.tolist() == [True, False, False]
    th = think_times(df, nxt, 0.5, seed=3)
    assert th[2] == 0 and th[0] > 0 and th[1] > 0
    assert th.tolist() == think_times(df, nxt, 0.5, seed=3).tolist()  # seeded
    rec = simulate_sessions(df, cluster(), LAT, LAT, think_time_s=0.5, seed=3).records
    for k in (1, 2):
        assert rec["arrived_at"][k] == rec["finished_at"][k - 1] + th[k - 1]
    assert think_times(df, nxt, None, 0).tolist() == [5.0, 4.0, 0.0]  # the trace's gaps
    assert think_times(df, nxt, 0.0, 0).tolist() == [0.0, 0.0, 0.0]


def test_turn_order_not_row_order():
    """Turns are chained by ``turn``, not by row: rows out of turn order still chain."""
    df = frame([(0.0, "a", 100, 2, 7, 1), (0.0, "a", 100, 2, 7, 0), (1.0, "a", 100, 2, 8, 0)])
    nxt, first = session_chains(df)
    assert nxt.tolist() == [-1, 0, -1] and first.tolist() == [False, True, True]


def test_a_cached_prefix_still_hits_across_a_closed_loop_session():
    """With prefix caching, session 0's turn 1 (its context extended by 512 tokens) computes
    only the new block: prefill 0.1 + 0.512 s after it starts."""
    df = frame([(0.0, "a", 1024, 2, 0, 0), (0.0, "a", 1536, 2, 0, 1)], hashes=[(1, 2), (1, 2, 3)])
    res = simulate_sessions(df, cluster(caching=True), LAT, LAT, think_time_s=0.0)
    rec = res.records
    assert rec["arrived_at"][1] == rec["finished_at"][0] == pytest.approx(1.134)
    assert rec["first_token_at"][1] == pytest.approx(1.134 + 0.612)
    assert res.extra["prefix_cache"]["hit_tokens"] == 1024
    assert len(res.extra["prefix_kv_timeline"])


def test_without_sessions_is_one_line():
    df = frame([(0.0, "a", 100, 2, 0, 0)]).drop(columns=["session_id", "turn"])
    with pytest.raises(ConfigError, match="no session_id column"):
        simulate_sessions(df, cluster(), LAT, LAT)


# -- no request lost or double-counted --------------------------------------------------------


@st.composite
def sessions(draw):
    n_sessions = draw(st.integers(1, 6))
    rows, hashes = [], []
    t = 0.0
    for s in range(n_sessions):
        t += draw(st.floats(0, 2))
        turns = draw(st.integers(1, 5))
        arr = t
        ctx = []
        for k in range(turns):
            arr += draw(st.floats(0, 3))
            model = draw(st.sampled_from(["a", "b"]))
            if draw(st.integers(0, 9)) == 0:  # too long for any worker: rejected on arrival
                rows.append((arr, model, 200_000, 2, s, k))
                hashes.append(None)
                continue
            ctx = ctx + [s * 100 + k] * draw(st.integers(1, 3))
            rows.append((arr, model, 512 * len(ctx), draw(st.integers(1, 20)), s, k))
            hashes.append(tuple(ctx))
    df = frame(rows, hashes).sort_values("arrival_s", kind="stable", ignore_index=True)
    df.attrs["hash_block_tokens"] = 512
    return df


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    df=sessions(),
    design=st.sampled_from(["partitioned", "sun", "prefillshare", "colocated", "icarus"]),
    think=st.sampled_from([None, 0.0, 0.7]),
    caching=st.booleans(),
)
def test_no_request_lost_or_double_counted(df, design, think, caching):
    """Every call ends exactly once (the records check it), in trace order; a first call
    arrives at its timestamp, every later one at its previous call's end (finish, or arrival
    when rejected) plus its think time."""
    res = simulate_sessions(
        df, cluster(design, ("a", "b"), caching), LAT, LAT, think_time_s=think, seed=1
    )
    rec = res.records
    assert len(rec) == len(df) and rec["request_id"].tolist() == list(range(len(df)))
    assert rec["prompt_tokens"].tolist() == df["prompt_tokens"].tolist()
    assert rec["model"].astype(str).tolist() == df["model"].tolist()
    assert set(rec["status"]) <= {"finished", "rejected"}
    assert (rec["status"] == "rejected").sum() == (df["prompt_tokens"] == 200_000).sum()
    nxt, first = session_chains(df)
    th = think_times(df, nxt, think, 1)
    end = rec["finished_at"].where(rec["status"] == "finished", rec["arrived_at"]).to_numpy()
    arrived = rec["arrived_at"].to_numpy()
    assert np.array_equal(arrived[first], df["arrival_s"].to_numpy()[first])
    for i in np.flatnonzero(nxt >= 0):
        assert arrived[nxt[i]] == end[i] + th[i]


# -- scenario key and command line ------------------------------------------------------------


def test_replay_with_session_arrivals(prefix_run_dir, tmp_path):
    """``--session-arrivals after_previous`` on a workflow trace: later calls arrive at their
    previous call's end plus think time; the scenario file records the key."""
    trace = prefix_run_dir.parent / "workflow.csv"
    args = ["replay", str(trace), "--models", "a,b,c", "--mode", "sun", "--latency", "roofline"]
    args += ["--no-progress", "--session-arrivals", "after_previous", "--think-time-s", "0"]
    res = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    assert 'session_arrivals = "after_previous"' in (tmp_path / "r" / "scenario.toml").read_text()
    rec = pd.read_parquet(tmp_path / "r" / "records_sun.parquet")
    df = pd.read_csv(trace)
    nxt, _ = session_chains(df)
    has = np.flatnonzero(nxt >= 0)
    assert len(has) > 0
    assert np.array_equal(
        rec["arrived_at"].to_numpy()[nxt[has]], rec["finished_at"].to_numpy()[has]
    )  # think time 0: a call arrives the instant its session's previous call finished


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--session-arrivals", "after_previous"], "no session_id column"),
        (["--think-time-s", "1"], "think_time_s applies only with session_arrivals"),
        (["--session-arrivals", "sometimes"], "session"),
    ],
)
def test_session_arrivals_bad_input_is_one_line(tmp_path, extra, words):
    args = ["replay", "--max-requests", "20", "--latency", "roofline", "--no-progress"]
    res = CliRunner().invoke(app, [*args, *extra, "--out", str(tmp_path / "r")])
    assert res.exit_code == 2, res.output
    assert words in res.output and "Traceback" not in res.output


def test_plan_refuses_session_arrivals(tmp_path):
    args = ["plan", "--max-requests", "20", "--latency", "roofline", "--no-progress"]
    args += ["--session-arrivals", "after_previous", "--out", str(tmp_path / "p")]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2, res.output
    assert "session_arrivals = after_previous is for sunsim replay" in res.output
