"""The ``sunsim`` command line: each command parses, calls one library function, prints.

Bad input raises :class:`sunsim.errors.SunsimError`; the app prints its one-line message
to stderr and exits with code 2, without a traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from sunsim.errors import SunsimError

console = Console()
err_console = Console(stderr=True)


class _Group(TyperGroup):
    """Turns :class:`SunsimError` raised by any (sub)command into one line and exit code 2."""

    def invoke(self, ctx):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except SunsimError as e:
            err_console.print(
                f"[bold red]error:[/] {escape(str(e))}",
                markup=True,
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(code=2) from None


def _typer(**kw) -> typer.Typer:
    return typer.Typer(
        cls=_Group, pretty_exceptions_enable=False, no_args_is_help=True, add_completion=False, **kw
    )


app = _typer(
    help="Simulate and plan multi-LLM prefill/decode-disaggregated serving: "
    "partitioned vs SUN vs QSUN decode."
)
trace_app = _typer(help="Inspect and generate request traces.")
app.add_typer(trace_app, name="trace")


def main() -> None:
    """Console-script entry point."""
    app()


# --- commands are added below, one section per area -------------------------------------

# --- trace: info, synth ---------------------------------------------------------------------


@trace_app.command("info")
def trace_info_cmd(
    trace: str = typer.Argument(
        ..., help="Trace file: BurstGPT/Azure/canonical CSV or Mooncake JSONL."
    ),
    fmt: str = typer.Option(
        "auto", "--format", "-f", help="auto, burstgpt, azure, mooncake or canonical."
    ),
    keep_failed: bool = typer.Option(
        False, "--keep-failed", help="Keep BurstGPT failed rows (Response tokens == 0)."
    ),
) -> None:
    """Read and validate a trace; print its size, rate, burstiness and token percentiles."""
    from rich.table import Table

    from sunsim.traces import read_trace, trace_info

    info = trace_info(read_trace(trace, fmt, keep_failed=keep_failed))
    table = Table(title=f"{info['path']} ({info['format']})", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    failed = (
        f", {info['num_failed']} failed ({info['num_failed_excluded']} excluded)"
        if info["format"] == "burstgpt"
        else ""
    )
    table.add_row("rows", f"{info['num_rows']:,}{failed}")
    table.add_row("requests kept", f"{info['num_requests']:,}")
    if info["num_zero_output"]:
        table.add_row("zero-output rows", f"{info['num_zero_output']:,} (kept with 1 output token)")
    table.add_row("span", f"{info['span_s']:,.1f} s ({info['span_s'] / 60:,.1f} min)")
    table.add_row("mean rate", f"{info['mean_rate']:.3f} req/s")
    table.add_row("inter-arrival CV", f"{info['interarrival_cv']:.2f}")
    for key in ("prompt_tokens", "output_tokens"):
        s = info[key]
        table.add_row(
            key.replace("_", " "),
            f"mean {s['mean']:.0f}, p50 {s['p50']:.0f}, p90 {s['p90']:.0f}, "
            f"p99 {s['p99']:.0f}, max {s['max']:.0f}",
        )
    models = (
        ", ".join(f"{k} {v:,}" for k, v in info["source_models"].items()) or "none in the trace"
    )
    table.add_row("source models", models)
    console.print(table)


@trace_app.command("synth")
def trace_synth_cmd(
    out: str = typer.Argument(..., help="Output canonical CSV."),
    requests: int | None = typer.Option(None, "--requests", "-n", help="Number of requests."),
    duration: float | None = typer.Option(
        None,
        "--duration",
        "-d",
        help="Duration in seconds (default 600 if --requests is not given).",
    ),
    rate: float = typer.Option(6.0, "--rate", help="Mean request rate, requests/s."),
    burstiness: float = typer.Option(
        2.0, "--burstiness", help="Inter-arrival coefficient of variation (Gamma; 1 = Poisson)."
    ),
    models: str = typer.Option(
        "math,code,tool", "--models", help="Served models, most popular first."
    ),
    zipf: float = typer.Option(
        1.2, "--zipf", help="Zipf exponent of model popularity (0 = uniform)."
    ),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
) -> None:
    """Write a BurstGPT-style synthetic trace (Gamma arrivals, lognormal lengths, Zipf models)."""
    import numpy as np

    from sunsim.traces import model_counts, synth_command, synth_trace, write_canonical

    if requests is None and duration is None:
        duration = 600.0
    served = [m.strip() for m in models.split(",")]
    df = synth_trace(
        num_requests=requests,
        duration_s=duration,
        rate=rate,
        burstiness=burstiness,
        served=served,
        zipf_alpha=zipf,
        rng=np.random.default_rng(seed),
    )
    path = write_canonical(df, out)
    span = float(df["arrival_s"].iloc[-1])
    counts = ", ".join(f"{k} {v:,}" for k, v in model_counts(df).items())
    console.print(
        f"wrote {len(df):,} requests over {span:,.1f} s to {path} ({counts})",
        highlight=False,
        soft_wrap=True,
    )
    cmd = synth_command(
        out,
        num_requests=requests,
        duration_s=duration,
        rate=rate,
        burstiness=burstiness,
        served=served,
        zipf_alpha=zipf,
        seed=seed,
    )
    console.print(
        f"regenerate with (seed {seed}): {cmd}", highlight=False, soft_wrap=True, markup=False
    )


# --- replay ------------------------------------------------------------------------------


def _split(value: str | None, option: str, conv=str) -> tuple | None:
    """Parse ``a,b,c`` for ``option``; raises a one-line SunsimError on a bad item."""
    from sunsim.errors import ConfigError

    if value is None:
        return None
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise ConfigError(f"{option}: empty list")
    try:
        return tuple(conv(v) for v in items)
    except ValueError:
        raise ConfigError(
            f"{option}: cannot read '{value}' as a comma-separated list of {conv.__name__} values"
        ) from None


def _model_map(value: str | None) -> tuple | None:
    from sunsim.errors import ConfigError

    if value is None:
        return None
    pairs = []
    for item in value.split(","):
        if "=" not in item:
            raise ConfigError(f"--model-map: '{item}' is not SOURCE=SERVED (e.g. ChatGPT=math)")
        a, b = item.split("=", 1)
        pairs.append((a.strip(), b.strip()))
    return tuple(pairs)


def build_scenario(scenario_file: Path | None, **opts) -> Scenario:
    """A :class:`~sunsim.config.Scenario` from a TOML file (if any) overridden by the CLI
    options that were given (None = not given)."""
    import dataclasses
    import tomllib

    from sunsim.config import Scenario, scenario_from_toml_dict
    from sunsim.errors import ConfigError

    base = Scenario()
    if scenario_file is not None:
        if not scenario_file.exists():
            raise ConfigError(f"{scenario_file}: no such scenario file")
        try:
            data = tomllib.loads(scenario_file.read_text())
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{scenario_file}: not valid TOML: {e}") from None
        if "plan" in data:
            raise ConfigError(
                f"{scenario_file}: a plan scenario (it has a [plan] table); rerun it with "
                f"'sunsim plan --scenario {scenario_file}', or replay one mode's planned "
                f"cluster with 'sunsim replay --scenario {scenario_file.parent}/replay_<mode>/"
                "scenario.toml'"
            )
        base = scenario_from_toml_dict(data, source=str(scenario_file))
    changes = {k: v for k, v in opts.items() if v is not None}
    try:
        return dataclasses.replace(base, **changes)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"bad option value: {e}") from None


def _modes(mode: str | None) -> tuple | None:
    from sunsim.config import MODES

    if mode is None:
        return None
    if mode == "all":
        return MODES
    return _split(mode, "--mode")


def _print_table(df, title: str) -> None:
    from rich.table import Table

    t = Table(title=title, title_justify="left")
    t.add_column("")
    for c in df.columns:
        t.add_column(str(c), justify="right")
    for idx, row in df.iterrows():
        t.add_row(str(idx), *[str(v) for v in row.tolist()])
    console.print(t)


@app.command()
def replay(
    trace: Path | None = typer.Argument(
        None,
        help="Trace file (BurstGPT/Azure CSV, Mooncake "
        "JSONL, canonical CSV); default: the bundled "
        "synthetic trace.",
    ),
    scenario: Path | None = typer.Option(
        None, "--scenario", help="Scenario TOML; options given on the command line override it."
    ),
    mode: str | None = typer.Option(
        None, help="partitioned, sun, qsun, a comma list, or all [default: all]"
    ),
    models: str | None = typer.Option(
        None, help="Served task models, comma-separated [default: math,code,tool]"
    ),
    model: str | None = typer.Option(
        None, help="Base architecture: llama-3.1-8b, qwen3-8b, tiny-llama [default: llama-3.1-8b]"
    ),
    zipf: float | None = typer.Option(None, help="Label requests by Zipf(alpha) popularity."),
    shares: str | None = typer.Option(
        None, help="Label requests by explicit shares, e.g. 0.6,0.3,0.1."
    ),
    model_map: str | None = typer.Option(
        None, "--model-map", help="Map the trace's own models, e.g. ChatGPT=math,GPT-4=code."
    ),
    prefill_workers: str | None = typer.Option(
        None, "--prefill-workers", help="One count for every model, or one per model [1]."
    ),
    decode_workers: str | None = typer.Option(
        None,
        "--decode-workers",
        help="Total decode "
        "workers (split over partitioned's pools by "
        "output-token share), or one per model [3].",
    ),
    gpu: str | None = typer.Option(None, help="h100, h200 or a100 [default: h100]"),
    qsun_precision: str | None = typer.Option(
        None, "--qsun-precision", help="w4a16 or w8a16 [w4a16]"
    ),
    slo_ttft: float | None = typer.Option(None, "--slo-ttft", help="TTFT SLO, seconds [2]"),
    slo_tpot: float | None = typer.Option(None, "--slo-tpot", help="TPOT SLO, seconds [0.1]"),
    slo_attainment: float | None = typer.Option(
        None, "--slo-attainment", help="Attainment target [0.9]"
    ),
    latency: str | None = typer.Option(None, help="auto, profile or roofline [auto]"),
    profile: Path | None = typer.Option(
        None, help="Profile directory (sunsim profile output) to take step times from."
    ),
    router: str | None = typer.Option(
        None,
        help="Decode router: round_robin, least_loaded, "
        "least_kv, power_of_two, central [least_loaded]",
    ),
    max_num_seqs: int | None = typer.Option(None, "--max-num-seqs", help="Decode batch cap [256]"),
    fmt: str | None = typer.Option(
        None, "--format", help="Force the trace format: burstgpt, azure, mooncake, canonical."
    ),
    keep_failed: bool | None = typer.Option(
        None, "--keep-failed", help="Keep BurstGPT's failed requests."
    ),
    rate_scale: float | None = typer.Option(
        None, "--rate-scale", help="Multiply the request rate (compress time)."
    ),
    window: str | None = typer.Option(None, help="Keep arrivals in START,END seconds."),
    max_requests: int | None = typer.Option(None, "--max-requests"),
    seed: int | None = typer.Option(None, help="Seed for labelling and routing [0]"),
    out: Path | None = typer.Option(None, help="Run directory [runs/replay-<time>]"),
    records_format: str = typer.Option("parquet", "--records-format", help="parquet or csv"),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
) -> None:
    """Replay a trace through partitioned, SUN and QSUN decode and compare them side by side."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from sunsim.metrics import sun_vs_partitioned
    from sunsim.replay import default_run_dir, load_workload, run_replay, write_run

    win = _split(window, "--window", float)
    if win is not None and len(win) != 2:
        from sunsim.errors import ConfigError

        raise ConfigError("--window takes START,END in seconds")
    s = build_scenario(
        scenario,
        trace=str(trace) if trace else None,
        trace_format=fmt,
        keep_failed=keep_failed,
        window_s=win,
        rate_scale=rate_scale,
        max_requests=max_requests,
        modes=_modes(mode),
        base_model=model,
        served_models=_split(models, "--models"),
        zipf=zipf,
        shares=_split(shares, "--shares", float),
        model_map=_model_map(model_map),
        gpu=gpu,
        prefill_workers=_split(prefill_workers, "--prefill-workers", int),
        decode_workers=_split(decode_workers, "--decode-workers", int),
        qsun_precision=qsun_precision,
        slo_ttft_s=slo_ttft,
        slo_tpot_s=slo_tpot,
        slo_attainment=slo_attainment,
        latency=latency,
        profile=str(profile) if profile else None,
        decode_router=router,
        max_num_seqs=max_num_seqs,
        seed=seed,
    )
    wl = load_workload(s)
    info = wl.info
    console.print(
        f"trace [bold]{info.get('path', s.trace)}[/] ({info.get('format')}): "
        f"{len(wl.requests)} requests over {info.get('span_s', 0):.0f} s, "
        f"{info.get('mean_rate', 0):.2f} req/s, inter-arrival CV "
        f"{info.get('interarrival_cv', 0):.2f}",
        highlight=False,
    )
    console.print(
        "models ("
        + wl.labelling
        + "): "
        + ", ".join(f"{m} {c}" for m, c in wl.model_counts.items()),
        highlight=False,
    )
    with Progress(
        TextColumn("{task.description:>12}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        console=err_console,
        disable=not progress,
        transient=True,
    ) as bar:
        tasks = {m: bar.add_task(m, total=1.0) for m in s.modes}
        r = run_replay(s, wl, on_progress=lambda m, f: bar.update(tasks[m], completed=f))
    for note in r.latency_notes:
        console.print(f"latency {note}", highlight=False)
    method = {x["method"] for x in r.summaries.values()}
    _print_table(
        r.table(),
        f"sunsim replay: {', '.join(sorted(method))} step times, "
        f"{s.gpu} memory for the KV cache; SLO TTFT <= {s.slo_ttft_s} s, "
        f"TPOT <= {s.slo_tpot_s} s",
    )
    for line in sun_vs_partitioned(r.summaries):
        console.print(line, highlight=False)
    out_dir = out or default_run_dir("replay")
    write_run(r, out_dir, records_format, command="sunsim " + " ".join(sys.argv[1:]))
    console.print(
        f"wrote {out_dir}/ (scenario.toml, summary.json, records_<mode>.{records_format}, ...)",
        highlight=False,
    )


# --- profile: measure latency profiles; profile check ----------------------------------------

profile_app = _typer(
    help="Measure prefill/decode latency profiles with torch (sunsim profile "
    "--model NAME --device cpu|cuda --precision bf16|w8a16|w4a16), or "
    "check one (sunsim profile check DIR).",
    invoke_without_command=True,
)
app.add_typer(profile_app, name="profile")


def _profile_ints(value: str | None, option: str) -> tuple | None:
    """Comma-separated integers for a profile grid option (see :func:`_split`)."""
    return _split(value, option, int)


def _print_roofline(d) -> None:
    from rich.table import Table

    from sunsim.profiling.analysis import roofline_ratios, roofline_summary

    df = roofline_ratios(d)
    bw, rate = df.attrs["copy_bandwidth_bytes_per_s"], df.attrs["matmul_flops_per_s"]
    s = roofline_summary(df)
    for mod, col, head in (
        (
            "decode",
            "ratio",
            f"decode step time / (bytes moved / measured bandwidth {bw / 1e9:.1f} GB/s)",
        ),
        (
            "prefill",
            "matmul_fraction",
            f"prefill achieved FLOP/s / measured matmul rate {rate / 1e12:.2f} TFLOP/s",
        ),
    ):
        part = df[df["module"] == mod]
        if part.empty:
            continue
        piv = part.pivot(index="batch_size", columns="tokens", values=col)
        t = Table(title=head, title_justify="left")
        t.add_column("B \\ tokens", justify="right")
        for c in piv.columns:
            t.add_column(str(c), justify="right")
        for b, row in piv.iterrows():
            t.add_row(str(b), *["" if v != v else f"{v:.2f}" for v in row.tolist()])
        console.print(t)
    console.print(
        f"decode / roofline: median {s['decode_ratio_median']:.2f}x "
        f"(range {s['decode_ratio_min']:.2f}-{s['decode_ratio_max']:.2f}); "
        f"prefill at {100 * s['prefill_fraction_median']:.0f}% of the matmul rate "
        f"(median, best {100 * s['prefill_fraction_max']:.0f}%)"
        if s["prefill_fraction_median"] == s["prefill_fraction_median"]
        else f"decode / roofline: median {s['decode_ratio_median']:.2f}x "
        f"(range {s['decode_ratio_min']:.2f}-{s['decode_ratio_max']:.2f})",
        highlight=False,
    )


def _print_check(d) -> float:
    from rich.table import Table

    from sunsim.latency.profiled import check_profile

    df = check_profile(d)
    t = Table(
        title=f"held-out error (leave-one-out) of {df.attrs['profile']}", title_justify="left"
    )
    for c in ("module", "slice", "points", "MAPE %", "max APE %", "fit-only MAPE %"):
        t.add_column(c, justify="right")
    for r in df.itertuples(index=False):
        t.add_row(
            r.module,
            r.slice,
            str(r.points),
            f"{r.mape_pct:.2f}",
            f"{r.max_ape_pct:.2f}",
            f"{r.fit_only_mape_pct:.2f}",
        )
    console.print(t)
    console.print(
        f"decode fit: t = {df.attrs['decode_fit']} s; correction "
        f"{df.attrs['decode_interpolation']}",
        highlight=False,
    )
    if df.attrs["prefill_fit"]:
        console.print(
            f"prefill fit: t = {df.attrs['prefill_fit']} s; correction "
            f"{df.attrs['prefill_interpolation'] or 'from the bf16 profile'}",
            highlight=False,
        )
    med = df.attrs["median_mape_pct"]
    console.print(
        f"median held-out MAPE: [bold]{med:.2f}%[/] ({df.attrs['description']})", highlight=False
    )
    return med


@profile_app.callback()
def profile_cmd(
    ctx: typer.Context,
    model: str = typer.Option(
        "llama-3.1-8b",
        "--model",
        "-m",
        help="Built-in model spec (llama-3.1-8b, qwen3-8b, tiny-llama).",
    ),
    device: str = typer.Option(
        "auto", "--device", "-d", help="cpu, cuda (cuda:N) or auto (cuda when available)."
    ),
    precision: str = typer.Option(
        "bf16", "--precision", "-p", help="bf16 (prefill + decode), w8a16 or w4a16 (decode only)."
    ),
    quick: bool = typer.Option(
        False,
        "--quick",
        help="Tiny grid and few repeats (tests); written under <device-slug>-quick/.",
    ),
    out: Path = typer.Option(Path("profiles"), "--out", "-o", help="Root directory."),
    layers: int | None = typer.Option(
        None,
        "--layers",
        help="Layers to run (rest scaled); "
        "default all, or 2 (quick 1) on a CPU for models over "
        "2 GiB, or what fits the GPU.",
    ),
    threads: int | None = typer.Option(None, "--threads", help="CPU threads for torch."),
    batch_sizes: str | None = typer.Option(
        None, "--batch-sizes", help="Decode batch sizes, e.g. 1,2,4,8."
    ),
    contexts: str | None = typer.Option(
        None, "--contexts", help="Decode context tokens per request, e.g. 128,512,2048."
    ),
    prefill_batch_sizes: str | None = typer.Option(
        None, "--prefill-batch-sizes", help="Prefill batch sizes, e.g. 1,2,4."
    ),
    prompt_tokens: str | None = typer.Option(
        None, "--prompt-tokens", help="Prefill prompt tokens, e.g. 64,256,1024."
    ),
    max_prefill_tokens: int | None = typer.Option(
        None, "--max-prefill-tokens", help="Largest prefill batch (tokens)."
    ),
    warmup: int | None = typer.Option(None, "--warmup", help="Warm-up calls per point."),
    repeats: int | None = typer.Option(None, "--repeats", help="Minimum timed repeats."),
    max_repeats: int | None = typer.Option(None, "--max-repeats", help="Maximum timed repeats."),
    time_per_point: float | None = typer.Option(
        None, "--time-per-point", help="Seconds of repeats per grid point."
    ),
    passes: int | None = typer.Option(
        None,
        "--passes",
        help="Sweeps over the grid, repeats pooled (default: cpu 20, cuda/quick 1).",
    ),
    cuda_graphs: bool = typer.Option(
        False, "--cuda-graphs", help="Replay decode steps as CUDA graphs."
    ),
    statistic: str = typer.Option(
        "auto",
        "--statistic",
        help="What the latency model fits: "
        "median or min (the fastest repeat); auto = median on cuda, "
        "min on a (shared) cpu.",
    ),
    force: bool = typer.Option(False, "--force", help="Replace an existing profile."),
    seed: int = typer.Option(0, "--seed", help="Seed of the random weights and inputs."),
) -> None:
    """Measure a latency profile: prefill over prompt lengths x batch sizes, decode over
    batch size x context, on random weights with real kernels; write
    <out>/<device-slug>/<model>/<precision>/{prefill.csv,decode.csv,meta.json}."""
    if ctx.invoked_subcommand is not None:
        return
    import dataclasses

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from sunsim.profiling import default_grid, default_timing, profile_model, write_profile
    from sunsim.profiling._torch import require_torch

    torch = require_torch()
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    kind = "cuda" if device.startswith("cuda") else "cpu"
    g = default_grid(kind, quick)
    g = dataclasses.replace(
        g,
        decode_batch_sizes=_profile_ints(batch_sizes, "--batch-sizes") or g.decode_batch_sizes,
        decode_context_tokens=_profile_ints(contexts, "--contexts") or g.decode_context_tokens,
        prefill_batch_sizes=(
            _profile_ints(prefill_batch_sizes, "--prefill-batch-sizes") or g.prefill_batch_sizes
        ),
        prefill_prompt_tokens=(
            _profile_ints(prompt_tokens, "--prompt-tokens") or g.prefill_prompt_tokens
        ),
        prefill_max_tokens=max_prefill_tokens or g.prefill_max_tokens,
    )
    tm = default_timing(kind, quick)
    tm = dataclasses.replace(
        tm,
        warmup=tm.warmup if warmup is None else warmup,
        min_repeats=tm.min_repeats if repeats is None else repeats,
        max_repeats=max(
            tm.max_repeats if max_repeats is None else max_repeats,
            tm.min_repeats if repeats is None else repeats,
        ),
        time_per_point_s=tm.time_per_point_s if time_per_point is None else time_per_point,
        passes=tm.passes if passes is None else passes,
        cuda_graphs=cuda_graphs,
        fit_statistic=statistic,
    )
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    ) as bar:
        task = bar.add_task(f"profiling {model} {precision} on {device}", total=None)
        prof = profile_model(
            model,
            device,
            precision,
            quick=quick,
            grid=g,
            timing=tm,
            layers=layers,
            threads=threads,
            seed=seed,
            command="sunsim " + " ".join(sys.argv[1:]),
            progress=lambda done, total, label: bar.update(
                task, completed=done, total=total, description=f"{model} {precision}: {label}"
            ),
        )
    d = write_profile(prof, out, force=force)
    m = prof.meta
    console.print(
        f"{m['device_name']} ({m['device_kind']}, {m['threads']} threads, torch "
        f"{m['torch_version']}): copy {m['copy_bandwidth_bytes_per_s'] / 1e9:.1f} GB/s, "
        f"BF16 matmul {m['matmul_flops_per_s'] / 1e12:.2f} TFLOP/s",
        highlight=False,
    )
    scaled = (
        f"; {m['layers_run']} of {m['layers_total']} layers run, scaled"
        if m["layers_run"] != m["layers_total"]
        else ""
    )
    stat = "; fitted to the fastest repeat" if m["fit_statistic"] == "min" else ""
    console.print(
        f"wrote {d}/ ({', '.join(m['modules'])}; kernel "
        f"{m['weight_quantisation']['kernel']}{scaled}{stat}; {m['wall_s']:.0f} s)",
        highlight=False,
    )
    _print_roofline(d)


