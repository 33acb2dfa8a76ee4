"""``sunsim validate engine``: replay a trace slice through a small real prefill/decode
engine, profile its kernels, simulate the same slice, and print the errors."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from sunsim.cli.format import command_line, console, err_console
from sunsim.cli.validate import validate_app


def _default_engine_trace() -> Path:
    import os

    root = os.environ.get("SUNSIM_TRACES")
    base = Path(root) if root else Path(__file__).resolve().parents[3] / "shared" / "traces"
    return base / "azure_llm_2023_conv.csv"


DeviceOpt = Annotated[str, typer.Option("--device", "-d", help="cpu or cuda.")]
TraceOpt = Annotated[
    Path | None,
    typer.Option(
        "--trace",
        help="Trace to replay a slice of [$SUNSIM_TRACES/azure_llm_2023_conv.csv, else "
        "../shared/traces/azure_llm_2023_conv.csv]",
    ),
]
RequestsOpt = Annotated[int, typer.Option("--requests", "-n", help="The first N requests.")]
ModelOpt = Annotated[str, typer.Option("--model", "-m", help="Built-in model spec.")]
ThreadsOpt = Annotated[int, typer.Option("--threads", help="torch threads of each worker process.")]
RateScaleOpt = Annotated[
    float,
    typer.Option(
        "--rate-scale",
        help="Multiply the trace's request rate (0.5: arrivals twice as far apart).",
    ),
]
PromptScaleOpt = Annotated[float, typer.Option("--prompt-scale", help="Scale prompt lengths.")]
OutputScaleOpt = Annotated[float, typer.Option("--output-scale", help="Scale output lengths.")]
MaxPromptOpt = Annotated[int, typer.Option("--max-prompt", help="Clip scaled prompts (tokens).")]
MaxOutputOpt = Annotated[int, typer.Option("--max-output", help="Clip scaled outputs (tokens).")]
MaxNumSeqsOpt = Annotated[int, typer.Option("--max-num-seqs", help="Decode batch cap.")]
KvBlocksOpt = Annotated[
    int | None,
    typer.Option(
        "--kv-blocks",
        help="Decode KV capacity in 16-token blocks [half of what max-num-seqs requests of "
        "the slice's mean context need]",
    ),
]
MaxNumBatchedTokensOpt = Annotated[
    int,
    typer.Option("--max-num-batched-tokens", help="Prefill batch token budget (tokens)."),
]
StatisticOpt = Annotated[
    str,
    typer.Option(
        "--statistic",
        help="Profile statistic the simulation uses: split (prefill medians, decode means), "
        "mean or median (all are reported).",
    ),
]
PassesOpt = Annotated[
    int,
    typer.Option(
        "--passes",
        help="Profile passes: 1 (before the replay) or 2 (before and after, pooled).",
    ),
]
TimePerPointOpt = Annotated[
    float,
    typer.Option("--time-per-point", help="Seconds of repeats per profile grid point and pass."),
]
PinOpt = Annotated[
    bool,
    typer.Option("--pin/--no-pin", help="Pin the prefill and decode processes to CPUs 0 and 1."),
]
ConcurrentOpt = Annotated[
    bool,
    typer.Option(
        "--concurrent/--isolated",
        help="Profile each kernel while the other process works as during the replay "
        "(decoding; prefilling now and then), or with it idle.",
    ),
]
PrefillIdleOpt = Annotated[
    float | None,
    typer.Option(
        "--prefill-idle",
        help="Seconds of sleep before every timed prefill of the profile [the slice's mean "
        "time between arrivals, at most 0.5]",
    ),
]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of the weights, prompts and routers.")]
OutOpt = Annotated[
    Path | None,
    typer.Option("--out", "-o", help="Output directory [runs/validate-engine-<time>]"),
]


@validate_app.command("engine")
def validate_engine_cmd(
    ctx: typer.Context,
    device: DeviceOpt = "cpu",
    trace: TraceOpt = None,
    requests: RequestsOpt = 200,
    model: ModelOpt = "tiny-llama",
    threads: ThreadsOpt = 1,
    rate_scale: RateScaleOpt = 0.5,
    prompt_scale: PromptScaleOpt = 0.125,
    output_scale: OutputScaleOpt = 0.25,
    max_prompt: MaxPromptOpt = 512,
    max_output: MaxOutputOpt = 128,
    max_num_seqs: MaxNumSeqsOpt = 16,
    kv_blocks: KvBlocksOpt = None,
    max_num_batched_tokens: MaxNumBatchedTokensOpt = 1024,
    statistic: StatisticOpt = "split",
    passes: PassesOpt = 2,
    time_per_point: TimePerPointOpt = 0.25,
    pin: PinOpt = False,
    concurrent: ConcurrentOpt = True,
    prefill_idle: PrefillIdleOpt = None,
    seed: SeedOpt = 0,
    out: OutOpt = None,
) -> None:
    """Replay a trace slice through a small real prefill/decode engine (two torch processes,
    continuous batching over a paged KV cache, KV handed over through shared memory), profile
    the engine's own kernels, simulate the same slice with that profile, and print the TTFT,
    TPOT and decode-step errors (goal: median TPOT error <= 5%, median TTFT error <= 10%)."""
    from sunsim.cli.validate_engine_checks import checked_options
    from sunsim.runs import default_run_dir
    from sunsim.validate.engine import run_engine_check

    # every option, the trace and --out checked before the engine starts
    opts = checked_options(ctx.params, trace or _default_engine_trace())
    out_dir = out or default_run_dir("validate-engine")
    with err_console.status("real engine") as status:
        r = run_engine_check(
            opts,
            out_dir,
            command=command_line(),
            progress=lambda msg: status.update(msg),
        )
    _print_engine_settings(r.summary["settings"])
    _print_engine_table(r.summary)
    _print_engine_notes(r.summary, out_dir)


def _print_engine_settings(st: dict[str, Any]) -> None:
    console.print(
        f"{st['num_requests']} requests of {Path(st['trace']).name} (rate x"
        f"{st['rate_scale']:g}, {st['arrival_span_s']:.0f} s; prompts x"
        f"{st['prompt_scale']:g} <= {st['max_prompt']}, mean "
        f"{st['prompt_tokens_mean']:.0f} tokens; outputs x{st['output_scale']:g} <= "
        f"{st['max_output']}, mean {st['output_tokens_mean']:.0f}) on {st['model']}, "
        f"{st['device_name']}, {st['threads_per_process']} thread(s) per process; "
        f"max_num_seqs {st['max_num_seqs']}, {st['kv_blocks']} KV blocks of "
        f"{st['block_size']} tokens",
        highlight=False,
        soft_wrap=True,
    )


def _print_engine_table(s: dict[str, Any]) -> None:
    """Simulated vs measured errors: TTFT, TPOT, E2E, decode step, prefill batch."""
    from rich.table import Table

    e, m = s["errors"], s["medians"]
    t = Table(
        title=f"simulated vs measured (error = simulated / measured - 1; profile "
        f"statistic {s['statistic']['primary']}; medians unless marked)",
        title_justify="left",
    )
    for c in ("", "n", "median |err|", "p90 |err|", "median err", "measured", "simulated"):
        t.add_column(c, justify="left" if not c else "right")

    def row(name: str, st_: dict[str, Any], meas: str = "", sim: str = "") -> None:
        t.add_row(
            name,
            str(st_["n"]),
            f"{100 * st_['median_abs']:.1f}%",
            f"{100 * st_['p90_abs']:.1f}%",
            f"{100 * st_['median']:+.1f}%",
            meas,
            sim,
        )

    row(
        "TTFT",
        e["ttft"],
        f"{1e3 * m['ttft_s_measured']:.1f} ms",
        f"{1e3 * m['ttft_s_simulated']:.1f} ms",
    )
    row(
        "TPOT",
        e["tpot"],
        f"{1e3 * m['tpot_s_measured']:.1f} ms",
        f"{1e3 * m['tpot_s_simulated']:.1f} ms",
    )
    row("E2E", e["e2e"], f"{m['e2e_s_measured']:.2f} s", f"{m['e2e_s_simulated']:.2f} s")
    d = s["decode"]
    row(
        "decode step",
        e["decode_step"],
        f"{1e3 * d['step_s_mean_measured']:.1f} ms mean",
        f"{1e3 * d['step_s_mean_predicted']:.1f} ms mean",
    )
    if e.get("decode_step_cpu_time"):
        row("  in CPU time", e["decode_step_cpu_time"])
    if e.get("prefill_batch"):
        p_ = s["prefill"]
        row(
            "prefill batch",
            e["prefill_batch"],
            f"{1e3 * p_['prefill_s_mean_measured']:.1f} ms mean",
            f"{1e3 * p_['prefill_s_mean_predicted']:.1f} ms mean",
        )
    if e.get("prefill_batch_cpu_time"):
        row("  in CPU time", e["prefill_batch_cpu_time"])
    console.print(t)


def _print_engine_notes(s: dict[str, Any], out_dir: Path) -> None:
    """The goal verdict, other statistics, the level-matched diagnostic, decode, link, load."""
    from sunsim.validate.engine import GOAL_TPOT_MEDIAN, GOAL_TTFT_MEDIAN

    e, d = s["errors"], s["decode"]
    g = s["goal"]
    verdict = {True: "[green]met[/]", False: "[red]missed[/]"}
    console.print(
        f"goal: median TPOT error {100 * e['tpot']['median_abs']:.1f}% <= "
        f"{100 * GOAL_TPOT_MEDIAN:.0f}%: {verdict[g['tpot_met']]}; median TTFT error "
        f"{100 * e['ttft']['median_abs']:.1f}% <= {100 * GOAL_TTFT_MEDIAN:.0f}%: "
        f"{verdict[g['ttft_met']]}",
        highlight=False,
    )
    for other in ("split", "mean", "median"):
        if other == s["statistic"]["primary"]:
            continue
        o = s[f"errors_{other}_profile"]
        console.print(
            f"with the profile's statistic '{other}' instead: median |error| TTFT "
            f"{100 * o['ttft']['median_abs']:.1f}%, TPOT "
            f"{100 * o['tpot']['median_abs']:.1f}%, decode step "
            f"{100 * o['decode_step']['median_abs']:.1f}%",
            highlight=False,
        )
    lv = s["errors_level_matched"]
    console.print(
        f"diagnostic, profile level matched to the replay's own step times (decode "
        f"x{lv['decode_scale']:.2f}, prefill x{lv['prefill_scale']:.2f}; calibrated on "
        f"this measurement, not a prediction): median |error| TTFT "
        f"{100 * lv['ttft']['median_abs']:.1f}%, TPOT "
        f"{100 * lv['tpot']['median_abs']:.1f}%",
        highlight=False,
        soft_wrap=True,
    )
    console.print(
        f"decode: {d['iterations_measured']} iterations measured / "
        f"{d['iterations_simulated']} simulated, mean batch "
        f"{d['mean_batch_measured']:.2f} / {d['mean_batch_simulated']:.2f}, peak "
        f"{d['peak_batch_measured']} / {d['peak_batch_simulated']}, preemptions "
        f"{d['preemptions_measured']} / {d['preemptions_simulated']}; iteration "
        f"boundaries add {100 * d['boundary_over_step']:.1f}% to the step time",
        highlight=False,
        soft_wrap=True,
    )
    lk = s["link"]
    console.print(
        f"KV handoff (shared-memory copy + notice) fitted: {1e6 * lk['latency_s']:.0f} "
        f"us + bytes / {lk['bandwidth_bytes_per_s'] / 1e9:.2f} GB/s (fit error "
        f"{lk['fit_mape_pct']:.1f}%); the default link is 10 us + bytes / 50 GB/s",
        highlight=False,
    )
    ld = s["load"]
    console.print(
        f"load: {ld['machine_busy_cores']:.2f} of {ld['cpu_count']} cores busy during "
        f"the replay, {ld['other_busy_cores']:.2f} of them by other processes (during "
        f"the profile passes: {s['load_other_cores_profile_mean']:.2f} on average); "
        f"wall-clock errors grow with that load and with its change between profile "
        f"and replay, the CPU-time rows much less",
        highlight=False,
        soft_wrap=True,
    )
    console.print(
        f"wrote {out_dir}/ (comparison.csv, iterations.csv, summary.json, "
        f"measured_vs_simulated.png, profile/) in {s['wall_s']:.0f} s",
        highlight=False,
    )
