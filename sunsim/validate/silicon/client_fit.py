"""The benchmark client's mean delay per request (:func:`~.mapping.client_delays`), chosen on
the engine-overhead fit set of aiconfigurator-core's ``silicon_sample.csv`` and bundled as
``sunsim/data/client/client_delay.json``.

Refit (needs aiconfigurator-core 0.12.0; each grid value simulates every expressible fit-set
row, about 5 minutes with 2 processes)::

    python -m sunsim.validate.silicon.client_fit [--grid 0,0.01,0.05] [--jobs 2] [--csv PATH]

The fit is a grid search: for each mean delay (seconds) on the grid, ``validate_silicon(...,
fit_set=True)`` simulates the fit-set rows (:func:`~.rows.in_fit_set`, never reported by
``sunsim validate silicon``), and the value with the lowest median |TTFT error| over them is
kept (TTFT is what lock-step clients get wrong; the JSON records TPOT too). The JSON holds
the chosen value, every grid value's medians and bias, the row count, the command and the
date, so that every result that uses it can say where it came from.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
from pathlib import Path
from typing import Any

from sunsim.errors import ConfigError

COMMAND = "python -m sunsim.validate.silicon.client_fit"
DEFAULT_GRID = (0.0, 0.01, 0.05)


def client_delay_path() -> Path:
    """The bundled fit: ``sunsim/data/client/client_delay.json``."""
    return Path(__file__).resolve().parents[2] / "data" / "client" / "client_delay.json"


def load_client_delay(path: Path | None = None) -> tuple[float, str]:
    """(mean delay in seconds, provenance line) of the bundled fit.

    Raises:
        ConfigError: the file is missing or malformed (refit with :data:`COMMAND`).
    """
    p = path or client_delay_path()
    try:
        d = json.loads(p.read_text())
        mean = float(d["client_delay_mean_s"])
        note = str(d["fitted_on"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"{p}: no usable client-delay fit ({e}); refit with {COMMAND}") from None
    if not mean >= 0:
        raise ConfigError(f"{p}: client_delay_mean_s must be >= 0, got {mean}; refit")
    return mean, note


def grid_stats(res: Any) -> dict[str, float]:
    """Median |error| and median signed error of TTFT and TPOT over the simulated rows of a
    :func:`~.run.validate_silicon` result, and their count."""
    ok = res[res["status"] == "ok"]
    out: dict[str, float] = {"rows": float(len(ok))}
    for what in ("ttft", "tpot"):
        e = ok[f"{what}_rel_error"].dropna()
        out[f"{what}_median_abs"] = float(e.abs().median())
        out[f"{what}_median_signed"] = float(e.median())
    return out


def fit(csv: Path, grid: tuple[float, ...], jobs: int) -> dict[str, Any]:
    """Run the grid on the fit set and return the JSON document (module docstring)."""
    from sunsim.validate.silicon.run import validate_silicon

    per: dict[str, dict[str, float]] = {}
    for g in grid:
        res = validate_silicon(csv, jobs=jobs, fit_set=True, client_delay_mean_s=g)
        per[f"{g:g}"] = grid_stats(res)
        print(f"mean delay {g:g} s: {json.dumps(per[f'{g:g}'])}", flush=True)
    best = min(grid, key=lambda g: per[f"{g:g}"]["ttft_median_abs"])
    n = int(per[f"{best:g}"]["rows"])
    return {
        "source": "aiconfigurator-core 0.12.0 systems/silicon_sample.csv",
        "split": "rows with int(sha256(id)[:8], 16) % 100 < 30 (the fit set); "
        "sunsim validate silicon reports only the other rows",
        "model": "each request a client sends after a response waits an exponential "
        "delay of mean client_delay_mean_s seconds (the client's own time per request)",
        "criterion": "lowest median |TTFT error| over the simulated fit-set rows",
        "client_delay_mean_s": best,
        "fitted_on": f"{n} fit-set rows of aiconfigurator-core 0.12.0 silicon_sample.csv "
        f"(grid {', '.join(f'{g:g}' for g in grid)} s)",
        "grid": per,
        "command": f"{COMMAND} --grid {','.join(f'{g:g}' for g in grid)} --jobs {jobs}",
        "created": _dt.date.today().isoformat(),
    }


def main(argv: list[str] | None = None) -> None:
    from sunsim.validate.silicon.rows import default_csv

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--csv", type=Path, default=None)
    ap.add_argument("--grid", default=",".join(f"{g:g}" for g in DEFAULT_GRID))
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args(argv)
    grid = tuple(float(x) for x in a.grid.split(","))
    doc = fit(a.csv or default_csv(), grid, a.jobs)
    out = a.out or client_delay_path()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {out}: client_delay_mean_s = {doc['client_delay_mean_s']:g}")


if __name__ == "__main__":
    main()
