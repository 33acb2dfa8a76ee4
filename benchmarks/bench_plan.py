"""Planner wall time on the Azure LLM inference trace 2023 (conversation), 3 models, Zipf 1.2,
H100, all three modes -- the issue's benchmark case (target: under 60 s on a 2-core machine).

Run: ``.venv/bin/python benchmarks/bench_plan.py [--rate-scale X] [--jobs N]
[--slo-ttft S] [--slo-tpot S] [--latency auto|roofline]``. Prints the plan table, the number of
simulations and the wall time. The trace is read from ``$SUNSIM_TRACES`` (default
``../shared/traces``). No cache is used (every simulation runs).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sunsim.config import Scenario  # noqa: E402
from sunsim.planner import PlanOptions, plan  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate-scale", type=float, default=1.0)
    ap.add_argument("--jobs", type=int, default=None)
    ap.add_argument("--slo-ttft", type=float, default=2.0)
    ap.add_argument("--slo-tpot", type=float, default=0.1)
    ap.add_argument("--latency", default="auto")
    ap.add_argument("--trace", default="azure_llm_2023_conv.csv")
    a = ap.parse_args()
    traces = Path(os.environ.get("SUNSIM_TRACES", REPO.parent / "shared" / "traces"))
    trace = traces / a.trace
    if not trace.is_file():
        sys.exit(f"trace {trace} not found (set SUNSIM_TRACES)")
    s = Scenario(
        trace=str(trace),
        zipf=1.2,
        rate_scale=a.rate_scale,
        gpu="h100",
        served_models=("math", "code", "tool"),
        slo_ttft_s=a.slo_ttft,
        slo_tpot_s=a.slo_tpot,
        latency=a.latency,
    )
    t0 = time.perf_counter()
    r = plan(s, PlanOptions(jobs=a.jobs))
    wall = time.perf_counter() - t0
    cols = [
        "mode",
        "decode_workers",
        "prefill_workers",
        "num_gpus",
        "slo_attainment",
        "throughput_per_gpu",
        "tpot_s_p90",
        "saving_pct_vs_partitioned",
    ]
    print(r.table()[cols].to_string(index=False))
    print(
        f"{len(r.points[0].modes)} modes, {r.num_simulations} simulations "
        f"({r.sim_wall_s:.1f} s of simulation in {r.jobs} processes), "
        f"{r.points[0].workload_info.get('num_requests')} requests, rate scale {a.rate_scale}: "
        f"plan wall time {wall:.1f} s (cpu count {os.cpu_count()})"
    )


if __name__ == "__main__":
    main()
