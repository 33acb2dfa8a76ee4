"""Microseconds per ``decode_step_time`` / ``prefill_time`` call: roofline, calibrated
roofline and profiled.

The event loop calls ``decode_step_time`` once per simulated decode iteration (millions of
times), so it must stay plain-Python arithmetic (about 1-2 microseconds).

    .venv/bin/python benchmarks/bench_latency.py [PROFILE_DIR]

PROFILE_DIR defaults to the first bundled profile under profiles/ (prefill from a bf16 one).
"""

from __future__ import annotations

import random
import sys
import timeit
from pathlib import Path

from sunsim.data import profiles_root
from sunsim.latency.calibrated import CalibratedLatency
from sunsim.latency.profiled import ProfiledLatency
from sunsim.latency.roofline import RooflineLatency
from sunsim.specs import get_gpu, get_model

ROOT = Path(__file__).resolve().parents[1]


def _per_call_us(fn, args: list[tuple], number: int = 3) -> float:
    def run() -> None:
        for a in args:
            fn(*a)

    best = min(timeit.repeat(run, number=1, repeat=number))
    return best / len(args) * 1e6


def main() -> None:
    if len(sys.argv) > 1:
        d = Path(sys.argv[1])
    else:
        found = sorted(p.parent for p in profiles_root().glob("*/*/bf16/meta.json"))
        if not found:
            sys.exit("no bundled profile under profiles/; pass a profile directory")
        d = found[0]
    prof = ProfiledLatency.from_dir(d)
    roof = RooflineLatency(get_gpu("h100"), get_model(prof.model), prof.precision)
    cal = CalibratedLatency(get_gpu("h100"), get_model(prof.model), prof.precision)
    rng = random.Random(0)
    dec_args = []
    for _ in range(200_000):
        b = rng.randint(1, 256)
        dec_args.append((b, b * rng.randint(16, 8192)))
    pre_args = [([rng.randint(16, 4096) for _ in range(rng.randint(1, 8))],) for _ in range(50_000)]
    print(f"profile: {prof.description}")
    print(f"decode fit: t = {prof.decode_fit} s")
    print(f"{'model':>10} {'decode_step_time':>18} {'prefill_time':>14}  (microseconds per call)")
    for name, lat in (("roofline", roof), ("calibrated", cal), ("profiled", prof)):
        dec = _per_call_us(lat.decode_step_time, dec_args)
        pre = (
            _per_call_us(lat.prefill_time, pre_args)
            if getattr(lat, "has_prefill", True)
            else float("nan")
        )
        print(f"{name:>10} {dec:18.2f} {pre:14.2f}")


if __name__ == "__main__":
    main()
