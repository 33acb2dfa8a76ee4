"""Metrics: SLO attainment, latency and ITL percentiles, summaries, the comparison table.

Records are built by hand (the columns of ``RecordTable.to_frame``) or come from small runs
whose values are worked out in ``test_timeline.py``.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sunsim.engine.cluster import itl_bin_edges, simulate
from sunsim.engine.decode import itl_bin
from sunsim.engine.spec import ClusterSpec
from sunsim.latency.base import ConstantLatency
from sunsim.metrics import (
    RunSummary,
    SummaryFormatError,
    comparison_table,
    itl_percentiles,
    latency_percentiles,
    slo_attainment,
    slo_met,
    summarize,
    sun_vs_partitioned,
)
from sunsim.serialize import jsonable
from sunsim.specs import LinkSpec, SloSpec

NAN = float("nan")


def records(rows) -> pd.DataFrame:
    """rows of (model, status, ttft_s, tpot_s, e2e_s, output_tokens)."""
    df = pd.DataFrame(
        rows, columns=["model", "status", "ttft_s", "tpot_s", "e2e_s", "output_tokens"]
    )
    df["model"] = pd.Categorical(df["model"], categories=["math", "code", "tool"])
    return df


RECS = records(
    [
        ("math", "finished", 1.0, 0.05, 10.0, 100),  # meets both
        ("math", "finished", 2.0, 0.10, 12.0, 50),  # on both bounds: meets (<=)
        ("math", "finished", 2.5, 0.05, 9.0, 80),  # TTFT miss
        ("code", "finished", 0.5, 0.20, 30.0, 120),  # TPOT miss
        ("code", "finished", 0.4, NAN, 0.4, 1),  # one output token: TTFT only -> meets
        ("code", "finished", 3.0, NAN, 3.0, 1),  # one output token, TTFT miss
        ("math", "rejected", NAN, NAN, NAN, 10),  # rejected: a miss
        ("code", "rejected", NAN, NAN, NAN, 10),
    ]
)
SLO = SloSpec(ttft_s=2.0, tpot_s=0.1)


def test_slo_met_and_attainment():
    assert list(slo_met(RECS, SLO)) == [True, True, False, False, True, False, False, False]
    assert slo_attainment(RECS, SLO) == pytest.approx(3 / 8)
    assert slo_attainment(RECS, SloSpec(ttft_s=10, tpot_s=10)) == pytest.approx(6 / 8)
    assert np.isnan(slo_attainment(RECS.iloc[:0], SLO))


def test_latency_percentiles_match_numpy():
    p = latency_percentiles(RECS)
    assert list(p.index) == ["all"]
    fin = RECS[RECS["status"] == "finished"]
    assert p.loc["all", "num_finished"] == 6
    for col in ("ttft_s", "tpot_s", "e2e_s"):
        vals = fin[col].dropna().to_numpy()
        for q in (50, 90, 99):
            assert p.loc["all", f"{col}_p{q}"] == pytest.approx(np.percentile(vals, q))
    # TTFT p50 of [1, 2, 2.5, 0.5, 0.4, 3] (linear interpolation) = (1 + 2) / 2
    assert p.loc["all", "ttft_s_p50"] == pytest.approx(1.5)
    # TPOT over the four multi-token requests only: [0.05, 0.10, 0.05, 0.20]
    assert p.loc["all", "tpot_s_p50"] == pytest.approx(0.075)


def test_latency_percentiles_by_model_keeps_empty_models():
    p = latency_percentiles(RECS, by="model")
    assert set(p.index) == {"math", "code", "tool"}
    assert p.loc["math", "num_finished"] == 3 and p.loc["code", "num_finished"] == 3
    assert p.loc["tool", "num_finished"] == 0 and np.isnan(p.loc["tool", "ttft_s_p50"])
    assert p.loc["math", "ttft_s_p50"] == pytest.approx(2.0)
    assert p.loc["code", "tpot_s_p90"] == pytest.approx(0.20)  # its one TPOT value


def histogram(values, counts) -> np.ndarray:
    h = np.zeros(len(itl_bin_edges()) - 1, dtype=np.int64)
    for v, c in zip(values, counts):
        h[itl_bin(v)] += c
    return h


@pytest.mark.parametrize("seed", [0, 1])
def test_itl_percentiles_vs_exact(seed):
    # tokens at known ITLs; exact percentiles of the token sample (inverse CDF, as the
    # histogram's) lie in the returned bin, whose geometric centre is within 0.6% of them
    rng = np.random.default_rng(seed)
    values = np.exp(rng.uniform(np.log(1e-3), np.log(2.0), 40))
    counts = rng.integers(1, 500, 40)
    sample = np.repeat(values, counts)
    got = itl_percentiles(histogram(values, counts), percentiles=(10, 50, 90, 99))
    for q in (10, 50, 90, 99):
        exact = np.percentile(sample, q, method="inverted_cdf")
        assert got[f"itl_s_p{q}"] == pytest.approx(exact, rel=0.006), q


def test_itl_percentiles_of_a_hand_checked_run():
    # test_timeline's batch trace: 8 tokens 0.5 s apart, first decode tokens after 1.25 s
    # (twice), 1.75 s and 2.25 s -> sorted 12 values: p50 = 0.5, p90 = 11th = 1.75,
    # p99 = 12th = 2.25
    from test_timeline import run_batch_trace

    res = run_batch_trace()
    got = itl_percentiles(res.itl_hist)
    assert got["itl_s_p50"] == pytest.approx(0.5, rel=0.006)
    assert got["itl_s_p90"] == pytest.approx(1.75, rel=0.006)
    assert got["itl_s_p99"] == pytest.approx(2.25, rel=0.006)
    assert all(np.isnan(v) for v in itl_percentiles(np.zeros_like(res.itl_hist)).values())


def small_run(mode: str = "sun"):
    """Two models, a tight KV cache (preemptions) and rejections."""
    rng = np.random.default_rng(2)
    n = 300
    df = pd.DataFrame(
        {
            "arrival_s": np.cumsum(rng.exponential(0.02, n)),
            "model": rng.choice(["math", "code"], n, p=[0.7, 0.3]),
            "prompt_tokens": rng.integers(1, 200, n),
            "output_tokens": rng.integers(1, 80, n),
        }
    )
    df.loc[::50, "prompt_tokens"] = 5000  # exceed the KV cache: rejected
    blocks = 64
    lat = ConstantLatency(
        prefill_s=0.01,
        prefill_per_token_s=1e-5,
        decode_s=0.01,
        weight_bytes=80 * 10**9 - 16 * blocks,
        kv_bytes_per_token=1,
    )
    dw = (1, 1) if mode == "partitioned" else (2,)
    cl = ClusterSpec(
        design=mode,
        served_models=("math", "code"),
        prefill_workers=(1, 1),
        decode_workers=dw,
        gpu_memory_utilization=1.0,
        reserve_bytes=0,
        max_num_seqs=32,
        link=LinkSpec(bandwidth=1e6, latency_s=1e-4),
    )
    return simulate(df, cl, lat, lat)


def test_summarize_counts_add_up():
    res = small_run()
    rec = res.records
    s = summarize(res, SLO)
    r = s["requests"]
    assert r["total"] == len(rec) == 300
    assert r["finished"] + r["rejected"] == r["total"]
    assert r["rejected"] == 6 and r["rejected_by_reason"] == {"exceeds_kv_capacity": 6}
    assert r["preemptions"] == int(rec["num_preemptions"].sum()) > 0
    assert 0 < r["preempted_requests"] <= r["preemptions"]
    assert sum(d["num_requests"] for d in s["per_model"].values()) == r["total"]
    assert sum(d["num_finished"] for d in s["per_model"].values()) == r["finished"]
    # attainment: overall = request-weighted mean of the per-model attainments
    att = s["slo"]["attainment"]
    assert att == pytest.approx(slo_attainment(rec, SLO))
    assert att == pytest.approx(
        sum(d["slo_attainment"] * d["num_requests"] for d in s["per_model"].values()) / r["total"]
    )
    assert s["slo"]["met"] == (att >= SLO.attainment)
    fin = rec[rec["status"] == "finished"]
    tp = s["throughput"]
    assert tp["output_tokens"] == int(fin["output_tokens"].sum())
    window = fin["finished_at"].max() - rec["arrived_at"].min()
    assert tp["window_s"] == pytest.approx(window)
    assert tp["output_tokens_per_s"] == pytest.approx(tp["output_tokens"] / window)
    assert tp["output_tokens_per_s_per_gpu"] == pytest.approx(tp["output_tokens_per_s"] / 4)
    assert s["gpus"] == {
        "prefill": 2,
        "decode": 2,
        "total": 4,
        "decode_per_pool": [2],
        "prefill_per_model": [1, 1],
        "prefill_tensor_parallel_size": 1,
        "decode_tensor_parallel_size": 1,
    }
    assert s["latency_s"]["ttft_s_p50"] == pytest.approx(np.percentile(fin["ttft_s"], 50))
    assert s["decode"]["kv_capacity_tokens"] == 64 * 16
    assert s["decode"]["peak_batch"] <= 32


def test_comparison_table_and_sentences():
    sums = {m: summarize(small_run(m), SLO) for m in ("partitioned", "sun")}
    t = comparison_table(sums)
    assert list(t.columns) == ["partitioned", "sun"]
    for row in (
        "GPUs (prefill+decode)",
        "finished / rejected",
        "preemptions",
        "SLO attainment",
        "TTFT p50 / p90 / p99 (s)",
        "TPOT p50 / p90 / p99 (ms)",
        "throughput (tok/s)",
        "latency model",
    ):
        assert row in t.index, row
    for m, s in sums.items():
        assert t.loc["GPUs (prefill+decode)", m] == "2+2"
        assert t.loc["finished / rejected", m] == (
            f"{s['requests']['finished']} / {s['requests']['rejected']}"
        )
        assert t.loc["SLO attainment", m] == f"{s['slo']['attainment']:.1%}"
        assert t.loc["latency model", m] == "analytic"
    assert t.loc["decode workers per pool", "partitioned"] == "1,1"
    assert t.loc["decode workers per pool", "sun"] == "2"
    lines = sun_vs_partitioned(sums)
    assert lines and lines[0].startswith("sun vs partitioned, 2 decode workers each")
    assert sun_vs_partitioned({"sun": sums["sun"]}) == []


# --- the typed run summary ----------------------------------------------------------------

GOLDEN_SUMMARY = Path(__file__).parent / "data" / "summary_v0.1.0.json"


def test_run_summary_round_trip():
    s = summarize(small_run("partitioned"), SLO)
    assert isinstance(s, RunSummary)
    d = s.to_dict()
    assert RunSummary.from_dict(d) == s
    # through JSON (NaN becomes null: see test_run_summary_nan_survives_json)
    back = RunSummary.from_dict(json.loads(json.dumps(jsonable(d))))
    assert back == s and back.to_dict().keys() == d.keys()
    assert json.dumps(jsonable(back.to_dict())) == json.dumps(jsonable(d))
    other = dataclasses.replace(s, slo=dataclasses.replace(s.slo, attainment=0.0))
    assert other != s


def test_run_summary_nan_survives_json():
    s = summarize(small_run("sun"), SLO)
    nan_lat = dataclasses.replace(s.latency_s, itl_s_p99=NAN)
    s = dataclasses.replace(s, latency_s=nan_lat)
    text = json.dumps(jsonable(s.to_dict()))
    assert '"itl_s_p99": null' in text
    back = RunSummary.from_dict(json.loads(text))
    assert np.isnan(back.latency_s.itl_s_p99) and back == s


def test_run_summary_reads_like_the_old_dict():
    s = summarize(small_run("sun"), SLO)
    assert s["latency_s"]["tpot_s_p50"] == s.latency_s.tpot_s_p50
    assert s["requests"]["rejected_by_reason"] == s.requests.rejected_by_reason
    assert s["gpus"]["decode_per_pool"] == [2] and s["method"] == s.method == "analytic"
    assert list(s) == list(s.to_dict()) and dict(s) == s.to_dict() and "slo" in s
    assert s.get("nope") is None
    with pytest.raises(KeyError):
        s["nope"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.mode = "x"  # type: ignore[misc]


def test_comparison_accepts_summaries_and_dicts():
    sums = {m: summarize(small_run(m), SLO) for m in ("partitioned", "sun")}
    dicts = {m: json.loads(json.dumps(jsonable(s.to_dict()))) for m, s in sums.items()}
    assert comparison_table(sums).equals(comparison_table(dicts))
    assert sun_vs_partitioned(sums) == sun_vs_partitioned(dicts)


#: Summary values divided by the simulated span (see test_summary_json_equals_v0_1_0).
SPAN_FRACTIONS = (
    ("decode", "busy_frac_mean"),
    ("decode", "kv_occupancy_mean"),
    ("prefill", "busy_frac_mean"),
)


def test_summary_json_equals_v0_1_0(tmp_path: Path):
    """The summary.json that sunsim 0.1.0 wrote for a real run (tests/data/summary_v0.1.0.json,
    its command inside), key for key and value for value, except ``sim`` (event count and wall
    time are the simulator's own figures, not results)."""
    from typer.testing import CliRunner

    from sunsim.cli import app
    from sunsim.replay import DEFAULT_TRACE

    golden = json.loads(GOLDEN_SUMMARY.read_text())
    args = ["--max-requests", "300", "--latency", "roofline", "--no-progress"]
    args += ["--decode-workers", "3", "--seed", "0", "--out", str(tmp_path / "run")]
    res = CliRunner().invoke(app, ["replay", str(DEFAULT_TRACE), *args])
    assert res.exit_code == 0, res.output
    got = json.loads((tmp_path / "run" / "summary.json").read_text())["modes"]
    assert list(got) == list(golden["modes"])
    for mode, want in golden["modes"].items():
        new, old = copy.deepcopy(got[mode]), copy.deepcopy(want)
        assert set(new.pop("sim")) == set(old.pop("sim"))
        # keys added after 0.1.0 (tensor parallelism), at the end of "gpus": 1 GPU per worker
        for key in ("prefill_tensor_parallel_size", "decode_tensor_parallel_size"):
            assert new["gpus"].pop(key) == 1, (mode, key)
        # 0.1.0's CLI always ran its progress loop, which advanced the clock past the last
        # event and so lengthened the span that utilisation divides by (issue 9, item 7).
        # Progress now observes only: the span ends at the last event, so these fractions
        # can only grow, and only by what the loop added (under 1% here).
        for part, key in SPAN_FRACTIONS:
            a, b = new[part].pop(key), old[part].pop(key)
            assert b <= a <= b * 1.01, (mode, part, key, a, b)
        assert json.dumps(new) == json.dumps(old), mode  # same keys, order and values
        assert RunSummary.from_dict(got[mode]).to_dict().keys() == got[mode].keys()


def _drop(*path: str):
    def edit(d):
        for k in path[:-1]:
            d = d[k]
        del d[path[-1]]

    return edit


def _set(value, *path: str):
    def edit(d):
        for k in path[:-1]:
            d = d[k]
        d[path[-1]] = value

    return edit


BAD_SUMMARIES = [
    ("not an object", lambda d: [1], "summary: expected an object"),
    ("missing mode", _drop("mode"), "mode: missing"),
    ("missing sub-object", _drop("throughput"), "throughput: missing"),
    ("missing nested key", _drop("latency_s", "ttft_s_p90"), "latency_s.ttft_s_p90: missing"),
    ("count as string", _set("300", "requests", "total"), "requests.total: expected an integer"),
    ("count as float", _set(3.0, "requests", "finished"), "expected an integer"),
    ("count as bool", _set(True, "decode", "peak_batch"), "decode.peak_batch: expected an integer"),
    ("number as string", _set("fast", "latency_s", "tpot_s_p50"), "expected a number"),
    ("number as bool", _set(False, "slo", "attainment"), "slo.attainment: expected a number"),
    ("met as string", _set("no", "slo", "met"), "slo.met: expected true or false"),
    ("method as number", _set(1, "method"), "method: expected a string"),
    (
        "pools not a list",
        _set(3, "gpus", "decode_per_pool"),
        "gpus.decode_per_pool: expected a list",
    ),
    ("pool count bad", _set([1, "x"], "gpus", "decode_per_pool"), "decode_per_pool[1]"),
    (
        "reasons bad count",
        _set({"x": 1.5}, "requests", "rejected_by_reason"),
        "rejected_by_reason.x",
    ),
    ("per-model not object", _set([], "per_model"), "per_model: expected an object"),
    (
        "model summary short",
        _drop("per_model", "math", "num_requests"),
        "per_model.math.num_requests",
    ),
]


@pytest.mark.parametrize("case", BAD_SUMMARIES, ids=[c[0] for c in BAD_SUMMARIES])
def test_run_summary_from_bad_dicts(case):
    _, edit, message = case
    d = json.loads(json.dumps(jsonable(summarize(small_run("sun"), SLO).to_dict())))
    replaced = edit(d)  # edits in place, or returns a replacement
    d = d if replaced is None else replaced
    with pytest.raises(SummaryFormatError) as e:
        RunSummary.from_dict(d)
    assert message in str(e.value) and "\n" not in str(e.value)
