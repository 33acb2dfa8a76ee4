"""Queueing-theory checks of the simulator: ``sunsim validate queueing``.

The engine (:func:`sunsim.engine.cluster.simulate`, unchanged) is configured so that its
decode pool is a textbook queue, and its waiting times are compared with closed forms.

Configuration (:func:`queue_cluster`, :func:`queue_requests`, :class:`ServiceTimeLatency`):

* arrivals: a Poisson process of rate ``lambda`` (exponential inter-arrival times from a seeded
  :class:`numpy.random.Generator`);
* every request has 2 output tokens: prefill emits the first, so it needs exactly one decode
  iteration, whose duration is its service time. Request ``i`` has ``i + 1`` prompt tokens, so
  its iteration holds ``i + 2`` context tokens and the latency model looks its service time up
  in a table drawn in advance (exponential with mean ``1 / mu`` for M/M/c, constant for M/D/1);
* prefill takes 0 s and the KV link 0 s (latency 0, infinite bandwidth): a request reaches the
  decode pool when it arrives;
* ``c`` decode workers in one shared pool (mode ``sun``) with ``max_num_seqs = 1``: a worker is
  one server. M/M/c uses the ``central`` decode router, which holds requests in one FCFS queue
  and sends the first to the next worker that frees a slot: the single-queue c-server system
  of M/M/c. M/D/1 uses the default ``least_loaded`` router, i.e. the lone worker's own FIFO
  queue, so both routing paths are checked. (The push routers such as ``least_loaded`` commit
  each request to one worker's queue when its prefill ends -- join-the-shortest-queue without
  jockeying -- and wait longer than Erlang C: on the same 100k arrivals and services, +10%
  (c = 2, rho = 0.8), +27% (c = 2, rho = 0.5; c = 4, rho = 0.8), +81% (c = 4, rho = 0.5)
  over the central queue.)

The waiting time of a request is ``decode_started_at - first_token_at`` (seconds): from the
end of its prefill to the start of its decode, here all queueing (with a push router it equals
``decode_started_at - kv_ready_at``; behind the central queue the wait comes before the KV
transfer).

Checks, three rows per queue (:func:`run_queueing_checks`):

* ``P(wait)``, the fraction of requests that wait: for M/M/c Erlang C (A. K. Erlang, 1917;
  Kleinrock, *Queueing Systems* Vol. 1, 1975, Sec. 3.5)
  ``C(c, a) = (a^c / c!) (c / (c - a)) / (sum_{k<c} a^k / k! + (a^c / c!) (c / (c - a)))``
  with offered load ``a = lambda / mu`` and ``rho = a / c``; for M/D/1 ``rho``, the chance
  that an arrival finds the server busy (PASTA, Wolff 1982).
* ``mean wait`` (seconds): M/M/c ``W_q = C(c, a) / (c mu - lambda)`` (M/M/1:
  ``rho / (mu - lambda)``); M/D/1 Pollaczek-Khinchine (Pollaczek 1930, Khinchine 1932;
  Kleinrock 1975, Ch. 5) ``W_q = lambda E[S^2] / (2 (1 - rho)) = rho S / (2 (1 - rho))`` for
  a constant service time ``S``.
* ``Little's law``: ``L = lambda W`` (Little, 1961), ``L`` the time-average number of requests
  in the system over the run's window (an event sweep over the records' ``arrived_at`` /
  ``finished_at``), ``lambda`` the Poisson rate, ``W`` the mean time in system. On a sample
  path ``L = (n / window) W`` exactly, so against the Poisson rate the only error is the
  window's (``n`` exponential gaps): relative sd ``1 / sqrt(n)``.

Exact part: every request's wait is compared with the FCFS recursion on the same arrival and
service times (Lindley 1952 for one server, Kiefer & Wolfowitz 1955 for ``c``); ``max_dev_s``
is the largest difference in seconds and must stay within :data:`PATHWISE_TOL_S` (rounding),
else the row fails whatever its mean. This checks the engine; the comparison with theory then
only checks the sampling. It is statistical: the mean wait of ``n`` requests has a relative
standard deviation of about ``k / sqrt(n)`` (measured over 20 seeds: ``k`` = 3.4 for M/D/1 at
rho 0.5, 6.4 M/M/1 0.5, 9.8 M/D/1 0.8, 10.7 M/M/1 0.8, 12.8 M/M/4 0.8, 14.8 M/M/2 0.8, i.e.
0.8% to 3.3% at 200k requests) because waits are strongly correlated in a loaded queue; the
probability of waiting is far less noisy (0.3% to 1.0% at 200k). So ``ok`` means the exact
part holds and ``|rel_error| <= rel_tol`` (3%) -- or, where the run is too short for that,
``rel_error`` lies within its 99% confidence interval (``ci99_rel``; ``ok_by`` says which).
Intervals: the regenerative method for the per-request statistics (cycles between arrivals to
an empty system are independent, :func:`regenerative_halfwidth`), ``1 / sqrt(n)`` for Little's
law. Over 120 seeds at 40k requests the regenerative 99% interval of the mean wait covered the
theory 97% to 100% of the time (83% to 98% at 2k requests: too short).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from sunsim.engine.cluster import SimResult, simulate
from sunsim.engine.spec import ClusterSpec
from sunsim.errors import ConfigError
from sunsim.latency.base import LatencyModel
from sunsim.specs import LinkSpec
from sunsim.validate.queueing_theory import (
    erlang_c,
    fcfs_waits,
    md1_mean_wait,
    mmc_mean_wait,
    regeneration_starts,
    regenerative_halfwidth,
    time_average_in_system,
)

__all__ = [
    "MEAN_SERVICE_S",
    "PATHWISE_TOL_S",
    "QUEUE_MODEL",
    "REL_TOL",
    "ConfigError",
    "ServiceTimeLatency",
    "erlang_c",
    "fcfs_waits",
    "md1_mean_wait",
    "mmc_mean_wait",
    "poisson_arrivals",
    "queue_cluster",
    "queue_requests",
    "queue_waits",
    "regeneration_starts",
    "regenerative_halfwidth",
    "run_queueing_checks",
    "simulate_queue",
    "time_average_in_system",
]

#: A check passes when the simulated value is within this fraction of the theory.
REL_TOL = 0.03
#: Largest per-request difference (seconds) between the engine and the exact FCFS recursion.
PATHWISE_TOL_S = 1e-6
#: Mean service time (seconds) of every queue (mu = 1 / MEAN_SERVICE_S).
MEAN_SERVICE_S = 1.0
#: The served model's name in the generated traces.
QUEUE_MODEL = "queue"


# --- the engine as a queue ------------------------------------------------------------------


class ServiceTimeLatency(LatencyModel):
    """Zero-time prefill; a decode iteration of the one request of the batch takes that
    request's service time, looked up by its context: request ``i`` (``i + 1`` prompt tokens,
    one decode iteration holding ``i + 2`` tokens) takes ``service_s[i]`` seconds.

    One KV byte per token, no weights (the KV cache is the GPU's memory). Raises
    :class:`ConfigError` on a batch of more than one request (``max_num_seqs`` must be 1).
    """

    method = "analytic"

    def __init__(self, service_s: Sequence[float] | np.ndarray) -> None:
        self._service = [float(s) for s in service_s]
        self.weight_bytes = 0
        self.kv_bytes_per_token = 1
        self.max_model_len = 1 << 62
        self.description = f"queueing table of {len(self._service)} service times (analytic)"

    def prefill_time(self, prompt_lens: Sequence[int]) -> float:
        return 0.0

    def decode_step_time(self, batch_size: int, total_context_tokens: int) -> float:
        if batch_size != 1:
            raise ConfigError(
                "ServiceTimeLatency serves one request per iteration; use max_num_seqs = 1"
            )
        return self._service[total_context_tokens - 2]


def queue_requests(arrival_s: np.ndarray) -> pd.DataFrame:
    """The trace of a queueing run: ``arrival_s``, one model, request ``i`` with ``i + 1``
    prompt tokens and 2 output tokens."""
    n = len(arrival_s)
    return pd.DataFrame(
        {
            "arrival_s": np.asarray(arrival_s, dtype=float),
            "model": QUEUE_MODEL,
            "prompt_tokens": np.arange(1, n + 1),
            "output_tokens": 2,
        }
    )


def queue_cluster(c: int, router: str = "central") -> ClusterSpec:
    """One model, one prefill worker, a shared pool of ``c`` decode workers with one request
    each, instant KV link (latency 0, infinite bandwidth)."""
    return ClusterSpec(
        design="sun",
        served_models=(QUEUE_MODEL,),
        prefill_workers=(1,),
        decode_workers=(c,),
        max_num_seqs=1,
        decode_router=router,
        link=LinkSpec(bandwidth=float("inf"), latency_s=0.0),
    )


def simulate_queue(
    arrival_s: np.ndarray, service_s: np.ndarray, c: int, router: str = "central"
) -> SimResult:
    """Run the engine as a ``c``-server FCFS queue on these arrivals and service times."""
    lat = ServiceTimeLatency(service_s)
    return simulate(queue_requests(arrival_s), queue_cluster(c, router), lat, lat)


def queue_waits(records: pd.DataFrame) -> np.ndarray:
    """Per-request waiting time (seconds): ``decode_started_at - first_token_at``."""
    return (records["decode_started_at"] - records["first_token_at"]).to_numpy()


def poisson_arrivals(rate: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` arrival times (seconds) of a Poisson process of ``rate`` per second from 0."""
    return np.cumsum(rng.exponential(1.0 / rate, n))


# --- the checks ---------------------------------------------------------------------------


def _row(
    queue: str,
    quantity: str,
    source: str,
    simulated: float,
    theory: float,
    samples: np.ndarray | None,
    starts: np.ndarray | None,
    tol: float,
    max_dev_s: float,
    n: int,
    wall_s: float,
) -> dict:
    """One row; ``samples`` (per request, in arrival order) and the regeneration ``starts``
    give the confidence intervals; a row whose 99% interval is wider than ``tol`` may pass
    inside the interval."""
    rel = simulated / theory - 1.0
    if samples is not None and starts is not None:
        ci95 = regenerative_halfwidth(samples, starts, level=0.95) / theory
        ci99 = regenerative_halfwidth(samples, starts, level=0.99) / theory
    else:  # Little's law: the window's error only, relative sd 1 / sqrt(n)
        ci95, ci99 = 1.959964 / math.sqrt(n), 2.575829 / math.sqrt(n)
    exact = max_dev_s != max_dev_s or max_dev_s <= PATHWISE_TOL_S
    if not exact:
        ok_by = ""
    elif abs(rel) <= tol:
        ok_by = "tolerance"
    elif ci99 == ci99 and abs(rel) <= ci99:
        ok_by = "ci99"
    else:
        ok_by = ""
    return dict(
        check=f"{queue} {quantity}",
        queue=queue,
        quantity=quantity,
        source=source,
        simulated=simulated,
        theory=theory,
        rel_error=rel,
        ci95_rel=ci95,
        ci99_rel=ci99,
        max_dev_s=max_dev_s,
        ok=bool(ok_by),
        ok_by=ok_by,
        num_requests=n,
        wall_s=wall_s,
    )


def run_queueing_checks(
    *,
    num_requests: int = 200_000,
    seed: int = 0,
    rhos: Sequence[float] = (0.5, 0.8),
    servers: Sequence[int] = (1, 2, 4),
    rel_tol: float | None = None,
    on_progress: Callable[[int, int, str], None] | None = None,
) -> pd.DataFrame:
    """Run the engine as M/M/c for every ``c`` in ``servers`` and as M/D/1, at every load in
    ``rhos``, and compare with theory (see the module docstring).

    Per run three rows: the probability of waiting (Erlang C ``C(c, a)`` for M/M/c; ``rho``
    for M/D/1, the probability that an arrival finds the server busy, by PASTA), the mean wait
    (Erlang C / Pollaczek-Khinchine) and Little's law.

    ``ok``: the engine equals the exact FCFS recursion request by request (``max_dev_s`` <=
    :data:`PATHWISE_TOL_S`) and ``|rel_error| <= rel_tol`` -- or, for a run too short for
    that tolerance, ``|rel_error|`` within the 99% confidence interval (``ci99_rel``): the
    mean wait of a loaded queue is a noisy statistic (module docstring), the probability of
    waiting and Little's law much less so.

    Args:
        num_requests: requests per run (each run is one simulation), at least 1000.
        seed: seeds every run's Generator (a run's inputs depend only on the seed, its kind,
            ``c`` and ``rho``, not on which other runs are asked for).
        rhos: loads per server, each in (0, 1).
        servers: numbers of decode workers for M/M/c.
        rel_tol: tolerance of ``ok`` (default :data:`REL_TOL`, 3%).
        on_progress: called with (runs done, runs in all, label of the next run).

    Returns:
        one row per check, columns: ``check`` (e.g. ``M/M/c c=2 rho=0.8 mean wait``),
        ``queue`` (``M/M/c c=2 rho=0.8``), ``quantity`` (``P(wait)``; ``mean wait`` in
        seconds; ``Little's law``: L in requests), ``source`` of the theory (``Erlang C``,
        ``Pollaczek-Khinchine``, ``rho (PASTA)``, ``lambda W``), ``simulated``, ``theory``,
        ``rel_error`` (simulated / theory - 1), ``ci95_rel`` and ``ci99_rel`` (confidence
        half-widths / theory: regenerative; for Little's law 1.96 and 2.58 / sqrt(n)),
        ``max_dev_s`` (largest per-request difference of the wait from the exact FCFS
        recursion, seconds; NaN for Little's law), ``ok``, ``ok_by`` (``tolerance``;
        ``ci99``: within the interval only; empty when the check fails), ``num_requests``,
        ``wall_s`` (seconds the run's simulation took, on its first row). ``attrs`` holds
        ``seed``, ``rel_tol``, ``mean_service_s``.

    Raises:
        ConfigError: a load outside (0, 1), fewer than 1 server, or fewer than 1000 requests.
    """
    tol = REL_TOL if rel_tol is None else rel_tol
    _check_inputs(num_requests, rhos, servers)
    runs = [("M/M/c", c, rho) for rho in rhos for c in servers] + [
        ("M/D/1", 1, rho) for rho in rhos
    ]
    rows = []
    for i, (kind, c, rho) in enumerate(runs):
        name = f"M/M/c c={c} rho={rho:g}" if kind == "M/M/c" else f"M/D/1 rho={rho:g}"
        if on_progress is not None:
            on_progress(i, len(runs), name)
        rows.extend(_one_run(kind, c, rho, name, num_requests, seed, tol))
    if on_progress is not None:
        on_progress(len(runs), len(runs), "done")
    df = pd.DataFrame(rows)
    df.attrs.update(seed=seed, rel_tol=tol, mean_service_s=MEAN_SERVICE_S)
    return df


def _check_inputs(num_requests: int, rhos: Sequence[float], servers: Sequence[int]) -> None:
    """Raise :class:`ConfigError` on fewer than 1000 requests, a load outside (0, 1) or
    fewer than 1 server."""
    if num_requests < 1000:
        raise ConfigError(
            f"queueing checks need at least 1000 requests per run, got {num_requests}"
        )
    for rho in rhos:
        if not 0 < rho < 1:
            raise ConfigError(f"load rho must be in (0, 1), got {rho}")
    for c in servers:
        if c < 1:
            raise ConfigError(f"number of servers must be >= 1, got {c}")


def _one_run(kind: str, c: int, rho: float, name: str, n: int, seed: int, tol: float) -> list[dict]:
    """Simulate one queue (``M/M/c`` with ``c`` servers or ``M/D/1``) at load ``rho`` and
    return its three rows: P(wait), mean wait, Little's law."""
    mu = 1.0 / MEAN_SERVICE_S
    lam = rho * c * mu
    rng = np.random.default_rng([seed, 0 if kind == "M/M/c" else 1, c, int(round(rho * 10_000))])
    arrival = poisson_arrivals(lam, n, rng)
    if kind == "M/M/c":
        service = rng.exponential(MEAN_SERVICE_S, n)
        p_wait, wait = erlang_c(c, lam / mu), mmc_mean_wait(lam, mu, c)
        p_name, w_name, router = "Erlang C", "Erlang C", "central"
    else:
        service = np.full(n, MEAN_SERVICE_S)
        p_wait, wait = rho, md1_mean_wait(lam, MEAN_SERVICE_S)
        p_name, w_name, router = "rho (PASTA)", "Pollaczek-Khinchine", "least_loaded"
    t0 = time.perf_counter()
    res = simulate_queue(arrival, service, c, router)
    wall = time.perf_counter() - t0
    rec = res.records
    waits = queue_waits(rec)
    dev = float(np.max(np.abs(waits - fcfs_waits(arrival, service, c))))
    waited = (waits > 0).astype(float)
    arrived = rec["arrived_at"].to_numpy()
    finished = rec["finished_at"].to_numpy()
    starts = regeneration_starts(arrived, finished)
    little = time_average_in_system(arrived, finished)
    little_w = float(np.mean(finished - arrived))
    return [
        _row(
            name, "P(wait)", p_name, float(waited.mean()), p_wait, waited, starts, tol, dev, n, wall
        ),
        _row(name, "mean wait", w_name, float(waits.mean()), wait, waits, starts, tol, dev, n, 0.0),
        _row(
            name,
            "Little's law",
            "lambda W",
            little,
            lam * little_w,
            None,
            None,
            tol,
            math.nan,
            n,
            0.0,
        ),
    ]
