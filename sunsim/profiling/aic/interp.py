"""Looking up a kernel's latency inside a measured grid: log-space linear interpolation,
never silent extrapolation.

* GEMM (:class:`GemmTable`, shapes m x n x k): the latency is interpolated linearly in
  ``log(latency)`` against ``log m`` along each measured (n, k) column, then bilinearly in
  ``(log n, log k)`` between the four measured (n, k) corners around the query. A shape
  beyond the largest measured m, n or k is split into ``ceil(x / max)`` equal GEMMs inside
  the grid and their times added (a GEMM's time is additive over row and column blocks up to
  a launch; recorded as an estimate). A shape below the smallest measured value, or a corner
  with no measurement at that m, is refused (ProfileError).
* attention (:class:`AttentionTable`, batch x length): bilinear in ``(log batch, log length)``
  of ``log(latency)``. Where the table has a hole (large batch x length points the collector
  skipped for memory), the point is taken from the largest smaller measured batch at the
  same length, times the batch ratio (attention over B independent sequences of a saturated
  GPU is linear in B; counted as an estimate). Outside the measured batch or length range
  it is refused.

Every estimate is counted in :attr:`estimates` (rule -> count), which the importer writes to
the profile's meta.
"""

from __future__ import annotations

import bisect
import math
from collections import Counter
from collections.abc import Sequence

import numpy as np
import pandas as pd

from sunsim.errors import ProfileError


def _bracket(xs: Sequence[float], x: float, what: str) -> tuple[int, int, float]:
    """Indices ``(i, j)`` of the measured values around ``x`` and the log-space weight of
    ``j``; ProfileError outside ``[xs[0], xs[-1]]``."""
    if x < xs[0] or x > xs[-1]:
        raise ProfileError(
            f"{what} {x:g} is outside the measured range {xs[0]:g}..{xs[-1]:g}; "
            "sunsim does not extrapolate the kernel database"
        )
    j = bisect.bisect_left(xs, x)
    if xs[j] == x:
        return j, j, 0.0
    i = j - 1
    return i, j, (math.log(x) - math.log(xs[i])) / (math.log(xs[j]) - math.log(xs[i]))


def _lerp_log(y0: float, y1: float, w: float) -> float:
    if w == 0.0:
        return y0
    return math.exp(math.log(y0) + (math.log(y1) - math.log(y0)) * w)


class GemmTable:
    """Measured GEMM latencies (ms) by (m, n, k); :meth:`ms` looks one up (module docstring).

    ``rows``: DataFrame with columns ``m``, ``n``, ``k``, ``latency`` (ms), one row per shape.
    """

    def __init__(self, rows: pd.DataFrame, name: str = "GEMM table") -> None:
        self.name = name
        self.ns = sorted(int(x) for x in rows["n"].unique())
        self.ks = sorted(int(x) for x in rows["k"].unique())
        self.cols: dict[tuple[int, int], tuple[list[float], list[float]]] = {}
        for (n, k), g in rows.groupby(["n", "k"]):
            g = g.sort_values("m")
            self.cols[(int(n), int(k))] = (
                [float(x) for x in g["m"]],
                [float(x) for x in g["latency"]],
            )
        self.m_max = max(ms[-1] for ms, _ in self.cols.values())
        self.estimates: Counter[str] = Counter()

    def ms(self, m: int, n: int, k: int) -> float:
        """Milliseconds of one (m x k) @ (k x n) GEMM. Raises ProfileError (see module)."""
        pieces = 1
        for x, top, axis in ((m, self.m_max, "m"), (n, self.ns[-1], "n"), (k, self.ks[-1], "k")):
            if x > top:
                p = math.ceil(x / top)
                pieces *= p
                self.estimates[f"gemm {axis} beyond the measured {top:g}: split in {p}"] += 1
        if pieces > 1:
            pm = math.ceil(m / self.m_max)
            pn = math.ceil(n / self.ns[-1])
            pk = math.ceil(k / self.ks[-1])
            return pm * pn * pk * self._inside(m / pm, n / pn, k / pk)
        return self._inside(m, n, k)

    def _inside(self, m: float, n: float, k: float) -> float:
        i0, i1, wn = _bracket(self.ns, n, f"{self.name}: n")
        j0, j1, wk = _bracket(self.ks, k, f"{self.name}: k")
        corner = {}
        for a in {i0, i1}:
            for b in {j0, j1}:
                corner[(a, b)] = self._along_m(self.ns[a], self.ks[b], m)
        lo = _lerp_log(corner[(i0, j0)], corner[(i0, j1)], wk)
        hi = _lerp_log(corner[(i1, j0)], corner[(i1, j1)], wk)
        return _lerp_log(lo, hi, wn)

    def _along_m(self, n: int, k: int, m: float) -> float:
        col = self.cols.get((n, k))
        if col is None:
            raise ProfileError(f"{self.name}: no measurement at n={n}, k={k}; cannot interpolate")
        ms, lat = col
        a, b, w = _bracket(ms, m, f"{self.name} (n={n}, k={k}): m")
        return _lerp_log(lat[a], lat[b], w)


class AttentionTable:
    """Measured attention latencies (ms) by (batch_size, length); :meth:`ms` looks one up.

    ``rows``: DataFrame with columns ``batch_size``, ``length``, ``latency`` (ms).
    """

    def __init__(self, rows: pd.DataFrame, name: str = "attention table") -> None:
        self.name = name
        self.grid = rows.pivot_table(index="batch_size", columns="length", values="latency")
        self.bs = [int(x) for x in self.grid.index]
        self.ls = [int(x) for x in self.grid.columns]
        self.values = self.grid.to_numpy(dtype=float)
        self.estimates: Counter[str] = Counter()

    def _at(self, i: int, j: int) -> float:
        v = self.values[i, j]
        if not np.isnan(v):
            return float(v)
        for i2 in range(i - 1, -1, -1):  # hole: largest smaller batch at this length
            v2 = self.values[i2, j]
            if not np.isnan(v2):
                self.estimates[
                    f"{self.name}: hole at (batch, length) filled from a smaller batch x ratio"
                ] += 1
                return float(v2) * self.bs[i] / self.bs[i2]
        raise ProfileError(
            f"{self.name}: no measurement at length {self.ls[j]} for batch {self.bs[i]} or any "
            "smaller batch"
        )

    def ms(self, batch_size: int, length: int) -> float:
        """Milliseconds of one attention call over ``batch_size`` sequences of ``length``
        tokens. Raises ProfileError outside the measured ranges."""
        i0, i1, wb = _bracket(self.bs, batch_size, f"{self.name}: batch size")
        j0, j1, wl = _bracket(self.ls, length, f"{self.name}: length")
        lo = self._row(i0, j0, j1, wl)
        hi = lo if i1 == i0 else self._row(i1, j0, j1, wl)
        return _lerp_log(lo, hi, wb)

    def _row(self, i: int, j0: int, j1: int, wl: float) -> float:
        v0 = self._at(i, j0)
        return v0 if j1 == j0 else _lerp_log(v0, self._at(i, j1), wl)