@profile_app.command("check")
def profile_check_cmd(
    path: Path = typer.Argument(
        ...,
        help="A profile directory, or a device/model directory "
        "or profiles/ root (every profile below it).",
    ),
    roofline: bool = typer.Option(
        True, "--roofline/--no-roofline", help="Also print the distance to the measured roofline."
    ),
    model: str | None = typer.Option(None, "--model", "-m", help="Require profiles of this model."),
    precision: str | None = typer.Option(
        None, "--precision", "-p", help="Require profiles at this precision."
    ),
) -> None:
    """Print each profile's held-out error (leave-one-out MAPE per grid slice, and the
    median) and its distance to the roofline of the device's measured bandwidth."""
    from sunsim.errors import ProfileError
    from sunsim.latency.profiled import ProfiledLatency, resolve_profile

    if model or precision or (path / "meta.json").exists():
        dirs = [resolve_profile(path, model, precision)]
        ProfiledLatency.from_dir(dirs[0], model=model, precision=precision)  # checks the match
    else:
        dirs = sorted(p.parent for p in path.glob("**/meta.json"))
    if not dirs:
        raise ProfileError(
            f"{path}: no profile (meta.json) here or below; make one with "
            "`sunsim profile --model NAME --device cpu|cuda`"
        )
    meds = []
    for d in dirs:
        meds.append(_print_check(d))
        if roofline:
            _print_roofline(d)
    if len(meds) > 1:
        console.print(
            "median held-out MAPE per profile: "
            + ", ".join(f"{d.relative_to(path)} {m:.2f}%" for d, m in zip(dirs, meds)),
            highlight=False,
        )


