"""Queueing theory for :mod:`sunsim.validate.queueing`: closed forms (Erlang C, M/M/c and
M/D/1 mean waits), the exact FCFS sample-path recursion, and the estimators the checks use
(time-average number in system, regeneration cycles, regenerative confidence intervals).
Times in seconds, rates per second."""

from __future__ import annotations

import heapq
import math

import numpy as np

from sunsim.errors import ConfigError

# --- closed forms -------------------------------------------------------------------------


def erlang_c(c: int, a: float) -> float:
    """Erlang C: the probability that an arrival waits in an M/M/c queue with offered load
    ``a = lambda / mu`` Erlangs (requires ``a < c``).

    Computed through the Erlang B recursion ``B(0) = 1``, ``B(k) = a B(k-1) / (k + a B(k-1))``
    and ``C = c B(c) / (c - a (1 - B(c)))`` (R. B. Cooper, *Introduction to Queueing Theory*,
    1981, Sec. 3.4), which equals the textbook sum without its factorials.
    """
    if c < 1 or not 0 <= a < c:
        raise ConfigError(f"Erlang C needs c >= 1 and 0 <= a < c, got c={c}, a={a}")
    b = 1.0
    for k in range(1, c + 1):
        b = a * b / (k + a * b)
    return c * b / (c - a * (1.0 - b))


def mmc_mean_wait(lam: float, mu: float, c: int) -> float:
    """Mean time in queue (seconds) of M/M/c: ``C(c, lambda/mu) / (c mu - lambda)``
    (Kleinrock 1975, Sec. 3.5). ``lam`` arrivals per second, ``mu`` services per second."""
    return erlang_c(c, lam / mu) / (c * mu - lam)


def md1_mean_wait(lam: float, service_s: float) -> float:
    """Mean time in queue (seconds) of M/D/1 with constant service ``service_s``:
    Pollaczek-Khinchine ``rho S / (2 (1 - rho))``, ``rho = lambda S`` (Kleinrock 1975, Ch. 5)."""
    rho = lam * service_s
    if not 0 <= rho < 1:
        raise ConfigError(f"M/D/1 needs a load below 1, got rho={rho}")
    return rho * service_s / (2.0 * (1.0 - rho))


# --- exact sample-path recursions and estimators --------------------------------------------


def fcfs_waits(arrival_s: np.ndarray, service_s: np.ndarray, c: int) -> np.ndarray:
    """Waiting times (seconds) of a FCFS queue with ``c`` identical servers, request by request,
    for arrivals ``arrival_s`` (sorted) and service times ``service_s``: the Kiefer-Wolfowitz
    recursion (1955) on the servers' free times, Lindley's (1952) for ``c = 1``."""
    free = [0.0] * c
    waits = np.empty(len(arrival_s))
    for i, (t, s) in enumerate(zip(arrival_s.tolist(), service_s.tolist())):
        f = free[0]
        start = t if t > f else f
        waits[i] = start - t
        heapq.heapreplace(free, start + s)
    return waits


def time_average_in_system(arrived_at: np.ndarray, finished_at: np.ndarray) -> float:
    """Time-average number of requests in the system over ``[min(arrived_at),
    max(finished_at)]``: the integral of N(t) (an event sweep: +1 at each arrival, -1 at each
    finish) divided by the window."""
    times = np.concatenate([arrived_at, finished_at])
    steps = np.concatenate([np.ones(len(arrived_at)), -np.ones(len(finished_at))])
    order = np.argsort(times, kind="stable")
    times, steps = times[order], steps[order]
    n_in = np.cumsum(steps)
    window = times[-1] - times[0]
    return float(np.sum(n_in[:-1] * np.diff(times)) / window) if window > 0 else 0.0


def regeneration_starts(arrived_at: np.ndarray, finished_at: np.ndarray) -> np.ndarray:
    """Boolean per request (in arrival order): it arrives to an empty system (every request
    before it has finished), which starts a new regeneration cycle of the queue."""
    starts = np.ones(len(arrived_at), dtype=bool)
    if len(arrived_at) > 1:
        starts[1:] = arrived_at[1:] >= np.maximum.accumulate(finished_at)[:-1]
    return starts


def regenerative_halfwidth(x: np.ndarray, starts: np.ndarray, level: float = 0.95) -> float:
    """Half-width of the ``level`` confidence interval of ``mean(x)`` by the regenerative
    method (Crane & Iglehart 1975; Law & Kelton, *Simulation Modeling and Analysis*): the
    cycles between arrivals to an empty system (``starts``) are independent, so with ``Y_k``
    the sum of ``x`` and ``N_k`` the number of requests of cycle ``k`` (K cycles) and
    ``r = sum Y / sum N``, the half-width is
    ``z sqrt(sum (Y_k - r N_k)^2 / (K - 1)) / (mean(N) sqrt(K))``. NaN for fewer than 2 cycles.
    Valid for a short run too, unlike batch means, whose batches must outlast the queue's
    correlation time."""
    from scipy.stats import norm

    idx = np.flatnonzero(starts)
    k = len(idx)
    if k < 2:
        return float("nan")
    y = np.add.reduceat(x, idx)
    n = np.diff(np.append(idx, len(x))).astype(float)
    r = y.sum() / n.sum()
    s = math.sqrt(np.sum((y - r * n) ** 2) / (k - 1))
    return float(norm.ppf(0.5 + level / 2) * s / (n.mean() * math.sqrt(k)))
