"""Put the SUN paper's headline claims to the test with sunsim's planner.

Claims (SUN, arXiv 2603.02599): "up to 2.0x throughput per GPU over partitioned
disaggregation with TPOT within 5%", and "45% faster decoding with QSUN" (W4A16 shared decoder).

What this script does (from the repository root):

    .venv/bin/python experiments/sun_claims/run.py [--jobs N] [--out DIR] [--only NAME,...]
        [--latency auto|roofline|calibrated] [--compare DIR]

1. For each scenario in ``scenarios/`` (Azure conv, Azure code, the bundled synthetic trace:
   3 Llama-3.1-8B task models math/code/tool, Zipf alpha 0..2, H100, all three modes; and a
   rate sweep of the Azure conv trace) it runs ``sunsim plan`` (the library call), writes the
   plan directory under ``results/<name>/`` and renders its report (``report.html``,
   ``report.md``).
2. At every Zipf point it replays ``sun`` and ``qsun`` with **exactly partitioned's GPUs**
   (same prefill workers, same decode total) to compare TPOT at equal hardware.
3. It tabulates the decode step-time speedup of the W4A16 decoder over BF16 from the latency
   models.
4. It writes ``results/results.csv`` (one row per trace x Zipf x mode, with the source of
   its prefill and decode step times), ``results/goodput.csv`` and ``results/results.md``
   (the tables the README quotes), and, when ``--compare DIR`` holds another run's
   ``results.csv`` (default ``results_roofline/`` for the default ``--out``),
   ``comparison.md``: the two runs side by side (``compare.py``).

Step times come from whatever :func:`sunsim.replay.resolve_latency` gives for the scenario's
``latency`` setting (``auto``: a measured profile where one is bundled or given, else the
calibrated roofline), or for ``--latency``; every figure's source is printed and written.

Real traces are read from ``$SUNSIM_TRACES`` (default ``../shared/traces``), never copied.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import dataclasses
import os
import sys
import time
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO))

from sunsim.cache import default_cache_dir  # noqa: E402
from sunsim.config import Scenario  # noqa: E402
from sunsim.planner import load_plan_toml, plan, write_plan  # noqa: E402
from sunsim.replay import load_workload, resolve_latency, run_replay  # noqa: E402
from sunsim.report import write_report  # noqa: E402

ZIPF_RUNS = ("azure_conv", "azure_code", "synth")
ROLES = {"partitioned": "bf16", "sun": "bf16"}
RATE_RUNS = ("azure_conv_rate",)


def resolve_trace(s: Scenario) -> Scenario:
    """Point real traces at ``$SUNSIM_TRACES`` (default ``<repo>/../shared/traces``); the
    scenario files name them relative to themselves, as if the traces lay beside the repo."""
    p = Path(s.trace)
    if not p.is_file():
        base = Path(os.environ.get("SUNSIM_TRACES", REPO.parent / "shared" / "traces"))
        p = base / p.name
    if not p.is_file():
        sys.exit(f"trace {p} not found (set SUNSIM_TRACES to the folder holding it)")
    return dataclasses.replace(s, trace=str(p))


def equal_gpu_replay(args: tuple[str, dict]) -> dict:
    """sun and qsun replayed with partitioned's prefill workers and decode total."""
    name, d = args
    s = Scenario(**d)
    r = run_replay(s, load_workload(s))
    out = {}
    for mode, summ in r.summaries.items():
        out[mode] = {
            "tpot_s_p50": summ.latency_s.tpot_s_p50,
            "tpot_s_p90": summ.latency_s.tpot_s_p90,
            "attainment": summ.slo.attainment,
            "tput_per_gpu": summ.throughput.output_tokens_per_s_per_gpu,
        }
    return out


def step_sources(s: Scenario) -> dict[str, tuple[str, str]]:
    """Per mode, the method labels of its prefill and decode step times (the latency models
    resolve_latency gives this scenario; qsun decodes at ``s.qsun_precision``)."""
    pre = resolve_latency(s, "bf16", "prefill")[0].method
    out = {}
    for mode in s.modes:
        prec = ROLES.get(mode, s.qsun_precision)
        out[mode] = (pre, resolve_latency(s, prec, "decode")[0].method)
    return out


def rel(note: str) -> str:
    """``note`` with this checkout's path removed (committed files name repository paths)."""
    return note.replace(str(REPO) + "/", "")


