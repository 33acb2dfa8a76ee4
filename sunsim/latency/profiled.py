"""Latency fitted to a measured profile (the files ``sunsim profile`` writes).

A profile directory ``profiles/<device-slug>/<model>/<precision>/`` holds ``decode.csv``,
``prefill.csv`` (BF16 only) and ``meta.json`` (format: :mod:`sunsim.latency.profile_format`).
Times in the CSVs are seconds for the full model (k-layer runs already scaled, as ``meta.json``
says).
The model fits the column that ``meta.json`` ``fit_statistic`` names: ``time_s_median`` (the
default, and what profiles measured on a dedicated GPU use) or ``time_s_min`` (the fastest
repeat: CPU profiles measured on a shared machine, where other tenants slow some repeats by
up to 3x; see :mod:`sunsim.profiling.harness`).

Model (built once at load; every call is plain-Python arithmetic; the rooms:
:mod:`sunsim.latency.fitting` the fitted forms, :mod:`sunsim.latency.surface` the correction):

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
difference its ``sum(L^2)`` makes. :func:`sunsim.latency.profile_check.check_profile` reports
the leave-one-out error.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from math import log
from pathlib import Path
from typing import Any

from sunsim.errors import ProfileError
from sunsim.latency.base import LatencyModel
from sunsim.latency.fitting import (
    DECODE_FORMS,
    PREFILL_FORMS,
    Point,
    fit_nnls,
    predict,
    select_form,
    terms,
)
from sunsim.latency.kv_cache_dtype import kv_bytes_per_element, profile_kv_cache_dtype
from sunsim.latency.profile_find import find_profile, resolve_profile
from sunsim.latency.profile_format import (
    DECODE_COLUMNS,
    FIT_STATISTICS,
    META_KEYS,
    PREFILL_COLUMNS,
    ProfileMeta,
    model_spec_of,
    read_csv_table,
    read_meta,
    read_profile_dir,
    table_points,
    time_column,
)
from sunsim.latency.surface import SCHEMES, SHRINK_STEPS, Surface
from sunsim.specs import weight_bytes

__all__ = [
    "DECODE_COLUMNS",
    "DECODE_FORMS",
    "FIT_STATISTICS",
    "META_KEYS",
    "PREFILL_COLUMNS",
    "PREFILL_FORMS",
    "SCHEMES",
    "SHRINK_STEPS",
    "ProfiledLatency",
    "find_profile",
    "fit_nnls",
    "resolve_profile",
    "select_form",
    "time_column",
]


def _bf16_prefill(d: Path, meta: ProfileMeta) -> tuple[list[Point] | None, Path | None]:
    """Prefill points of the ``bf16`` profile beside decode-only profile ``d`` (same device
    and model), or ``(None, None)`` when there is none."""
    sib = d.parent / "bf16"
    if not ((sib / "prefill.csv").exists() and (sib / "meta.json").exists()):
        return None, None
    sm = read_meta(sib)
    if sm.model != meta.model or sm.device_slug != meta.device_slug:
        return None, None
    col = time_column(sm)
    return table_points(read_csv_table(sib / "prefill.csv", "prefill", col), "prefill", col), sib


class ProfiledLatency(LatencyModel):
    """Step times fitted to a measured profile (see the module docstring).

    Build with :meth:`from_dir`. ``method`` is the profile's (``"measured"``, with its
    source for an imported profile: ``measured (aiconfigurator-core 0.12.0, vllm 0.24.0,
    h100_sxm)``);
    ``description`` names device, model, precision and "measured"; ``weight_bytes`` and
    ``kv_bytes_per_token`` come from the model spec and precision
    (:func:`sunsim.config.weight_bytes`; KV at 2 bytes per element, 1 for a profile
    imported with an FP8 KV cache, :mod:`sunsim.latency.kv_cache_dtype`). ``decode_fit`` /
    ``prefill_fit`` describe the fitted forms. A decode-only (W8A16/W4A16) profile takes its
    prefill from the ``bf16`` profile of the same device and model when there is one; otherwise
    :meth:`prefill_time` raises :class:`ProfileError`.
    """

    def __init__(
        self,
        meta: ProfileMeta | dict[str, Any],
        decode_points: Sequence[Point],
        prefill_points: Sequence[Point] | None,
        *,
        path: Path,
        prefill_path: Path | None = None,
    ) -> None:
        m = ProfileMeta.from_dict(meta, source=Path(path) / "meta.json")
        # the constructor's arguments, for __reduce__
        self._args = (meta, list(decode_points), list(prefill_points) if prefill_points else None)
        self._kwargs = (Path(path), prefill_path)
        self.profile_meta = m
        #: ``meta.json`` as a dict (the keys that were set).
        self.meta: dict[str, Any] = meta if isinstance(meta, dict) else m.to_dict()
        self.path = Path(path)
        self.prefill_path = prefill_path
        self.spec = model_spec_of(m, self.path / "meta.json")
        self.model = self.spec.name
        self.precision = m.precision
        #: ``measured``, or for an imported profile ``measured (aiconfigurator-core 0.12.0,
        #: vllm 0.24.0, h100_sxm)`` (:attr:`ProfileMeta.method_label`).
        self.method = m.method_label
        self.weight_bytes = weight_bytes(self.spec, self.precision)
        # an FP8 KV-cache profile (meta source.kv_cache_dtype) holds 1 byte per element
        self.kv_bytes_per_token = self.spec.kv_bytes_per_token(
            kv_bytes_per_element(profile_kv_cache_dtype(m))
        )
        self.max_model_len = self.spec.max_model_len
        self.device_name = m.device_name if m.device_name is not None else m.device_slug
        self.device_slug = m.device_slug
        self.gpu_key = m.gpu_key
        self._decode = Surface(list(decode_points), DECODE_FORMS)
        self._prefill = Surface(list(prefill_points), PREFILL_FORMS) if prefill_points else None
        self._dc = tuple(self._decode.coef) + (0.0,) * (4 - len(self._decode.coef))  # 1,B,C,BC
        self._pc = (0.0, 0.0, 0.0, 0.0)
        if self._prefill is not None:
            pc = dict(zip(self._prefill.form, self._prefill.coef))
            self._pc = (pc.get("1", 0.0), pc.get("T", 0.0), pc.get("L2", 0.0), pc.get("B", 0.0))
        self.time_column = time_column(m)
        self.description = self._describe()

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as its constructor's arguments (the planner sends latency models to its
        worker processes): the compiled build's class cannot be rebuilt the default way. The
        surfaces are refitted from the same points, so the copy's step times are the same."""
        return (_rebuild, (*self._args, *self._kwargs))

    def _describe(self) -> str:
        m = self.profile_meta
        src = "" if self.prefill_path in (None, self.path) else ", prefill from bf16"
        mods = "decode+prefill" if self._prefill is not None else "decode only"
        scale = (
            f", {m.layers_run}/{m.layers_total} layers scaled"
            if m.layers_run != m.layers_total
            else ""
        )
        stat = "" if self.time_column == "time_s_median" else "; fastest repeat"
        verb = "imported" if m.source else "profiled"
        return (
            f"{verb} {self.model} {self.precision} on {self.device_name} "
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
        ``path`` may be; the files are read by
        :func:`sunsim.latency.profile_format.read_profile_dir`).

        Raises:
            ProfileError: missing file or column, bad values, or a profile of another model or
                precision than asked (one line: which file, what mismatched, how to fix).
        """
        d = resolve_profile(path, model, precision)
        meta, prefill, decode = read_profile_dir(d, model=model, precision=precision)
        col = time_column(meta)
        prefill_points = table_points(prefill, "prefill", col) if prefill is not None else None
        prefill_path = d if prefill is not None else None
        if prefill is None and prefill_from_bf16 and meta.precision != "bf16":
            prefill_points, prefill_path = _bf16_prefill(d, meta)
        return cls(
            meta.to_dict(),
            table_points(decode, "decode", col),
            prefill_points,
            path=d,
            prefill_path=prefill_path,
        )

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
        # Surface.correction inlined (the simulator's hottest call; a test checks they agree)
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

    def decode_run(
        self,
        batch_size: int,
        first_context_tokens: int,
        max_iterations: int,
        stop_s: float = float("inf"),
    ) -> list[float]:
        """:meth:`LatencyModel.decode_run` with :meth:`decode_step_time`'s arithmetic inlined
        and the batch-size terms hoisted out of the loop (the same floats: a test compares
        them with the step-by-step sum)."""
        b = batch_size
        if b <= 0:
            return super().decode_run(batch_size, first_context_tokens, max_iterations, stop_s)
        a0, a1, a2, a3 = self._dc
        s = self._decode
        i, fx = s.cells[b] if b < s.cells_len else s.cell_x(b)
        fit0 = a0 + a1 * b  # a0 + a1 * b + a2 * c + a3 * b * c, left to right
        a3b = a3 * b
        ys, t, inv_dy, logs, mult = s.ys, s.flat, s.inv_dy, s.logs, s.mult
        t_lo, t_hi, jmax, fy_hi, ny = s.t_lo, s.t_hi, s.ny - 2, s.fy_hi, s.ny
        row0 = i * ny
        out: list[float] = []
        append = out.append
        total = 0.0
        c = first_context_tokens
        for _ in range(max_iterations):
            per = c / b
            if per <= t_lo:
                j, fy = 0, 0.0
            elif per >= t_hi:
                j, fy = jmax, fy_hi
            else:
                ly = log(per) if logs else per
                j = bisect_right(ys, ly) - 1
                if j > jmax:
                    j = jmax
                fy = (ly - ys[j]) * inv_dy[j]
            k = row0 + j
            r0 = t[k] + (t[k + 1] - t[k]) * fy
            k += ny
            r1 = t[k] + (t[k + 1] - t[k]) * fy
            r = r0 + (r1 - r0) * fx
            fit = fit0 + a2 * c + a3b * c
            if mult:
                total += fit * r
            else:
                r += fit
                total += r if r > 0.0 else fit
            append(total)
            if total >= stop_s:
                break
            c += b
        return out

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

    def context_attention_time(self, batch_size: int, context_tokens: int) -> float:
        """The context share of a decode iteration (seconds; used by
        :meth:`~sunsim.latency.base.LatencyModel.mixed_step_time`): the fitted form's
        context terms ``(c + d B) C`` over the whole fitted form, times the measured
        (interpolated) step time at (B, C)."""
        b, c = batch_size, context_tokens
        if b <= 0 or c <= 0:
            return 0.0
        a0, a1, a2, a3 = self._dc
        ctx = (a2 + a3 * b) * c
        fit = a0 + a1 * b + ctx
        return ctx * self.decode_step_time(b, c) / fit if fit > 0.0 else 0.0

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
        return predict(
            self._decode.coef, terms(self._decode.form, batch_size, total_context_tokens)
        )

    def fitted_prefill_time(self, prompt_lens: Sequence[int]) -> float:
        """The fitted prefill form alone, seconds (ProfileError for decode-only profiles)."""
        if self._prefill is None:
            return self.prefill_time(prompt_lens)  # raises ProfileError
        tot = sum(prompt_lens)
        sq = sum(x * x for x in prompt_lens)
        return predict(self._prefill.coef, terms(self._prefill.form, len(prompt_lens), tot, sq))


def _rebuild(
    meta: dict[str, Any] | ProfileMeta,
    decode_points: Sequence[Point],
    prefill_points: Sequence[Point] | None,
    path: Path,
    prefill_path: Path | None,
) -> ProfiledLatency:
    """A :class:`ProfiledLatency` from its constructor's arguments (for pickling)."""
    return ProfiledLatency(
        meta, decode_points, prefill_points, path=path, prefill_path=prefill_path
    )
