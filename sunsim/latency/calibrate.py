"""Fit the calibrated roofline (:mod:`sunsim.latency.calibrated`) to measured profiles.

``python -m sunsim.latency.calibrate [--profiles DIR] [--out FILE]`` reads every measured
GPU profile under ``DIR`` (default the bundled ones), fits the efficiencies and floors, prints
the leave-one-GPU-out error beside the plain roofline's, and writes the coefficients with
their provenance (default the bundled ``sunsim/data/calibration/roofline_calibration.json``).

Which profiles: ``method`` measured (an imported one says ``measured (aiconfigurator-core
...)``; ``derived`` profiles are excluded: they are made from other GPUs' data), on a GPU
(``gpu_key`` set), tensor parallel 1. BF16 profiles fit the six :data:`~sunsim.latency.
calibrated.PARAMS`; then, holding those, each low-bit precision with measured decode profiles
gets its own weight-read efficiency.

Fit: ``scipy.optimize.least_squares`` (trust-region reflective) on
``log(predicted) - log(measured)`` over every grid point (decode and prefill), in log
parameters (so all stay positive); predictions are :class:`~sunsim.latency.calibrated.
CalibratedLatency`'s own, so the fitted rule and the served rule are the same code.

Held-out error (:func:`held_out`): for each GPU, fit on the other GPUs' profiles only and
predict its points; absolute relative error per regime (:func:`regime`): ``decode``
(weight-bound decode steps), ``decode-attention`` (KV reads dominate), ``prefill``
(GEMM-bound), ``prefill-attention`` (attention FLOPs dominate).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import least_squares

from sunsim import __version__
from sunsim.data import profiles_root
from sunsim.errors import ProfileError
from sunsim.latency.calibrated import (
    PARAMS,
    CalibratedLatency,
    Coefficients,
    coefficients_path,
)
from sunsim.latency.profile_format import model_spec_of, read_profile_dir, time_column
from sunsim.latency.roofline import RooflineLatency
from sunsim.specs import GPUS, get_gpu

#: Starting point of the fit (efficiencies, floors in seconds per layer).
X0 = (0.8, 0.6, 0.7, 0.5, 5e-6, 5e-6)
REGIMES = ("decode", "decode-attention", "prefill", "prefill-attention")


@dataclass(frozen=True)
class Profile:
    """One measured profile: where, on what, and its points.

    ``decode``: (batch_size, total_context_tokens, seconds) rows; ``prefill``:
    (batch_size, prompt_tokens, seconds) rows (uniform prompts), empty for decode-only.
    """

    rel: str
    gpu: str
    system: str
    source: str
    model: Any
    precision: str
    decode: tuple[tuple[int, int, float], ...]
    prefill: tuple[tuple[int, int, float], ...]


def load_profiles(root: str | Path | None = None) -> list[Profile]:
    """Every usable profile under ``root`` (module docstring), sorted by GPU then path.

    Raises ProfileError: a malformed profile (one line, from the profile reader).
    """
    base = Path(root) if root is not None else profiles_root()
    out = []
    for meta_path in sorted(base.glob("*/*/*/meta.json")):
        d = meta_path.parent
        meta, pre, dec = read_profile_dir(d)
        src = meta.source or {}
        if meta.gpu_key is None or not meta.method.startswith("measured"):
            continue
        if int(src.get("tensor_parallel_size", 1)) != 1:
            continue
        col = time_column(meta)
        dec_rows = tuple(
            (int(b), int(c), float(t))
            for b, c, t in dec[["batch_size", "total_context_tokens", col]].itertuples(index=False)
        )
        pre_rows: tuple[tuple[int, int, float], ...] = ()
        if pre is not None:
            pre_rows = tuple(
                (int(b), int(n), float(t))
                for b, n, t in pre[["batch_size", "prompt_tokens", col]].itertuples(index=False)
            )
        pkg = f"{src['package']} {src['package_version']}" if "package" in src else "sunsim profile"
        out.append(
            Profile(
                rel=str(d.relative_to(base)),
                gpu=meta.gpu_key,
                system=str(src.get("system", meta.gpu_key)),
                source=pkg,
                model=model_spec_of(meta, meta_path),
                precision=meta.precision,
                decode=dec_rows,
                prefill=pre_rows,
            )
        )
    order = list(GPUS)
    out.sort(key=lambda p: (order.index(p.gpu) if p.gpu in order else len(order), p.gpu, p.rel))
    return out


def predict(prof: Profile, coef: Coefficients, gpu: str | None = None) -> np.ndarray:
    """Predicted seconds of every point of ``prof`` (decode rows, then prefill rows) on
    ``gpu`` (default the profile's)."""
    lat = CalibratedLatency(get_gpu(gpu or prof.gpu), prof.model, prof.precision, coef)
    d = [lat.decode_step_time(b, c) for b, c, _ in prof.decode]
    p = [lat.prefill_time([n] * b) for b, n, _ in prof.prefill]
    return np.array(d + p)


def measured(prof: Profile) -> np.ndarray:
    """Measured seconds of every point of ``prof`` (same order as :func:`predict`)."""
    return np.array([t for *_, t in prof.decode] + [t for *_, t in prof.prefill])


def regime(prof: Profile) -> list[str]:
    """Regime of every point (:data:`REGIMES`), by which part is larger at unit efficiencies
    and no floor (the plain datasheet roofline's split; does not depend on a fit)."""
    unit = Coefficients(1.0, 1.0, 1.0, 1.0, 1e-30, 1e-30)
    lat = CalibratedLatency(get_gpu(prof.gpu), prof.model, prof.precision, unit)
    out = []
    for b, c, _ in prof.decode:
        k = lat.components(b, c)
        out.append("decode-attention" if k["kv"] > k["weights_or_gemm"] else "decode")
    for b, n, _ in prof.prefill:
        k = lat.prefill_components([n] * b)
        out.append("prefill-attention" if k["attention"] > k["weights_or_gemm"] else "prefill")
    return out


def _residuals(x: np.ndarray, profs: Sequence[Profile], base: Coefficients | None) -> np.ndarray:
    if base is None:
        coef = Coefficients.from_vector(np.exp(x))
    else:  # one low-bit weight efficiency, the rest held
        low = {profs[0].precision: float(math.exp(x[0]))}
        coef = Coefficients.from_vector(base.vector(), eta_weights_low_bit=low)
    return np.concatenate([np.log(predict(p, coef)) - np.log(measured(p)) for p in profs])


def fit(profiles: Sequence[Profile]) -> Coefficients:
    """Coefficients fitted to ``profiles`` (module docstring): the six parameters on the
    BF16 ones, then a weight efficiency per low-bit precision on the low-bit ones.

    Raises ProfileError: no BF16 profile with prefill to fit.
    """
    bf = [p for p in profiles if p.precision == "bf16" and p.prefill]
    if not bf:
        raise ProfileError(
            "no measured BF16 GPU profile with prefill to calibrate on; import one "
            "(sunsim profile import --gpu h100 --model llama-3.1-8b --precision bf16)"
        )
    r = least_squares(_residuals, np.log(X0), args=(bf, None), method="trf", x_scale=1.0)
    base = Coefficients.from_vector(np.exp(r.x))
    low = {}
    for prec in sorted({p.precision for p in profiles} - {"bf16"}):
        group = [p for p in profiles if p.precision == prec]
        rl = least_squares(_residuals, [math.log(base.eta_weights)], args=(group, base))
        low[prec] = float(math.exp(rl.x[0]))
    return Coefficients.from_vector(base.vector(), eta_weights_low_bit=low)


def _ape(pred: np.ndarray, meas: np.ndarray) -> np.ndarray:
    return np.asarray(100.0 * np.abs(pred - meas) / meas, dtype=float)


def held_out(profiles: Sequence[Profile]) -> list[dict[str, Any]]:
    """Leave-one-GPU-out error (BF16 profiles): for each GPU, fit on the others and predict
    its points. One row per held-out GPU and regime: ``gpu``, ``regime``, ``points``,
    ``trained_on`` (the GPUs of the fit), ``calibrated_median_pct``, ``calibrated_p90_pct``,
    ``roofline_median_pct``, ``roofline_p90_pct`` (the plain :class:`RooflineLatency` on
    the same points: the achieved ceilings of :mod:`sunsim.specs`, no floor)."""
    bf = [p for p in profiles if p.precision == "bf16" and p.prefill]
    rows = []
    for g in dict.fromkeys(p.gpu for p in bf):
        train = [p for p in bf if p.gpu != g]
        if not train:
            continue
        coef = fit(train)
        errs: dict[str, tuple[list[float], list[float]]] = {}
        for p in (p for p in bf if p.gpu == g):
            roof = RooflineLatency(get_gpu(g), p.model, p.precision)
            rp = [roof.decode_step_time(b, c) for b, c, _ in p.decode]
            rp += [roof.prefill_time([n] * b) for b, n, _ in p.prefill]
            meas = measured(p)
            ce, re_ = _ape(predict(p, coef), meas), _ape(np.array(rp), meas)
            for k, a, b in zip(regime(p), ce, re_):
                errs.setdefault(k, ([], []))
                errs[k][0].append(float(a))
                errs[k][1].append(float(b))
        for k in REGIMES:
            if k in errs:
                c, r = np.array(errs[k][0]), np.array(errs[k][1])
                rows.append(
                    {
                        "gpu": g,
                        "regime": k,
                        "points": len(c),
                        "trained_on": sorted({p.gpu for p in train}),
                        "calibrated_median_pct": round(float(np.median(c)), 2),
                        "calibrated_p90_pct": round(float(np.percentile(c, 90)), 2),
                        "roofline_median_pct": round(float(np.median(r)), 2),
                        "roofline_p90_pct": round(float(np.percentile(r, 90)), 2),
                    }
                )
    return rows


def label(profiles: Sequence[Profile]) -> str:
    """``analytic (calibrated on h100_sxm, h200_sxm, a100_sxm, b200_sxm aiconfigurator-core
    0.12.0)``: the systems and sources of the BF16 profiles fitted."""
    bf = [p for p in profiles if p.precision == "bf16" and p.prefill]
    systems = ", ".join(dict.fromkeys(p.system for p in bf))
    return f"analytic (calibrated on {systems} {'; '.join(dict.fromkeys(p.source for p in bf))})"


def calibration_document(profiles: Sequence[Profile], command: str) -> dict[str, Any]:
    """The coefficients file's content: ``label``, ``coefficients``, ``provenance``,
    ``held_out`` (see :func:`held_out`)."""
    coef = fit(profiles)
    low = [p.rel for p in profiles if p.precision != "bf16"]
    return {
        "label": label(profiles),
        "coefficients": {
            **dict(zip(PARAMS, coef.vector())),
            "eta_weights_low_bit": dict(coef.eta_weights_low_bit),
        },
        "provenance": {
            "profiles": [p.rel for p in profiles if p.precision == "bf16" and p.prefill],
            "low_bit_profiles": low,
            "low_bit_fitted_on": {
                prec: sorted({p.rel.split("/")[0] for p in profiles if p.precision == prec})
                for prec in coef.eta_weights_low_bit
            },
            "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
            "sunsim_version": __version__,
            "command": command,
            "ceilings": "datasheet mem_bw_datasheet (bytes/s) and bf16_flops_datasheet (FLOP/s) "
            "of sunsim.specs GpuSpec; efficiencies are fractions of those",
            "fit": "scipy.optimize.least_squares (trf) on log(predicted) - log(measured), "
            "log parameters; every decode and prefill grid point of each BF16 profile",
        },
        "held_out": held_out(profiles),
    }


def table(rows: Sequence[dict[str, Any]]) -> str:
    """The held-out rows as a Markdown table."""
    out = [
        "| held-out GPU | trained on | regime | points | calibrated median / p90 | "
        "roofline median / p90 |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        out.append(
            f"| {r['gpu']} | {', '.join(r['trained_on'])} | {r['regime']} | {r['points']} | "
            f"{r['calibrated_median_pct']:.1f} % / {r['calibrated_p90_pct']:.1f} % | "
            f"{r['roofline_median_pct']:.1f} % / {r['roofline_p90_pct']:.1f} % |"
        )
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> None:
    """Refit the bundled coefficients (or ``--out``) and print the held-out table."""
    ap = argparse.ArgumentParser(prog="python -m sunsim.latency.calibrate", description=__doc__)
    ap.add_argument("--profiles", type=Path, default=None, help="profiles root [bundled]")
    ap.add_argument("--out", type=Path, default=None, help="coefficients file [bundled]")
    a = ap.parse_args(argv)
    out = a.out or coefficients_path()
    cmd = "python -m sunsim.latency.calibrate" + (f" --profiles {a.profiles}" if a.profiles else "")
    try:
        doc = calibration_document(load_profiles(a.profiles), cmd)
    except ProfileError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    print(doc["label"])
    print(json.dumps(doc["coefficients"], indent=2))
    print(table(doc["held_out"]))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
