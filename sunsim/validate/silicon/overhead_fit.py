"""Fitting the per-step engine overhead (:mod:`sunsim.latency.overhead`) on the fit set of
aiconfigurator-core's ``silicon_sample.csv``, and writing the bundled coefficients.

Refit (needs aiconfigurator-core 0.12.0 for the CSV and the kernel tables)::

    python -m sunsim.validate.silicon.overhead_fit [--csv PATH] [--out JSON]

Rows: those of the fit set (:func:`~sunsim.validate.silicon.rows.in_fit_set`, a hashed 30%)
that sunsim can time (:func:`~sunsim.validate.silicon.rows.classify` with ``for_fit``: a
known dense model, GPU and precision, and the backend's kernel profile at the row's tensor
parallel size, :mod:`~sunsim.validate.silicon.profiles`). ``sunsim validate silicon`` never
reports these rows.

What each row gives (``lat``: the kernel-only profile; the closed loop at concurrency ``C``
in its steady state, prompts of ``ISL`` and outputs of ``OSL`` tokens; one engine step gives
every decoding request one token, so the mean TPOT is the mean step time):

* aggregated, TPOT: each step decodes ``C`` requests (mean context ``ISL + OSL/2``) and, on
  average, prefills ``C/OSL`` new prompts in the same step, so
  ``TPOT = d + (C/OSL) (m - d) + overhead``, with ``d = decode_step_time(C, C (ISL +
  OSL/2))``, ``m`` the same step with one prompt's prefill mixed in (``mixed_step_time``
  where the latency model has it, the co-located design's step; else ``d +
  prefill_time([ISL])``) and ``overhead = a + b (C + C/OSL) + c (C + C ISL/OSL)`` (one
  step, its sequences, its tokens);
* aggregated at ``C = 1``, TTFT: ``prefill_time([ISL]) + a + b + c ISL`` (no queueing);
* disaggregated, TPOT: a decode worker holds ``B = C / decode_workers`` requests:
  ``decode_step_time(B, B (ISL + OSL/2)) + a + (b + c) B``.

The residuals (measured - kernel) are fitted by :func:`sunsim.latency.overhead.fit_overhead`
per backend, each row weighted by 1 / measured (relative error). The steady-state step is an
approximation of the engine's schedule (prefills spread evenly over steps; a backend that
mixes prefill chunks into decode steps reads the weights once, which the sum of the two
curves does not), and its error is part of what the fit absorbs; the JSON records the fit's
own median relative error on its rows, kernel-only and with the overhead.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from sunsim.latency.base import LatencyModel
from sunsim.latency.overhead import BACKENDS, fit_overhead, overhead_path
from sunsim.validate.silicon.rows import (
    FIT_PERCENT,
    Case,
    Skip,
    classify,
    default_csv,
    in_fit_set,
    read_silicon,
)

COMMAND = "python -m sunsim.validate.silicon.overhead_fit"
SOURCE = "aiconfigurator-core 0.12.0 systems/silicon_sample.csv"


def row_samples(
    case: Case, prefill: LatencyModel, decode: LatencyModel
) -> list[tuple[list[float], float, float]]:
    """The (features ``[steps, sequences, tokens]``, kernel-only seconds, measured seconds)
    samples of one case (module docstring)."""
    c, isl, osl = case.concurrency, case.isl, case.osl
    out: list[tuple[list[float], float, float]] = []
    if case.mode == "agg":
        new = c / osl
        ctx = int(c * (isl + osl / 2))
        step = decode.decode_step_time(c, ctx)
        mixed = getattr(decode, "mixed_step_time", None)
        if mixed is not None:  # a step that also prefills one prompt, weights read once
            kernel = step + new * (mixed(c, ctx, [(isl, 0)]) - step)
        else:
            kernel = step + new * prefill.prefill_time([isl])
        out.append(([1.0, c + new, c + c * isl / osl], kernel, case.tpot_s))
        if c == 1:
            out.append(([1.0, 1.0, float(isl)], prefill.prefill_time([isl]), case.ttft_s))
    else:
        b = max(1, round(c / case.decode_workers))
        kernel = decode.decode_step_time(b, int(b * (isl + osl / 2)))
        out.append(([1.0, float(b), float(b)], kernel, case.tpot_s))
    return out


def _latencies(case: Case, cache: Path) -> tuple[LatencyModel, LatencyModel, str]:
    """Kernel-only prefill and decode models of ``case`` and the profile slug(s)."""
    from sunsim.latency.profiled import ProfiledLatency
    from sunsim.validate.silicon.profiles import backend_profile

    def load(tp: int) -> tuple[LatencyModel, str]:
        d = backend_profile(
            cache, case.gpu, case.backend, case.model, case.precision, tp, case.kv_cache_dtype
        )
        lat = ProfiledLatency.from_dir(d, model=case.model, precision=case.precision)
        return lat, d.parent.parent.name

    pl, ps = load(case.prefill_tensor_parallel_size)
    dl, ds = load(case.decode_tensor_parallel_size)
    return pl, dl, ps if ps == ds else f"{ps} / {ds}"


def fit_rows(csv: Path, cache: Path) -> tuple[dict[str, Any], dict[str, int]]:
    """Fit every backend with rows (module docstring); returns the ``backends`` table of the
    JSON and the count of fit-set rows skipped, by reason."""
    from sunsim.validate.silicon.profiles import NoProfile

    df = read_silicon(csv)
    per: dict[str, list[tuple[list[float], float, float, str, str]]] = {b: [] for b in BACKENDS}
    skipped: dict[str, int] = {}
    for row in df.to_dict("records"):
        if not in_fit_set(str(row["id"])) or row["backend"] not in per:
            continue
        case = classify(row, for_fit=True)
        if isinstance(case, Skip):
            skipped[case.reason] = skipped.get(case.reason, 0) + 1
            continue
        try:
            pl, dl, slug = _latencies(case, cache)
        except NoProfile:
            skipped["no profile for the backend"] = skipped.get("no profile for the backend", 0) + 1
            continue
        for x, k, y in row_samples(case, pl, dl):
            per[case.backend].append((x, k, y, case.row_id, slug))
    return {b: _fit_one(b, s) for b, s in per.items() if len(s) >= 3}, skipped


def _fit_one(backend: str, samples: list[tuple[list[float], float, float, str, str]]) -> Any:
    x = np.array([s[0] for s in samples])
    kernel = np.array([s[1] for s in samples])
    measured = np.array([s[2] for s in samples])
    a, b, c = fit_overhead(x, measured - kernel, 1.0 / measured)
    pred = kernel + x @ np.array([a, b, c])
    rows = sorted({s[3] for s in samples})
    return {
        "a_s": a,
        "b_s": b,
        "c_s": c,
        "num_rows": len(rows),
        "num_samples": len(samples),
        "fitted_on": f"{len(rows)} {backend} rows of {SOURCE}, hashed {FIT_PERCENT}% fit set",
        "median_measured_over_kernel": float(np.median(measured / kernel)),
        "median_rel_error_kernel_only": float(np.median(np.abs(kernel / measured - 1))),
        "median_rel_error_with_overhead": float(np.median(np.abs(pred / measured - 1))),
        "profiles": sorted({s[4] for s in samples}),
        "rows": rows,
    }


def write_fit(backends: dict[str, Any], skipped: dict[str, int], out: Path) -> None:
    """Write the coefficients JSON (:func:`sunsim.latency.overhead.load_overhead` reads it)."""
    from sunsim import __version__

    data = {
        "source": SOURCE,
        "split": f"rows with int(sha256(id)[:8], 16) % 100 < {FIT_PERCENT} (the fit set); "
        "sunsim validate silicon reports only the other rows",
        "model": "overhead(step) = a_s + b_s * sequences + c_s * tokens; see "
        "sunsim/validate/silicon/overhead_fit.py for the steady-state step of each row",
        "command": COMMAND,
        "created": _dt.date.today().isoformat(),
        "sunsim_version": __version__,
        "fit_set_rows_skipped": dict(sorted(skipped.items())),
        "backends": backends,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """The refit command (module docstring)."""
    ap = argparse.ArgumentParser(prog=COMMAND, description=__doc__.splitlines()[0])
    ap.add_argument("--csv", type=Path, default=None, help="silicon_sample.csv")
    ap.add_argument("--out", type=Path, default=None, help="coefficients JSON to write")
    args = ap.parse_args(argv)
    csv = args.csv or default_csv()
    with tempfile.TemporaryDirectory(prefix="sunsim-overhead-") as tmp:
        backends, skipped = fit_rows(csv, Path(tmp))
    out = args.out or overhead_path()
    write_fit(backends, skipped, out)
    for b, f in backends.items():
        print(
            f"{b}: a = {f['a_s'] * 1e3:.3f} ms, b = {f['b_s'] * 1e6:.2f} us/seq, "
            f"c = {f['c_s'] * 1e6:.3f} us/token on {f['num_rows']} rows; median |error| "
            f"{f['median_rel_error_kernel_only']:.1%} kernel-only -> "
            f"{f['median_rel_error_with_overhead']:.1%} with overhead"
        )
    print(f"fit-set rows skipped: {skipped}; wrote {out}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
