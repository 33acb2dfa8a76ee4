"""The calibrated roofline: the roofline's bytes and FLOPs at fitted efficiencies, for hardware
nobody measured.

Step times of a GPU without a measured profile (L40S, or a model no profile covers) from its
datasheet, at the fractions of its HBM bandwidth and dense BF16 rate that measured kernels
reached on the GPUs that were measured (:mod:`sunsim.latency.calibrate` fits them). Its
``method`` is ``analytic (calibrated on h100_sxm, ... aiconfigurator-core 0.12.0)``: an
estimate, never a measurement.

Counting: the bytes and FLOPs are the roofline's (:class:`~sunsim.latency.roofline.
RooflineLatency`, called with unit ceilings, so each is read off the roofline itself and no
formula is copied here). Per step, with ``BW`` and ``F`` the datasheet bandwidth
(bytes/s) and dense BF16 rate (FLOP/s), ``n`` the layers, and the efficiencies of
:class:`Coefficients`:

* decode (B requests, C context tokens in all)::

    t = n * decode_floor_s_per_layer
        + max(W / (eta_weights * BW), F_gemm(B) / (eta_gemm * F))
        + KV(B, C) / (eta_kv * BW)

  W the weight bytes read, F_gemm the linear + LM-head FLOPs, KV the KV-cache bytes read and
  written (attention);
* prefill (prompts L_i, T tokens in all)::

    t = n * prefill_floor_s_per_layer
        + max((W + KV) / (eta_weights * BW), F_gemm / (eta_gemm * F))
        + F_attn / (eta_attn * F)

  F_attn the causal attention FLOPs (``sum(L_i^2)`` term).

The GEMMs' ``max`` is a roofline per kernel; kernels run one after another, so the attention
kernel's time is added.

Tensor parallel size N > 1: W, KV, F_gemm and F_attn are one GPU's share (the TP roofline's,
:class:`~sunsim.latency.roofline.RooflineLatency` at ``tensor_parallel_size`` N: 1/N of
each), at the same efficiencies and floors (the kernels are the same kernels on smaller
shapes), and each step adds the roofline's all-reduce term, ``tokens x``
:func:`~sunsim.specs.parallel.allreduce_seconds_per_token` (a bandwidth bound, not
calibrated: nothing measured at N > 1 was fitted, so the description says so).

Low-bit weights (``w8a16``/``w4a16``) read the roofline's low-bit bytes at ``eta_weights``
of that precision when the coefficients have one (fitted on low-bit profiles), else at the
BF16 one, and the description says which.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sunsim.data import data_dir
from sunsim.errors import ProfileError
from sunsim.latency.base import LatencyModel
from sunsim.latency.roofline import RooflineLatency
from sunsim.specs import GpuSpec, ModelSpec, get_precision
from sunsim.specs.parallel import allreduce_seconds_per_token, check_heads_divisible

#: Bundled coefficients, relative to :func:`sunsim.data.data_dir`.
COEFFICIENTS_FILE = Path("calibration") / "roofline_calibration.json"
#: The fitted parameters (all > 0): efficiencies (fractions of the datasheet ceiling) and
#: per-layer step floors (seconds).
PARAMS = (
    "eta_weights",
    "eta_gemm",
    "eta_kv",
    "eta_attn",
    "decode_floor_s_per_layer",
    "prefill_floor_s_per_layer",
)


@dataclasses.dataclass(frozen=True)
class Coefficients:
    """Fitted efficiencies (fractions of the datasheet ceilings) and floors (seconds).

    ``eta_weights_low_bit`` maps ``w8a16``/``w4a16`` to their own weight-read efficiency
    (fitted on low-bit decode profiles) where there is one. ``label`` is the method label
    (``analytic (calibrated on ...)``); ``provenance`` what it was fitted on, when and how.
    """

    eta_weights: float
    eta_gemm: float
    eta_kv: float
    eta_attn: float
    decode_floor_s_per_layer: float
    prefill_floor_s_per_layer: float
    eta_weights_low_bit: Mapping[str, float] = dataclasses.field(default_factory=dict)
    label: str = "analytic (calibrated)"
    provenance: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def vector(self) -> list[float]:
        """The :data:`PARAMS` in order."""
        return [float(getattr(self, p)) for p in PARAMS]

    @classmethod
    def from_vector(cls, x: Sequence[float], **kw: Any) -> Coefficients:
        """:class:`Coefficients` from the :data:`PARAMS` in order (plus keyword fields)."""
        v = [float(a) for a in x]
        if len(v) != len(PARAMS):
            raise ValueError(f"{len(PARAMS)} coefficients expected, got {len(v)}")
        return cls(v[0], v[1], v[2], v[3], v[4], v[5], **kw)


def coefficients_path() -> Path:
    """The bundled coefficients file (``sunsim/data/calibration/roofline_calibration.json``)."""
    return data_dir() / COEFFICIENTS_FILE


def _positive(raw: Mapping[str, Any], key: str, path: Path) -> float:
    v = raw.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
        raise ProfileError(
            f"{path}: key '{key}' must be a positive number, got {v!r}; "
            "refit with `python -m sunsim.latency.calibrate`"
        )
    return float(v)


def load_coefficients(path: str | Path | None = None) -> Coefficients:
    """The fitted coefficients in ``path`` (default :func:`coefficients_path`).

    Raises:
        ProfileError: missing file, not JSON, a missing or non-positive coefficient (one
            line naming the file and key, and the command that refits it).
    """
    p = Path(path) if path is not None else coefficients_path()
    fix = "refit with `python -m sunsim.latency.calibrate`"
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ProfileError(f"{p}: missing calibration coefficients; {fix}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ProfileError(f"{p}: not valid JSON ({first}); {fix}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("coefficients"), dict):
        raise ProfileError(f"{p}: no 'coefficients' object; {fix}")
    c = raw["coefficients"]
    low = c.get("eta_weights_low_bit", {})
    if not isinstance(low, dict):
        raise ProfileError(f"{p}: key 'eta_weights_low_bit' must be an object; {fix}")
    label = raw.get("label")
    if not isinstance(label, str) or not label.startswith("analytic (calibrated"):
        raise ProfileError(f"{p}: key 'label' must start with 'analytic (calibrated'; {fix}")
    return Coefficients.from_vector(
        [_positive(c, k, p) for k in PARAMS],
        eta_weights_low_bit={k: _positive(low, k, p) for k in low},
        label=label,
        provenance=raw.get("provenance", {}),
    )


class _Probe:
    """A roofline whose step "times" are one GPU's bytes moved (bandwidth 1 B/s, infinite
    FLOP/s) or FLOPs (infinite bandwidth, 1 FLOP/s), without its all-reduce seconds."""

    def __init__(self, roof: RooflineLatency, allreduce_s_per_token: float) -> None:
        self.roof, self.ar = roof, allreduce_s_per_token
        self.weight_bytes = roof.weight_bytes
        self.kv_bytes_per_token = roof.kv_bytes_per_token
        self.max_model_len = roof.max_model_len

    def decode_step_time(self, batch_size: int, total_context_tokens: int) -> float:
        return self.roof.decode_step_time(batch_size, total_context_tokens) - self.ar * batch_size

    def prefill_time(self, prompt_lens: Sequence[int]) -> float:
        return self.roof.prefill_time(prompt_lens) - self.ar * sum(prompt_lens)


def _unit_probes(
    gpu: GpuSpec, model: ModelSpec, precision: str, tp: int = 1
) -> tuple[_Probe, _Probe]:
    """The bytes and the FLOPs probes (:class:`_Probe`) of one GPU of a worker of ``tp``."""
    inf = math.inf
    ar = allreduce_seconds_per_token(model, gpu, tp)
    nbytes = dataclasses.replace(gpu, mem_bw=1.0, bf16_flops=inf)
    nflops = dataclasses.replace(gpu, mem_bw=inf, bf16_flops=1.0)
    return (
        _Probe(RooflineLatency(nbytes, model, precision, tensor_parallel_size=tp), ar),
        _Probe(RooflineLatency(nflops, model, precision, tensor_parallel_size=tp), ar),
    )


class CalibratedLatency(LatencyModel):
    """The calibrated roofline of ``model`` at ``precision`` on ``gpu`` (module docstring).

    Args:
        gpu: its datasheet ceilings ``mem_bw_datasheet`` (bytes/s) and
            ``bf16_flops_datasheet`` (FLOP/s) are used.
        model: the architecture.
        precision: ``bf16``, ``w8a16`` or ``w4a16``.
        coefficients: default the bundled ones (:func:`load_coefficients`).
        tensor_parallel_size: GPUs per worker (module docstring); ``weight_bytes`` and
            ``kv_bytes_per_token`` stay the whole model's.

    Raises:
        ProfileError: unreadable bundled coefficients. ConfigError: unknown precision; a
            tensor parallel size the model's heads do not divide, or a GPU without an
            NVLink figure at N > 1.
    """

    def __init__(
        self,
        gpu: GpuSpec,
        model: ModelSpec,
        precision: str = "bf16",
        coefficients: Coefficients | None = None,
        tensor_parallel_size: int = 1,
    ) -> None:
        c = coefficients if coefficients is not None else load_coefficients()
        p = get_precision(precision).name
        tp = check_heads_divisible(model, tensor_parallel_size)
        self.gpu, self.model, self.precision, self.coefficients = gpu, model, p, c
        self.tensor_parallel_size = tp
        self._ar = allreduce_seconds_per_token(model, gpu, tp)
        by, fl = _unit_probes(gpu, model, p, tp)
        self._probe_bytes, self._probe_flops = by, fl
        self.weight_bytes = by.weight_bytes
        self.kv_bytes_per_token = by.kv_bytes_per_token
        self.max_model_len = by.max_model_len
        self.method = c.label
        eta_w = c.eta_weights_low_bit.get(p, c.eta_weights) if p != "bf16" else c.eta_weights
        bw, fs = gpu.mem_bw_datasheet, gpu.bf16_flops_datasheet
        # The roofline is affine in (B, C) and in (T, n, sum L^2): its coefficients are read
        # off at unit points (tests check the reconstruction against the probes).
        w = by.decode_step_time(0, 0)
        self._w_s = w / (eta_w * bw)
        self._w_eff_bw = eta_w * bw
        self._gemm_s_per_req = fl.decode_step_time(1, 0) / (c.eta_gemm * fs)
        self._kv_s_per_req = (by.decode_step_time(1, 0) - w) / (c.eta_kv * bw)
        self._kv_s_per_ctx = (by.decode_step_time(0, 1) - w) / (c.eta_kv * bw)
        f0, f1, f2 = (fl.prefill_time(x) for x in ([0], [1], [2]))
        attn = (f2 - 2.0 * f1 + f0) / 2.0
        self._p_attn_s_per_l2 = attn / (c.eta_attn * fs)
        self._p_gemm_s_per_tok = (f1 - f0 - attn) / (c.eta_gemm * fs)
        self._p_gemm_s_per_req = f0 / (c.eta_gemm * fs)
        self._p_kv_bytes_per_tok = by.prefill_time([1]) - w
        self._d_floor = model.num_layers * c.decode_floor_s_per_layer
        self._p_floor = model.num_layers * c.prefill_floor_s_per_layer
        if p == "bf16":
            low = ""
        elif p in c.eta_weights_low_bit:
            on = c.provenance.get("low_bit_fitted_on", {}).get(p, [])
            low = f"; {p} weight reads at the efficiency fitted on {', '.join(on) or 'low-bit'}"
        else:
            low = f"; {p} weight reads at the bf16 efficiency (no low-bit profile fitted)"
        at_tp = (
            f" TP{tp} (per-GPU shares; all-reduce at the NVLink bandwidth bound, uncalibrated)"
            if tp > 1
            else ""
        )
        self.description = (
            f"calibrated roofline {gpu.name} {model.name} {p}{at_tp} ({c.label}{low})"
        )

    def decode_step_time(self, batch_size: int, total_context_tokens: int) -> float:
        """Seconds for one decode iteration (module docstring); 0 for an empty batch."""
        b = batch_size
        if b <= 0:
            return 0.0
        g = self._gemm_s_per_req * b
        w = self._w_s
        return (
            self._d_floor
            + (g if g > w else w)
            + (self._kv_s_per_req + self._ar) * b
            + self._kv_s_per_ctx * total_context_tokens
        )

    def prefill_time(self, prompt_lens: Sequence[int]) -> float:
        """Seconds for one prefill batch of prompts of these lengths (tokens)."""
        n = tot = sq = 0
        for x in prompt_lens:
            n += 1
            tot += x
            sq += x * x
        if n == 0:
            return 0.0
        g = self._p_gemm_s_per_tok * tot + self._p_gemm_s_per_req * n
        m = (self._w_s * self._w_eff_bw + self._p_kv_bytes_per_tok * tot) / self._w_eff_bw
        return self._p_floor + (g if g > m else m) + self._p_attn_s_per_l2 * sq + self._ar * tot

    def decode_run(
        self,
        batch_size: int,
        first_context_tokens: int,
        max_iterations: int,
        stop_s: float = float("inf"),
    ) -> list[float]:
        # decode_step_time inlined: the simulator's hottest loop (same values, a test checks).
        b = batch_size
        if b <= 0:
            return super().decode_run(b, first_context_tokens, max_iterations, stop_s)
        out: list[float] = []
        g = self._gemm_s_per_req * b
        fixed = (
            self._d_floor
            + (g if g > self._w_s else self._w_s)
            + (self._kv_s_per_req + self._ar) * b
        )
        per_ctx = self._kv_s_per_ctx
        append = out.append
        t = 0.0
        ctx = first_context_tokens
        for _ in range(max_iterations):
            t += fixed + per_ctx * ctx
            append(t)
            if t >= stop_s:
                break
            ctx += b
        return out

    def components(self, batch_size: int, total_context_tokens: int) -> dict[str, float]:
        """The decode step's parts in seconds: ``floor``, ``weights_or_gemm``, ``kv``,
        ``allreduce`` (0 at tensor parallel size 1)."""
        g = self._gemm_s_per_req * batch_size
        return {
            "floor": self._d_floor,
            "weights_or_gemm": max(g, self._w_s),
            "kv": self._kv_s_per_req * batch_size + self._kv_s_per_ctx * total_context_tokens,
            "allreduce": self._ar * batch_size,
        }

    def prefill_components(self, prompt_lens: Sequence[int]) -> dict[str, float]:
        """The prefill's parts in seconds: ``floor``, ``weights_or_gemm``, ``attention``,
        ``allreduce`` (0 at tensor parallel size 1)."""
        tot = sum(prompt_lens)
        g = self._p_gemm_s_per_tok * tot + self._p_gemm_s_per_req * len(prompt_lens)
        m = (self._w_s * self._w_eff_bw + self._p_kv_bytes_per_tok * tot) / self._w_eff_bw
        return {
            "floor": self._p_floor,
            "weights_or_gemm": max(g, m),
            "attention": self._p_attn_s_per_l2 * sum(x * x for x in prompt_lens),
            "allreduce": self._ar * tot,
        }
