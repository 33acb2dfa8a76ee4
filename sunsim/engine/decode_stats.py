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

#: Columns of the run log, one float64 each (counts are exact in float64 below 2**53).
LOG_COLUMNS = ("t0", "busy", "kv", "n", "todo", "dt0", "dt1", "fresh")
_NCOL = len(LOG_COLUMNS)
#: Log rows a worker keeps before folding them into its distributions (a few MB at most).
FOLD_ROWS = 1 << 12


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

    The log (``log``, a flat list of floats: appending a tuple to a list is several times
    cheaper than to an ``array``) has one row of :data:`LOG_COLUMNS` per run of
    iterations: start (s), busy seconds, KV token-seconds, batch size, iterations, the first
    and the last iteration's seconds, and the requests on their first iteration after
    (re)admission; ``fresh_gaps`` holds those requests' first ITL (s). Every
    :data:`FOLD_ROWS` rows, and at the end, the log is folded into the distributions
    (timeline bins of ``timeline_bin_s`` seconds, KV occupancy, ITL histogram) and cleared,
    so memory stays bounded however long the run. Folding adds the rows' contributions in
    log order, the order a single pass over the whole log would use, so the results do not
    depend on when it happens. With ``timeline_bin_s=None`` the bin width is fixed by the
    first call of :meth:`timeline` and the log is kept until then (every :data:`FOLD_ROWS`
    rows moved into a compact float64 array, ``_held``).
    """

    def __init__(
        self, max_num_seqs: int, capacity_tokens: int, timeline_bin_s: float | None = None
    ) -> None:
        self.capacity_tokens = capacity_tokens
        self.num_preemptions = 0
        # counters of the folded rows (read through the properties, which fold first)
        self._busy_s = 0.0
        self._batch_s = 0.0
        self._kv_tokens_s = 0.0
        self._num_iterations = 0
        self._num_tokens = 0
        self._num_fresh_gaps = 0
        self._peak_batch = 0
        self._batch_time = np.zeros(max_num_seqs + 1)
        self.log: list[float] = []
        self._held = array("d")  # log rows kept while the timeline's bins are unknown
        self._held_gaps = array("d")  # and their fresh gaps
        self.fresh_gaps: list[float] = []
        self.timeline_bin_s = timeline_bin_s
        self._fold_len = FOLD_ROWS * _NCOL
        # folded distributions: timeline (busy, batch x s, KV token-s) of runs inside one bin,
        # the runs crossing bins (first and last bin, t0, busy, batch x s, KV token-s; split
        # at the end), the number of bins, KV occupancy seconds, ITL tokens
        self._tl = np.zeros((3, 0))
        self._cross: list[tuple[int, int, float, float, float, float]] = []
        self._tl_pending: list[np.ndarray] = []
        self._nb = 0
        self._kv_hist = np.zeros(101)
        self._itl = np.zeros(ITL_NUM_BINS, dtype=np.int64)

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
        busy = cum[todo - 1]
        # KV token-seconds: sum over iterations i of (ctx1 + n (i-1)) dt_i, by Abel summation
        # sum_i (i-1) dt_i = (todo-1) cum[todo-1] - sum(cum[:todo-1])
        if todo > 1:
            kv_s = ctx1 * busy + n * ((todo - 1) * busy - sum(cum[: todo - 1]))
            dt1 = busy - cum[todo - 2]
        else:
            kv_s = ctx1 * busy
            dt1 = busy
        nf = 0
        if fresh is not None:
            end = t0 + cum[0]
            gaps = self.fresh_gaps
            for r in fresh:
                gaps.append(end - r.last_token_at)
            nf = len(fresh)
        log = self.log
        log += (t0, busy, kv_s, n, todo, cum[0], dt1, nf)
        if len(log) >= self._fold_len:
            if self.timeline_bin_s is None:  # keep the rows, compactly, until bins are known
                self._held.fromlist(log)
                log.clear()
                self._held_gaps.fromlist(self.fresh_gaps)
                self.fresh_gaps.clear()
            else:
                self._fold()

    # -- distributions: the log folded in, in log order ---------------------------------
    def _fold(self) -> None:
        """Fold the log rows and fresh gaps into the distributions and clear them."""
        g = np.array(self.log, dtype=float)
        if len(self._held):
            g = np.concatenate((np.frombuffer(self._held, dtype=float), g))
            self._held = array("d")
        g = g.reshape(-1, _NCOL)
        if len(g):
            self._fold_counters(g)
            tl = (g[:, 0], g[:, 1], g[:, 3] * g[:, 1], g[:, 2])
            if self.timeline_bin_s is not None:
                self._fold_timeline(*tl)
            else:  # bins not known yet: keep the timeline's columns until they are
                self._tl_pending.append(np.stack(tl))
            self._fold_kv(g[:, 1], g[:, 2])
            self._fold_itl(g)
        gaps = np.array(self.fresh_gaps, dtype=float)
        if len(self._held_gaps):
            gaps = np.concatenate((np.frombuffer(self._held_gaps, dtype=float), gaps))
            self._held_gaps = array("d")
        if len(gaps):
            self._num_fresh_gaps += len(gaps)
            self._itl += np.bincount(_itl_bins(gaps), minlength=ITL_NUM_BINS).astype(np.int64)
        del g
        self.log = []
        self.fresh_gaps = []

    def _fold_counters(self, g: np.ndarray) -> None:
        """Counters over the rows, summed in row order (``np.cumsum`` and ``np.add.at`` add
        one value at a time, as a running ``+=`` would)."""
        busy, n, todo = g[:, 1], g[:, 3], g[:, 4]
        batch = n * busy
        for name, x in (("_busy_s", busy), ("_batch_s", batch), ("_kv_tokens_s", g[:, 2])):
            setattr(self, name, float(np.cumsum(np.concatenate(([getattr(self, name)], x)))[-1]))
        np.add.at(self._batch_time, n.astype(np.int64), busy)
        ni, ti = n.astype(np.int64), todo.astype(np.int64)
        self._num_iterations += int(ti.sum())
        self._num_tokens += int((ni * ti).sum())
        self._peak_batch = max(self._peak_batch, int(ni.max()))

    # the counters, folded first
    @property
    def busy_s(self) -> float:
        """Seconds busy (the sum of the runs' durations)."""
        self._fold()
        return self._busy_s

    @property
    def batch_s(self) -> float:
        """Integral of the batch size over busy time (request-seconds)."""
        self._fold()
        return self._batch_s

    @property
    def kv_tokens_s(self) -> float:
        """Integral of the KV tokens held over busy time (token-seconds)."""
        self._fold()
        return self._kv_tokens_s

    @property
    def num_iterations(self) -> int:
        self._fold()
        return self._num_iterations

    @property
    def num_tokens(self) -> int:
        """Tokens decoded (batch size x iterations, summed)."""
        self._fold()
        return self._num_tokens

    @property
    def num_fresh_gaps(self) -> int:
        """First gaps recorded in ``fresh_gaps`` so far (each a token emitted by a step that
        is not a decode iteration's: e.g. a co-located recompute's first token)."""
        self._fold()
        return self._num_fresh_gaps

    @property
    def peak_batch(self) -> int:
        self._fold()
        return self._peak_batch

    @property
    def batch_time(self) -> np.ndarray:
        """Seconds spent at each batch size 0..max_num_seqs (float64)."""
        self._fold()
        return self._batch_time.copy()

    def _fold_timeline(
        self, t0: np.ndarray, busy: np.ndarray, batch: np.ndarray, kv: np.ndarray
    ) -> None:
        bin_s = self.timeline_bin_s
        b0 = np.floor(t0 / bin_s).astype(np.int64)
        b1 = np.floor((t0 + busy) / bin_s).astype(np.int64)
        nb = max(self._nb, int(b1.max()) + 1)
        if nb > self._tl.shape[1]:
            grown = np.zeros((3, max(nb, 2 * self._tl.shape[1])))
            grown[:, : self._tl.shape[1]] = self._tl
            self._tl = grown
        self._nb = nb
        one = b0 == b1
        for o, w in zip(self._tl, (busy, batch, kv)):
            np.add.at(o, b0[one], w[one])  # in row order, as one bincount over the log
        for i in np.nonzero(~one)[0]:
            self._cross.append((int(b0[i]), int(b1[i]), t0[i], busy[i], batch[i], kv[i]))

    def _fold_kv(self, busy: np.ndarray, kv: np.ndarray) -> None:
        mean_ctx = np.divide(kv, busy, out=np.zeros_like(busy), where=busy > 0)
        occ = np.minimum((100 * mean_ctx / self.capacity_tokens).astype(np.int64), 100)
        np.add.at(self._kv_hist, occ, busy)

    def _fold_itl(self, g: np.ndarray) -> None:
        todo = g[:, 4].astype(np.int64)
        n = g[:, 3].astype(np.int64)
        dt0, dt1 = g[:, 5], g[:, 6]
        idx = np.repeat(np.arange(len(todo)), todo)
        first = np.concatenate(([0], np.cumsum(todo)[:-1]))
        m = np.arange(len(idx)) - np.repeat(first, todo)  # iteration within its run
        span = np.maximum(todo - 1, 1)[idx]
        dt = dt0[idx] + (dt1[idx] - dt0[idx]) * (m / span)
        w = n[idx]
        w[first] -= g[:, 7].astype(np.int64)
        self._itl += np.bincount(_itl_bins(dt), weights=w, minlength=ITL_NUM_BINS).astype(np.int64)

    def _folded(self, bin_s: float | None = None) -> None:
        """Fold what is left of the log (fixing the timeline's bins at ``bin_s`` if not yet)."""
        if bin_s is not None:
            if self.timeline_bin_s is None:
                self.timeline_bin_s = bin_s
                for tl in self._tl_pending:
                    self._fold_timeline(*tl)
                self._tl_pending = []
            elif bin_s != self.timeline_bin_s:
                raise ValueError(f"timeline bins are {self.timeline_bin_s} s, not {bin_s} s")
        self._fold()

    def timeline(self, bin_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Busy seconds, batch-size x seconds and KV token-seconds per time bin of ``bin_s``
        seconds (three arrays of equal length); a run of iterations spanning bins is split in
        proportion to its time in each (iterations of one run have nearly equal length).
        ``bin_s`` must be the worker's ``timeline_bin_s`` when that was set (ValueError)."""
        self._folded(bin_s)
        nb = self._nb
        out = [self._tl[k, :nb].copy() for k in range(3)]
        for b0, b1, start, d, batch, kv in self._cross:  # runs crossing bin edges
            for b in range(b0, b1 + 1):
                lo = max(start, b * bin_s)
                hi = min(start + d, (b + 1) * bin_s)
                if hi > lo and d > 0:
                    f = (hi - lo) / d
                    out[0][b] += f * d
                    out[1][b] += f * batch
                    out[2][b] += f * kv
        return out[0], out[1], out[2]

    def kv_time(self) -> np.ndarray:
        """Seconds per KV token occupancy percent bin 0..100 (101 floats; each run at its
        time-weighted mean occupancy)."""
        self._folded()
        return self._kv_hist.copy()

    def itl_hist(self) -> np.ndarray:
        """Tokens per ITL bin (``ITL_NUM_BINS`` int64, see :func:`itl_bin`): every iteration's
        tokens at its length (within a run, iteration lengths are interpolated linearly
        between the first and the last, exact when the step time is linear in context, as
        the roofline is), except a request's first token after (re)admission, counted at its
        gap since its previous token."""
        self._folded()
        return self._itl.copy()
