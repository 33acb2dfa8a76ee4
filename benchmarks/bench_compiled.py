"""The optional compiled engine (mypyc, README "Compiled engine") against the pure build.

Builds the compiled variant into a fresh virtual environment (``SUNSIM_COMPILE=1 pip
install .``, timed) unless ``--venv`` names one already built, then runs
``benchmarks/bench_replay.py`` alternately with the pure code (the same interpreter and
packages, this checkout first on ``PYTHONPATH``) and the compiled build, and prints the
medians of the paired ratios of ``simulate()``'s CPU seconds, per mode::

    python benchmarks/bench_compiled.py --requests 200000 --pairs 3
    python benchmarks/bench_compiled.py --venv /tmp/cvenv --pairs 5

Each bench_replay row says which build produced it (``engine_build``); the script stops if
a run is not the build it should be.

Figures measured with the same commands this script runs, timed from outside (2026-12-02,
this 2-core machine shared with other busy processes, load 6 to 7; ``python
benchmarks/bench_replay.py --requests 200000`` run A B A B ..., 3 counted runs each after
one warm-up; every command run by the same interpreter and packages, the pure code and
90527bd put first on ``PYTHONPATH``). Speed-up = medians of the pairwise ratios of
``simulate()``'s CPU seconds; req/CPU-s = requests per CPU-second of ``simulate()``, medians
(90527bd, the issue's baseline, prints no separate figure: its ``cpu_s`` is ``simulate()``'s):

    simulate()                       sun                 partitioned
    compiled vs pure (this branch)   1.81x (1.30-1.85)   1.55x (1.45-1.63)
    compiled vs 90527bd              1.92x (1.85-2.31)   1.98x (1.42-1.99)
    req/CPU-s: 90527bd               14,760              16,529
               pure, this branch     16,892              15,860
               compiled              29,028 / 29,895     24,631 / 28,902  (two sessions)

    whole process CPU s, both modes (trace generation and summaries included), medians:
    compiled 17.4 vs pure 26.5 (ratio 0.66); compiled 16.9 vs 90527bd 27.7 (ratio 0.56).
    Peak RSS 230 MiB compiled, 241 MiB pure, 293 MiB 90527bd.

The events (877,907 sun, 863,538 partitioned) are the same in every build: the speed-up is
per event, not fewer events. The build (``SUNSIM_COMPILE=1 pip install --no-deps .``, 9
modules) took 97 s wall, 40 s user CPU at that load. Left interpreted and why: see
``sunsim.build_info.COMPILED_MODULES``. In single trial runs (sun, 50k requests, one run
each) a build with ``engine.cluster``, ``engine.arrivals``, ``latency.roofline`` and
``latency.paired`` added measured 2.25x over pure, and one with only the two latency
modules added 1.9x to 2.0x. The cluster and arrivals need the co-located workers to stop
sitting in the cluster's decode-worker lists by duck typing (compiled code checks the
type); the compiled roofline model did not unpickle in the planner's worker processes
(``__init__() missing required argument 'gpu'``). Both are engine changes left for later.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks" / "bench_replay.py"


def build(venv: Path) -> float:
    """Create ``venv`` and install the compiled build into it; the wall seconds it took."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = {**os.environ, "SUNSIM_COMPILE": "1"}
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(REPO)], check=True, env=env)
    return time.perf_counter() - t0


def bench(python: Path, pure: bool, requests: int, modes: str) -> list[dict]:
    """bench_replay's rows, run by ``python`` from a scratch directory; ``pure`` puts this
    checkout first on PYTHONPATH (its .py files win over the installed compiled modules)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if pure:
        env["PYTHONPATH"] = str(REPO)
    with tempfile.TemporaryDirectory() as cwd:
        out = subprocess.run(
            [str(python), str(BENCH), "--requests", str(requests), "--modes", modes],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    for r in rows:
        if r["engine_build"].startswith("compiled") == pure:
            sys.exit(
                f"expected the {'pure' if pure else 'compiled'} build, ran {r['engine_build']}"
            )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--venv", type=Path, default=None, help="an existing compiled install")
    ap.add_argument("--requests", type=int, default=200_000)
    ap.add_argument("--modes", default="sun,partitioned")
    ap.add_argument("--pairs", type=int, default=3)
    a = ap.parse_args()
    tmp = None
    venv = a.venv
    if venv is None:
        tmp = tempfile.TemporaryDirectory()
        venv = Path(tmp.name) / "venv"
        print(f"build: SUNSIM_COMPILE=1 pip install . took {build(venv):.0f} s (wall)")
    python = venv / "bin" / "python"
    ratios: dict[str, list[float]] = {}
    speed: dict[tuple[str, bool], list[float]] = {}
    for i in range(a.pairs):
        for pure in (True, False):
            for r in bench(python, pure, a.requests, a.modes):
                speed.setdefault((r["mode"], pure), []).append(r["cpu_s_simulate"])
        for mode in a.modes.split(","):
            p, c = speed[(mode, True)][-1], speed[(mode, False)][-1]
            ratios.setdefault(mode, []).append(p / c)
            print(f"pair {i + 1} {mode}: simulate() CPU s pure {p}, compiled {c}", flush=True)
    for mode, rs in ratios.items():
        pure_s = statistics.median(speed[(mode, True)])
        comp_s = statistics.median(speed[(mode, False)])
        print(
            f"{mode}: simulate() req per CPU-s pure {a.requests / pure_s:,.0f}, compiled "
            f"{a.requests / comp_s:,.0f}; median paired speed-up {statistics.median(rs):.2f}x"
        )
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
