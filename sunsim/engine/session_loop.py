"""Session-dependent arrivals: a trace's agent sessions replayed as closed loops.

A multi-model agent session is a loop: the planner's answer is read before the coder is
called, the coder's output before the critic is. Its next call is sent only when its
previous call has finished, plus the time the agent thinks or a tool runs (the agent
workloads of PrefillShare, arXiv 2602.12029, and ICaRus, arXiv 2603.13281, work so; so do
Mooncake's conversation sessions, whose turns follow the previous answer). Replaying such a
trace at its timestamps (``session_arrivals = "timestamp"``, the default) keeps the arrival
times whatever the simulated latency; ``"after_previous"`` makes them depend on it:

* a session's first call (lowest ``turn``) arrives at its trace timestamp;
* call ``k + 1`` arrives at ``end(k) + think(k)``, where ``end(k)`` is when call ``k``
  finished (its last token), or was rejected on arrival;
* ``think(k)``: the trace's gap between the two calls' timestamps (``think_time_s`` unset),
  or a draw from an exponential distribution with mean ``think_time_s`` (seeded, drawn for
  every call in trace order before the run, so the draws do not depend on the simulation).

With the trace's gaps a session runs longer than in the trace by its calls' response times
(a gap that stood for response + think time counts as think time only); give
``think_time_s`` where the gaps include the response time (``sunsim trace workflow``'s do).

Mechanism (:mod:`sunsim.engine.closed_loop`'s): the engine's arrival list grows during the
run. Calls due later wait in a heap ordered by (arrival time, trace row); one timer fires at
the earliest, moves every due call into the engine's list, and calls
:meth:`ClusterSim._arrive <sunsim.engine.cluster.ClusterSim>`. The engine numbers requests
in the order they are sent; the records are put back in trace order at the end. Cost: O(log
n) per call (one heap push and pop, at most one timer).
"""

from __future__ import annotations

import heapq
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from sunsim.engine.cluster import ClusterSim, arrival_inputs
from sunsim.engine.prefix_hooks import (
    PrefixIndex,
    attach_prefix_caches,
    prefix_extras,
    prefix_index,
)
from sunsim.engine.result import SimResult, build_result
from sunsim.engine.spec import ClusterSpec
from sunsim.errors import ConfigError
from sunsim.latency.base import LatencyModel

__all__ = ["session_chains", "simulate_sessions", "think_times"]


