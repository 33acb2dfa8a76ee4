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

Figures (2026-12-02, 08:00-08:25 UTC, 13 compiled modules, this 2-core machine shared with other
busy processes, load 1 to 3): ``python benchmarks/bench_replay.py --requests 200000``, the
compiled build against another command in turn, A B A B, 3 or 5 counted pairs after one
warm-up pair; every command run by the compiled environment's interpreter and packages, the pure
code (this branch, or 90527bd, the issue's baseline) put first on ``PYTHONPATH``. Speed-up
= median of the pairwise ratios of ``simulate()``'s CPU seconds (range in brackets);
req/CPU-s = requests per CPU-second of ``simulate()``, medians (90527bd prints no separate
figure: its ``cpu_s`` is ``simulate()``'s):

    simulate()                       sun                 partitioned
    compiled vs pure (this branch)   2.25x (1.86-2.69)   2.12x (1.91-2.90)   5 pairs
                                     2.08x (1.50-2.17)   1.99x (1.47-2.99)   3 pairs
    compiled vs 90527bd              2.34x (2.30-3.30)   2.86x (2.41-3.39)
    req/CPU-s: 90527bd               20,182              17,621
               pure, this branch     20,725 / 24,096     22,857 / 23,015  (5 / 3 pairs)
               compiled              47,962 / 42,827     50,378 / 48,193  (vs 90527bd / pure)

    whole process CPU s, both modes (trace generation and summaries included), medians:
    compiled 10.4 vs 90527bd 22.9 (ratio 0.45); compiled 11.7 vs pure 21.1 (ratio 0.49,
    5 pairs) and 11.2 vs 19.1 (ratio 0.54, 3 pairs).
    Peak RSS 229 MiB compiled, 242 MiB pure, 293 MiB 90527bd.

The noise is large (one run of the same build took 3.0 s and another 5.3 s): quote the
medians. The events (773,181 sun, 758,442 partitioned) are the same in both builds of this
branch, so compiled vs pure is per event; against 90527bd (877,907 and 863,538 events) part
of the speed-up is the pure engine's fewer events per request. The build
(``SUNSIM_COMPILE=1 pip install . pytest`` into a fresh venv, the dependencies included)
took 84 s wall, 74 s user CPU; the compile alone (``SUNSIM_COMPILE=1 python setup.py
build_ext --inplace`` in a scratch copy) about 30 s. The compiled step of ``.ci/run``
(fresh venv, build, golden records, the A/B subset pure and compiled) took 113 s wall.
Left interpreted and why: see ``sunsim.build_info.COMPILED_MODULES``.

Measured profiles (2026-12-02, 08:51-08:56 UTC, same machine, load 3 to 5). The figures
above use roofline step times; a plain ``sunsim replay`` uses the bundled measured profiles
(``sunsim.latency.profiled``). Pure, their ``decode_run`` was half of the whole process
(cProfile of ``sunsim replay azure_llm_2023_conv.csv``: 17.2 of 34.2 profiled seconds, 9.8M
interpolated iterations), so ``latency.profiled`` joined the compiled set (14 modules; it
pickles by its constructor's arguments). Whole process, ``sunsim replay
$SUNSIM_TRACES/azure_llm_2023_conv.csv --no-progress --force --out DIR`` (19,366 requests,
three designs), 3 counted pairs after one warm-up pair, A B A B, all by one interpreter
(the dev venv's), the code put first on ``PYTHONPATH``; median CPU s and the median of the
paired ratios (range):

    compiled, 14 modules        7.0 s
    pure, this branch          12.6 s    compiled / pure 0.54 (0.45-0.61): 1.86x
    90527bd (pure, baseline)   10.7 s    compiled (5.5 s then) / 90527bd 0.50 (0.42-0.53): 2.0x
    compiled, 13 modules        9.3 s    14 / 13 modules 0.67 (0.48-0.68): 1.49x
    (the 13-module build installed in its own venv and run by its interpreter, from /tmp)

Where the compiled run's time goes (cProfile, self time, 11.6 s profiled): compiled
engine methods 44%, the interpreted event loop (``engine.clock``, heapq) 10%, fitting
the measured profiles at start (``latency.surface``, ``fitting``, scipy, numpy) 11%,
imports 10%, pandas/pyarrow (trace, records, summary) 5%, the rest (typer, rich, the
report) the remainder. ``bench_replay.py --latency auto`` runs the same measured step
times on the large synthetic workload: ``python benchmarks/bench_replay.py --requests 100000
--modes sun,partitioned --latency auto``, whole process (both child runs), 3 pairs, compiled
(14 modules) vs pure: 8.7 vs 14.5 CPU s, ratio 0.57 (0.55-0.69).
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
