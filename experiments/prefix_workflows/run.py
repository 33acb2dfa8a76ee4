"""Prefix sharing across models: per-model KV against PrefillShare and ICaRus on the Mooncake
conversation trace and on a generated plan -> act -> check workflow with 3 and 8 models.

    SUNSIM_MOONCAKE=/path/to/conversation_trace.jsonl \\
    PYTHONPATH=. .venv/bin/python experiments/prefix_workflows/run.py \\
        [--mooncake PATH] [--max-requests 1500] [--sessions 100] [--loads 1,4,16] \\
        [--gpus 16] [--jobs 2] [--no-plan] [--out experiments/prefix_workflows/results]

Three workloads (``README.md`` beside this file says how each is built and why):

* ``mooncake``: the first ``--max-requests`` requests of Mooncake's conversation trace
  (``FAST25-release/traces/conversation_trace.jsonl``; path from ``--mooncake`` or
  ``$SUNSIM_MOONCAKE``; skipped with a note when neither is given), models assigned with
  ``sunsim trace assign --models planner,coder,critic`` (sessions inferred from shared prefixes);
* ``workflow3`` / ``workflow8``: ``sunsim trace workflow`` with ``--sessions`` sessions of six
  plan -> act -> check loops, the same sessions (seed 0) over 3 and over 8 models.

Per workload and load (``--loads``: factors on the workload's own rate), every design is
replayed at one fixed GPU count (``--gpus``): per-model KV (``partitioned``, ``sun``,
``colocated``, prefix caching on, cache keys include the model), ``prefillshare`` and
``icarus`` (content keys), and ``partitioned`` / ``colocated`` with prefix caching off. Then
each design is planned alone (:func:`sunsim.planner.plan`) to one SLO at ``--plan-load`` times
the workload's rate.
Step times: ``latency = auto`` (the measured H100 profile of Llama-3.1-8B shipped with
sunsim); each row's ``method`` column says which. Writes ``fixed.csv``, ``planned.csv``,
``ratios.csv``, ``results.md`` and ``latency_throughput.png`` into ``--out``.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from tables import fixed_row, ratios, write_figure, write_markdown  # noqa: E402

#: Served models of the 3- and 8-model workloads, in assignment order (plan_act_check: plan
#: on the first, check on the last, act on the middle ones in turn).
MODELS3 = ("planner", "coder", "critic")
MODELS8 = ("planner", "coder1", "coder2", "coder3", "coder4", "coder5", "coder6", "critic")
#: (label, design, prefix caching): per-model KV first, the papers' designs, then no caching.
ROWS = (
    ("partitioned", "partitioned", True),
    ("sun", "sun", True),
    ("colocated", "colocated", True),
    ("lora", "lora", True),
    ("prefillshare", "prefillshare", True),
    ("icarus", "icarus", True),
    ("partitioned, no caching", "partitioned", False),
    ("colocated, no caching", "colocated", False),
)
#: The SLO every design is planned to (seconds; attainment per served model). TTFT 10 s: about
#: 1-2% of the Mooncake requests have a prompt whose prefill alone takes longer (up to 126k
#: tokens; 85k take 8.1 s on one H100), so a tighter bound cannot be met by any count there.
SLO = {"slo_ttft_s": 10.0, "slo_tpot_s": 0.05, "slo_attainment": 0.9}
#: Settings shared by every run: the GPU, step times, routing to the longest cached prefix.
COMMON = {
    "gpu": "h100",
    "latency": "auto",
    "prefill_router": "kv_aware",
    "decode_router": "kv_aware",
    "seed": 0,
}


def _args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--mooncake",
        default=os.environ.get("SUNSIM_MOONCAKE"),
        help="Mooncake conversation_trace.jsonl (default: $SUNSIM_MOONCAKE)",
    )
    ap.add_argument("--max-requests", type=int, default=1500, help="Mooncake: first N requests")
    ap.add_argument("--sessions", type=int, default=100, help="workflow sessions")
    ap.add_argument("--loads", default="1,4,16", help="factors on each workload's own rate")
    ap.add_argument("--gpus", type=int, default=16, help="fixed GPU count of every design")
    ap.add_argument("--jobs", type=int, default=2, help="processes")
    ap.add_argument("--plan-load", type=float, default=4.0, help="load factor of the plans")
    ap.add_argument("--no-plan", action="store_true", help="skip the planned-GPU part")
    ap.add_argument("--out", type=Path, default=HERE / "results")
    return ap.parse_args(argv)  # fmt: skip


def _sunsim(*args: str) -> str:
    """Run a ``sunsim`` command (this checkout's), return its first output line."""
    cmd = [sys.executable, "-m", "sunsim", *args]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return out.splitlines()[0] if out else ""


def build_workloads(a: argparse.Namespace, work: Path) -> dict[str, tuple[Path, tuple, str]]:
    """name -> (canonical CSV, served models, how it was made)."""
    out: dict[str, tuple[Path, tuple, str]] = {}
    if a.mooncake:
        p = work / "mooncake3.csv"
        line = _sunsim("trace", "assign", a.mooncake, str(p), "--models", ",".join(MODELS3))
        out["mooncake"] = (p, MODELS3, line)
    else:
        print("no Mooncake trace (--mooncake or $SUNSIM_MOONCAKE): skipping it", file=sys.stderr)
    for name, models in (("workflow3", MODELS3), ("workflow8", MODELS8)):
        p = work / f"{name}.csv"
        args = ["--sessions", str(a.sessions), "--loops", "6", "--seed", "0"]
        line = _sunsim("trace", "workflow", str(p), "--models", ",".join(models), *args)
        out[name] = (p, models, line)
    return out


def fixed_counts(req: pd.DataFrame, models: tuple, gpus: int) -> dict:
    """Worker counts of every design at ``gpus`` GPUs (one GPU a worker): half prefill, half
    decode for the disaggregated designs (per-model prefill pools split by each model's prompt
    tokens, per-model decode pools by its output tokens; pooled for prefillshare, shared for
    sun), and ``gpus`` co-located workers split by prompt tokens (one pool for icarus)."""
    from sunsim.engine.spec import split_workers

    col = req["model"].astype(str)
    prompt = [float(req.loc[col == m, "prompt_tokens"].sum()) for m in models]
    pre = gpus // 2
    return {
        "prefill_workers": split_workers(pre, prompt),
        "decode_workers": (gpus - pre,),
        "colocated_workers": split_workers(gpus, prompt),
    }


def _scenario(path: Path, models: tuple, max_requests: int | None, **kw):
    """The scenario of a run (a plan's worker counts are its own: one decode worker per
    model here only passes the scenario's check that partitioned can give each its pool)."""
    from sunsim.config import Scenario

    kw.setdefault("decode_workers", (len(models),))
    return Scenario(
        trace=str(path), served_models=models, max_requests=max_requests, **COMMON, **SLO, **kw
    )


def replay_job(name: str, path: Path, models: tuple, n: int | None, load: float,
               gpus: int, caching: bool) -> list[dict]:  # fmt: skip
    """One (workload, load, caching) cell: every design of :data:`ROWS` with that caching."""
    from sunsim.replay import load_workload, run_replay

    modes = tuple(dict.fromkeys(d for _, d, c in ROWS if c == caching))
    dw = (gpus - gpus // 2,)
    s = _scenario(path, models, n, rate_scale=load, modes=modes, enable_prefix_caching=caching,
                  decode_workers=dw)  # fmt: skip
    wl = load_workload(s)
    s = replace(s, **fixed_counts(wl.requests, models, gpus))
    r = run_replay(s, wl)
    labels = {d: lab for lab, d, c in ROWS if c == caching}
    return [
        fixed_row(name, load, labels[m], r.results[m], r.summaries[m], wl.requests) for m in modes
    ]


def plan_job(name: str, path: Path, models: tuple, n: int | None, caching: bool,
             load: float, jobs: int, cache: Any) -> pd.DataFrame:  # fmt: skip
    """Each design of :data:`ROWS` with that caching planned alone to :data:`SLO` at ``load``
    times the workload's rate (one row per design; ``error`` says why one has no plan)."""
    from sunsim.errors import SunsimError
    from sunsim.planner import PlanOptions, plan

    out = []
    for _, mode, c in ROWS:
        if c != caching:
            continue
        s = _scenario(path, models, n, rate_scale=load, modes=(mode,),
                      enable_prefix_caching=caching)  # fmt: skip
        try:
            res = plan(s, PlanOptions(jobs=jobs), cache=cache)
        except SunsimError as e:
            out.append(pd.DataFrame([{"mode": mode, "error": str(e)}]))
            continue
        t = res.table()
        t["num_simulations"] = res.num_simulations
        out.append(t)
    t = pd.concat(out, ignore_index=True)
    labels = {d: lab for lab, d, c in ROWS if c == caching}
    t.insert(0, "design", t["mode"].map(labels))
    t.insert(0, "workload", name)
    t.insert(2, "load", load)
    return t


def main(argv: list[str]) -> int:
    a = _args(argv)
    loads = [float(x) for x in a.loads.split(",") if x.strip()]
    t0, c0 = time.perf_counter(), time.process_time()
    a.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="sunsim-prefix-") as tmp:
        wls = build_workloads(a, Path(tmp))
        limit = {k: (a.max_requests if k == "mooncake" else None) for k in wls}
        jobs = [
            (k, p, ms, limit[k], load, a.gpus, caching)
            for k, (p, ms, _) in wls.items()
            for load in loads
            for caching in (True, False)
        ]
        with cf.ProcessPoolExecutor(max_workers=a.jobs) as pool:
            rows = [r for rs in pool.map(replay_job, *zip(*jobs)) for r in rs]
        fixed = pd.DataFrame(rows)
        fixed.to_csv(a.out / "fixed.csv", index=False)
        print(f"{len(fixed)} replays in {time.perf_counter() - t0:.0f} s", flush=True)
        planned = None
        if not a.no_plan:
            from sunsim.cache import ResultCache

            cache = ResultCache(None, "plan")  # the designs' common searches run once
            plans = [
                plan_job(k, p, ms, limit[k], caching, a.plan_load, a.jobs, cache)
                for k, (p, ms, _) in wls.items()
                for caching in (True, False)
            ]
            planned = pd.concat(plans, ignore_index=True)
        made = {k: line.replace(f"{tmp}/", "") for k, (_, _, line) in wls.items()}
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.perf_counter() - t0
    cpu = time.process_time() - c0 + kids.ru_utime + kids.ru_stime
    rat = ratios(fixed, planned)
    rat.to_csv(a.out / "ratios.csv", index=False)
    if planned is not None:
        planned.to_csv(a.out / "planned.csv", index=False)
    write_figure(fixed, a.out / "latency_throughput.png")
    meta = {"plan_load": a.plan_load, "gpus": a.gpus, "loads": loads, "slo": SLO, "made": made,
            "wall_s": wall, "cpu_s": cpu, "jobs": a.jobs}  # fmt: skip
    write_markdown(fixed, planned, rat, meta, a.out / "results.md")
    print(f"{len(fixed)} replays{'' if planned is None else ' and the plans'} in {wall:.0f} s "
          f"wall, {cpu:.0f} s CPU with its processes; wrote {a.out}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
