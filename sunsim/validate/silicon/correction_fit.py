"""Per-(backend, GPU) corrections of ``sunsim validate silicon``, fitted on the fit set of
aiconfigurator-core's ``silicon_sample.csv`` and bundled as
``sunsim/data/overhead/silicon_corrections.json``. They are fitted, never measured.

Two terms per serving backend and GPU (aiconfigurator's ``system``), each one number:

* ``decode_scale``: every decode step's time x this factor
  (:class:`~sunsim.latency.overhead.DecodeScaledLatency`): the median over the class's
  fit-set rows of measured mean TPOT / simulated mean TPOT, simulated without corrections.
  It absorbs what the per-operator kernel tables miss for that backend on that GPU end to
  end (e.g. TensorRT-LLM's FP8 GEMM table on H200/B200, 37-40% slower than vLLM's on the same
  shapes, or per-step CPU time), and whatever of the scheduling model TPOT still gets wrong.
* ``request_latency_s``: seconds each request spends outside the engine (HTTP, the
  frontend's tokenisation and detokenisation, the response's way back, the engine loop's
  next admission boundary): every simulated TTFT gains it, and each closed-loop client's next
  request reaches the engine that long after its last one ended. The median of measured -
  simulated mean TTFT over the class's fit-set rows, simulated with ``decode_scale``, at
  least 0.

A class with fewer than :data:`MIN_ROWS` simulated fit-set rows gets no correction. Refit
(needs aiconfigurator-core 0.12.0; three passes over the fit set, about 10 minutes with two
processes)::

    python -m sunsim.validate.silicon.correction_fit [--jobs 2] [--csv PATH] [--out JSON]

Fit on the rows :func:`~.rows.in_fit_set` selects; ``sunsim validate silicon`` reports only
the others. Any change to how rows are simulated (scheduler, token budget, profiles) calls
for a refit.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from sunsim.errors import ConfigError

COMMAND = "python -m sunsim.validate.silicon.correction_fit"
SOURCE = "aiconfigurator-core 0.12.0 systems/silicon_sample.csv"
#: Fewest simulated fit-set rows a (backend, GPU) class needs for a correction.
MIN_ROWS = 5


@dataclass(frozen=True)
class Correction:
    """The fitted correction of one (backend, GPU) class (module docstring)."""

    backend: str
    system: str
    decode_scale: float
    request_latency_s: float
    num_rows: int
    fitted_on: str


def corrections_path() -> Path:
    """The bundled fit: ``sunsim/data/overhead/silicon_corrections.json``."""
    from sunsim.data import data_dir

    return data_dir() / "overhead" / "silicon_corrections.json"


def _ok(res: pd.DataFrame) -> pd.DataFrame:
    ok = res[res["status"] == "ok"]
    need = ("sim_tpot_ms", "sim_ttft_ms", "silicon_tpot_ms", "silicon_ttft_ms")
    return ok.dropna(subset=[c for c in need if c in ok.columns])


def fit_decode_scales(res: pd.DataFrame, min_rows: int = MIN_ROWS) -> dict[tuple[str, str], float]:
    """(backend, system) -> median(measured / simulated mean TPOT) over the ``ok`` rows of a
    :func:`~.run.validate_silicon` result, for classes with at least ``min_rows`` rows."""
    out: dict[tuple[str, str], float] = {}
    for (b, s), g in _ok(res).groupby(["backend", "system"], sort=True):
        ratio = g["silicon_tpot_ms"] / g["sim_tpot_ms"]
        ratio = ratio[(ratio > 0) & ratio.map(math.isfinite)]
        if len(ratio) >= min_rows:
            out[(str(b), str(s))] = float(ratio.median())
    return out


def fit_request_latencies(
    res: pd.DataFrame, min_rows: int = MIN_ROWS
) -> dict[tuple[str, str], float]:
    """(backend, system) -> max(0, median(measured - simulated mean TTFT)) in seconds over the
    ``ok`` rows of a :func:`~.run.validate_silicon` result (classes of ``min_rows`` or more)."""
    out: dict[tuple[str, str], float] = {}
    for (b, s), g in _ok(res).groupby(["backend", "system"], sort=True):
        if len(g) >= min_rows:
            gap_ms = float((g["silicon_ttft_ms"] - g["sim_ttft_ms"]).median())
            out[(str(b), str(s))] = max(0.0, gap_ms) / 1e3
    return out


def load_corrections(path: Path | None = None) -> dict[tuple[str, str], Correction]:
    """(backend, system) -> :class:`Correction` of the bundled fit (or ``path``).

    Raises:
        ConfigError: the file is missing or malformed (one line naming it and the refit).
    """
    p = path or corrections_path()
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
        out = {}
        for c in doc["corrections"]:
            k = Correction(
                str(c["backend"]), str(c["system"]), float(c["decode_scale"]),
                float(c["request_latency_s"]), int(c["num_rows"]), str(c["fitted_on"]),
            )  # fmt: skip
            if not (k.decode_scale > 0 and k.request_latency_s >= 0):
                raise ValueError(f"{k.backend} {k.system}: decode_scale must be > 0, latency >= 0")
            out[(k.backend, k.system)] = k
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ConfigError(
            f"{p}: no usable silicon corrections ({e}); refit with {COMMAND}"
        ) from None
    return out


def _pass(csv: Path, jobs: int, corrections: dict[tuple[str, str], Correction] | None) -> Any:
    from sunsim.validate.silicon.run import validate_silicon

    return validate_silicon(csv, jobs=jobs, fit_set=True, corrections=corrections or {})


def _stats(res: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Per "GPU backend model" class and ``all``: rows, median |TTFT| and |TPOT| error."""
    from sunsim.validate.silicon.summary import error_table

    out = {}
    cols = ("rows", "ttft_median_abs", "tpot_median_abs")
    for r in error_table(res).to_dict("records"):
        model = str(r["model_path"]).rsplit("/", 1)[-1]
        key = "all" if r["system"] == "all" else f"{r['system']} {r['backend']} {model}"
        out[key] = {k: round(float(r[k]), 4) for k in cols}
    return out


