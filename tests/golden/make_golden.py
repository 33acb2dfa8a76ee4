"""Fingerprints of the per-request records of the README's replay examples, made with one
sunsim version, so a later version can prove it gives the same records for the same seed.

For each trace (Azure 2023 conv and code), decode router and design, it runs the CLI exactly as
a user would::

    sunsim replay TRACE --zipf 1.2 --rate-scale 20 --prefill-workers 3 --decode-workers 3 \
        --latency roofline --router ROUTER --seed 0 --records-format parquet --out DIR

and stores, per records column, a SHA-256 of the column's values (floats as IEEE-754 bytes,
so the check is exact) plus its sum and sum of squares (to say how far a mismatch is).

Run from the repository root (the traces come from ``$SUNSIM_TRACES``, default
``../shared/traces``)::

    python tests/golden/make_golden.py tests/golden/records.json

``tests/test_golden_records.py`` repeats the runs and compares.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

TRACES = ("azure_llm_2023_conv.csv", "azure_llm_2023_code.csv")
ROUTERS = ("round_robin", "least_loaded", "least_kv", "power_of_two", "central")
DESIGNS = ("partitioned", "sun", "qsun")
ARGS = (
    "--zipf",
    "1.2",
    "--rate-scale",
    "20",
    "--prefill-workers",
    "3",
    "--decode-workers",
    "3",
    "--latency",
    "roofline",
    "--seed",
    "0",
    "--records-format",
    "parquet",
)


def traces_dir() -> Path:
    repo = Path(__file__).resolve().parents[2]
    return Path(os.environ.get("SUNSIM_TRACES", repo.parent / "shared" / "traces"))


def fingerprint(df: pd.DataFrame) -> dict[str, dict[str, object]]:
    """Per column: ``sha256`` of the values, ``sum`` and ``sumsq`` (NaN-skipping; strings: None)."""
    out: dict[str, dict[str, object]] = {}
    for col in df.columns:
        s = df[col]
        if not pd.api.types.is_numeric_dtype(s.dtype) or isinstance(s.dtype, pd.CategoricalDtype):
            vals = s.astype(str).to_numpy()
            h = hashlib.sha256("\x1f".join(vals).encode()).hexdigest()
            out[col] = {"sha256": h, "sum": None, "sumsq": None}
        else:
            a = np.ascontiguousarray(s.to_numpy(dtype=float))
            h = hashlib.sha256(a.tobytes()).hexdigest()
            out[col] = {"sha256": h, "sum": float(np.nansum(a)), "sumsq": float(np.nansum(a * a))}
    return out


def run_case(trace: Path, router: str, out: Path, sunsim: list[str]) -> dict[str, pd.DataFrame]:
    """Run the CLI for one trace and router; the records of every design."""
    cmd = [
        *sunsim,
        "replay",
        str(trace),
        *ARGS,
        "--router",
        router,
        "--out",
        str(out),
        "--no-progress",
    ]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return {d: pd.read_parquet(out / f"records_{d}.parquet") for d in DESIGNS}


def main(dest: str) -> None:
    sunsim = [sys.executable, "-c", "from sunsim.cli import main; main()"]
    result: dict[str, object] = {"command": " ".join(ARGS), "cases": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for t in TRACES:
            for r in ROUTERS:
                recs = run_case(traces_dir() / t, r, Path(tmp) / f"{t}-{r}", sunsim)
                for d, df in recs.items():
                    result["cases"][f"{t}|{r}|{d}"] = {"rows": len(df), "columns": fingerprint(df)}
                print(t, r, "done", flush=True)
    Path(dest).write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/golden/records.json")
