"""The interpolation surface of one profile module (decode or prefill) over its grid.

``t(x) = fit(x) (*|+) correction(clamp(x))``: the fitted form (:mod:`sunsim.latency.fitting`)
corrected toward the measurements, either by the measured/fitted ratio interpolated
bilinearly in (log B, log tokens per request), or by the measured - fitted residual
interpolated bilinearly in (B, tokens per request), shrunk toward the fit by a factor in
{1.0, 0.9, ..., 0} (1.0: passes through every measured point). The scheme and factor with the
lowest leave-one-out error on the grid are used. Inside the grid this interpolates the
measurements; outside it follows the fitted form, anchored to the nearest edge of the grid.
Grid holes (points skipped for memory) are filled from their neighbours along each axis.
"""

from __future__ import annotations

import math
import statistics
from bisect import bisect_right
from collections.abc import Sequence

from sunsim.latency.fitting import (
    describe_form,
    fit_nnls,
    points_rows,
    predict,
    select_form,
    terms,
)


def fill_holes(
    vals: list[list[float]], mask: list[list[bool]], xs: Sequence[float], ys: Sequence[float]
) -> list[list[float]]:
    """Fill unmeasured cells: the mean of linear interpolations between the nearest measured
    cells on both sides along each axis; failing that, the mean of the nearest measured
    cells along the axes; failing that, the mean of all measured cells."""
    nx, ny = len(xs), len(ys)
    measured = [vals[i][j] for i in range(nx) for j in range(ny) if mask[i][j]]
    everywhere = statistics.fmean(measured) if measured else 1.0
    out = [row[:] for row in vals]
    for i in range(nx):
        for j in range(ny):
            if mask[i][j]:
                continue
            ests: list[float] = []
            near: list[float] = []
            lo = next((k for k in range(i - 1, -1, -1) if mask[k][j]), None)
            hi = next((k for k in range(i + 1, nx) if mask[k][j]), None)
            if lo is not None and hi is not None:
                w = (xs[i] - xs[lo]) / (xs[hi] - xs[lo])
                ests.append(vals[lo][j] * (1 - w) + vals[hi][j] * w)
            near += [vals[k][j] for k in (lo, hi) if k is not None]
            lo = next((k for k in range(j - 1, -1, -1) if mask[i][k]), None)
            hi = next((k for k in range(j + 1, ny) if mask[i][k]), None)
            if lo is not None and hi is not None:
                w = (ys[j] - ys[lo]) / (ys[hi] - ys[lo])
                ests.append(vals[i][lo] * (1 - w) + vals[i][hi] * w)
            near += [vals[i][k] for k in (lo, hi) if k is not None]
            out[i][j] = statistics.fmean(ests or near or [everywhere])
    return out


#: Interpolation schemes of the correction on top of the fit: (name, multiplicative, log axes).
SCHEMES = (("ratio-log", True, True), ("residual-linear", False, False))
#: Shrinkage factors tried for the correction, from exact interpolation (1) to the fit (0).
SHRINK_STEPS = tuple(x / 10 for x in range(10, -1, -1))


