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
from sunsim.engine.records import RecordSink
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
    records_sink: RecordSink | None = None,
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
        records_sink: as for ``simulate``: the records stream to it in frames of
            consecutive trace rows (the frames of the in-memory records, in trace order;
            :class:`_TraceOrderSink` puts the engine's send-order frames back in order), and
            the result's ``records`` is an empty frame.

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
    rows, index = _row_inputs(sim, requests, cluster, model_idx)
    sessions = _Sessions(sim, nxt, think, rows, index)
    sim.on_request_end = sessions.on_request_end
    sim.records.set_inputs(sessions.sent_at, sessions.model, sessions.prompt, sessions.output)
    in_order = None
    if records_sink is not None:
        in_order = _TraceOrderSink(records_sink, sessions.row_of)
        sim.records.stream(in_order, served)
        in_order.chunk_rows = sim.records.chunk_rows  # trace-order frames of the same size
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
    if in_order is not None:
        sim.records.close()
        in_order.check_done()
    result = build_result(sim, served, time.perf_counter() - t0)
    result.records = _in_trace_order(result.records, sessions.row_of)
    if index is not None:
        result.extra.update(prefix_extras(sim))
    return result


def _row_inputs(
    sim: ClusterSim, requests: pd.DataFrame, cluster: ClusterSpec, model_idx: np.ndarray
) -> tuple[dict[str, Any], PrefixIndex | None]:
    """Per trace row: ``model`` (index), ``prompt`` and ``output`` tokens (lists), and with
    prefix caching on a trace with prefix keys, ``keys`` and ``tokens``; then the
    :class:`PrefixIndex` the caches of ``sim`` read (attached here; filled in send order as
    calls are sent), or None without caching."""
    n = len(requests)
    rows: dict[str, Any] = {
        "model": model_idx.tolist(),
        "prompt": requests["prompt_tokens"].to_numpy(dtype=np.int64).tolist(),
        "output": requests["output_tokens"].to_numpy(dtype=np.int64).tolist(),
    }
    if not cluster.enable_prefix_caching:
        return rows, None
    by_row = prefix_index(requests, rows["model"], cluster.design.kv_shared_across_models)
    if by_row is None:
        return rows, None
    rows["keys"], rows["tokens"] = by_row.keys, by_row.tokens
    index = PrefixIndex([None] * n, [None] * n)
    attach_prefix_caches(sim, index)
    return rows, index


class _TraceOrderSink:
    """Between the record table, which numbers requests in send order, and the run's sink:
    takes frames of consecutive send-order rows (``request_id`` = send index ``k``, trace
    row ``row_of[k]``) and writes frames of ``chunk_rows`` consecutive trace rows, each as
    soon as all of its rows have come, with ``request_id`` the trace row (the rows and
    values of :func:`_in_trace_order`'s records). Holds only the rows of incomplete chunks."""

    def __init__(self, sink: RecordSink, row_of: np.ndarray, chunk_rows: int = 1 << 18) -> None:
        self.sink, self.row_of, self.chunk_rows = sink, row_of, chunk_rows
        self.n = len(row_of)
        self.parts: dict[int, list[pd.DataFrame]] = {}  # chunk -> its rows come so far
        self.have: dict[int, int] = {}  # chunk -> how many
        self.next_chunk = 0  # the first chunk not yet written
        self.rows_written = 0

    def write(self, frame: pd.DataFrame) -> None:
        frame = frame.copy()
        row = self.row_of[frame["request_id"].to_numpy()]
        frame["request_id"] = row.astype(frame["request_id"].dtype)
        chunk = row // self.chunk_rows
        for c in np.unique(chunk).tolist():
            part = frame[chunk == c]
            self.parts.setdefault(c, []).append(part)
            self.have[c] = self.have.get(c, 0) + len(part)
        C = self.chunk_rows
        while self.next_chunk * C < self.n:
            c = self.next_chunk
            if self.have.get(c, 0) < min(C, self.n - c * C):
                break
            del self.have[c]
            out = pd.concat(self.parts.pop(c), ignore_index=True)
            out = out.iloc[np.argsort(out["request_id"].to_numpy(), kind="stable")]
            self.sink.write(out.reset_index(drop=True))
            self.rows_written += len(out)
            self.next_chunk += 1

    def check_done(self) -> None:
        if self.rows_written != self.n:  # pragma: no cover - engine invariant
            raise RuntimeError(f"{self.n - self.rows_written} session records were not written")


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
