"""Latency fitted to a measured profile (the files ``sunsim profile`` writes).

A profile directory ``profiles/<device-slug>/<model>/<precision>/`` holds ``decode.csv``,
``prefill.csv`` (BF16 only) and ``meta.json`` (see :mod:`sunsim.profiling.harness`). Times in
the CSVs are seconds for the full model (k-layer runs already scaled, as ``meta.json`` says).
The model fits the column that ``meta.json`` ``fit_statistic`` names: ``time_s_median`` (the
default, and what profiles measured on a dedicated GPU use) or ``time_s_min`` (the fastest
repeat: CPU profiles measured on a shared machine, where other tenants slow some repeats by
up to 3x; see :mod:`sunsim.profiling.harness`).

Model (built once at load; every call is plain-Python arithmetic):

* fitted form, non-negative least squares on relative error (``scipy.optimize.nnls`` on rows
  divided by the measured time), the form chosen by leave-one-out error among
  - prefill, DistServe's (Zhong et al., OSDI 2024, section 4) ``t = a + b*T + c*sum(L^2)``
    or the same ``+ d*B`` (LM head and per-request work), with T total prompt tokens, L each
    prompt's tokens and B the number of prompts;
  - decode ``t = a + b*B + c*C`` or ``+ d*B*C``, with B the batch size and C the total context
    tokens of the batch;
* on top of it, a correction toward the measurements: either the measured/fitted ratio
  interpolated bilinearly in (log B, log tokens per request), ``t(x) = fit(x) *
  ratio(clamp(x))``, or the measured - fitted residual interpolated bilinearly in (B, tokens
  per request), ``t(x) = fit(x) + residual(clamp(x))``, shrunk toward the fit by a factor in
  {1.0, 0.9, ..., 0} (1.0: the model passes through every measured point; less when
  measurement noise makes the bare fit predict held-out points better). Each module uses the
  scheme and factor with the lowest leave-one-out error on its grid (on a dedicated GPU the
  factor is normally 1). Inside the grid this interpolates the measurements; outside it
  follows the fitted form, anchored to the nearest edge of the grid so the curve is
  continuous. Grid holes (points skipped for memory) are filled from their neighbours along
  each axis.

A prefill batch of mixed lengths is looked up at (B, T / B) and the fitted form carries the
difference its ``sum(L^2)`` makes. ``check_profile`` reports the leave-one-out error.
"""

from __future__ import annotations

import json
import math
import statistics
from bisect import bisect_right
from collections.abc import Sequence
from math import log
from pathlib import Path
from typing import Any

from sunsim.errors import ProfileError
from sunsim.latency.base import LatencyModel
from sunsim.specs import MODELS, ModelSpec, get_precision, weight_bytes

DECODE_COLUMNS = (
    "batch_size",
    "context_tokens",
    "total_context_tokens",
    "time_s_median",
    "time_s_p10",
    "time_s_p90",
    "repeats",
)
PREFILL_COLUMNS = (
    "batch_size",
    "prompt_tokens",
    "total_tokens",
    "time_s_median",
    "time_s_p10",
    "time_s_p90",
    "repeats",
)
#: ``meta.json`` ``fit_statistic`` -> the CSV column the model is fitted to.
FIT_STATISTICS = {"median": "time_s_median", "min": "time_s_min"}
META_KEYS = (
    "model",
    "precision",
    "method",
    "model_spec",
    "device_slug",
    "layers_run",
    "layers_total",
)

#: Candidate fitted forms: names of the terms (see ``_terms``).
DECODE_FORMS: tuple[tuple[str, ...], ...] = (("1", "B", "C"), ("1", "B", "C", "BC"))
PREFILL_FORMS: tuple[tuple[str, ...], ...] = (("1", "T", "L2"), ("1", "T", "L2", "B"))


def _terms(form: Sequence[str], b: float, tokens: float, sq: float = 0.0) -> list[float]:
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


def _predict(coef: Sequence[float], row: Sequence[float]) -> float:
    return sum(c * r for c, r in zip(coef, row))


def _points_rows(
    points: list[tuple[float, float, float, float]], form: Sequence[str]
) -> list[list[float]]:
    return [_terms(form, b, tok, sq) for b, _per, tok, sq, *_ in points]