def step_speedups(s: Scenario) -> pd.DataFrame:
    """Decode step time BF16 / W4A16 at a few batch sizes and contexts (latency models).

    Columns ``bf16_ms``, ``w4a16_ms``, ``speedup_pct``: the scenario's own latency models
    (their labels in ``bf16_source``/``w4a16_source``; they may differ, e.g. measured BF16
    and an analytic W4A16); ``same_source_speedup_pct``: both from one source, the calibrated
    roofline on the scenario's GPU (like for like, an estimate); ``a100_measured_speedup_pct``:
    both measured on an A100 (TensorRT-LLM 1.0.0 W4A16 kernels over vLLM's BF16 ones, the
    only measured weight-only kernels bundled), whatever the scenario's latency setting.
    """
    bf, note_bf = resolve_latency(s, "bf16", "decode")
    q4, note_q4 = resolve_latency(s, "w4a16", "decode")
    cal = dataclasses.replace(s, latency="calibrated")
    cbf, cq4 = resolve_latency(cal, "bf16", "decode")[0], resolve_latency(cal, "w4a16", "decode")[0]
    a100 = dataclasses.replace(s, gpu="a100", latency="auto", profile=None)
    abf, aq4 = (
        resolve_latency(a100, "bf16", "decode")[0],
        resolve_latency(a100, "w4a16", "decode")[0],
    )
    a100_measured = abf.method.startswith("measured") and aq4.method.startswith("measured")
    rows = []
    for ctx in (512, 1300, 4096):
        for b in (1, 8, 32, 64, 128, 256):
            c = b * ctx
            t1 = bf.decode_step_time(b, c)
            t2 = q4.decode_step_time(b, c)
            rows.append(
                {
                    "context_tokens": ctx,
                    "batch": b,
                    "bf16_ms": t1 * 1e3,
                    "w4a16_ms": t2 * 1e3,
                    "speedup_pct": (t1 / t2 - 1) * 100,
                    "same_source_speedup_pct": (
                        cbf.decode_step_time(b, c) / cq4.decode_step_time(b, c) - 1
                    )
                    * 100,
                    "a100_measured_speedup_pct": (
                        (abf.decode_step_time(b, c) / aq4.decode_step_time(b, c) - 1) * 100
                        if a100_measured
                        else float("nan")
                    ),
                    "bf16_source": bf.method,
                    "w4a16_source": q4.method,
                }
            )
    df = pd.DataFrame(rows)
    df.attrs["notes"] = [rel(note_bf), rel(note_q4)]
    df.attrs["method"] = bf.method
    df.attrs["same_source"] = cbf.method
    df.attrs["a100"] = f"bf16 {abf.method}; w4a16 {aq4.method}"
    return df