# --- plan: fewest workers per mode under an SLO; sweeps -------------------------------------


def _plan_inputs(scenario_file: Path | None, plan_opts: dict, **opts):
    """Scenario and :class:`~sunsim.planner.PlanOptions` from a scenario TOML (its optional
    ``[plan]`` table holds the plan options, as ``sunsim plan`` writes it) overridden by the
    options given on the command line (None = not given)."""
    import dataclasses

    from sunsim.config import Scenario
    from sunsim.errors import ConfigError
    from sunsim.planner import PlanOptions, load_plan_toml

    base, popts = Scenario(), PlanOptions()
    if scenario_file is not None:
        base, popts = load_plan_toml(scenario_file)
    try:
        s = dataclasses.replace(base, **{k: v for k, v in opts.items() if v is not None})
        popts = dataclasses.replace(popts, **{k: v for k, v in plan_opts.items() if v is not None})
    except (TypeError, ValueError) as e:
        raise ConfigError(f"bad option value: {e}") from None
    return s, popts


@app.command()
def plan(
    trace: Path | None = typer.Argument(
        None, help="Trace file (as for replay); default: the bundled synthetic trace."
    ),
    scenario: Path | None = typer.Option(
        None,
        "--scenario",
        help="Scenario TOML (a plan "
        "directory's scenario.toml repeats that plan); "
        "options given here override it.",
    ),
    mode: str | None = typer.Option(
        None, help="partitioned, sun, qsun, a comma list, or all [default: all]"
    ),
    models: str | None = typer.Option(None, help="Served task models [math,code,tool]"),
    model: str | None = typer.Option(None, help="Base architecture [llama-3.1-8b]"),
    zipf: float | None = typer.Option(None, help="Label requests by Zipf(alpha) popularity."),
    shares: str | None = typer.Option(None, help="Label requests by explicit shares."),
    model_map: str | None = typer.Option(
        None, "--model-map", help="Map the trace's models, e.g. ChatGPT=math,GPT-4=code."
    ),
    gpu: str | None = typer.Option(None, help="h100, h200 or a100 [h100]"),
    qsun_precision: str | None = typer.Option(
        None, "--qsun-precision", help="w4a16 or w8a16 [w4a16]"
    ),
    slo_ttft: float | None = typer.Option(None, "--slo-ttft", help="TTFT bound, seconds [2]"),
    slo_tpot: float | None = typer.Option(None, "--slo-tpot", help="TPOT bound, seconds [0.1]"),
    slo_attainment: float | None = typer.Option(
        None,
        "--slo-attainment",
        help="Attainment target; also the percentile of --slo-kind percentile [0.9]",
    ),
    slo_kind: str | None = typer.Option(
        None,
        "--slo-kind",
        help="attainment: every model's "
        "joint SLO attainment >= target; percentile: every "
        "model's p90 TTFT and p90 TPOT within the bounds "
        "[attainment]",
    ),
    prefill_target: float | None = typer.Option(
        None,
        "--prefill-target",
        help="TTFT-only attainment prefill pools are sized for [(1 + target) / 2]",
    ),
    latency: str | None = typer.Option(None, help="auto, profile or roofline [auto]"),
    profile: Path | None = typer.Option(None, help="Profile directory for step times."),
    router: str | None = typer.Option(None, help="Decode router [least_loaded]"),
    max_num_seqs: int | None = typer.Option(None, "--max-num-seqs", help="Decode batch cap [256]"),
    fmt: str | None = typer.Option(None, "--format", help="Force the trace format."),
    rate_scale: float | None = typer.Option(
        None, "--rate-scale", help="Multiply the request rate."
    ),
    window: str | None = typer.Option(None, help="Keep arrivals in START,END seconds."),
    max_requests: int | None = typer.Option(None, "--max-requests"),
    seed: int | None = typer.Option(None, help="Seed for labelling and routing [0]"),
    prefill_workers: str | None = typer.Option(
        None,
        "--prefill-workers",
        help="Goodput only (rate sweeps): prefill workers, one or one per model [1].",
    ),
    decode_workers: str | None = typer.Option(
        None,
        "--decode-workers",
        help="Goodput only (rate sweeps): total decode workers, or one per model [4].",
    ),
    sweep: str | None = typer.Option(
        None,
        "--sweep",
        help="rate=1,2,4 (capacity against load, and goodput) or zipf=0,0.5,1 (against skew).",
    ),
    jobs: int | None = typer.Option(
        None, "--jobs", "-j", help="Simulation processes [number of CPUs]"
    ),
    max_workers: int | None = typer.Option(
        None, "--max-workers", help="Search cap per pool [4096]"
    ),
    out: Path | None = typer.Option(None, help="Plan directory [runs/plan-<time>]"),
    cache: bool = typer.Option(True, "--cache/--no-cache", help="Reuse and extend DIR/cache.json."),
    replays: bool = typer.Option(
        True,
        "--replays/--no-replays",
        help="Write each mode's final simulation as DIR/replay_<mode>/.",
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
) -> None:
    """Find, for each mode, the fewest decode workers (partitioned: per model; sun/qsun: one
    pool) and prefill workers per model that meet the SLO; print and write the plan."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from sunsim.errors import ConfigError
    from sunsim.planner import parse_sweep, write_plan
    from sunsim.planner import plan as run_plan
    from sunsim.replay import default_run_dir

    win = _split(window, "--window", float)
    if win is not None and len(win) != 2:
        raise ConfigError("--window takes START,END in seconds")
    out_dir = out or default_run_dir("plan")
    s, popts = _plan_inputs(
        scenario,
        dict(
            slo_kind=slo_kind,
            prefill_target=prefill_target,
            max_workers=max_workers,
            jobs=jobs,
            sweep=parse_sweep(sweep) if sweep else None,
            cache_file=str(out_dir / "cache.json") if cache else None,
        ),
        trace=str(trace) if trace else None,
        trace_format=fmt,
        window_s=win,
        rate_scale=rate_scale,
        max_requests=max_requests,
        modes=_modes(mode),
        base_model=model,
        served_models=_split(models, "--models"),
        zipf=zipf,
        shares=_split(shares, "--shares", float),
        model_map=_model_map(model_map),
        gpu=gpu,
        prefill_workers=_split(prefill_workers, "--prefill-workers", int),
        decode_workers=_split(decode_workers, "--decode-workers", int),
        qsun_precision=qsun_precision,
        slo_ttft_s=slo_ttft,
        slo_tpot_s=slo_tpot,
        slo_attainment=slo_attainment,
        latency=latency,
        profile=str(profile) if profile else None,
        decode_router=router,
        max_num_seqs=max_num_seqs,
        seed=seed,
    )
    if not cache:
        import dataclasses

        popts = dataclasses.replace(popts, cache_file=None)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        disable=not progress,
        transient=True,
    ) as bar:
        task = bar.add_task("simulations", total=0)
        counts = {"submit": 0, "done": 0}

        def on_event(kind: str, info: dict) -> None:
            if kind in counts:
                counts[kind] += 1
                bar.update(
                    task,
                    total=counts["submit"],
                    completed=counts["done"],
                    description=f"simulations ({info['task']})",
                )

        r = run_plan(s, popts, on_event=on_event)
    ref = r.points[r.reference]
    info = ref.workload_info
    console.print(
        f"trace [bold]{info.get('path', s.trace)}[/] ({info.get('format')}): "
        f"{info.get('num_requests')} requests, {info.get('mean_rate', 0):.2f} req/s; "
        "models ("
        + ref.labelling
        + "): "
        + ", ".join(f"{m} {c}" for m, c in ref.model_counts.items()),
        highlight=False,
    )
    for note in r.latency_notes:
        console.print(f"latency {note}", highlight=False)
    _print_plan_table(r.table(r.reference), s, popts, r)
    if popts.sweep is not None:
        _print_sweep(r)
    files = write_plan(r, out_dir, command="sunsim " + " ".join(sys.argv[1:]), replays=replays)
    console.print(
        f"{r.num_simulations} simulations ({r.num_cached} cached) in "
        f"{r.wall_s:.1f} s with {r.jobs} processes; wrote {out_dir}/ (plan.json, "
        f"plan.csv, scenario.toml{', sweep.csv' if popts.sweep else ''}"
        f"{', replay_<mode>/' if replays else ''}; {len(files)} files)",
        highlight=False,
    )


def _print_plan_table(df, s, popts, r) -> None:
    import pandas as pd

    method = ",".join(sorted(set(df["method"])))
    t = pd.DataFrame(
        {
            "decode workers (per pool)": df["decode_workers"].tolist(),
            "prefill workers (per model)": df["prefill_workers"].tolist(),
            "GPUs (prefill+decode)": [
                f"{a}+{b} = {a + b}" for a, b in zip(df["num_prefill_gpus"], df["num_decode_gpus"])
            ],
            "SLO attainment": [f"{x:.1%}" for x in df["slo_attainment"]],
            "TTFT p90 (s)": [f"{x:.3f}" for x in df["ttft_s_p90"]],
            "TPOT p50 / p90 (ms)": [
                f"{a * 1e3:.1f} / {b * 1e3:.1f}" for a, b in zip(df["tpot_s_p50"], df["tpot_s_p90"])
            ],
            "throughput per GPU (tok/s)": [f"{x:.1f}" for x in df["throughput_per_gpu"]],
        },
        index=df["mode"].tolist(),
    )
    if "gpus_saved_vs_partitioned" in df:
        t["saving vs partitioned"] = [
            f"{g} GPUs ({p:.0f}%), x{x:.2f} tok/s/GPU"
            for g, p, x in zip(
                df["gpus_saved_vs_partitioned"],
                df["saving_pct_vs_partitioned"],
                df["throughput_per_gpu_vs_partitioned"],
            )
        ]
    sweep = ""
    if popts.sweep is not None:
        sweep = f" at {popts.sweep[0]} = {r.points[r.reference].sweep_value:g}"
    _print_table(
        t.T,
        f"sunsim plan on {s.gpu} ({method} step times){sweep}: SLO TTFT <= "
        f"{s.slo_ttft_s} s, TPOT <= {s.slo_tpot_s} s, {popts.slo_kind} "
        f"{s.slo_attainment:.0%} per model",
    )


def _print_sweep(r) -> None:
    df = r.table()
    key = r.options.sweep[0]
    piv = df.pivot(index="sweep_value", columns="mode", values="num_gpus")
    dec = df.pivot(index="sweep_value", columns="mode", values="num_decode_gpus")
    tpg = df.pivot(index="sweep_value", columns="mode", values="throughput_per_gpu")
    cols = {}
    for m in piv.columns:
        cols[f"{m} decode / all GPUs"] = [f"{d} / {a}" for d, a in zip(dec[m], piv[m])]
        cols[f"{m} tok/s/GPU"] = [f"{x:.0f}" for x in tpg[m]]
    import pandas as pd

    _print_table(pd.DataFrame(cols, index=[f"{key} {v:g}" for v in piv.index]), f"sweep over {key}")
    if r.goodput is not None:
        gp = r.goodput.attrs.get("goodput", {})
        w = r.goodput.attrs.get("workers", {})
        for m, v in gp.items():
            console.print(
                f"goodput {m} (prefill {w[m]['prefill']}, decode {w[m]['decode']}): "
                f"rate scale {v:.3g}",
                highlight=False,
            )


# --- report: HTML + Markdown for a replay run or a plan -------------------------------------


@app.command()
def report(
    path: Path = typer.Argument(
        ..., help="A `sunsim replay` run directory or a `sunsim plan` directory."
    ),
) -> None:
    """Render DIR/report.html (self-contained, figures embedded) and DIR/report.md (with
    DIR/report_figures/*.png) for a replay run or a plan."""
    from sunsim.report.html import write_report

    out = write_report(path, command="sunsim " + " ".join(sys.argv[1:]))
    console.print(
        f"{out['kind']} report ({out['method']} step times): wrote {out['html']} and "
        f"{out['markdown']} ({len(out['figures'])} figures in "
        f"{out['figures'][0].parent if out['figures'] else path})",
        highlight=False,
        soft_wrap=True,
    )


# --- validate: queueing theory ----------------------------------------------------------------

validate_app = _typer(
    help="Check the simulator: against queueing theory (sunsim validate queueing)."
)
app.add_typer(validate_app, name="validate")


@validate_app.command("queueing")
def validate_queueing_cmd(
    requests: int = typer.Option(
        200_000,
        "--requests",
        "-n",
        help="Requests per run (the mean wait of a loaded queue needs about 200k for 3%).",
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the arrival and service times."),
    servers: str = typer.Option(
        "1,2,4", "--servers", help="Decode workers of the M/M/c runs, comma-separated."
    ),
    rhos: str = typer.Option("0.5,0.8", "--rhos", help="Loads per server, comma-separated."),
) -> None:
    """Run the engine as M/M/c (c = 1, 2, 4 decode workers behind the central FCFS queue) and
    as M/D/1, at loads 0.5 and 0.8; compare the probability of waiting and the mean wait with
    Erlang C and Pollaczek-Khinchine, check Little's law, and compare every request's wait
    with the exact FCFS recursion. Exits 1 if a check fails."""
    from rich import box
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from sunsim.validate.queueing import PATHWISE_TOL_S, run_queueing_checks

    with Progress(
        TextColumn("{task.description:>28}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} runs"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    ) as bar:
        task = bar.add_task("queueing", total=None)
        df = run_queueing_checks(
            num_requests=requests,
            seed=seed,
            servers=_split(servers, "--servers", int),
            rhos=_split(rhos, "--rhos", float),
            on_progress=lambda done, total, label: bar.update(
                task, completed=done, total=total, description=label
            ),
        )
    tol = df.attrs["rel_tol"]
    t = Table(
        title=f"{requests:,} requests per run, seed {seed}, "
        f"mean service {df.attrs['mean_service_s']:g} s",
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
    for c in ("queue", "quantity", "sim", "theory", "error", "99% CI", "ok"):
        t.add_column(c, justify="left" if c in ("queue", "quantity") else "right", no_wrap=True)
    for r in df.itertuples(index=False):
        ci = "" if r.ci99_rel != r.ci99_rel else f"±{r.ci99_rel:.1%}"
        ok = {"tolerance": "[green]ok[/]", "ci99": "[yellow]ok*[/]"}.get(r.ok_by, "[red]FAIL[/]")
        queue = r.queue.replace("M/M/c c=", "M/M/")
        t.add_row(
            queue,
            r.quantity,
            f"{r.simulated:.4g}",
            f"{r.theory:.4g}",
            f"{r.rel_error:+.1%}",
            ci,
            ok,
        )
    console.print(t)
    console.print(
        f"theory: P(wait) = Erlang C(c, a), a = lambda/mu (M/M/c), rho (M/D/1, "
        f"PASTA); mean wait = C(c, a) / (c mu - lambda) (M/M/c), Pollaczek-Khinchine "
        f"rho S / (2 (1 - rho)) (M/D/1); Little's law: time-average L vs lambda W. "
        f"ok: within {tol:.0%}; ok*: outside {tol:.0%} but within the 99% confidence "
        f"interval (regenerative), which is wider: a short run.",
        highlight=False,
        soft_wrap=True,
    )
    dev = df["max_dev_s"].max()
    console.print(
        f"every request's wait vs the exact FCFS recursion (Lindley / Kiefer-Wolfowitz) "
        f"on the same inputs: largest difference {dev:.1e} s (limit "
        f"{PATHWISE_TOL_S:.0e} s)",
        highlight=False,
    )
    wall = df["wall_s"].sum()
    failed = df[~df["ok"]]
    if len(failed):
        exact_bad = failed[failed["max_dev_s"] > PATHWISE_TOL_S]
        for r in failed.itertuples(index=False):
            why = (
                f"differs from the exact FCFS recursion by {r.max_dev_s:.2e} s"
                if r.max_dev_s > PATHWISE_TOL_S
                else f"{r.rel_error:+.2%} from theory, outside {tol:.0%}"
                + ("" if r.ci99_rel != r.ci99_rel else f" and the 99% interval ±{r.ci99_rel:.1%}")
            )
            err_console.print(f"FAILED {r.check}: {why}", highlight=False, soft_wrap=True)
        if not len(exact_bad):
            err_console.print(
                "(the engine matched the exact recursion request by request; a "
                "statistical miss: try more --requests or another --seed)",
                highlight=False,
                soft_wrap=True,
            )
        raise typer.Exit(code=1)
    by_ci = int((df["ok_by"] == "ci99").sum())
    note = (
        f"; {by_ci} within their 99% interval only (run more --requests to tighten)"
        if by_ci
        else ""
    )
    console.print(
        f"all {len(df)} checks passed ({wall:.0f} s of simulation){note}", highlight=False
    )


# --- validate: the real engine --------------------------------------------------------------------


def _default_engine_trace() -> Path:
    import os

    root = os.environ.get("SUNSIM_TRACES")
    base = Path(root) if root else Path(__file__).resolve().parents[1].parent / "shared" / "traces"
    return base / "azure_llm_2023_conv.csv"


@validate_app.command("engine")
def validate_engine_cmd(
    device: str = typer.Option("cpu", "--device", "-d", help="cpu or cuda."),
    trace: Path | None = typer.Option(
        None,
        "--trace",
        help="Trace to replay a slice of "
        "[$SUNSIM_TRACES/azure_llm_2023_conv.csv, else "
        "../shared/traces/azure_llm_2023_conv.csv]",
    ),
    requests: int = typer.Option(200, "--requests", "-n", help="The first N requests."),
    model: str = typer.Option("tiny-llama", "--model", "-m", help="Built-in model spec."),
    threads: int = typer.Option(1, "--threads", help="torch threads of each worker process."),
    rate_scale: float = typer.Option(
        0.5,
        "--rate-scale",
        help="Multiply the trace's request rate (0.5: arrivals twice as far apart).",
    ),
    prompt_scale: float = typer.Option(0.125, "--prompt-scale", help="Scale prompt lengths."),
    output_scale: float = typer.Option(0.25, "--output-scale", help="Scale output lengths."),
    max_prompt: int = typer.Option(512, "--max-prompt", help="Clip scaled prompts (tokens)."),
    max_output: int = typer.Option(128, "--max-output", help="Clip scaled outputs (tokens)."),
    max_num_seqs: int = typer.Option(16, "--max-num-seqs", help="Decode batch cap."),
    kv_blocks: int | None = typer.Option(
        None,
        "--kv-blocks",
        help="Decode KV capacity in "
        "16-token blocks [half of what max-num-seqs "
        "requests of the slice's mean context need]",
    ),
    max_num_batched_tokens: int = typer.Option(
        1024, "--max-batch-tokens", help="Prefill batch token budget."
    ),
    statistic: str = typer.Option(
        "split",
        "--statistic",
        help="Profile statistic the "
        "simulation uses: split (prefill medians, decode means), "
        "mean or median (all are reported).",
    ),
    passes: int = typer.Option(
        2, "--passes", help="Profile passes: 1 (before the replay) or 2 (before and after, pooled)."
    ),
    time_per_point: float = typer.Option(
        0.25, "--time-per-point", help="Seconds of repeats per profile grid point and pass."
    ),
    pin: bool = typer.Option(
        False, "--pin/--no-pin", help="Pin the prefill and decode processes to CPUs 0 and 1."
    ),
    concurrent: bool = typer.Option(
        True,
        "--concurrent/--isolated",
        help="Profile each kernel while the other process works "
        "as during the replay (decoding; prefilling now and "
        "then), or with it idle.",
    ),
    prefill_idle: float | None = typer.Option(
        None,
        "--prefill-idle",
        help="Seconds of "
        "sleep before every timed prefill of the "
        "profile [the slice's mean time between "
        "arrivals, at most 0.5]",
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the weights, prompts and routers."),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Output directory [runs/validate-engine-<time>]"
    ),
) -> None:
    """Replay a trace slice through a small real prefill/decode engine (two torch processes,
    continuous batching over a paged KV cache, KV handed over through shared memory), profile
    the engine's own kernels, simulate the same slice with that profile, and print the TTFT,
    TPOT and decode-step errors (goal: median TPOT error <= 5%, median TTFT error <= 10%)."""
    from rich.table import Table

    from sunsim.replay import default_run_dir
    from sunsim.validate.engine import (
        GOAL_TPOT_MEDIAN,
        GOAL_TTFT_MEDIAN,
        EngineCheckOptions,
        run_engine_check,
    )

    opts = EngineCheckOptions(
        trace=str(trace or _default_engine_trace()),
        num_requests=requests,
        rate_scale=rate_scale,
        prompt_scale=prompt_scale,
        output_scale=output_scale,
        max_prompt=max_prompt,
        max_output=max_output,
        device=device,
        model=model,
        threads=threads,
        max_num_seqs=max_num_seqs,
        kv_blocks=kv_blocks,
        max_num_batched_tokens=max_num_batched_tokens,
        pin=pin,
        concurrent=concurrent,
        prefill_idle_s=prefill_idle,
        seed=seed,
        statistic=statistic,
        profile_passes=passes,
        time_per_point_s=time_per_point,
    )
    out_dir = out or default_run_dir("validate-engine")
    with err_console.status("real engine") as status:
        r = run_engine_check(
            opts,
            out_dir,
            command="sunsim " + " ".join(sys.argv[1:]),
            progress=lambda msg: status.update(msg),
        )
    s = r.summary
    st = s["settings"]
    e = s["errors"]
    m = s["medians"]
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
    t = Table(
        title=f"simulated vs measured (error = simulated / measured - 1; profile "
        f"statistic {s['statistic']['primary']}; medians unless marked)",
        title_justify="left",
    )
    for c in ("", "n", "median |err|", "p90 |err|", "median err", "measured", "simulated"):
        t.add_column(c, justify="left" if not c else "right")

    def row(name: str, st_: dict, meas: str = "", sim: str = "") -> None:
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