def select_form(
    points: list[tuple[float, ...]], forms: Sequence[Sequence[str]]
) -> tuple[tuple[str, ...], list[float], float]:
    """Pick the form with the lowest leave-one-out MAPE of the pure fit.

    ``points``: tuples ``(batch, tokens_per_request, tokens_total, sum_sq, time_s)``.
    Returns ``(form, coefficients fitted on all points, loo_mape_pct)`` (NaN when too few
    points for leave-one-out; then the simplest form is used).
    """
    times = [p[4] for p in points]
    best: tuple[float, int, tuple[str, ...]] | None = None
    for k, form in enumerate(forms):
        if len(points) <= len(form):
            continue
        rows = _points_rows(points, form)
        errs = []
        for i in range(len(points)):
            coef = fit_nnls(rows[:i] + rows[i + 1 :], times[:i] + times[i + 1 :])
            errs.append(abs(_predict(coef, rows[i]) - times[i]) / times[i])
        m = 100.0 * statistics.fmean(errs)
        if best is None or m < best[0] - 1e-9:
            best = (m, k, tuple(form))
    if best is None:
        form = tuple(forms[0])
        return form, fit_nnls(_points_rows(points, form), times), math.nan
    form = best[2]
    return form, fit_nnls(_points_rows(points, form), times), best[0]


