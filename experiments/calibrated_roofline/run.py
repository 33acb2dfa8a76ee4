"""The calibrated roofline's error: leave-one-GPU-out on the bundled profiles, and on a GPU
none of them measured (the L40S).

    .venv/bin/python experiments/calibrated_roofline/run.py [--out DIR]

1. ``sunsim.latency.calibrate.held_out`` on the bundled measured BF16 profiles (H100, H200,
   B200 vLLM 0.24.0; A100 vLLM 0.14.0): for each GPU, fit on the other three, predict it;
   median and p90 absolute relative error per regime, beside the plain roofline's.
2. The L40S: aiconfigurator-core 0.12.0 measured it (vLLM 0.24.0 GEMM and attention tables),
   but sunsim bundles no L40S profile and the calibration never saw it. This script composes
   one into a scratch directory with ``sunsim.profiling.aic.import_profile`` (needs
   ``pip install 'sunsim[aic]'``; the importer's GPU list is extended in this process only)
   and compares the bundled calibrated roofline and the plain roofline with it: a GPU with
   GDDR6 instead of HBM, a different architecture (Ada), out of sample in every sense.

Writes ``DIR/held_out.md`` and ``DIR/l40s.md`` (default ``results/`` beside this file).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from sunsim.errors import ProfileError  # noqa: E402
from sunsim.latency import calibrate  # noqa: E402
from sunsim.latency.calibrated import load_coefficients  # noqa: E402
from sunsim.latency.roofline import RooflineLatency  # noqa: E402
from sunsim.specs import get_gpu  # noqa: E402

MODELS = ("llama-3.1-8b", "qwen3-8b")


def l40s_rows(tmp: Path) -> list[dict]:
    """Per model and regime: calibrated and roofline error against the L40S import."""
    from sunsim.profiling import aic
    from sunsim.profiling.aic import tables

    tables.SYSTEMS.setdefault("l40s", "l40s")  # this process only: sunsim does not bundle it
    coef = load_coefficients()
    rows = []
    for model in MODELS:
        prof = aic.import_profile("l40s", "vllm", model, "bf16")
        aic.write_imported(prof, tmp)
        p = [x for x in calibrate.load_profiles(tmp) if x.model.name == model][0]
        meas = calibrate.measured(p)
        cal = calibrate.predict(p, coef)
        roof = RooflineLatency(get_gpu("l40s"), p.model, "bf16")
        rp = [roof.decode_step_time(b, c) for b, c, _ in p.decode]
        rp += [roof.prefill_time([n] * b) for b, n, _ in p.prefill]
        reg = np.array(calibrate.regime(p))
        for k in calibrate.REGIMES:
            m = reg == k
            if not m.any():
                continue
            ce = 100 * np.abs(cal[m] - meas[m]) / meas[m]
            re_ = 100 * np.abs(np.array(rp)[m] - meas[m]) / meas[m]
            rows.append(
                {
                    "model": model,
                    "regime": k,
                    "points": int(m.sum()),
                    "calibrated": f"{np.median(ce):.1f} % / {np.percentile(ce, 90):.1f} %",
                    "roofline": f"{np.median(re_):.1f} % / {np.percentile(re_, 90):.1f} %",
                    "calibrated_bias": f"{np.median(cal[m] / meas[m]):.2f}",
                }
            )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=HERE / "results")
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    profs = calibrate.load_profiles()
    ho = calibrate.table(calibrate.held_out(profs))
    print(ho)
    (a.out / "held_out.md").write_text(
        "Leave-one-GPU-out, bundled BF16 profiles (median / p90 absolute relative error)\n\n"
        + ho
        + "\n"
    )
    try:
        with tempfile.TemporaryDirectory() as tmp:
            rows = l40s_rows(Path(tmp))
    except ProfileError as e:
        print(f"L40S check skipped: {e}")
        return
    lines = [
        "L40S (never fitted): bundled calibrated roofline and plain roofline against the "
        "L40S profile composed from aiconfigurator-core 0.12.0 (vLLM 0.24.0 kernels); "
        "median / p90 absolute relative error; bias = median predicted / measured",
        "",
        "| model | regime | points | calibrated | roofline | calibrated bias |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['regime']} | {r['points']} | {r['calibrated']} | "
            f"{r['roofline']} | {r['calibrated_bias']} |"
        )
    print("\n".join(lines))
    (a.out / "l40s.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
