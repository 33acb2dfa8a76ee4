"""Queueing-theory checks: the engine configured as M/D/1, M/M/1 and M/M/c.

The engine's decode pool becomes a textbook queue: Poisson arrivals (a seeded numpy Generator),
prefill in 0 s, a KV link of latency 0 and infinite bandwidth, every request with 2 output
tokens (exactly one decode iteration, its service time), ``max_num_seqs = 1``.

Two kinds of assertion:

* exact: every request's wait equals the FCFS recursion (Lindley 1952; Kiefer & Wolfowitz 1955
  for c servers) on the same arrival and service times, to rounding. This checks the engine.
* statistical: means against Pollaczek-Khinchine, M/M/1 and Erlang C. The mean wait of a loaded
  queue is a noisy statistic (relative sd about k / sqrt(n), k ~ 3.4 for M/D/1 at rho 0.5 to
  ~15 for M/M/2 at rho 0.8: 1.5% to 6.6% at 50k requests), the probability of waiting and
  Little's law much less so; the tolerances below say which is which.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from sunsim.cli import app
from sunsim.engine.cluster import simulate
from sunsim.engine.spec import ClusterSpec
from sunsim.latency.base import ConstantLatency, LatencyModel
from sunsim.specs import LinkSpec
from sunsim.validate import queueing as q

INSTANT_LINK = LinkSpec(bandwidth=float("inf"), latency_s=0.0)


def one_server(router: str = "least_loaded") -> ClusterSpec:
    return ClusterSpec(
        design="sun",
        served_models=("q",),
        prefill_workers=(1,),
        decode_workers=(1,),
        max_num_seqs=1,
        decode_router=router,
        link=INSTANT_LINK,
    )


def poisson_trace(rate: float, n: int, rng: np.random.Generator) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "arrival_s": np.cumsum(rng.exponential(1 / rate, n)),
            "model": "q",
            "prompt_tokens": 1,
            "output_tokens": 2,
        }
    )


def lindley(arrival: np.ndarray, service: np.ndarray) -> np.ndarray:
    """W_1 = 0, W_{i+1} = max(0, W_i + S_i - (A_{i+1} - A_i)) (Lindley, 1952), vectorised:
    W = X - min(0, running min of X) with X the partial sums of S_i - (A_{i+1} - A_i)."""
    x = np.concatenate([[0.0], np.cumsum(service[:-1] - np.diff(arrival))])
    return x - np.minimum.accumulate(np.minimum(x, 0.0))


def waits_of(rec: pd.DataFrame) -> np.ndarray:
    # prefill and link take 0 s: kv_ready_at == first_token_at == arrived_at
    return (rec["decode_started_at"] - rec["kv_ready_at"]).to_numpy()


class ExponentialStep(LatencyModel):
    """Zero-time prefill; every decode iteration draws an exponential time of mean
    ``mean_s`` from ``rng`` (one iteration per request here: its service time)."""

    def __init__(self, mean_s: float, rng: np.random.Generator) -> None:
        self.mean_s = mean_s
        self.rng = rng
        self.kv_bytes_per_token = 1
        self.description = "exponential decode steps (analytic)"

    def prefill_time(self, prompt_lens):
        return 0.0

    def decode_step_time(self, batch_size, total_context_tokens):
        assert batch_size == 1
        return float(self.rng.exponential(self.mean_s))


# --------------------------------------------------------------------------------------------
# Part A: the engine as M/D/1 and M/M/1 (ConstantLatency / a random step time)
# --------------------------------------------------------------------------------------------


def test_md1_pollaczek_khinchine_and_littles_law():
    n, service, rho = 50_000, 0.5, 0.5
    lam = rho / service
    rng = np.random.default_rng(11)
    df = poisson_trace(lam, n, rng)
    lat = ConstantLatency(prefill_s=0.0, decode_s=service)
    res = simulate(df, one_server(), lat, lat)
    rec = res.records
    assert (rec["status"] == "finished").all()
    arrival = df["arrival_s"].to_numpy()
    # the queue forms only at decode: prefill and link take no time
    np.testing.assert_array_equal(rec["kv_ready_at"].to_numpy(), arrival)
    w = waits_of(rec)
    # exact: Lindley's recursion with S = 0.5 s
    np.testing.assert_allclose(w, lindley(arrival, np.full(n, service)), rtol=0, atol=1e-9)
    # Pollaczek-Khinchine: W_q = rho S / (2 (1 - rho)) = 0.25 s (sd of the mean ~1.5% here)
    assert w.mean() == pytest.approx(rho * service / (2 * (1 - rho)), rel=0.03)
    # an arrival waits iff it finds the server busy: probability rho (PASTA)
    assert (w > 0).mean() == pytest.approx(rho, rel=0.03)
    # service = one iteration
    np.testing.assert_allclose(rec["finished_at"] - rec["decode_started_at"], service, rtol=1e-12)

    # Little's law, L = lambda W: L the time-average of requests in system (a sweep over
    # arrivals (+1) and finishes (-1)), lambda the Poisson rate, W the mean time in system.
    finished = rec["finished_at"].to_numpy()
    times = np.concatenate([arrival, finished])
    steps = np.concatenate([np.ones(n), -np.ones(n)])
    order = np.argsort(times, kind="stable")
    t, in_system = times[order], np.cumsum(steps[order])
    L = np.sum(in_system[:-1] * np.diff(t)) / (t[-1] - t[0])
    W = np.mean(finished - arrival)
    assert L == pytest.approx(lam * W, rel=0.02)
    assert L == pytest.approx(q.time_average_in_system(arrival, finished), rel=1e-12)
    # ... and on the engine's own accounting: the decode worker's busy time (its integral of
    # batch size over time, batch 1) over the run = lambda_observed x mean service.
    dw = res.decode_workers.iloc[0]
    window = res.sim_end_s
    assert dw["busy_s"] * dw["mean_batch"] / window == pytest.approx(n / window * service, rel=1e-9)


def test_mm1_random_step_times():
    n, mean_s, rho = 50_000, 1.0, 0.5
    lam = rho / mean_s
    rng = np.random.default_rng(5)
    df = poisson_trace(lam, n, rng)
    lat = ExponentialStep(mean_s, np.random.default_rng(6))
    rec = simulate(df, one_server(), lat, lat).records
    arrival = df["arrival_s"].to_numpy()
    w = waits_of(rec)
    service = (rec["finished_at"] - rec["decode_started_at"]).to_numpy()
    # the drawn service times are exponential with mean 1 s
    assert service.mean() == pytest.approx(mean_s, rel=0.02)
    # exact: the engine served FCFS (Lindley on the service times it drew)
    np.testing.assert_allclose(w, lindley(arrival, service), rtol=0, atol=1e-9)
    # M/M/1: W_q = rho / (mu - lambda) = 1 s; P(wait) = rho
    assert w.mean() == pytest.approx(rho / (1 / mean_s - lam), rel=0.05)  # sd ~2.9% at 50k
    assert (w > 0).mean() == pytest.approx(rho, rel=0.03)


# --------------------------------------------------------------------------------------------
# Part B: sunsim.validate.queueing
# --------------------------------------------------------------------------------------------


def erlang_c_by_sum(c: int, a: float) -> float:
    top = a**c / math.factorial(c) * c / (c - a)
    return top / (sum(a**k / math.factorial(k) for k in range(c)) + top)


@pytest.mark.parametrize(
    "c,a", [(1, 0.5), (1, 0.8), (2, 1.0), (2, 1.6), (4, 2.0), (4, 3.2), (16, 14.0)]
)
def test_erlang_c(c, a):
    assert q.erlang_c(c, a) == pytest.approx(erlang_c_by_sum(c, a), rel=1e-12)


def test_closed_forms():
    assert q.erlang_c(1, 0.7) == pytest.approx(0.7)  # M/M/1: P(wait) = rho
    assert q.erlang_c(2, 1.0) == pytest.approx(1 / 3)
    assert q.mmc_mean_wait(0.8, 1.0, 1) == pytest.approx(0.8 / (1.0 - 0.8))
    assert q.mmc_mean_wait(1.6, 1.0, 2) == pytest.approx(erlang_c_by_sum(2, 1.6) / (2 - 1.6))
    assert q.md1_mean_wait(0.8, 1.0) == pytest.approx(0.8 / (2 * 0.2))
    # M/D/1 waits half as long as M/M/1 (E[S^2] = S^2 vs 2 S^2)
    assert q.md1_mean_wait(0.5, 1.0) == pytest.approx(q.mmc_mean_wait(0.5, 1.0, 1) / 2)
    with pytest.raises(q.ConfigError):
        q.erlang_c(2, 2.0)


def test_fcfs_recursion_by_hand():
    # two servers; arrivals 0, 0, 0, 1; services 3, 1, 2, 1:
    # r0 -> server A 0..3, r1 -> B 0..1, r2 waits for B: 1..3 (wait 1), r3 waits: 3..4 (wait 2)
    w = q.fcfs_waits(np.array([0.0, 0.0, 0.0, 1.0]), np.array([3.0, 1.0, 2.0, 1.0]), 2)
    assert list(w) == [0.0, 0.0, 1.0, 2.0]
    arr, svc = np.array([0.0, 0.5, 0.6, 4.0]), np.array([1.0, 1.0, 1.0, 1.0])
    np.testing.assert_allclose(q.fcfs_waits(arr, svc, 1), lindley(arr, svc))


def test_central_queue_is_mmc_request_by_request():
    # the engine with the central router equals the Kiefer-Wolfowitz recursion exactly; the
    # push router least_loaded (each request committed to a worker's own queue) does not
    rng = np.random.default_rng(3)
    n, c, rho = 5_000, 3, 0.8
    arrival = q.poisson_arrivals(rho * c, n, rng)
    service = rng.exponential(1.0, n)
    exact = q.fcfs_waits(arrival, service, c)
    central = q.queue_waits(q.simulate_queue(arrival, service, c, "central").records)
    np.testing.assert_allclose(central, exact, rtol=0, atol=1e-9)
    pushed = q.queue_waits(q.simulate_queue(arrival, service, c, "least_loaded").records)
    assert pushed.mean() > 1.05 * exact.mean()


@pytest.fixture(scope="module")
def checks_40k() -> pd.DataFrame:
    return q.run_queueing_checks(num_requests=40_000, seed=0)


def test_run_queueing_checks(checks_40k):
    df = checks_40k
    assert list(df.columns[:8]) == [
        "check",
        "queue",
        "quantity",
        "source",
        "simulated",
        "theory",
        "rel_error",
        "ci95_rel",
    ]
    assert len(df) == 3 * (2 * 3 + 2)
    assert set(df["queue"]) == {f"M/M/c c={c} rho={r}" for c in (1, 2, 4) for r in (0.5, 0.8)} | {
        "M/D/1 rho=0.5",
        "M/D/1 rho=0.8",
    }
    assert "M/M/c c=2 rho=0.8 mean wait" in set(df["check"])
    assert (df["num_requests"] == 40_000).all()
    # exact: the engine equals the FCFS recursion on every request of every run
    assert (df["max_dev_s"].dropna() <= q.PATHWISE_TOL_S).all()
    # statistical: every check within 3% or, for a run too short for that (the mean waits:
    # relative sd 1.7% for M/D/1 at rho 0.5 up to ~7% for M/M/2 at rho 0.8 with 40k
    # requests), within its 99% confidence interval
    assert df["ok"].all(), df[~df["ok"]]
    assert (df["ok_by"] == "tolerance").sum() >= 18
    # Little's law's only error is the window's, sd 1 / sqrt(n) = 0.5%
    little = df[df["quantity"] == "Little's law"]
    assert (little["rel_error"].abs() <= 0.03).all(), little
    assert (df["ci99_rel"] > df["ci95_rel"]).all() and (df["ci95_rel"] > 0).all()


def test_run_queueing_checks_rejects_bad_input():
    with pytest.raises(q.ConfigError, match="rho"):
        q.run_queueing_checks(num_requests=1000, rhos=(1.0,))
    with pytest.raises(q.ConfigError, match="servers"):
        q.run_queueing_checks(num_requests=1000, servers=(0,))
    with pytest.raises(q.ConfigError, match="at least 1000"):
        q.run_queueing_checks(num_requests=10)


def test_ok_needs_exact_paths(monkeypatch):
    # a wait that differs from the recursion fails its row whatever its mean
    monkeypatch.setattr(q, "PATHWISE_TOL_S", -1.0)
    df = q.run_queueing_checks(num_requests=1000, rhos=(0.5,), servers=(1,))
    assert not df.loc[df["quantity"] != "Little's law", "ok"].any()
    assert df.loc[df["quantity"] == "Little's law", "ok"].all()


runner = CliRunner()


def test_cli_validate_queueing_passes():
    r = runner.invoke(
        app,
        [
            "validate",
            "queueing",
            "--requests",
            "5000",
            "--seed",
            "1",
            "--servers",
            "1,3",
            "--rhos",
            "0.5",
        ],
    )
    assert r.exit_code == 0, r.output
    for needle in (
        "M/M/1 rho=0.5",
        "M/M/3 rho=0.5",
        "M/D/1 rho=0.5",
        "P(wait)",
        "mean wait",
        "Little's law",
        "Kiefer-Wolfowitz",
        "all 9 checks passed",
    ):
        assert needle in r.output, needle
    assert "Traceback" not in r.output


def test_cli_validate_queueing_fails_with_exit_1(monkeypatch):
    monkeypatch.setattr(q, "md1_mean_wait", lambda lam, s: 10.0)  # a wrong theory
    r = runner.invoke(
        app, ["validate", "queueing", "--requests", "5000", "--servers", "2", "--rhos", "0.5"]
    )
    assert r.exit_code == 1, r.output
    assert "FAILED M/D/1 rho=0.5 mean wait" in r.output
    assert "FAILED M/M" not in r.output


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--requests", "10"], "at least 1000"),
        (["--rhos", "0.5,1.2"], "rho"),
        (["--servers", "two"], "--servers"),
    ],
)
def test_cli_validate_queueing_bad_input_exit_2(args, needle):
    r = runner.invoke(app, ["validate", "queueing", *args])
    assert r.exit_code == 2, r.output
    out = r.output.strip()
    assert len(out.splitlines()) == 1 and out.startswith("error:") and needle in out, out
    assert "Traceback" not in out