def _fill_holes(
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


class _Surface:
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
        filled = _fill_holes(vals, mask, self._cx, self._cy)
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
            f = _predict(coef, _terms(self.form, p[0], p[2], p[3]))
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
            coef = fit_nnls(_points_rows(rest, self.form), [q[4] for q in rest])
            vals, mask = self._table(self.points, coef, exclude=k)
            filled = _fill_holes(vals, mask, self._cx, self._cy)
            i = self.batch_axis.index(p[0])
            j = self.token_axis.index(p[1])
            f = _predict(coef, _terms(self.form, p[0], p[2], p[3]))
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
        names = {"1": "", "B": "*B", "C": "*C", "BC": "*B*C", "T": "*T", "L2": "*sum(L^2)"}
        return " + ".join(f"{c:.4g}{names[t]}" for c, t in zip(self.coef, self.form))


# -- reading profiles -----------------------------------------------------------------------


def _read_meta(d: Path) -> dict[str, Any]:
    path = d / "meta.json"
    if not path.exists():
        raise ProfileError(
            f"{path}: missing; a profile directory needs meta.json, decode.csv "
            "and (bf16) prefill.csv, as `sunsim profile` writes them"
        )
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ProfileError(f"{path}: not valid JSON ({e}); re-run `sunsim profile`") from None
    if not isinstance(meta, dict):
        raise ProfileError(f"{path}: expected a JSON object; re-run `sunsim profile`")
    missing = [k for k in META_KEYS if k not in meta]
    if missing:
        raise ProfileError(f"{path}: missing key(s) {', '.join(missing)}; re-run `sunsim profile`")
    stat = meta.get("fit_statistic", "median")
    if stat not in FIT_STATISTICS:
        raise ProfileError(
            f"{path}: fit_statistic '{stat}' is not one of {', '.join(FIT_STATISTICS)}"
        )
    return meta


def time_column(meta: dict[str, Any]) -> str:
    """The CSV column a profile's model is fitted to (``meta.json`` ``fit_statistic``)."""
    return FIT_STATISTICS[meta.get("fit_statistic", "median")]


def _read_csv(
    path: Path,
    columns: Sequence[str],
    per_col: str,
    total_col: str,
    time_col: str = "time_s_median",
) -> list[tuple[float, ...]]:
    """Rows as ``(batch, per_request_tokens, total_tokens, sum_sq, time_s)``, ``time_s`` from
    column ``time_col``."""
    import pandas as pd

    if not path.exists():
        raise ProfileError(f"{path}: missing; re-run `sunsim profile` for this model and precision")
    try:
        df = pd.read_csv(path)
    except Exception as e:  # pandas raises several parser errors
        raise ProfileError(f"{path}: cannot read CSV ({str(e).splitlines()[0]})") from None
    columns = [*columns, *([time_col] if time_col not in columns else [])]
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ProfileError(
            f"{path}: missing column(s) {', '.join(missing)}; expected {', '.join(columns)}"
        )
    if df.empty:
        raise ProfileError(f"{path}: no rows; re-run `sunsim profile`")
    pts = []
    seen = set()
    for n, r in enumerate(df.itertuples(index=False), start=1):
        rec = r._asdict()
        try:
            b = float(rec["batch_size"])
            per = float(rec[per_col])
            tot = float(rec[total_col])
            t = float(rec[time_col])
        except (TypeError, ValueError):
            raise ProfileError(f"{path}: row {n}: non-numeric value") from None
        if not (b >= 1 and per >= 1 and t > 0 and math.isfinite(t)):
            raise ProfileError(
                f"{path}: row {n}: batch_size, {per_col} must be >= 1 and "
                f"{time_col} > 0 (got {b:g}, {per:g}, {t:g})"
            )
        if abs(tot - b * per) > 0.5:
            raise ProfileError(
                f"{path}: row {n}: {total_col} {tot:g} != batch_size x {per_col} ({b * per:g})"
            )
        if (b, per) in seen:
            raise ProfileError(
                f"{path}: row {n}: duplicate grid point batch_size={b:g}, {per_col}={per:g}"
            )
        seen.add((b, per))
        pts.append((b, per, tot, b * per * per, t))
    return pts


def resolve_profile(
    path: str | Path, model: str | None = None, precision: str | None = None
) -> Path:
    """The ``<model>/<precision>`` profile directory for ``path``.

    ``path`` may be a precision directory (holding meta.json), a model directory
    (``profiles/<device>/<model>``) or a device directory (``profiles/<device>``). Raises
    :class:`ProfileError` listing the profiles found when none matches.
    """
    p = Path(path)
    if not p.is_dir():
        raise ProfileError(
            f"{p}: no such profile directory; make one with `sunsim profile "
            "--model NAME --device cuda|cpu` or pass a directory under profiles/"
        )
    if any((p / f).exists() for f in ("meta.json", "decode.csv", "prefill.csv")):
        return p  # a precision directory (from_dir reports what is missing in it)
    prec = get_precision(precision).name if precision else None
    cands = []
    if model and prec:
        cands.append(p / model / prec)
    if prec:
        cands.append(p / prec)
    for c in cands:
        if (c / "meta.json").exists():
            return c
    found = sorted(
        str(m.parent.relative_to(p))
        for depth in ("*", "*/*", "*/*/*")
        for m in p.glob(f"{depth}/meta.json")
    )
    if model is None and prec is None and len(found) == 1:
        return p / found[0]
    want = "/".join(x for x in (model, prec) if x) or "any model/precision"
    there = ", ".join(found) if found else "no profiles"
    raise ProfileError(
        f"{p}: no profile for {want} (found: {there}); profile it with "
        f"`sunsim profile --model {model or 'NAME'} --precision "
        f"{prec or 'bf16'}` or pass the directory of a matching profile"
    )


def find_profile(root: str | Path, gpu_key: str | None, model: str, precision: str) -> Path | None:
    """A profile under ``root`` (``profiles/``) for ``model`` at ``precision`` whose meta
    ``gpu_key`` equals ``gpu_key`` (``h100``/``h200``/``a100``; None for CPU profiles).

    Quick (test-grid) profiles are never returned. The first match in sorted device order,
    or None when there is none.
    """
    r = Path(root)
    prec = get_precision(precision).name
    if not r.is_dir():
        return None
    for meta_path in sorted(r.glob(f"*/{model}/{prec}/meta.json")):
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        if meta.get("quick"):
            continue
        if (
            meta.get("gpu_key") == gpu_key
            and meta.get("model") == model
            and meta.get("precision") == prec
        ):
            return meta_path.parent
    return None


def _spec_from_meta(meta: dict[str, Any], path: Path) -> ModelSpec:
    try:
        spec = ModelSpec(**meta["model_spec"])
    except TypeError as e:
        raise ProfileError(
            f"{path}: model_spec does not match sunsim's ModelSpec ({e}); re-run `sunsim profile`"
        ) from None
    known = MODELS.get(spec.name)
    if known is not None and known != spec:
        diff = [
            f
            for f in (
                "hidden_size",
                "intermediate_size",
                "num_layers",
                "num_heads",
                "num_kv_heads",
                "head_dim",
                "vocab_size",
                "tie_embeddings",
                "qk_norm",
            )
            if getattr(known, f) != getattr(spec, f)
        ]
        if diff:
            raise ProfileError(
                f"{path}: model_spec of '{spec.name}' differs from sunsim's "
                f"built-in spec in {', '.join(diff)}; re-profile the model"
            )
    return spec


class ProfiledLatency(LatencyModel):
    """Step times fitted to a measured profile (see the module docstring).

    Build with :meth:`from_dir`. ``method`` is the profile's (``"measured"``);
    ``description`` names device, model, precision and "measured"; ``weight_bytes`` and
    ``kv_bytes_per_token`` come from the model spec and precision
    (:func:`sunsim.config.weight_bytes`, BF16 KV cache). ``decode_fit`` / ``prefill_fit``
    describe the fitted forms. A decode-only (W8A16/W4A16) profile takes its prefill from the
    ``bf16`` profile of the same device and model when there is one; otherwise
    :meth:`prefill_time` raises :class:`ProfileError`.
    """

    def __init__(
        self,
        meta: dict[str, Any],
        decode_points: list[tuple[float, ...]],
        prefill_points: list[tuple[float, ...]] | None,
        *,
        path: Path,
        prefill_path: Path | None = None,
    ) -> None:
        self.meta = meta
        self.path = path
        self.prefill_path = prefill_path
        self.spec = _spec_from_meta(meta, path)
        self.model = self.spec.name
        self.precision = get_precision(meta["precision"]).name
        self.method = str(meta.get("method", "measured"))
        self.weight_bytes = weight_bytes(self.spec, self.precision)
        self.kv_bytes_per_token = self.spec.kv_bytes_per_token()
        self.max_model_len = self.spec.max_model_len
        self.device_name = meta.get("device_name", meta["device_slug"])
        self.device_slug = meta["device_slug"]
        self.gpu_key = meta.get("gpu_key")
        self._decode = _Surface(decode_points, DECODE_FORMS)
        self._prefill = _Surface(prefill_points, PREFILL_FORMS) if prefill_points else None
        d = self._decode
        self._dc = tuple(d.coef) + (0.0,) * (4 - len(d.coef))  # a, B, C, BC
        if self._prefill is not None:
            pc = dict(zip(self._prefill.form, self._prefill.coef))
            self._pc = (pc.get("1", 0.0), pc.get("T", 0.0), pc.get("L2", 0.0), pc.get("B", 0.0))
        src = "" if prefill_path is None or prefill_path == path else ", prefill from bf16"
        mods = "decode+prefill" if self._prefill is not None else "decode only"
        scale = (
            f", {meta['layers_run']}/{meta['layers_total']} layers scaled"
            if meta["layers_run"] != meta["layers_total"]
            else ""
        )
        self.time_column = time_column(meta)
        stat = "" if self.time_column == "time_s_median" else "; fastest repeat"
        self.description = (
            f"profiled {self.model} {self.precision} on {self.device_name} "
            f"({self.device_slug}; {mods}{src}{scale}{stat}; {self.method})"
        )

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def from_dir(
        cls,
        path: str | Path,
        *,
        model: str | None = None,
        precision: str | None = None,
        prefill_from_bf16: bool = True,
    ) -> ProfiledLatency:
        """Load and fit the profile at ``path`` (see :func:`resolve_profile` for what
        ``path`` may be).

        Raises:
            ProfileError: missing file or column, bad values, or a profile of another model or
                precision than asked (one line: which file, what mismatched, how to fix).
        """
        d = resolve_profile(path, model, precision)
        meta = _read_meta(d)
        meta_path = d / "meta.json"
        if model is not None and meta["model"] != model:
            raise ProfileError(
                f"{meta_path}: profile is for model '{meta['model']}', not "
                f"'{model}'; pass a profile of {model} (sunsim profile --model "
                f"{model}) or use --model {meta['model']}"
            )
        if precision is not None and meta["precision"] != get_precision(precision).name:
            raise ProfileError(
                f"{meta_path}: profile is for precision '{meta['precision']}', "
                f"not '{precision}'; pass the {precision} profile (sunsim profile "
                f"--precision {precision}) or use precision {meta['precision']}"
            )
        decode = _read_csv(
            d / "decode.csv",
            DECODE_COLUMNS,
            "context_tokens",
            "total_context_tokens",
            time_column(meta),
        )
        prefill = None
        prefill_path = None
        if (d / "prefill.csv").exists():
            prefill = _read_csv(
                d / "prefill.csv",
                PREFILL_COLUMNS,
                "prompt_tokens",
                "total_tokens",
                time_column(meta),
            )
            prefill_path = d
        elif "prefill" in meta.get("modules", ["decode"]):
            raise ProfileError(
                f"{d / 'prefill.csv'}: missing although meta.json lists a "
                "prefill module; re-run `sunsim profile`"
            )
        elif prefill_from_bf16 and meta["precision"] != "bf16":
            sib = d.parent / "bf16"
            if (sib / "prefill.csv").exists() and (sib / "meta.json").exists():
                sm = _read_meta(sib)
                if sm["model"] == meta["model"] and sm["device_slug"] == meta["device_slug"]:
                    prefill = _read_csv(
                        sib / "prefill.csv",
                        PREFILL_COLUMNS,
                        "prompt_tokens",
                        "total_tokens",
                        time_column(sm),
                    )
                    prefill_path = sib
        return cls(meta, decode, prefill, path=d, prefill_path=prefill_path)

    # -- the LatencyModel interface ---------------------------------------------------------------
    def decode_step_time(self, batch_size: int, total_context_tokens: int) -> float:
        """Seconds for one decode iteration of ``batch_size`` requests with
        ``total_context_tokens`` cached tokens in all (pure Python, about a microsecond)."""
        b = batch_size
        if b <= 0:
            return 0.0
        c = total_context_tokens
        a0, a1, a2, a3 = self._dc
        s = self._decode
        # batch-size axis: precomputed cell and weight for integer batch sizes
        if b < s.cells_len:
            i, fx = s.cells[b]
        else:
            i, fx = s.cell_x(b)
        per = c / b
        ys = s.ys
        if per <= s.t_lo:
            j, fy = 0, 0.0
        elif per >= s.t_hi:
            j, fy = s.ny - 2, s.fy_hi
        else:
            ly = log(per) if s.logs else per
            j = bisect_right(ys, ly) - 1
            if j > s.ny - 2:
                j = s.ny - 2
            fy = (ly - ys[j]) * s.inv_dy[j]
        t = s.flat
        k = i * s.ny + j
        r0 = t[k] + (t[k + 1] - t[k]) * fy
        k += s.ny
        r1 = t[k] + (t[k + 1] - t[k]) * fy
        r = r0 + (r1 - r0) * fx
        fit = a0 + a1 * b + a2 * c + a3 * b * c
        if s.mult:
            return fit * r
        r += fit
        return r if r > 0.0 else fit

    def prefill_time(self, prompt_lens: Sequence[int]) -> float:
        """Seconds for one prefill batch of prompts of these lengths (tokens).

        Raises ProfileError for a decode-only profile without a bf16 prefill beside it.
        """
        p = self._prefill
        if p is None:
            raise ProfileError(
                f"{self.path}: {self.precision} profile is decode-only (QSUN's "
                "prefill stays BF16) and no bf16 profile of the same device and "
                "model is beside it; profile bf16 too (sunsim profile "
                f"--model {self.model} --precision bf16)"
            )
        n = 0
        tot = 0
        sq = 0
        for x in prompt_lens:
            n += 1
            tot += x
            sq += x * x
        if n == 0:
            return 0.0
        a0, a1, a2, a3 = self._pc
        fit = a0 + a1 * tot + a2 * sq + a3 * n
        return p.apply(fit, n, tot / n)

    # -- introspection --------------------------------------------------------------------------
    @property
    def has_prefill(self) -> bool:
        return self._prefill is not None

    @property
    def decode_fit(self) -> str:
        """The fitted decode form, e.g. ``"0.0012 + 3.4e-05*B + 1.1e-08*C"`` (seconds)."""
        return self._decode.describe()

    @property
    def prefill_fit(self) -> str | None:
        return self._prefill.describe() if self._prefill is not None else None

    def fitted_decode_time(self, batch_size: int, total_context_tokens: int) -> float:
        """The fitted form alone (no measured-ratio correction), seconds."""
        return _predict(
            self._decode.coef, _terms(self._decode.form, batch_size, total_context_tokens)
        )

    def fitted_prefill_time(self, prompt_lens: Sequence[int]) -> float:
        """The fitted prefill form alone, seconds (ProfileError for decode-only profiles)."""
        if self._prefill is None:
            self.prefill_time(prompt_lens)
        tot = sum(prompt_lens)
        sq = sum(x * x for x in prompt_lens)
        return _predict(self._prefill.coef, _terms(self._prefill.form, len(prompt_lens), tot, sq))

    def held_out_errors(self) -> Any:
        """Leave-one-out errors per measured point, a DataFrame with columns ``module``
        (decode/prefill), ``batch_size``, ``tokens`` (context or prompt tokens per request),
        ``time_s`` (measured), ``predicted_s`` (interpolation with the point held out),
        ``fit_only_s`` (fitted form refitted without it), ``ape_pct``, ``fit_only_ape_pct``.
        Only this profile's own modules (not a borrowed bf16 prefill)."""
        import pandas as pd

        rows = []
        mods = [("decode", self._decode)]
        if self._prefill is not None and self.prefill_path == self.path:
            mods.append(("prefill", self._prefill))
        for name, s in mods:
            for p, (f, pred, t) in zip(s.points, s.held_out()):
                rows.append(
                    {
                        "module": name,
                        "batch_size": int(p[0]),
                        "tokens": int(p[1]),
                        "time_s": t,
                        "predicted_s": pred,
                        "fit_only_s": f,
                        "ape_pct": 100 * abs(pred - t) / t,
                        "fit_only_ape_pct": 100 * abs(f - t) / t,
                    }
                )
        return pd.DataFrame(rows)


def check_profile(
    path: str | Path, *, model: str | None = None, precision: str | None = None
) -> Any:
    """Held-out error of a profile, per grid slice.

    Leave-one-out over the grid points (:meth:`ProfiledLatency.held_out_errors`), grouped by
    slice: decode per batch size, prefill per batch composition (batch size). Returns a
    DataFrame with columns ``module``, ``slice`` (e.g. ``"B=4"``), ``points``, ``mape_pct``
    (interpolation), ``max_ape_pct``, ``fit_only_mape_pct``; ``df.attrs["median_mape_pct"]``
    is the median over slices of ``mape_pct`` and ``df.attrs["profile"]`` the directory.
    """
    lat = ProfiledLatency.from_dir(path, model=model, precision=precision)
    pts = lat.held_out_errors()
    import pandas as pd

    rows = []
    for (mod, b), g in pts.groupby(["module", "batch_size"], sort=False):
        rows.append(
            {
                "module": mod,
                "slice": f"B={b}",
                "points": len(g),
                "mape_pct": float(g["ape_pct"].mean()),
                "max_ape_pct": float(g["ape_pct"].max()),
                "fit_only_mape_pct": float(g["fit_only_ape_pct"].mean()),
            }
        )
    df = pd.DataFrame(
        rows, columns=["module", "slice", "points", "mape_pct", "max_ape_pct", "fit_only_mape_pct"]
    )
    df.attrs["median_mape_pct"] = float(df["mape_pct"].median()) if len(df) else math.nan
    df.attrs["profile"] = str(lat.path)
    df.attrs["description"] = lat.description
    df.attrs["decode_fit"] = lat.decode_fit
    df.attrs["prefill_fit"] = lat.prefill_fit
    df.attrs["decode_interpolation"] = lat._decode.interpolation
    df.attrs["prefill_interpolation"] = (
        lat._prefill.interpolation if lat._prefill is not None else None
    )
    return df
