"""A/B check of the engine: every record and every run statistic of a wide set of scenarios,
fingerprinted, so two versions of the engine can be compared exactly.

For engine changes that must not change any result (issue 13's speed work): run this once
with the old code and once with the new, then compare::

    git archive 71c8673 | tar -x -C /tmp/base      # the old code, anywhere
    PYTHONPATH=/tmp/base python benchmarks/ab_records.py --out /tmp/ab_base.json
    PYTHONPATH=$PWD python benchmarks/ab_records.py --out /tmp/ab_new.json
    python benchmarks/ab_records.py --compare /tmp/ab_base.json /tmp/ab_new.json

The compiled engine (README "Compiled engine") is checked the same way: once with the pure
code, once with the python of a ``SUNSIM_COMPILE=1 pip install .`` environment, run from
outside the checkout and without PYTHONPATH (the first line printed says which build ran).

Each scenario is a :class:`sunsim.config.Scenario` replayed with :func:`sunsim.replay.run_replay`
on the first requests of the Azure 2023 traces (``$SUNSIM_TRACES``, default
``../shared/traces``) or a closed loop; it covers every design, every decode router, tensor
parallelism, prefix caching on and off, lora, co-located workers, engine overheads, small KV
caches (preemptions) and a small ``max_num_seqs``. Fingerprints: a SHA-256 of every records
column (floats as IEEE-754 bytes), of every worker frame and histogram of the
:class:`~sunsim.engine.result.SimResult`, and of the summary; the event count and the wall
time are left out (fewer events is the point of a faster engine).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
TRACES = Path(os.environ.get("SUNSIM_TRACES", REPO.parent / "shared" / "traces"))
CONV = "azure_llm_2023_conv.csv"
CODE = "azure_llm_2023_code.csv"
ALL = ("partitioned", "sun", "qsun", "colocated", "lora", "prefillshare", "icarus")


def _base(trace: str = CONV, n: int = 3000, **kw: Any) -> dict[str, Any]:
    d: dict[str, Any] = {
        "trace": str(TRACES / trace),
        "max_requests": n,
        "zipf": 1.2,
        "rate_scale": 20.0,
        "prefill_workers": (3,),
        "decode_workers": (3,),
        "latency": "roofline",
        "seed": 0,
    }
    d.update(kw)
    return d


def scenarios() -> dict[str, dict[str, Any]]:
    """Name -> Scenario keyword arguments."""
    sc: dict[str, dict[str, Any]] = {}
    for router in ("round_robin", "least_loaded", "least_kv", "power_of_two", "central"):
        sc[f"conv_{router}"] = _base(modes=ALL, decode_router=router)
        sc[f"code_{router}"] = _base(CODE, modes=ALL[:3], decode_router=router)
    sc["conv_prefill_p2"] = _base(modes=ALL, prefill_router="power_of_two", seed=3)
    sc["conv_rr_prefill"] = _base(modes=("partitioned", "sun"), prefill_router="round_robin")
    sc["conv_tp2"] = _base(modes=("partitioned", "sun", "colocated"), tensor_parallel_size=2)
    sc["conv_tp_split"] = _base(
        modes=("sun", "qsun"), prefill_tensor_parallel_size=2, decode_tensor_parallel_size=4
    )
    sc["conv_small_kv"] = _base(modes=ALL, gpu_memory_utilization=0.3, rate_scale=60.0)
    sc["conv_few_seqs"] = _base(modes=ALL, max_num_seqs=8, max_num_batched_tokens=2048)
    sc["conv_block32"] = _base(modes=("partitioned", "sun"), block_size=32, rate_scale=30.0)
    sc["conv_overhead"] = _base(modes=("partitioned", "sun", "colocated"), engine_overhead="vllm")
    sc["conv_slow_link"] = _base(modes=("partitioned", "sun"), link_gbps=5.0, link_latency_us=200.0)
    sc["conv_prefix"] = _base(modes=ALL, enable_prefix_caching=True)
    sc["conv_prefix_kv_aware"] = _base(
        modes=("partitioned", "sun", "colocated"),
        enable_prefix_caching=True,
        prefill_router="kv_aware",
    )
    sc["conv_lora"] = _base(modes=("lora",), max_loras=2, rate_scale=10.0)
    sc["conv_colocated_many"] = _base(modes=("colocated",), colocated_workers=(2,), rate_scale=40.0)
    sc["conv_hetero"] = _base(modes=("partitioned",), decode_workers=(1, 2, 3))
    sc["conv_a100"] = _base(modes=("sun", "qsun"), gpu="a100", rate_scale=10.0)
    sc["code_heavy"] = _base(CODE, n=6000, modes=("partitioned", "sun"), rate_scale=60.0)
    sc["closed_loop"] = {
        "max_concurrency": 24,
        "num_prompts": 1500,
        "served_models": ("a", "b", "c"),
        "prefill_workers": (2,),
        "decode_workers": (3,),
        "latency": "roofline",
        "modes": ALL,
    }
    sc["closed_loop_central"] = {**sc["closed_loop"], "decode_router": "central", "seed": 5}
    return sc


def _sha(a: Any) -> str:
    if isinstance(a, pd.DataFrame):
        return hashlib.sha256("|".join(f"{c}:{_sha(a[c])}" for c in a.columns).encode()).hexdigest()
    if isinstance(a, pd.Series):
        numeric = pd.api.types.is_numeric_dtype(a.dtype)
        if numeric and not isinstance(a.dtype, pd.CategoricalDtype):
            return _sha(a.to_numpy(dtype=float))
        return hashlib.sha256("\x1f".join(a.astype(str)).encode()).hexdigest()
    if isinstance(a, np.ndarray):
        return hashlib.sha256(np.ascontiguousarray(a, dtype=float).tobytes()).hexdigest()
    return hashlib.sha256(json.dumps(a, sort_keys=True, default=str).encode()).hexdigest()


def fingerprint(name: str, kw: dict[str, Any]) -> dict[str, Any]:
    from sunsim.config import Scenario
    from sunsim.replay import run_replay

    s = Scenario(**kw)
    rr = run_replay(s)
    out: dict[str, Any] = {}
    for mode, res in rr.results.items():
        fp: dict[str, Any] = {f"records.{c}": _sha(res.records[c]) for c in res.records.columns}
        for attr in ("decode_workers", "prefill_workers", "timeline", "batch_time", "kv_time"):
            fp[attr] = _sha(getattr(res, attr))
        fp["itl_hist"] = _sha(res.itl_hist)
        fp["sim_end_s"] = repr(res.sim_end_s)
        summary = rr.summaries[mode].to_dict()
        summary["sim"] = {k: v for k, v in summary["sim"].items() if k not in ("events", "wall_s")}
        fp["summary"] = _sha(summary)
        fp["extra"] = _sha({k: v for k, v in res.extra.items() if k != "records_path"})
        fp["_rows"] = len(res.records)
        fp["_num_events"] = res.num_events
        fp["_finished"] = int((res.records["status"] == "finished").sum())
        fp["_preemptions"] = int(res.records["num_preemptions"].sum())
        out[mode] = fp
    return out


def compare(a_path: str, b_path: str) -> int:
    a, b = json.loads(Path(a_path).read_text()), json.loads(Path(b_path).read_text())
    bad = 0
    checked = 0
    for name in sorted(set(a) | set(b)):
        if name not in a or name not in b:
            print(f"{name}: only in {'A' if name in a else 'B'}")
            bad += 1
            continue
        for mode in sorted(set(a[name]) | set(b[name])):
            fa, fb = a[name].get(mode, {}), b[name].get(mode, {})
            keys = sorted(k for k in set(fa) | set(fb) if not k.startswith("_"))
            diff = [k for k in keys if fa.get(k) != fb.get(k)]
            checked += 1
            ev = f"events {fa.get('_num_events')} -> {fb.get('_num_events')}"
            if diff:
                bad += 1
                print(f"DIFF {name} {mode}: {diff}")
            else:
                print(
                    f"same {name} {mode}: {fa.get('_rows')} rows, {fa.get('_finished')} finished, "
                    f"{fa.get('_preemptions')} preemptions, {ev}"
                )
    print(f"{checked} runs compared, {bad} differ")
    return 1 if bad else 0


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--out", help="write the fingerprints of every scenario to this JSON file")
    ap.add_argument("--only", default=None, help="comma-separated scenario names")
    ap.add_argument("--compare", nargs=2, metavar=("A", "B"), help="compare two JSON files")
    a = ap.parse_args()
    if a.compare:
        sys.exit(compare(*a.compare))
    if not a.out:
        ap.error("--out or --compare is required")
    try:
        from sunsim.build_info import engine_build

        print(f"engine: {engine_build()}", flush=True)
    except ImportError:  # a sunsim from before the optional compiled build: pure Python
        print("engine: pure Python (no sunsim.build_info)", flush=True)
    sc = scenarios()
    names = a.only.split(",") if a.only else list(sc)
    res: dict[str, Any] = {}
    for name in names:
        t0 = time.perf_counter()
        res[name] = fingerprint(name, sc[name])
        print(f"{name}: {time.perf_counter() - t0:.1f} s", flush=True)
    Path(a.out).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