def main() -> None:
    ap = argparse.ArgumentParser(description="SUN claims experiment")
    ap.add_argument("--jobs", type=int, default=None, help="simulation processes [CPUs]")
    ap.add_argument("--out", type=Path, default=HERE / "results")
    ap.add_argument("--only", default=None, help="comma list of scenario names")
    ap.add_argument(
        "--latency",
        choices=("auto", "roofline", "calibrated"),
        default=None,
        help="step-time source for every scenario [the scenario's: auto]",
    )
    ap.add_argument(
        "--compare",
        type=Path,
        default=None,
        help="another run's results dir to put side by side [results_roofline for the default "
        "--out]",
    )
    a = ap.parse_args()
    only = set(a.only.split(",")) if a.only else None
    a.out.mkdir(parents=True, exist_ok=True)
    rows = []
    goodput = []
    notes: dict[str, list[str]] = {}
    eq_tasks = []
    t_all = time.perf_counter()
    log = []
    for name in ZIPF_RUNS + RATE_RUNS:
        if only and name not in only:
            continue
        s, opts = load_plan_toml(HERE / "scenarios" / f"{name}.toml")
        s = resolve_trace(s)
        if a.latency:
            s = dataclasses.replace(s, latency=a.latency)
        d = a.out / name
        # the content-addressed result cache shared with `sunsim plan` and `sunsim sweep`
        opts = dataclasses.replace(opts, jobs=a.jobs, cache_dir=str(default_cache_dir()))
        t0 = time.perf_counter()
        r = plan(s, opts)
        cmd = (
            f"python experiments/sun_claims/run.py (scenario scenarios/{name}.toml; "
            f"same as: sunsim plan --scenario experiments/sun_claims/scenarios/{name}.toml "
            f"--out {d.relative_to(REPO) if d.is_relative_to(REPO) else d})"
        )
        write_plan(r, d, command=cmd)
        write_report(
            d, command=f"sunsim report {d.relative_to(REPO) if d.is_relative_to(REPO) else d}"
        )
        log.append(
            f"{name}: {r.num_simulations} simulations ({r.num_cached} cached), "
            f"{time.perf_counter() - t0:.0f} s"
        )
        print(log[-1], flush=True)
        notes[name] = [rel(n) for n in r.latency_notes]
        for n in notes[name]:
            print(f"  step times: {n}", flush=True)
        tab = r.table()
        tab.insert(0, "trace", name)
        src = step_sources(s)
        tab["prefill_step_times"] = [src[m][0] for m in tab["mode"]]
        tab["decode_step_times"] = [src[m][1] for m in tab["mode"]]
        rows.append(tab)
        met = r.goodput.attrs.get("goodput", {}) if r.goodput is not None else {}
        for mode, x in met.items():
            goodput.append({"trace": name, "mode": mode, "goodput_rate_scale": x})
        if name in ZIPF_RUNS:
            for pp in r.points:
                part = pp.modes["partitioned"]
                sc = dataclasses.replace(
                    pp.scenario,
                    modes=("sun", "qsun"),
                    prefill_workers=part.prefill_workers,
                    decode_workers=(sum(part.decode_workers),),
                )
                eq_tasks.append(((name, pp.sweep_value), dataclasses.asdict(sc)))
    # equal-GPU replays, in parallel
    eq = {}
    if eq_tasks:
        jobs = a.jobs or os.cpu_count() or 1
        with cf.ProcessPoolExecutor(max_workers=jobs) as ex:
            for key, res in zip(
                [k for k, _ in eq_tasks],
                ex.map(equal_gpu_replay, [(str(k), d) for k, d in eq_tasks]),
            ):
                eq[key] = res
    df = pd.concat(rows, ignore_index=True)
    for col in (
        "eq_gpu_tpot_s_p50",
        "eq_gpu_tpot_s_p90",
        "eq_gpu_attainment",
        "eq_gpu_tpot_p50_vs_partitioned_pct",
    ):
        df[col] = float("nan")
    for i, row in df.iterrows():
        key = (row["trace"], row["sweep_value"])
        if row["trace"] in ZIPF_RUNS and key in eq:
            if row["mode"] == "partitioned":
                df.loc[i, ["eq_gpu_tpot_s_p50", "eq_gpu_tpot_s_p90", "eq_gpu_attainment"]] = [
                    row["tpot_s_p50"],
                    row["tpot_s_p90"],
                    row["slo_attainment"],
                ]
                df.loc[i, "eq_gpu_tpot_p50_vs_partitioned_pct"] = 0.0
            else:
                e = eq[key][row["mode"]]
                part = df[
                    (df.trace == row.trace)
                    & (df.sweep_value == row.sweep_value)
                    & (df["mode"] == "partitioned")
                ].iloc[0]
                df.loc[i, ["eq_gpu_tpot_s_p50", "eq_gpu_tpot_s_p90", "eq_gpu_attainment"]] = [
                    e["tpot_s_p50"],
                    e["tpot_s_p90"],
                    e["attainment"],
                ]
                df.loc[i, "eq_gpu_tpot_p50_vs_partitioned_pct"] = 100 * (
                    e["tpot_s_p50"] / part["tpot_s_p50"] - 1
                )
    df.to_csv(a.out / "results.csv", index=False)
    pd.DataFrame(goodput).to_csv(a.out / "goodput.csv", index=False)
    base = load_plan_toml(HERE / "scenarios" / "azure_conv.toml")[0]
    if a.latency:
        base = dataclasses.replace(base, latency=a.latency)
    sp = step_speedups(resolve_trace(base))
    sp.to_csv(a.out / "qsun_step_speedup.csv", index=False)
    md = results_markdown(df, sp, log, time.perf_counter() - t_all, notes, goodput)
    (a.out / "results.md").write_text(md)
    print(f"wrote {a.out}/results.csv, results.md ({time.perf_counter() - t_all:.0f} s)")
    other = a.compare or (HERE / "results_roofline" if a.out == HERE / "results" else None)
    if other is not None and (other / "results.csv").is_file():
        from compare import write_comparison  # experiments/sun_claims/compare.py

        print(f"wrote {write_comparison(other, a.out)}")


def _md(df: pd.DataFrame) -> str:
    cols = list(df.columns)
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in df.iterrows():
        out.append("| " + " | ".join(_f(v) for v in r.tolist()) + " |")
    return "\n".join(out)


