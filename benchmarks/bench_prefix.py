"""Prefix caching on and off: simulator speed and the cache's effect, per design.

Workload (a stand-in until the trace side's workflow generator lands; stated here): S
sessions, Poisson session starts at ``--rate`` sessions/s, each of T turns that go to the
served models in turn (turn t -> model t mod M: a planner, a coder, a critic...). Turn 1's
prompt is a 1024-token system prompt shared by every session plus 300-1500 session tokens;
each later turn's prompt is the previous prompt + its output + 100-1500 new tokens (a tool
output or a user message), so consecutive turns share everything but the new tokens. Turn
arrivals are fixed in advance (session start + exponential think times, mean
``--think-s``), not chained to the previous turn's finish; with ``--session-arrivals
after_previous`` they are (:mod:`sunsim.engine.session_loop`: a turn arrives when the previous
one ends plus an exponential think time of mean ``--think-s``). ``hash_ids``: blocks of 512
tokens; block i of a session's context hashes (session, i), or (0, i) in the shared system
prompt; a partial last block hashes its length too (its content differs once it grows).

Step times: H100 roofline, Llama-3.1-8B BF16 for every model (analytic). Clusters of 6
GPUs each: sun (1 prefill per model, 3 shared decode), prefillshare (3 pooled prefill, 1
decode per model), colocated (2 per model), icarus (6 shared co-located).

    python benchmarks/bench_prefix.py                    # 3 models, 2000 sessions x 6 turns
    python benchmarks/bench_prefix.py --sessions 8000    # the O(log n) check: 4x the work
    python benchmarks/bench_prefix.py --session-arrivals after_previous   # closed-loop turns
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

H = 512  # Mooncake's hash block


def sessions(num: int, turns: int, models: list[str], rate: float, think_s: float, seed: int):
    rng = np.random.default_rng(seed)
    starts = np.cumsum(rng.exponential(1.0 / rate, num))
    rows = []
    for s, t0 in enumerate(starts, start=1):
        ctx = 1024 + int(rng.integers(300, 1500))
        t = float(t0)
        for k in range(turns):
            out = int(rng.integers(50, 400))
            nb = -(-ctx // H)
            hashes = []
            for i in range(nb):
                src = 0 if (i + 1) * H <= 1024 else s
                full = min(H, ctx - i * H)
                hashes.append(hash((src, i)) if full == H else hash((src, i, full)))
            rows.append((t, models[k % len(models)], ctx, out, tuple(hashes), s, k))
            ctx += out + int(rng.integers(100, 1500))
            t += float(rng.exponential(think_s))
    rows.sort(key=lambda r: r[0])
    df = pd.DataFrame(
        [r[:4] for r in rows], columns=["arrival_s", "model", "prompt_tokens", "output_tokens"]
    )
    df["hash_ids"] = pd.Series([r[4] for r in rows], dtype=object)
    df["session_id"] = [r[5] for r in rows]
    df["turn"] = [r[6] for r in rows]
    df.attrs["hash_block_tokens"] = H
    return df


def clusters(models: list[str], caching: bool):
    from sunsim.engine.spec import ClusterSpec

    n = len(models)
    common = dict(served_models=tuple(models), enable_prefix_caching=caching)
    return {
        "sun": ClusterSpec(design="sun", prefill_workers=(1,) * n, decode_workers=(n,), **common),
        "prefillshare": ClusterSpec(
            design="prefillshare",
            prefill_workers=(1,) * n,
            decode_workers=(1,) * n,
            prefill_router="kv_aware",
            **common,
        ),
        "colocated": ClusterSpec(
            design="colocated",
            prefill_workers=(),
            decode_workers=(),
            colocated_workers=(2,) * n,
            **common,
        ),
        "icarus": ClusterSpec(
            design="icarus",
            prefill_workers=(),
            decode_workers=(),
            colocated_workers=(2 * n,),
            decode_router="kv_aware",
            **common,
        ),
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sessions", type=int, default=2000)
    ap.add_argument("--turns", type=int, default=6)
    ap.add_argument("--models", type=int, default=3)
    ap.add_argument("--rate", type=float, default=2.0, help="sessions per simulated second")
    ap.add_argument("--think-s", type=float, default=5.0)
    ap.add_argument("--designs", default="sun,prefillshare,colocated,icarus")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--session-arrivals", choices=("timestamp", "after_previous"),
                    default="timestamp")  # fmt: skip
    a = ap.parse_args()

    from sunsim.engine import simulate
    from sunsim.engine.session_loop import simulate_sessions
    from sunsim.latency.roofline import RooflineLatency
    from sunsim.metrics import summarize
    from sunsim.specs import MODELS, SloSpec, get_gpu

    models = [f"m{i}" for i in range(a.models)]
    t0 = time.perf_counter()
    df = sessions(a.sessions, a.turns, models, a.rate, a.think_s, a.seed)
    print(f"{len(df)} requests generated in {time.perf_counter() - t0:.1f} s")
    lat = RooflineLatency(get_gpu("h100"), MODELS["llama-3.1-8b"], "bf16")
    head = (
        f"{'design':<13}{'cache':>6}{'wall s':>8}{'events':>9}{'CPU us/ev':>10}{'hit rate':>9}"
        f"{'TTFT p95':>9}{'E2E p95':>9}{'tok/s':>8}{'evict':>8}"
    )
    print(head)
    for name in a.designs.split(","):
        for caching in (False, True):
            cl = clusters(models, caching)[name]
            cpu0 = time.process_time()
            if a.session_arrivals == "after_previous":
                res = simulate_sessions(df, cl, lat, lat, think_time_s=a.think_s, seed=a.seed)
            else:
                res = simulate(df, cl, lat, lat, seed=a.seed)
            cpu = time.process_time() - cpu0
            s = summarize(res, SloSpec())
            pc = s.prefix_cache
            rec = res.records[res.records.status == "finished"]
            ttft = float((rec.first_token_at - rec.arrived_at).quantile(0.95))
            e2e = float((rec.finished_at - rec.arrived_at).quantile(0.95))
            print(
                f"{name:<13}{'on' if caching else 'off':>6}{res.wall_s:>8.2f}"
                f"{res.num_events:>9}{1e6 * cpu / res.num_events:>10.1f}"
                f"{(pc.hit_rate if pc else 0.0):>9.3f}{ttft:>9.3f}{e2e:>9.2f}"
                f"{s.throughput.output_tokens_per_s:>8.0f}{(pc.evictions if pc else 0):>8}",
                flush=True,
            )
    print(
        "(step times: H100 roofline, Llama-3.1-8B BF16, analytic; wall and CPU: simulate() only,"
        " CPU = its process time, less sensitive to other load; TTFT/E2E p95 of finished"
        " requests, seconds; tok/s: output tokens per second; evict: hash blocks evicted)"
    )


if __name__ == "__main__":
    main()