class Surface:
    """``fit(x) (*|+) correction(clamp(x))`` over one module's grid.

    The correction is the measured/fitted ratio interpolated in (log B, log tokens) or the
    measured - fitted residual interpolated in (B, tokens), shrunk toward the fit by a factor
    ``shrink`` in {1.0, 0.9, ..., 0}; the scheme and factor with the lowest leave-one-out
    error on this grid are used (``scheme``, ``shrink``); see the module docstring.
    """

    def __init__(
        self,
        points: list[tuple[float, ...]],
        forms: Sequence[Sequence[str]],
        scheme: str | None = None,
    ) -> None:
        self.points = points
        self.form, self.coef, self.fit_loo_mape_pct = select_form(points, forms)
        self.batch_axis = sorted({p[0] for p in points})
        self.token_axis = sorted({p[1] for p in points})
        names = [sc[0] for sc in SCHEMES]
        if scheme is not None and scheme not in names:
            raise ValueError(f"unknown scheme {scheme}; one of {names}")
        best = None
        self._loo: dict[str, list[tuple[float, float, float]]] = {}
        for name, mult, logs in SCHEMES:
            if scheme is not None and name != scheme:
                continue
            self._use(name, mult, logs)
            parts = self._held_out_parts()
            for lam in SHRINK_STEPS:  # from 1 (exact interpolation) down to 0 (the fit)
                preds = [self._combine(f, r, lam) for f, r, _t in parts]
                err = [abs(pr - t) / t for pr, (_f, _r, t) in zip(preds, parts) if pr == pr]
                m = statistics.fmean(err) if err else 0.0
                if best is None or m < best[0] - 1e-12:
                    best = (m, name, mult, logs, lam)
                    self._loo[name] = [(f, pr, t) for pr, (f, _r, t) in zip(preds, parts)]
        assert best is not None
        self.shrink = best[4]
        self._use(*best[1:4])
        self._loo = {self.scheme: self._loo[self.scheme]}
        vals, mask = self._table(self.points, self.coef, exclude=None)
        filled = fill_holes(vals, mask, self._cx, self._cy)
        lam = self.shrink
        if self.mult:
            filled = [[1.0 + lam * (v - 1.0) for v in row] for row in filled]
        else:
            filled = [[lam * v for v in row] for row in filled]
        self._set_table(filled)

    def _combine(self, fit: float, corr: float, lam: float) -> float:
        if self.mult:
            return fit * (1.0 + lam * (corr - 1.0))
        return fit + lam * corr

    def _use(self, name: str, mult: bool, logs: bool) -> None:
        self.scheme, self.mult, self.logs = name, mult, logs
        f = math.log if logs else float
        self._cx = [f(b) for b in self.batch_axis]
        self._cy = [f(t) for t in self.token_axis]

    def _table(
        self, points: list[tuple[float, ...]], coef: Sequence[float], exclude: int | None
    ) -> tuple[list[list[float]], list[list[bool]]]:
        bi = {b: i for i, b in enumerate(self.batch_axis)}
        ti = {t: j for j, t in enumerate(self.token_axis)}
        nx, ny = len(self.batch_axis), len(self.token_axis)
        neutral = 1.0 if self.mult else 0.0
        vals = [[neutral] * ny for _ in range(nx)]
        mask = [[False] * ny for _ in range(nx)]
        for k, p in enumerate(points):
            if k == exclude:
                continue
            f = predict(coef, terms(self.form, p[0], p[2], p[3]))
            i, j = bi[p[0]], ti[p[1]]
            if self.mult:
                vals[i][j] = p[4] / f if f > 0 else 1.0
            else:
                vals[i][j] = p[4] - f
            mask[i][j] = True
        return vals, mask

    def _set_table(self, table: list[list[float]]) -> None:
        xs, ys = list(self._cx), list(self._cy)
        if len(xs) == 1:  # one batch size: duplicate the row so bilinear lookup still works
            xs.append(xs[0] + 1.0)
            table = [table[0], table[0]]
        if len(ys) == 1:
            ys.append(ys[0] + 1.0)
            table = [[r[0], r[0]] for r in table]
        self.xs, self.ys = xs, ys
        self.ny = len(ys)
        self.inv_dx = [1.0 / (xs[i + 1] - xs[i]) for i in range(len(xs) - 1)]
        self.inv_dy = [1.0 / (ys[j + 1] - ys[j]) for j in range(len(ys) - 1)]
        self.flat = [v for row in table for v in row]
        self.b_lo, self.b_hi = self.batch_axis[0], self.batch_axis[-1]
        self.t_lo, self.t_hi = self.token_axis[0], self.token_axis[-1]
        # weight of the upper y node at the clamped top edge (1.0 unless the axis is a
        # duplicated single value)
        self.fy_hi = (self._cy[-1] - ys[-2]) * self.inv_dy[-1]
        # (cell, weight) on the batch axis for every integer batch size up to 2 x the grid's
        self.cells_len = int(min(max(2 * self.b_hi, 2), 1 << 16)) + 1
        self.cells = [self.cell_x(b) if b > 0 else (0, 0.0) for b in range(self.cells_len)]

    def cell_x(self, b: float) -> tuple[int, float]:
        """``(i, fx)``: the batch-axis cell and the weight of its upper node at ``b``."""
        xs = self.xs
        if b <= self.b_lo:
            return 0, 0.0
        if b >= self.b_hi:
            lx = self._cx[-1]
        else:
            lx = math.log(b) if self.logs else b
        i = bisect_right(xs, lx) - 1
        if i > len(xs) - 2:
            i = len(xs) - 2
        return i, (lx - xs[i]) * self.inv_dx[i]

    def correction(self, b: float, per: float) -> float:
        """Bilinear correction (ratio or residual) at (b, per), clamped to the grid."""
        if 0 < b < self.cells_len and b == int(b):
            i, fx = self.cells[int(b)]
        else:
            i, fx = self.cell_x(b)
        ys = self.ys
        if per <= self.t_lo:
            j, fy = 0, 0.0
        elif per >= self.t_hi:
            j, fy = self.ny - 2, self.fy_hi
        else:
            ly = math.log(per) if self.logs else per
            j = bisect_right(ys, ly) - 1
            if j > self.ny - 2:
                j = self.ny - 2
            fy = (ly - ys[j]) * self.inv_dy[j]
        t = self.flat
        k = i * self.ny + j
        a = t[k] + (t[k + 1] - t[k]) * fy
        k += self.ny
        c = t[k] + (t[k + 1] - t[k]) * fy
        return a + (c - a) * fx

    def apply(self, fit: float, b: float, per: float) -> float:
        """The fitted value ``fit`` at (b, per) corrected (never below 0: a negative
        residual-corrected value falls back to the fit)."""
        r = self.correction(b, per)
        if self.mult:
            return fit * r
        r += fit
        return r if r > 0.0 else fit

    def _held_out_parts(self) -> list[tuple[float, float, float]]:
        """Leave-one-out pieces per point: ``(fit refitted without it, its correction filled
        from its neighbours, measured)``."""
        out = []
        n = len(self.points)
        neutral = 1.0 if self.mult else 0.0
        for k, p in enumerate(self.points):
            if n < 2:
                out.append((math.nan, neutral, p[4]))
                continue
            rest = self.points[:k] + self.points[k + 1 :]
            coef = fit_nnls(points_rows(rest, self.form), [q[4] for q in rest])
            vals, mask = self._table(self.points, coef, exclude=k)
            filled = fill_holes(vals, mask, self._cx, self._cy)
            i = self.batch_axis.index(p[0])
            j = self.token_axis.index(p[1])
            f = predict(coef, terms(self.form, p[0], p[2], p[3]))
            out.append((f, filled[i][j], p[4]))
        return out

    def held_out(self) -> list[tuple[float, float, float]]:
        """Leave-one-out with the chosen scheme and shrinkage: for each measured point, refit
        without it, fill its cell from its neighbours, predict. Returns
        ``(fit_only_prediction, full_prediction, measured)`` per point (seconds)."""
        return self._loo[self.scheme]

    @property
    def interpolation(self) -> str:
        """E.g. ``"ratio-log, shrink 1.0"`` (1.0: passes through every measured point)."""
        return f"{self.scheme}, shrink {self.shrink:.1f}"

    def describe(self) -> str:
        """The fitted form with its coefficients, e.g. ``"0.0012 + 3.4e-05*B + 1.1e-08*C"``."""
        return describe_form(self.form, self.coef)


#: The old private name.
_Surface = Surface
