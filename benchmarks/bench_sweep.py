"""Sweep wall time: a 48-point replay grid on the Azure LLM inference trace 2023 (conversation)
-- rate scale x4, Zipf alpha x4, decode workers x3; every point replays partitioned, SUN and
QSUN -- on a Dask LocalCluster of 1 and then 2 worker processes, no result cache (every point
runs). Checks that both give the same table.

Run: ``.venv/bin/python benchmarks/bench_sweep.py [--max-requests N] [--workers 1,2]
[--latency auto|roofline]``. Prints, per worker count, the wall time of the whole sweep (cluster
start included) and of the points alone, and the load average of the machine before the run
(the figures are only comparable on an otherwise idle machine). The trace is read from
``$SUNSIM_TRACES`` (default ``../shared/traces``).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sunsim.cache import ResultCache  # noqa: E402
from sunsim.sweep import dask_executor, read_grid, run_sweep  # noqa: E402

GRID = """
[trace]
path = "{trace}"
[models]
served = ["math", "code", "tool"]
[cluster]
modes = ["partitioned", "sun", "qsun"]
gpu = "h100"
prefill_workers = [1]
[latency]
source = "{latency}"
[sweep]
kind = "replay"
[sweep.axes]
rate = {{ key = "trace.rate_scale", values = [0.5, 1.0, 2.0, 4.0] }}
zipf = {{ key = "models.zipf", values = [0.5, 1.0, 1.5, 2.0] }}
decode_workers = {{ key = "cluster.decode_workers", values = [[3], [4], [6]] }}
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-requests", type=int, default=None)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--latency", default="auto")
    ap.add_argument("--trace", default="azure_llm_2023_conv.csv")
    a = ap.parse_args()
    traces = Path(os.environ.get("SUNSIM_TRACES", REPO.parent / "shared" / "traces"))
    trace = traces / a.trace
    if not trace.is_file():
        sys.exit(f"trace {trace} not found (set SUNSIM_TRACES)")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "grid.toml"
        path.write_text(GRID.format(trace=trace.resolve(), latency=a.latency))
        over = {"trace": {"max_requests": a.max_requests}} if a.max_requests else None
        grid = read_grid(path, over)
        tables = {}
        for n in (int(x) for x in a.workers.split(",")):
            load = os.getloadavg()[0]
            t0 = time.perf_counter()
            with dask_executor(n) as (ex, where):
                r = run_sweep(grid, ex, ResultCache(None, "bench"))
            wall = time.perf_counter() - t0
            tables[n] = r.table
            reqs = int(r.table["requests"].iloc[0])
            print(
                f"{len(grid.points)} points x {len(grid.points[0].scenario.modes)} modes, "
                f"{reqs} requests each, {where}: {wall:.1f} s in all, {r.wall_s:.1f} s of "
                f"points (load average before: {load:.1f}, {os.cpu_count()} CPUs)",
                flush=True,
            )
        first, *rest = tables.values()
        same = all(t.equals(first) for t in rest)
        print(f"tables identical across worker counts: {same}")
        methods = sorted(set(first["method"]))
        print(f"step times: {'; '.join(methods)}")


if __name__ == "__main__":
    main()
