"""Statistics of one decode worker: counters kept during the run, a log of its runs of
iterations, and the distributions computed from that log once the simulation is over.

Nothing here advances time or decides anything: :class:`~sunsim.engine.decode.DecodeWorker`
calls :meth:`DecodeStats.commit` once per run of iterations (one row of the log), and
:mod:`sunsim.engine.result` reads the counters and calls :meth:`DecodeStats.timeline`,
:meth:`DecodeStats.kv_time` and :meth:`DecodeStats.itl_hist`.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Sequence

import numpy as np

from sunsim.engine.request import Request

#: ITL histogram: log-spaced bins, 200 per decade from 1 microsecond (about 1.2% wide).
ITL_BINS_PER_DECADE = 200
ITL_MIN_S = 1e-6
ITL_NUM_BINS = ITL_BINS_PER_DECADE * 10  # 1 us .. 10^4 s

_FLOAT_LOGS = ("t0", "busy", "kv", "dt0", "dt1")
_INT_LOGS = ("n", "todo", "fresh")


def itl_bin(dt: float) -> int:
    """Index of the ITL histogram bin holding ``dt`` seconds."""
    if dt <= ITL_MIN_S:
        return 0
    i = int(math.log10(dt / ITL_MIN_S) * ITL_BINS_PER_DECADE)
    return i if i < ITL_NUM_BINS else ITL_NUM_BINS - 1


def _itl_bins(dt: np.ndarray) -> np.ndarray:
    """Vectorised :func:`itl_bin`."""
    with np.errstate(divide="ignore", invalid="ignore"):
        i = np.floor(np.log10(np.maximum(dt, ITL_MIN_S) / ITL_MIN_S) * ITL_BINS_PER_DECADE)
    out: np.ndarray = np.clip(i, 0, ITL_NUM_BINS - 1).astype(np.int64)
    return out


class DecodeStats:
    """Counters and the run log of one decode worker (seconds, tokens, counts).

    Counters: ``busy_s``; ``batch_s`` = integral of batch size over time; ``kv_tokens_s`` =
    integral of KV tokens held; ``batch_time[b]`` = seconds spent at batch size ``b``;
    ``num_iterations``, ``num_tokens`` (decoded), ``num_preemptions``, ``peak_batch``.

    The log has one row per run of iterations: ``log_t0`` start (s), ``log_busy`` (s),
    ``log_kv`` KV token-seconds, ``log_n`` batch size, ``log_todo`` iterations, ``log_dt0`` and
    ``log_dt1`` the first and last iteration's seconds, ``log_fresh`` requests on their first
    iteration after (re)admission; ``fresh_gaps`` holds those requests' first ITL (s).
    """

    def __init__(self, max_num_seqs: int, capacity_tokens: int) -> None:
        self.capacity_tokens = capacity_tokens
        self.busy_s = 0.0
        self.batch_s = 0.0
        self.kv_tokens_s = 0.0
        self.num_iterations = 0
        self.num_tokens = 0
        self.num_preemptions = 0
        self.peak_batch = 0
        self.batch_time = [0.0] * (max_num_seqs + 1)
        self.log_t0 = array("d")
        self.log_busy = array("d")
        self.log_kv = array("d")
        self.log_n = array("q")
        self.log_todo = array("q")
        self.log_dt0 = array("d")
        self.log_dt1 = array("d")
        self.log_fresh = array("q")
        self.fresh_gaps = array("d")

    def commit(
        self,
        t0: float,
        cum: Sequence[float],
        todo: int,
        n: int,
        ctx1: int,
        fresh: list[Request] | None,
    ) -> None:
        """Account ``todo`` iterations of batch ``n`` that started at ``t0``; iteration ``m``
        (1-based) ended at ``t0 + cum[m-1]`` and held ``ctx1 + n (m-1)`` context tokens;
        ``fresh`` are the requests on their first iteration since (re)admission."""
        self.num_iterations += todo
        self.num_tokens += n * todo
        if n > self.peak_batch:
            self.peak_batch = n
        busy = cum[todo - 1]
        # KV token-seconds: sum over iterations i of (ctx1 + n (i-1)) dt_i, by Abel summation
        # sum_i (i-1) dt_i = (todo-1) cum[todo-1] - sum(cum[:todo-1])
        kv_s = (
            ctx1 * busy + n * ((todo - 1) * busy - sum(cum[: todo - 1]))
            if todo > 1
            else ctx1 * busy
        )
        self.busy_s += busy
        self.batch_s += n * busy
        self.kv_tokens_s += kv_s
        self.batch_time[n] += busy
        nf = 0
        if fresh is not None:
            end = t0 + cum[0]
            gaps = self.fresh_gaps
            for r in fresh:
                gaps.append(end - r.last_token_at)
            nf = len(fresh)
        self.log_t0.append(t0)
        self.log_busy.append(busy)
        self.log_kv.append(kv_s)
        self.log_n.append(n)
        self.log_todo.append(todo)
        self.log_dt0.append(cum[0])
        self.log_dt1.append(busy - cum[todo - 2] if todo > 1 else busy)
        self.log_fresh.append(nf)

    # -- distributions, computed once after the simulation ------------------------------
    def _log(self) -> dict[str, np.ndarray]:
        out = {k: np.frombuffer(getattr(self, "log_" + k), dtype=float) for k in _FLOAT_LOGS}
        for k in _INT_LOGS:
            out[k] = np.frombuffer(getattr(self, "log_" + k), dtype=np.int64)
        return out

    def timeline(self, bin_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Busy seconds, batch-size x seconds and KV token-seconds per time bin of ``bin_s``
        seconds (three arrays of equal length); a run of iterations spanning bins is split in
        proportion to its time in each (iterations of one run have nearly equal length)."""
        g = self._log()
        t0, busy = g["t0"], g["busy"]
        if len(t0) == 0:
            z = np.zeros(0)
            return z, z, z
        batch = g["n"] * busy
        kv = g["kv"]
        b0 = np.floor(t0 / bin_s).astype(np.int64)
        b1 = np.floor((t0 + busy) / bin_s).astype(np.int64)
        nb = int(b1.max()) + 1
        out = [np.zeros(nb), np.zeros(nb), np.zeros(nb)]
        one = b0 == b1
        for o, w in zip(out, (busy, batch, kv)):
            o += np.bincount(b0[one], weights=w[one], minlength=nb)
        for i in np.nonzero(~one)[0]:  # runs crossing bin edges
            start, d = t0[i], busy[i]
            for b in range(b0[i], b1[i] + 1):
                lo = max(start, b * bin_s)
                hi = min(start + d, (b + 1) * bin_s)
                if hi > lo and d > 0:
                    f = (hi - lo) / d
                    out[0][b] += f * busy[i]
                    out[1][b] += f * batch[i]
                    out[2][b] += f * kv[i]
        return out[0], out[1], out[2]

    def kv_time(self) -> np.ndarray:
        """Seconds per KV token occupancy percent bin 0..100 (101 floats; each run at its
        time-weighted mean occupancy)."""
        g = self._log()
        busy = g["busy"]
        h = np.zeros(101)
        if len(busy):
            mean_ctx = np.divide(g["kv"], busy, out=np.zeros_like(busy), where=busy > 0)
            occ = np.minimum((100 * mean_ctx / self.capacity_tokens).astype(np.int64), 100)
            h += np.bincount(occ, weights=busy, minlength=101)
        return h

    def itl_hist(self) -> np.ndarray:
        """Tokens per ITL bin (``ITL_NUM_BINS`` int64, see :func:`itl_bin`): every iteration's
        tokens at its length (within a run, iteration lengths are interpolated linearly
        between the first and the last, exact when the step time is linear in context, as
        the roofline is), except a request's first token after (re)admission, counted at its
        gap since its previous token."""
        g = self._log()
        h = np.zeros(ITL_NUM_BINS, dtype=np.int64)
        todo = g["todo"]
        if len(todo):
            idx = np.repeat(np.arange(len(todo)), todo)
            first = np.concatenate(([0], np.cumsum(todo)[:-1]))
            m = np.arange(len(idx)) - np.repeat(first, todo)  # iteration within its run
            span = np.maximum(todo - 1, 1)[idx]
            dt = g["dt0"][idx] + (g["dt1"][idx] - g["dt0"][idx]) * (m / span)
            w = g["n"][idx].copy()
            w[first] -= g["fresh"]
            h += np.bincount(_itl_bins(dt), weights=w, minlength=ITL_NUM_BINS).astype(np.int64)
        if len(self.fresh_gaps):
            gaps = np.frombuffer(self.fresh_gaps, dtype=float)
            h += np.bincount(_itl_bins(gaps), minlength=ITL_NUM_BINS).astype(np.int64)
        return h
