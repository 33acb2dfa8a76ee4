"""Simulator speed on a large workload: simulated requests per wall-second, events per
second and peak RSS, for `sun` and `partitioned`.

Workload (issue 2): N requests (default 1,000,000) of a BurstGPT-style synthetic trace
(Gamma arrivals, CV 2), 8 Llama-3.1-8B task models under Zipf 1.0, H100 roofline step times,
a load that keeps decode batches in the tens. Each mode runs in a fresh child process so its
peak RSS is its own.

    python benchmarks/bench_replay.py                 # 1M requests, both modes
    python benchmarks/bench_replay.py --requests 100000 --modes sun
    python benchmarks/bench_replay.py --requests 10000000 --modes sun --stream-records /tmp/r

``--stream-records DIR`` writes the records to ``DIR/records_<mode>.parquet`` in row groups
during the run (``simulate(..., records_sink=...)``) and makes the summary from the columns
read back, as ``sunsim replay --stream-records`` does.

Before/after, issue 13 item 4. The machine has 2 cores shared with 6 to 8 other busy
processes (load 9 to 10), so compare CPU seconds, not wall seconds. Each pair of versions was
timed in turn, A B A B A B, 3 runs each, with ``python benchmarks/bench_replay.py --requests
200000``. The figures are medians of the pairwise ratios of simulate()'s CPU seconds, and
whole-process CPU seconds (both modes, trace generation and summaries included). 90527bd is
the issue's baseline and 71c8673 the first speed-up. "now" is the list-buffered run log and
records, the shared decode-pool load list, and fewer calls per timer and per prefill batch
(047b84c), plus cancelled superseded timers (c9423a5 in the third session):

    simulate() speed-up (old CPU s / new)   vs 90527bd   vs 71c8673   vs 71c8673 (c9423a5)
    sun                                       1.16x        1.08x        0.97x
    partitioned                               1.00x        1.05x        0.98x
    whole process CPU s, new / old            0.94         0.93         1.04

Medians of simulate() requests per CPU-second, sun / partitioned: 90527bd 18,303 / 19,775;
71c8673 22,485 / 21,592 and 19,351 / 19,808; now 17,536 to 23,777 / 19,155 to 22,073 over
the three sessions. On this machine the change is within the noise, about 1.05x at most
(in-process, the least of 4 runs of 20k requests, it measured 1.05x). The events are the
same in all three versions (877,907 and 863,538): the model schedules no fewer.
``benchmarks/ab_records.py`` checks that a change leaves every record and every run
statistic the same (116 design runs over 28 scenarios).

The 2x asked for is not reached. Where simulate()'s time goes now (sun, 100k requests,
sampled by py-spy at 1 kHz, self time grouped; 4.4 events and 1.8 planned decode runs per
request):

    decode boundary: admission, KV block accounting, run planning        20%
    event loop and timers (heap push/pop, dispatch, superseded timers)   17%
    decode run end: finishing requests, writing records                  13%
    decode step times (the decode_run loop; 1.8x the iterations run)     13%
    arrivals (trace rows, reject check, Request, prefill queue)           9%
    per-run statistics (DecodeStats.commit and folding)                   9%
    prefill batches                                                       8%
    routing (least_loaded over the pools)                                 7%
    KV transfer and delivery to decode                                    6%

No single entry is large, so no local change can halve the total. Each request costs about
four events: its arrival, its prefill batch's end, the decode boundary where it joins, and
the boundary where it finishes. A KV arrival also cuts a planned decode run, which leaves
a superseded timer in the heap and throws away the iterations computed past the cut. Halving
the time needs fewer events per request. One way is to let a decode run continue through
finishes while nobody waits to join. The other is to handle a join when its KV transfer is
issued. Either needs the router's view of worker loads, and SimPy's same-instant order,
kept exact for requests whose finish was not yet processed; that was not done here.

10M requests, sun, streamed records, same machine under the same load
(``/usr/bin/time -v python benchmarks/bench_replay.py --child sun --requests 10000000
--stream-records /tmp/speed/s10m``): simulate() 583.6 CPU s (17,135 requests per CPU-second;
2,666 s wall at about 20% of a core), 43.8M events, 10M records in an 813 MB Parquet file of
row groups; peak RSS 1,296 MB up to the end of simulate() (trace generation included), but
2,957 MB for the whole process: reading the summary columns back and ``summarize`` (24 s)
take the peak over 2 GB. A streaming summary is still to do.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

MODELS = tuple(f"m{i}" for i in range(8))


def child(
    mode: str, n: int, rate: float, decode_workers: int, seed: int, stream: str | None = None
) -> dict:
    import numpy as np

    from sunsim.config import Scenario
    from sunsim.engine import simulate
    from sunsim.latency.roofline import RooflineLatency
    from sunsim.specs import MODELS as SPECS
    from sunsim.specs import get_gpu
    from sunsim.traces import synth_trace

    t0 = time.perf_counter()
    df = synth_trace(
        num_requests=n,
        rate=rate,
        burstiness=2.0,
        served=MODELS,
        zipf_alpha=1.0,
        rng=np.random.default_rng(seed),
    )
    t_gen = time.perf_counter() - t0
    out_tokens = df.groupby("model", observed=False)["output_tokens"].sum()
    weights = [float(out_tokens[m]) for m in MODELS]
    # prefill workers per model in proportion to its requests (at least 1)
    from sunsim.engine.spec import split_workers

    s = Scenario(
        served_models=MODELS,
        decode_workers=(decode_workers,),
        prefill_workers=split_workers(16, weights),
    )
    cl = s.cluster(mode, weights)
    gpu, spec = get_gpu("h100"), SPECS["llama-3.1-8b"]
    lat = RooflineLatency(gpu, spec, "bf16")
    cpu0 = time.process_time()
    if stream:  # records to Parquet row groups as they complete, summary columns read back
        from sunsim.runs.stream import ParquetRecordSink, read_summary_records

        path = f"{stream}/records_{mode}.parquet"
        with ParquetRecordSink(path) as sink:
            res = simulate(df, cl, lat, lat, seed=seed, records_sink=sink)
        del df
        rss_sim_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        t1 = time.perf_counter()
        res.records = read_summary_records(path)
        summary = _summary(res)
        t_summary = time.perf_counter() - t1
    else:
        res = simulate(df, cl, lat, lat, seed=seed)
        rss_sim_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        t1 = time.perf_counter()
        summary = _summary(res)
        t_summary = time.perf_counter() - t1
    cpu_s = time.process_time() - cpu0
    rec = res.records
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "mode": mode,
        "requests": n,
        "trace_gen_s": round(t_gen, 2),
        "wall_s": round(res.wall_s, 2),
        "requests_per_wall_s": round(n / res.wall_s),
        "cpu_s": round(cpu_s, 2),
        "requests_per_cpu_s": round(n / cpu_s),
        "events": res.num_events,
        "events_per_wall_s": round(res.num_events / res.wall_s),
        "peak_rss_mb": round(rss_mb),
        "peak_rss_mb_to_end_of_simulate": round(rss_sim_mb),
        "sim_span_s": round(res.sim_end_s),
        "mean_batch": round(
            float(
                (res.decode_workers.mean_batch * res.decode_workers.busy_s).sum()
                / res.decode_workers.busy_s.sum()
            ),
            1,
        ),
        "decode_pools": list(cl.decode_workers),
        "prefill_workers": list(cl.prefill_workers),
        "finished": int((rec.status == "finished").sum()),
        "preemptions": int(rec.num_preemptions.sum()),
        "summary_s": round(t_summary, 2),
        "ttft_p99_s": summary["latency_s"]["ttft_s_p99"],
        "records_streamed_to": f"{stream}/records_{mode}.parquet" if stream else None,
    }


def _summary(res) -> dict:  # noqa: ANN001
    from sunsim.metrics import summarize
    from sunsim.specs import SloSpec

    return summarize(res, SloSpec()).to_dict()


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--requests", type=int, default=1_000_000)
    ap.add_argument("--rate", type=float, default=400.0, help="requests per simulated second")
    ap.add_argument("--decode-workers", type=int, default=24)
    ap.add_argument("--modes", default="sun,partitioned")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--stream-records",
        metavar="DIR",
        default=None,
        help="write records to DIR/records_<mode>.parquet in row groups during the run",
    )
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(
            json.dumps(
                child(a.child, a.requests, a.rate, a.decode_workers, a.seed, a.stream_records)
            )
        )
        return
    rows = []
    for mode in a.modes.split(","):
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                mode,
                "--requests",
                str(a.requests),
                "--rate",
                str(a.rate),
                "--decode-workers",
                str(a.decode_workers),
                "--seed",
                str(a.seed),
                *(["--stream-records", a.stream_records] if a.stream_records else []),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    print()
    print(
        f"{'mode':<12}{'requests':>10}{'wall s':>9}{'req/wall-s':>12}{'req/CPU-s':>11}"
        f"{'events/s':>10}{'peak RSS MB':>13}{'mean batch':>12}"
    )
    for r in rows:
        print(
            f"{r['mode']:<12}{r['requests']:>10}{r['wall_s']:>9}{r['requests_per_wall_s']:>12}"
            f"{r['requests_per_cpu_s']:>11}{r['events_per_wall_s']:>10}{r['peak_rss_mb']:>13}"
            f"{r['mean_batch']:>12}"
        )
    print("(wall: elapsed time of simulate(); CPU: its process time, less sensitive to other load)")


if __name__ == "__main__":
    main()