def _f(v) -> str:
    if isinstance(v, float):
        if v != v:
            return ""
        return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"
    return str(v)


def results_markdown(
    df: pd.DataFrame,
    sp: pd.DataFrame,
    log: list[str],
    wall: float,
    notes: dict[str, list[str]],
    goodput: list[dict],
) -> str:
    srcs = sorted(set(df["prefill_step_times"]) | set(df["decode_step_times"]))
    lines = [
        "# SUN claims: results",
        "",
        "Step times (every row of `results.csv` names its prefill and decode source in "
        "`prefill_step_times` / `decode_step_times`): " + "; ".join(f"**{x}**" for x in srcs),
        "",
    ]
    for name, ns in notes.items():
        lines += [f"- {name}: " + "; ".join(ns)]
    lines += [
        "",
        "SLO: TTFT <= 1 s and TPOT <= 25 ms, attainment >= 90% for every model; "
        "H100 80 GB; 3 Llama-3.1-8B task models (math, code, tool).",
        "",
    ]
    z = df[df.trace.isin(ZIPF_RUNS)].copy()
    if len(z):
        z["decode / prefill GPUs"] = z["decode_workers"] + " / " + z["prefill_workers"]
        z["tok/s/GPU x part."] = z["throughput_per_gpu_vs_partitioned"]
        z["decode GPUs x part."] = float("nan")
        for i, r in z.iterrows():
            p = z[
                (z.trace == r.trace)
                & (z.sweep_value == r.sweep_value)
                & (z["mode"] == "partitioned")
            ].iloc[0]
            z.loc[i, "decode GPUs x part."] = p["num_decode_gpus"] / r["num_decode_gpus"]
            z.loc[i, "all GPUs x part."] = p["num_gpus"] / r["num_gpus"]
        t = z[
            [
                "trace",
                "sweep_value",
                "mode",
                "decode / prefill GPUs",
                "num_gpus",
                "slo_attainment",
                "tpot_s_p50",
                "tpot_s_p90",
                "throughput_per_gpu",
                "all GPUs x part.",
                "decode GPUs x part.",
                "tpot_p50_vs_partitioned_pct",
                "eq_gpu_tpot_p50_vs_partitioned_pct",
            ]
        ].rename(
            columns={
                "sweep_value": "zipf",
                "num_gpus": "GPUs",
                "slo_attainment": "attain.",
                "tpot_s_p50": "TPOT p50 s",
                "tpot_s_p90": "TPOT p90 s",
                "throughput_per_gpu": "tok/s/GPU",
                "tpot_p50_vs_partitioned_pct": "TPOT p50 vs part. % (planned)",
                "eq_gpu_tpot_p50_vs_partitioned_pct": "TPOT p50 vs part. % (equal GPUs)",
            }
        )
        lines += [
            "## Planned size per mode (Zipf sweeps)",
            "",
            "`all GPUs x part.` = partitioned's GPUs / this mode's GPUs = throughput per "
            "GPU relative to partitioned at equal SLO (every mode serves the same trace); "
            "`decode GPUs x part.` the same for decode GPUs only. TPOT change is at the "
            "planned sizes and, last column, with exactly partitioned's GPUs.",
            "",
            _md(t),
            "",
        ]
    rr = df[df.trace.isin(RATE_RUNS)]
    if len(rr):
        t = rr[
            [
                "trace",
                "sweep_value",
                "mode",
                "decode_workers",
                "prefill_workers",
                "num_gpus",
                "slo_attainment",
                "throughput_per_gpu",
                "saving_pct_vs_partitioned",
            ]
        ].rename(columns={"sweep_value": "rate scale"})
        lines += ["## Capacity against load (Azure conv, Zipf 1.0)", "", _md(t), ""]
    if goodput:
        lines += [
            "## Goodput at fixed hardware (highest rate scale meeting the SLO)",
            "",
            _md(pd.DataFrame(goodput)),
            "",
        ]
    s = sp[sp.batch.isin([1, 32, 256])]
    lines += [
        "## QSUN decode step speedup (W4A16 over BF16, latency model)",
        "",
        f"Sources: {'; '.join(sp.attrs['notes'])}. `same_source_speedup_pct`: both steps from "
        f"{sp.attrs['same_source']}; `a100_measured_speedup_pct`: {sp.attrs['a100']}.",
        "",
        _md(s.drop(columns=["bf16_source", "w4a16_source"])),
        "",
    ]
    lines += ["## Runs", ""] + [f"- {x}" for x in log] + [f"- total {wall:.0f} s", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