def session_chains(requests: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """``(nxt, first)`` for a frame with ``session_id`` and ``turn``: ``nxt[i]`` is the row of
    the session's call after row ``i`` (-1 for its last), ``first[i]`` whether row ``i``
    opens its session. Raises :class:`ConfigError` without the columns."""
    if "session_id" not in requests.columns:
        raise ConfigError(
            "session_arrivals = after_previous needs sessions: the trace has no session_id "
            "column (sunsim trace workflow writes one; sunsim trace assign can infer them)"
        )
    n = len(requests)
    sid = requests["session_id"].to_numpy(dtype=np.int64)
    turn = (
        requests["turn"].to_numpy(dtype=np.int64)
        if "turn" in requests.columns
        else np.zeros(n, dtype=np.int64)
    )
    order = np.lexsort((np.arange(n), turn, sid))  # by session, turn, then trace row
    nxt = np.full(n, -1, dtype=np.int64)
    same = sid[order[1:]] == sid[order[:-1]]
    nxt[order[:-1][same]] = order[1:][same]
    first = np.ones(n, dtype=bool)
    first[nxt[nxt >= 0]] = False
    return nxt, first


def think_times(
    requests: pd.DataFrame, nxt: np.ndarray, think_time_s: float | None, seed: int
) -> np.ndarray:
    """Seconds between row ``i``'s end and the arrival of row ``nxt[i]`` (0 where there is
    no next call): the trace's gap ``arrival_s[nxt[i]] - arrival_s[i]`` (not below 0) when
    ``think_time_s`` is None, else exponential draws with that mean (all 0 for 0)."""
    n = len(requests)
    has = nxt >= 0
    out = np.zeros(n)
    if think_time_s is None:
        arr = requests["arrival_s"].to_numpy(dtype=float)
        out[has] = np.maximum(arr[nxt[has]] - arr[has], 0.0)
    elif think_time_s > 0:
        draws = np.random.default_rng(seed).exponential(think_time_s, size=n)
        out[has] = draws[has]
    elif think_time_s < 0 or not math.isfinite(think_time_s):
        raise ConfigError(f"think_time_s must be a number >= 0, got {think_time_s}")
    return out


class _Sessions:
    """The sessions of one run: calls waiting to be sent, and the engine's growing inputs."""

    def __init__(self, sim: ClusterSim, nxt: np.ndarray, think: np.ndarray,
                 rows: dict[str, Any], index: PrefixIndex | None) -> None:  # fmt: skip
        self.sim = sim
        self.nxt, self.think = nxt.tolist(), think.tolist()
        self.rows = rows  # per trace row: model_idx, prompt, output (lists), keys, tokens
        self.index = index  # the prefix keys in send order (filled as calls are sent)
        n = len(nxt)
        self.row_of = np.full(n, -1, dtype=np.int64)  # send order -> trace row
        self.sent_at = np.full(n, np.nan)  # send order -> arrival time (records' input)
        self.model = np.zeros(n, dtype=np.int64)
        self.prompt = np.zeros(n, dtype=np.int64)
        self.output = np.zeros(n, dtype=np.int64)
        self.lists: tuple[list[Any], ...] = ([], [], [], [])  # the engine's arrival lists
        self.heap: list[tuple[float, int]] = []
        self.timer_at = math.inf  # when the earliest pending timer fires

    def push(self, at: float, row: int) -> None:
        """Call ``row`` arrives at ``at`` (>= now)."""
        heapq.heappush(self.heap, (at, row))
        if at < self.timer_at:
            self._timer(at)

    def _timer(self, at: float) -> None:
        """A timer for the calls due at ``at``. The clock adds the delay to now, which can
        land an ulp before ``at``: the timer knows its ``at`` and sends what is due by then
        (the engine then waits the last ulp itself, :meth:`ClusterSim._arrive`)."""
        self.timer_at = at
        self.sim.schedule(max(at - self.sim.env.now, 0.0), lambda ev: self._fire(ev, at))

    def on_request_end(self, at: float, request_id: int) -> None:
        row = int(self.row_of[request_id])
        nxt = self.nxt[row]
        if nxt >= 0:
            self.push(at + self.think[row], nxt)

    def _fire(self, ev: Any, target: float) -> None:
        if target >= self.timer_at:
            self.timer_at = math.inf
        due_by = max(self.sim.env.now, target)
        heap = self.heap
        due = False
        while heap and heap[0][0] <= due_by:
            at, row = heapq.heappop(heap)
            self._send(at, row)
            due = True
        if heap and heap[0][0] < self.timer_at:
            self._timer(heap[0][0])
        if due:
            self.sim._arrive(ev)

    def _send(self, at: float, row: int) -> None:
        k = len(self.lists[0])
        r = self.rows
        m, p, o = r["model"][row], r["prompt"][row], r["output"][row]
        self.row_of[k] = row
        self.sent_at[k], self.model[k], self.prompt[k], self.output[k] = at, m, p, o
        for lst, v in zip(self.lists, (at, m, p, o)):
            lst.append(v)
        if self.index is not None:
            self.index.keys[k] = r["keys"][row]
            self.index.tokens[k] = r["tokens"][row]


def simulate_sessions(
    requests: pd.DataFrame,
    cluster: ClusterSpec,
    prefill_latency: LatencyModel,
    decode_latency: LatencyModel,
    *,
    think_time_s: float | None = None,
    seed: int = 0,
    on_progress: Callable[[float], None] | None = None,
    timeline_bins: int = 200,
) -> SimResult:
    """Replay the sessions of ``requests`` with ``after_previous`` arrivals (module docstring).

    Args:
        requests: as for :func:`sunsim.engine.cluster.simulate`, plus ``session_id`` (and
            ``turn``; without it, trace order within the session); ``arrival_s`` of first
            calls are their arrival times, of later calls only their think time's source.
        cluster, prefill_latency, decode_latency, seed, on_progress: as for ``simulate``.
        think_time_s: mean think time, seconds (exponential, drawn with ``seed``); None: the
            trace's gaps.
        timeline_bins: time bins over the trace's span (a run longer than the trace has
            more bins of the same width).

    Returns:
        a :class:`SimResult` whose records are in trace order, ``arrived_at`` the simulated
        send times; ``extra["prefix_cache"]`` and ``extra["prefix_kv_timeline"]`` as
        ``simulate`` with caching.

    Raises:
        ConfigError: no ``session_id``, a model not served, arrivals out of order, or
            decode weights that do not fit.
    """
    t0 = time.perf_counter()
    n = len(requests)
    served = list(cluster.served_models)
    arrival, model_idx = arrival_inputs(requests, served)
    nxt, first = session_chains(requests)
    think = think_times(requests, nxt, think_time_s, seed)
    span = float(arrival[-1]) if n else 0.0
    bin_s = max(span / timeline_bins, 1e-3) if span > 0 else 1.0
    rng = np.random.default_rng(seed)
    sim = ClusterSim(cluster, prefill_latency, decode_latency, n, rng, timeline_bin_s=bin_s)
    rows: dict[str, Any] = {
        "model": model_idx.tolist(),
        "prompt": requests["prompt_tokens"].to_numpy(dtype=np.int64).tolist(),
        "output": requests["output_tokens"].to_numpy(dtype=np.int64).tolist(),
    }
    index = None
    if cluster.enable_prefix_caching:
        by_row = prefix_index(requests, rows["model"], cluster.design.kv_shared_across_models)
        if by_row is not None:
            rows["keys"], rows["tokens"] = by_row.keys, by_row.tokens
            index = PrefixIndex([None] * n, [None] * n)
            attach_prefix_caches(sim, index)
    sessions = _Sessions(sim, nxt, think, rows, index)
    sim.on_request_end = sessions.on_request_end
    sim.records.set_inputs(sessions.sent_at, sessions.model, sessions.prompt, sessions.output)
    sim.report_progress(on_progress)
    sim.start_arrivals(*sessions.lists)  # empty: the sessions' timer feeds them
    for row in np.flatnonzero(first).tolist():  # first calls, in trace (arrival) order
        sessions.push(float(arrival[row]), row)
    sim.env.run()
    if sim.num_done != n or len(sessions.lists[0]) != n:  # pragma: no cover - invariant
        raise RuntimeError(
            f"session replay ended with {n - sim.num_done} of {n} requests unfinished "
            f"({n - len(sessions.lists[0])} never sent)"
        )
    result = build_result(sim, served, time.perf_counter() - t0)
    result.records = _in_trace_order(result.records, sessions.row_of)
    if index is not None:
        result.extra.update(prefix_extras(sim))
    return result


def _in_trace_order(rec: pd.DataFrame, row_of: np.ndarray) -> pd.DataFrame:
    """Records numbered in send order (``request_id`` = k, trace row ``row_of[k]``) as one
    row per trace row, in trace order, ``request_id`` the trace row."""
    if not len(rec):
        return rec
    send_of = np.empty_like(row_of)
    send_of[row_of] = np.arange(len(row_of))
    out = rec.iloc[send_of].reset_index(drop=True)
    out["request_id"] = np.arange(len(out), dtype=out["request_id"].dtype)
    return out