def fit(csv: Path, jobs: int) -> dict[str, Any]:
    """The three fit-set passes (module docstring); returns the JSON document."""
    base = _pass(csv, jobs, None)
    scales = fit_decode_scales(base)
    note = f"fit-set rows of {SOURCE} (hashed 30%)"
    step1 = {k: Correction(*k, v, 0.0, 0, note) for k, v in scales.items()}
    lat = fit_request_latencies(_pass(csv, jobs, step1))
    ok = _ok(base)
    final = {}
    for k in sorted(set(scales) | set(lat)):
        n = int(((ok["backend"] == k[0]) & (ok["system"] == k[1])).sum())
        final[k] = Correction(
            *k, scales.get(k, 1.0), lat.get(k, 0.0), n, f"{n} {k[0]} {k[1]} {note}"
        )
    after = _pass(csv, jobs, final)
    return {
        "source": SOURCE,
        "split": "rows with int(sha256(id)[:8], 16) % 100 < 30 (the fit set); "
        "sunsim validate silicon reports only the other rows",
        "model": "per (backend, system): decode steps x decode_scale; request_latency_s "
        "seconds outside the engine on every TTFT and before each next closed-loop request; "
        "see sunsim/validate/silicon/correction_fit.py",
        "method": "decode_scale: median measured/simulated TPOT (pass 1, no corrections); "
        "request_latency_s: max(0, median measured - simulated TTFT) (pass 2, decode_scale "
        "applied); errors_after: pass 3, both applied",
        "corrections": [asdict(c) for c in final.values()],
        "fit_set_errors_before": _stats(base),
        "fit_set_errors_after": _stats(after),
        "command": f"{COMMAND} --jobs {jobs}",
        "created": _dt.date.today().isoformat(),
    }


def main(argv: list[str] | None = None) -> int:
    """The refit command (module docstring)."""
    from sunsim.validate.silicon.rows import default_csv

    ap = argparse.ArgumentParser(prog=COMMAND, description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--csv", type=Path, default=None, help="silicon_sample.csv")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None, help="JSON to write")
    a = ap.parse_args(argv)
    doc = fit(a.csv or default_csv(), a.jobs)
    out = a.out or corrections_path()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    for c in doc["corrections"]:
        print(
            f"{c['backend']} {c['system']}: decode x{c['decode_scale']:.3f}, "
            f"request latency {c['request_latency_s'] * 1e3:.1f} ms on {c['num_rows']} rows"
        )
    print(f"fit set before: {doc['fit_set_errors_before'].get('all')}")
    print(f"fit set after:  {doc['fit_set_errors_after'].get('all')}; wrote {out}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
