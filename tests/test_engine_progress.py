"""``simulate(on_progress=...)`` observes a run and never changes it (issue 9, item 7).

Before: the progress loop stepped simulated time by ``span / 100`` with at least 1 microsecond,
so a static batch (every arrival at t = 0, span 0) took one ``env.run(until=...)`` per
microsecond of simulated time (minutes for 64 x 2048 tokens), and each ``run(until=t)`` moved
``env.now`` past the last event, so the measured span (and decode utilisation) differed from a
run without progress. Now progress is reported from the count of ended requests.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sunsim.engine import ClusterSpec, SimResult, simulate
from sunsim.latency.roofline import RooflineLatency
from sunsim.specs import MODELS, get_gpu

MAX_CALLS = 101  # one call per whole percent of requests ended


def _latency() -> RooflineLatency:
    return RooflineLatency(get_gpu("h100"), MODELS["llama-3.1-8b"], "bf16")


def _static_batch(n: int = 64, tokens: int = 2048) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "arrival_s": np.zeros(n),
            "model": ["math"] * n,
            "prompt_tokens": np.full(n, tokens),
            "output_tokens": np.full(n, tokens),
        }
    )


def _poisson(n: int = 400, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "arrival_s": np.cumsum(rng.exponential(0.05, n)),
            "model": rng.choice(["math", "code"], n),
            "prompt_tokens": rng.integers(16, 2048, n),
            "output_tokens": rng.integers(1, 512, n),
        }
    )


def _cluster(models: tuple[str, ...], design: str = "sun") -> ClusterSpec:
    n = len(models)
    return ClusterSpec(
        design=design,
        served_models=models,
        prefill_workers=(1,) * n,
        decode_workers=(2,) if design != "partitioned" else (1,) * n,
    )


def _run_with_progress(df: pd.DataFrame, cl: ClusterSpec) -> tuple[SimResult, list[float]]:
    calls: list[float] = []

    def on_progress(f: float) -> None:
        calls.append(f)
        if len(calls) > 10 * MAX_CALLS:  # fail fast instead of stepping for minutes
            raise RuntimeError("on_progress called far more than once per percent")

    lat = _latency()
    return simulate(df, cl, lat, lat, on_progress=on_progress), calls


def assert_same_result(a: SimResult, b: SimResult) -> None:
    pd.testing.assert_frame_equal(a.records, b.records)
    pd.testing.assert_frame_equal(a.decode_workers, b.decode_workers)
    pd.testing.assert_frame_equal(a.prefill_workers, b.prefill_workers)
    pd.testing.assert_frame_equal(a.timeline, b.timeline)
    pd.testing.assert_frame_equal(a.kv_time, b.kv_time)
    np.testing.assert_array_equal(a.itl_hist, b.itl_hist)
    assert (a.sim_end_s, a.num_events) == (b.sim_end_s, b.num_events)


def test_static_batch_with_progress_is_fast_and_reports_each_percent():
    df = _static_batch()
    cl = _cluster(("math",))
    res, calls = _run_with_progress(df, cl)
    assert (res.records["status"] == "finished").all()
    # 64 requests: one call per request ended (each is >= 1 percent), the last at 1.0
    assert len(calls) == 64
    assert calls == sorted(calls) and calls[-1] == 1.0 and calls[0] == 1 / 64
    # the decode worker stepped in planned runs: far fewer events than iterations
    iterations = int(res.decode_workers["num_iterations"].sum())
    assert iterations >= 2047
    assert res.num_events < iterations / 4


@pytest.mark.parametrize(
    ("workload", "models", "design"),
    [
        ("static", ("math",), "sun"),
        ("poisson", ("math", "code"), "sun"),
        ("poisson", ("math", "code"), "partitioned"),
    ],
)
def test_progress_changes_nothing(workload, models, design):
    df = _static_batch() if workload == "static" else _poisson()
    cl = _cluster(models, design)
    lat = _latency()
    plain = simulate(df, cl, lat, lat)
    observed, calls = _run_with_progress(df, cl)
    assert_same_result(plain, observed)
    # the span is the last event's time, so utilisation is the same with and without progress
    assert observed.sim_end_s == plain.records["finished_at"].max()
    assert 1 <= len(calls) <= MAX_CALLS and calls[-1] == 1.0
    assert all(b > a for a, b in zip(calls, calls[1:]))


def test_progress_thresholds_are_whole_percents():
    df = _poisson(n=1000)
    res, calls = _run_with_progress(df, _cluster(("math", "code")))
    assert len(res.records) == 1000
    assert calls == [pct / 100 for pct in range(1, 101)]


def test_no_progress_calls_for_an_empty_trace():
    df = _static_batch(n=0)
    res, calls = _run_with_progress(df, _cluster(("math",)))
    assert calls == [] and len(res.records) == 0
