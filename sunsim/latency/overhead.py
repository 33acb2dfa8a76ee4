"""Per-step engine overhead: the CPU time a serving engine adds to every iteration.

A real engine spends time outside the GPU kernels on each step: scheduling, input
preparation, sampling, detokenisation and the launch gaps between kernels. Kernel-level
profiles (``sunsim profile import``) leave it out, so end-to-end runs are slower than their
summed kernels (issue 10: 1.5-2.1x the roofline end to end vs 1.14-1.39x for the kernels).
This module models it explicitly, per serving backend, as

    overhead(step) = a + b * batch + c * tokens    (seconds)

for a step of ``batch`` sequences processing ``tokens`` tokens (a decode step: ``tokens =
batch``; a prefill batch: the sum of its prompt lengths), with ``a, b, c >= 0`` fitted by
non-negative least squares (:func:`fit_overhead`, ``scipy.optimize.nnls``) on end-to-end
measurements; :class:`OverheadLatency` adds it to any :class:`LatencyModel`.

The bundled coefficients (``sunsim/data/overhead/engine_overhead.json``, read by
:func:`load_overhead`) were fitted on the rows of aiconfigurator-core 0.12.0's
``systems/silicon_sample.csv`` that its split rule puts in the fit set, never on the rows
``sunsim validate silicon`` reports (:mod:`sunsim.validate.silicon.overhead_fit` says how,
and refits them: ``python -m sunsim.validate.silicon.overhead_fit``). A plain install reads
the JSON and needs no aiconfigurator-core.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sunsim.errors import ConfigError
from sunsim.latency.base import LatencyModel

__all__ = [
    "BACKENDS",
    "DecodeScaledLatency",
    "EngineOverhead",
    "OverheadLatency",
    "fit_overhead",
    "load_overhead",
    "overhead_path",
    "with_overhead",
]

#: Serving backends an overhead can be fitted for (aiconfigurator's backend names).
BACKENDS = ("vllm", "sglang", "trtllm")


@dataclass(frozen=True)
class EngineOverhead:
    """The fitted overhead of one backend: ``a_s + b_s * batch + c_s * tokens`` seconds per
    step.

    Attributes:
        backend: ``vllm``, ``sglang`` or ``trtllm``.
        a_s: seconds per step.
        b_s: seconds per sequence in the step.
        c_s: seconds per token processed in the step.
        fitted_on: what it was fitted on, one line (shown in every description).
        num_rows: measurements used.
    """

    backend: str
    a_s: float
    b_s: float
    c_s: float
    fitted_on: str
    num_rows: int = 0

    def step_s(self, batch: int, tokens: int) -> float:
        """Seconds added to a step of ``batch`` sequences and ``tokens`` tokens."""
        return self.a_s + self.b_s * batch + self.c_s * tokens

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def fit_overhead(
    features: np.ndarray, residual_s: np.ndarray, weights: np.ndarray | None = None
) -> tuple[float, float, float]:
    """Non-negative least squares for ``(a, b, c)``.

    Args:
        features: shape (n, 3): per measurement, the number of steps it spans, the sum of
            their batch sizes and the sum of their tokens (so the measurement's overhead is
            ``features @ (a, b, c)``).
        residual_s: shape (n,): measured minus kernel-only time, seconds.
        weights: shape (n,), optional: each row is multiplied by its weight (``1 /
            measured`` fits relative error).

    Returns:
        ``(a, b, c)``, each >= 0.

    Raises:
        ValueError: shapes that do not match, or fewer rows than coefficients.
    """
    from scipy.optimize import nnls

    x = np.asarray(features, dtype=float)
    y = np.asarray(residual_s, dtype=float)
    if x.ndim != 2 or x.shape[1] != 3 or y.shape != (x.shape[0],):
        raise ValueError(f"features must be (n, 3) and residuals (n,), got {x.shape}, {y.shape}")
    if x.shape[0] < 3:
        raise ValueError(f"need at least 3 measurements to fit 3 coefficients, got {x.shape[0]}")
    if weights is not None:
        w = np.asarray(weights, dtype=float)
        x, y = x * w[:, None], y * w
    scale = np.maximum(np.abs(x).max(axis=0), 1e-300)  # columns of similar size for nnls
    coef, _ = nnls(x / scale, y)
    a, b, c = (coef / scale).tolist()
    return float(a), float(b), float(c)


class _FittedWrapper(LatencyModel):
    """A fitted term on top of ``inner``: ``method`` and the description gain ``suffix``
    (`` (fitted on {fitted_on})`` in the description); memory figures are inner's."""

    def __init__(self, inner: LatencyModel, suffix: str, fitted_on: str) -> None:
        self.inner = inner
        self.method = f"{inner.method} + {suffix} (fitted)"
        self.description = f"{inner.description} + {suffix} (fitted on {fitted_on})"
        self.weight_bytes = inner.weight_bytes
        self.kv_bytes_per_token = inner.kv_bytes_per_token
        self.max_model_len = inner.max_model_len
        self.has_prefill = bool(getattr(inner, "has_prefill", True))


