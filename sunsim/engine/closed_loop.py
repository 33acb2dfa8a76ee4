"""Closed-loop workloads: ``max_concurrency`` clients, each sending its next request when its
last one ends, ``num_prompts`` requests in all.

This is how serving benchmarks load an engine when they cap concurrency (vLLM's
``vllm bench serve`` / ``benchmark_serving.py --max-concurrency``, NVIDIA's genai-perf
``--concurrency``): the arrival of request ``k + C`` is the end of some earlier request, so
the arrival times come out of the simulation instead of a trace. At time 0 the first
``min(C, num_prompts)`` requests are sent; each time a request ends (finished, or rejected on
arrival), the next unsent one arrives at that same simulated instant. At most ``C`` requests
are in flight, and every request ends exactly once.

Lengths: ``input_len`` / ``output_len`` tokens, fixed (``range_ratio`` 0) or drawn per
request uniformly from the integers in ``[max(1, floor(L (1 - r))), ceil(L (1 + r))]``, the
rule of vLLM's random dataset (``--random-range-ratio``), with NumPy's seeded generator.
Models: round-robin over the served models (request ``k`` to model ``k mod n``), or drawn by
``shares``.

The engine hook is :attr:`sunsim.engine.cluster.ClusterSim.on_request_end`; the arrivals
still go through :meth:`ClusterSim._arrive <sunsim.engine.cluster.ClusterSim>` (rejection and
routing are the trace path's), fed from a list that grows during the run.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from sunsim.engine.cluster import ClusterSim
from sunsim.engine.result import SimResult, build_result
from sunsim.engine.spec import ClusterSpec
from sunsim.errors import ConfigError
from sunsim.latency.base import LatencyModel

__all__ = ["ClosedLoopWorkload", "draw_lengths", "simulate_closed_loop"]


def draw_lengths(rng: np.random.Generator, length: int, range_ratio: float, n: int) -> np.ndarray:
    """``n`` token counts around ``length``: all equal to it when ``range_ratio`` is 0, else
    uniform integers in ``[max(1, floor(length (1 - r))), ceil(length (1 + r))]`` (vLLM's
    random dataset). Returns an int64 array."""
    if range_ratio <= 0:
        return np.full(n, length, dtype=np.int64)
    eps = 1e-9  # 100 x 1.1 is 110.00000000000001 in floating point: its ceiling is 110
    lo = max(1, math.floor(length * (1 - range_ratio) + eps))
    hi = max(lo, math.ceil(length * (1 + range_ratio) - eps))
    return rng.integers(lo, hi + 1, size=n, dtype=np.int64)


@dataclass(frozen=True)
class ClosedLoopWorkload:
    """``max_concurrency`` clients sending ``num_prompts`` requests of ``input_len`` prompt
    and ``output_len`` output tokens (drawn with ``range_ratio``) to ``served_models``
    (round-robin, or by ``shares``), drawn with ``seed``.

    Raises:
        ConfigError: a count below 1, ``range_ratio`` outside [0, 1), or shares that do not
            match the served models.
    """

    max_concurrency: int
    num_prompts: int
    input_len: int
    output_len: int
    range_ratio: float = 0.0
    served_models: tuple[str, ...] = ("model",)
    shares: tuple[float, ...] | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("max_concurrency", "num_prompts", "input_len", "output_len"):
            if getattr(self, name) < 1:
                raise ConfigError(f"closed loop: {name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.range_ratio < 1:
            raise ConfigError(f"closed loop: range_ratio must be in [0, 1), got {self.range_ratio}")
        if not self.served_models:
            raise ConfigError("closed loop: no served models")
        if self.shares is not None and (
            len(self.shares) != len(self.served_models) or sum(self.shares) <= 0
        ):
            raise ConfigError(
                f"closed loop: {len(self.shares)} shares for {len(self.served_models)} "
                "served models (give one non-negative share each, with a positive sum)"
            )

    def requests(self) -> pd.DataFrame:
        """The requests in sending order: ``model``, ``prompt_tokens``, ``output_tokens``,
        and ``arrival_s`` (NaN: set by the simulation). Same seed, same frame."""
        n = self.num_prompts
        rng = np.random.default_rng(self.seed)
        prompt = draw_lengths(rng, self.input_len, self.range_ratio, n)
        output = draw_lengths(rng, self.output_len, self.range_ratio, n)
        models = np.asarray(self.served_models, dtype=object)
        if self.shares is None:
            idx = np.arange(n) % len(models)
        else:
            p = np.asarray(self.shares, dtype=float)
            idx = rng.choice(len(models), size=n, p=p / p.sum())
        return pd.DataFrame(
            {
                "arrival_s": np.full(n, np.nan),
                "model": models[idx],
                "prompt_tokens": prompt,
                "output_tokens": output,
            }
        )

    def labelling(self) -> str:
        """How requests get their model, for run headers."""
        if self.shares is None:
            return "round-robin over the served models"
        return f"explicit shares {list(self.shares)} (seed {self.seed})"

    def describe(self) -> str:
        """One line, e.g. ``closed loop: 64 clients, 640 requests, 1024 -> 1024 tokens``."""
        spread = f" (range ratio {self.range_ratio:g})" if self.range_ratio > 0 else ""
        return (
            f"closed loop: {self.max_concurrency} clients, {self.num_prompts} requests, "
            f"{self.input_len} -> {self.output_len} tokens{spread}"
        )


class _Clients:
    """The clients of one run: on every request end, send the next request now."""

    def __init__(
        self,
        sim: ClusterSim,
        arrival_s: list[float],
        recorded: np.ndarray,
        client_delay_s: Callable[[], float] | None = None,
    ) -> None:
        self.sim = sim
        self.arrival_s = arrival_s  # the list ClusterSim._arrive reads; grows here
        self.recorded = recorded  # the records' arrival column, filled as requests are sent
        self.n = len(recorded)
        self.pending = False  # a zero-delay arrival timer is scheduled and has not fired
        #: a client-side delay (seconds) drawn per request sent after a request end; None: 0
        self.client_delay_s = client_delay_s
        self.delayed = 0  # requests scheduled through a client delay and not yet sent

    def on_request_end(self, at: float, request_id: int = -1) -> None:
        k = len(self.arrival_s)
        if k + self.delayed >= self.n:
            return
        if self.client_delay_s is not None:
            self.delayed += 1
            wait = max(at - self.sim.env.now, 0.0) + self.client_delay_s()
            self.sim.schedule(wait, self._send_delayed)
            return
        if at < self.arrival_s[-1]:  # a staggered first request is still to come: keep order
            at = self.arrival_s[-1]
        self.arrival_s.append(at)
        self.recorded[k] = at
        if not self.pending:
            self.pending = True
            self.sim.schedule(max(at - self.sim.env.now, 0.0), self._fire)

    def _fire(self, ev: Any) -> None:
        self.pending = False
        self.sim._arrive(ev)

    def _send_delayed(self, ev: Any) -> None:
        """A client's delay ended: send its next request now (timers fire in time order, so
        the arrivals stay sorted)."""
        self.delayed -= 1
        now = max(float(self.sim.env.now), self.arrival_s[-1])
        self.recorded[len(self.arrival_s)] = now
        self.arrival_s.append(now)
        self.sim._arrive(ev)


def simulate_closed_loop(
    workload: ClosedLoopWorkload,
    cluster: ClusterSpec,
    prefill_latency: LatencyModel,
    decode_latency: LatencyModel,
    *,
    requests: pd.DataFrame | None = None,
    seed: int = 0,
    on_progress: Callable[[float], None] | None = None,
    timeline_bins: int = 200,
    first_arrivals_s: Sequence[float] | None = None,
    client_delay_s: Callable[[], float] | None = None,
) -> SimResult:
    """Run ``workload`` through ``cluster`` (see the module docstring).

    Args:
        workload: the clients and their requests.
        cluster: the resolved cluster; its ``served_models`` must include the workload's.
        prefill_latency, decode_latency: as for :func:`sunsim.engine.cluster.simulate`.
        requests: the workload's :meth:`~ClosedLoopWorkload.requests` if already drawn.
        seed: seeds the routers' randomness.
        on_progress: called with the fraction of requests ended (as ``simulate``).
        timeline_bins: time bins of the utilisation timeline over the run's span.
        first_arrivals_s: send times (seconds, non-decreasing, >= 0) of the clients' first
            requests, one per client (``min(max_concurrency, num_prompts)``); default all 0
            (every client starts at once). A request that ends before the last client has
            started has its client's next request sent at that last start instead, so the
            sending order stays the arrival order.
        client_delay_s: draws a client's own delay (seconds, >= 0) before each request it
            sends after a response; default none (sent at the response's end).

    Returns:
        a :class:`SimResult` whose records' ``arrived_at`` are the send times.

    Raises:
        ConfigError: a workload model the cluster does not serve, or decode weights that do
            not fit.
    """
    t0 = time.perf_counter()
    req = workload.requests() if requests is None else requests
    served = list(cluster.served_models)
    unknown = sorted(set(map(str, workload.served_models)) - set(served))
    if unknown:
        raise ConfigError(f"closed loop: models {unknown} are not served ({', '.join(served)})")
    n = len(req)
    idx_of = {m: i for i, m in enumerate(served)}
    model_idx = req["model"].astype(str).map(idx_of).to_numpy(dtype=np.int64)
    prompt = req["prompt_tokens"].to_numpy(dtype=np.int64)
    output = req["output_tokens"].to_numpy(dtype=np.int64)
    sim = ClusterSim(
        cluster,
        prefill_latency,
        decode_latency,
        n,
        np.random.default_rng(seed),
        defer_timeline=True,
    )
    arrival = np.full(n, np.nan)
    first = min(workload.max_concurrency, n)
    sent = [0.0] * first if first_arrivals_s is None else [float(t) for t in first_arrivals_s]
    if len(sent) != first or any(not b >= a for a, b in zip([0.0, *sent], sent)):
        raise ConfigError(
            f"closed loop: first_arrivals_s must be {first} non-decreasing times >= 0 "
            f"(one per client), got {len(sent)}"
        )
    arrival[:first] = sent
    clients = _Clients(sim, sent, arrival, client_delay_s)
    sim.on_request_end = clients.on_request_end
    sim.records.set_inputs(arrival, model_idx, prompt, output)
    sim.report_progress(on_progress)
    sim.start_arrivals(sent, model_idx.tolist(), prompt.tolist(), output.tolist())
    sim.env.run()
    if sim.num_done != n or len(sent) != n:  # pragma: no cover - engine invariant
        raise RuntimeError(
            f"closed loop ended with {n - sim.num_done} of {n} requests unfinished "
            f"({n - len(sent)} never sent)"
        )
    span = float(sim.env.now)
    sim.timeline_bin_s = max(span / timeline_bins, 1e-3) if span > 0 else 1.0
    return build_result(sim, served, time.perf_counter() - t0)
