"""The fitted forms of a profile: non-negative least squares and the choice of form.

Forms (names of their terms, see :func:`terms`):

* prefill, DistServe's (Zhong et al., OSDI 2024, section 4) ``t = a + b*T + c*sum(L^2)`` or the
  same ``+ d*B`` (LM head and per-request work), with T total prompt tokens, L each prompt's
  tokens and B the number of prompts;
* decode ``t = a + b*B + c*C`` or ``+ d*B*C``, with B the batch size and C the total context
  tokens of the batch.

Coefficients are fitted by ``scipy.optimize.nnls`` on relative error (rows divided by the
measured time); :func:`select_form` picks the form with the lowest leave-one-out error.
A *point* is a tuple ``(batch_size, tokens_per_request, tokens_total, sum_sq, time_s)``.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

#: A measured grid point: ``(batch_size, tokens_per_request, tokens_total, sum_sq, time_s)``.
Point = tuple[float, ...]

#: Candidate fitted forms: names of the terms (see :func:`terms`).
DECODE_FORMS: tuple[tuple[str, ...], ...] = (("1", "B", "C"), ("1", "B", "C", "BC"))
PREFILL_FORMS: tuple[tuple[str, ...], ...] = (("1", "T", "L2"), ("1", "T", "L2", "B"))

_TERM_NAMES = {"1": "", "B": "*B", "C": "*C", "BC": "*B*C", "T": "*T", "L2": "*sum(L^2)"}


def terms(form: Sequence[str], b: float, tokens: float, sq: float = 0.0) -> list[float]:
    """Feature row of one point. Decode: ``tokens`` = total context C. Prefill: ``tokens`` =
    total prompt tokens T, ``sq`` = sum of squared prompt lengths."""
    vals = {"1": 1.0, "B": b, "C": tokens, "BC": b * tokens, "T": tokens, "L2": sq}
    return [vals[t] for t in form]


def fit_nnls(rows: Sequence[Sequence[float]], times: Sequence[float]) -> list[float]:
    """Non-negative coefficients ``w`` minimising ``sum(((rows @ w) - t) / t)^2`` (relative
    error), via ``scipy.optimize.nnls`` on column-scaled, row-weighted data."""
    import numpy as np
    from scipy.optimize import nnls

    x = np.asarray(rows, dtype=float)
    t = np.asarray(times, dtype=float)
    xw = x / t[:, None]
    scale = np.abs(xw).max(axis=0)
    scale[scale == 0] = 1.0
    w, _ = nnls(xw / scale, np.ones_like(t), maxiter=50 * x.shape[1])
    return [float(v) for v in w / scale]


def predict(coef: Sequence[float], row: Sequence[float]) -> float:
    """``coef . row`` (seconds)."""
    return sum(c * r for c, r in zip(coef, row))


def points_rows(points: Sequence[Point], form: Sequence[str]) -> list[list[float]]:
    """Feature rows of ``points`` for ``form``."""
    return [terms(form, p[0], p[2], p[3]) for p in points]


def select_form(
    points: Sequence[Point], forms: Sequence[Sequence[str]]
) -> tuple[tuple[str, ...], list[float], float]:
    """Pick the form with the lowest leave-one-out MAPE of the pure fit.

    ``points``: tuples ``(batch, tokens_per_request, tokens_total, sum_sq, time_s)``.
    Returns ``(form, coefficients fitted on all points, loo_mape_pct)`` (NaN when too few
    points for leave-one-out; then the simplest form is used).
    """
    pts = list(points)
    times = [p[4] for p in pts]
    best: tuple[float, int, tuple[str, ...]] | None = None
    for k, form in enumerate(forms):
        if len(pts) <= len(form):
            continue
        rows = points_rows(pts, form)
        errs = []
        for i in range(len(pts)):
            coef = fit_nnls(rows[:i] + rows[i + 1 :], times[:i] + times[i + 1 :])
            errs.append(abs(predict(coef, rows[i]) - times[i]) / times[i])
        m = 100.0 * statistics.fmean(errs)
        if best is None or m < best[0] - 1e-9:
            best = (m, k, tuple(form))
    if best is None:
        form = tuple(forms[0])
        return form, fit_nnls(points_rows(pts, form), times), math.nan
    form = best[2]
    return form, fit_nnls(points_rows(pts, form), times), best[0]


def describe_form(form: Sequence[str], coef: Sequence[float]) -> str:
    """E.g. ``"0.0012 + 3.4e-05*B + 1.1e-08*C"`` (seconds)."""
    return " + ".join(f"{c:.4g}{_TERM_NAMES[t]}" for c, t in zip(coef, form))