class OverheadLatency(_FittedWrapper):
    """``inner``'s step times plus an :class:`EngineOverhead` on every step.

    ``prefill_time(lens)`` = inner + ``overhead.step_s(len(lens), sum(lens))``;
    ``decode_step_time(B, C)`` = inner + ``overhead.step_s(B, B)``. Memory figures, ``method``
    (with `` + engine overhead (fitted)``) and the description (``... + engine overhead
    (fitted on ...)``) follow ``inner``.
    """

    def __init__(self, inner: LatencyModel, overhead: EngineOverhead) -> None:
        super().__init__(inner, "engine overhead", overhead.fitted_on)
        self.overhead = overhead

    def prefill_time(self, prompt_lens: Sequence[int]) -> float:
        o = self.overhead
        return self.inner.prefill_time(prompt_lens) + o.step_s(len(prompt_lens), sum(prompt_lens))

    def decode_step_time(self, batch_size: int, total_context_tokens: int) -> float:
        o = self.overhead
        return self.inner.decode_step_time(batch_size, total_context_tokens) + o.step_s(
            batch_size, batch_size
        )

    def decode_run(
        self,
        batch_size: int,
        first_context_tokens: int,
        max_iterations: int,
        stop_s: float = float("inf"),
    ) -> list[float]:
        """The inner model's run with ``overhead.step_s(B, B)`` added per iteration: the
        inner run stops no earlier than this one (its times are smaller), so its values
        suffice."""
        add = self.overhead.step_s(batch_size, batch_size)
        inner = self.inner.decode_run(batch_size, first_context_tokens, max_iterations, stop_s)
        out: list[float] = []
        for i, t in enumerate(inner, 1):
            v = t + i * add
            out.append(v)
            if v >= stop_s:
                break
        return out


class DecodeScaledLatency(_FittedWrapper):
    """``inner``'s step times with the decode work scaled by ``factor`` (a fitted correction
    of a backend's kernel tables against end-to-end TPOT, e.g.
    :mod:`sunsim.validate.silicon.correction_fit`; never a measurement).

    ``decode_step_time``, ``decode_run`` and ``context_attention_time`` are ``factor`` x
    inner's; a mixed step (:meth:`mixed_step_time`) adds ``(factor - 1) x
    decode_step_time(B, C)`` of its ``B`` decodes to inner's, so a prefill-only step and
    :meth:`prefill_time` are inner's. ``method`` gains `` + decode x{factor} (fitted)`` and
    the description ``(fitted on {fitted_on})``; memory figures are inner's.

    Raises:
        ValueError: ``factor`` not a positive finite number.
    """

    def __init__(self, inner: LatencyModel, factor: float, fitted_on: str) -> None:
        if not (factor > 0 and np.isfinite(factor)):
            raise ValueError(f"decode scale factor must be a positive number, got {factor}")
        super().__init__(inner, f"decode x{factor:.3g}", fitted_on)
        self.factor = float(factor)

    def prefill_time(self, prompt_lens: Sequence[int]) -> float:
        return self.inner.prefill_time(prompt_lens)

    def decode_step_time(self, batch_size: int, total_context_tokens: int) -> float:
        return self.factor * self.inner.decode_step_time(batch_size, total_context_tokens)

    def decode_run(
        self,
        batch_size: int,
        first_context_tokens: int,
        max_iterations: int,
        stop_s: float = float("inf"),
    ) -> list[float]:
        """Inner's cumulative times x ``factor`` (inner runs to ``stop_s / factor``)."""
        k = self.factor
        run = self.inner.decode_run(batch_size, first_context_tokens, max_iterations, stop_s / k)
        return [k * t for t in run]

    def context_attention_time(self, batch_size: int, context_tokens: int) -> float:
        return self.factor * self.inner.context_attention_time(batch_size, context_tokens)

    def mixed_step_time(
        self,
        decode_batch: int,
        decode_context_tokens: int,
        prefill_chunks: Sequence[tuple[int, int]],
    ) -> float:
        t = self.inner.mixed_step_time(decode_batch, decode_context_tokens, prefill_chunks)
        if decode_batch > 0 and prefill_chunks:
            d = self.inner.decode_step_time(decode_batch, decode_context_tokens)
            t += (self.factor - 1.0) * d
        elif decode_batch > 0:
            t *= self.factor
        return t


def overhead_path() -> Path:
    """The bundled coefficients: ``sunsim/data/overhead/engine_overhead.json``."""
    from sunsim.data import data_dir

    return data_dir() / "overhead" / "engine_overhead.json"


def load_overhead(backend: str, path: str | Path | None = None) -> EngineOverhead:
    """The fitted overhead of ``backend`` from ``path`` (default :func:`overhead_path`).

    Raises:
        ConfigError: an unknown backend, or one with no fitted coefficients (the message
            names those that have them and the command that refits them).
    """
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend '{backend}'; choose one of {', '.join(BACKENDS)}")
    p = Path(path) if path is not None else overhead_path()
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"{p}: cannot read the engine overhead coefficients ({e})") from None
    fits = data.get("backends", {})
    if backend not in fits:
        have = ", ".join(sorted(fits)) or "none"
        raise ConfigError(
            f"no fitted engine overhead for {backend} in {p} (fitted: {have}); refit with "
            f"`{data.get('command', 'python -m sunsim.validate.silicon.overhead_fit')}`"
        )
    f = fits[backend]
    return EngineOverhead(
        backend, float(f["a_s"]), float(f["b_s"]), float(f["c_s"]), str(f["fitted_on"]),
        int(f.get("num_rows", 0)),
    )  # fmt: skip


def with_overhead(inner: LatencyModel, backend: str | None) -> LatencyModel:
    """``inner`` wrapped with ``backend``'s bundled overhead; ``inner`` itself for None or
    ``"none"``. Raises :class:`ConfigError` as :func:`load_overhead`."""
    if backend is None or backend == "none":
        return inner
    return OverheadLatency(inner, load_overhead(backend))
