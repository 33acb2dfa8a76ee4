"""The ``sunsim`` command line: each command parses, calls one library function, prints.

Bad input raises :class:`sunsim.errors.SunsimError`; the app prints its one-line message
to stderr and exits with code 2, without a traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
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
            err_console.print(f"[bold red]error:[/] {e}", markup=True, highlight=False,
                              soft_wrap=True)
            raise typer.Exit(code=2) from None


def _typer(**kw) -> typer.Typer:
    return typer.Typer(cls=_Group, pretty_exceptions_enable=False, no_args_is_help=True,
                       add_completion=False, **kw)


app = _typer(help="Simulate and plan multi-LLM prefill/decode-disaggregated serving: "
                  "partitioned vs SUN vs QSUN decode.")
trace_app = _typer(help="Inspect and generate request traces.")
app.add_typer(trace_app, name="trace")


def main() -> None:
    """Console-script entry point."""
    app()


# --- commands are added below, one section per area -------------------------------------

# --- trace: info, synth ---------------------------------------------------------------------


@trace_app.command("info")
def trace_info_cmd(
    trace: str = typer.Argument(..., help="Trace file: BurstGPT/Azure/canonical CSV or Mooncake JSONL."),
    fmt: str = typer.Option("auto", "--format", "-f",
                            help="auto, burstgpt, azure, mooncake or canonical."),
    keep_failed: bool = typer.Option(False, "--keep-failed",
                                     help="Keep BurstGPT failed rows (Response tokens == 0)."),
) -> None:
    """Read and validate a trace; print its size, rate, burstiness and token percentiles."""
    from rich.table import Table

    from sunsim.traces import read_trace, trace_info

    info = trace_info(read_trace(trace, fmt, keep_failed=keep_failed))
    table = Table(title=f"{info['path']} ({info['format']})", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    failed = (f", {info['num_failed']} failed ({info['num_failed_excluded']} excluded)"
              if info["format"] == "burstgpt" else "")
    table.add_row("rows", f"{info['num_rows']:,}{failed}")
    table.add_row("requests kept", f"{info['num_requests']:,}")
    if info["num_zero_output"]:
        table.add_row("zero-output rows", f"{info['num_zero_output']:,} (kept with 1 output token)")
    table.add_row("span", f"{info['span_s']:,.1f} s ({info['span_s'] / 60:,.1f} min)")
    table.add_row("mean rate", f"{info['mean_rate']:.3f} req/s")
    table.add_row("inter-arrival CV", f"{info['interarrival_cv']:.2f}")
    for key in ("prompt_tokens", "output_tokens"):
        s = info[key]
        table.add_row(key.replace("_", " "),
                      f"mean {s['mean']:.0f}, p50 {s['p50']:.0f}, p90 {s['p90']:.0f}, "
                      f"p99 {s['p99']:.0f}, max {s['max']:.0f}")
    models = ", ".join(f"{k} {v:,}" for k, v in info["source_models"].items()) or "none in the trace"
    table.add_row("source models", models)
    console.print(table)


@trace_app.command("synth")
def trace_synth_cmd(
    out: str = typer.Argument(..., help="Output canonical CSV."),
    requests: Optional[int] = typer.Option(None, "--requests", "-n", help="Number of requests."),
    duration: Optional[float] = typer.Option(None, "--duration", "-d",
                                             help="Duration in seconds (default 600 if --requests "
                                                  "is not given)."),
    rate: float = typer.Option(6.0, "--rate", help="Mean request rate, requests/s."),
    burstiness: float = typer.Option(2.0, "--burstiness",
                                     help="Inter-arrival coefficient of variation (Gamma; 1 = Poisson)."),
    models: str = typer.Option("math,code,tool", "--models", help="Served models, most popular first."),
    zipf: float = typer.Option(1.2, "--zipf", help="Zipf exponent of model popularity (0 = uniform)."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
) -> None:
    """Write a BurstGPT-style synthetic trace (Gamma arrivals, lognormal lengths, Zipf models)."""
    import numpy as np

    from sunsim.traces import model_counts, synth_command, synth_trace, write_canonical

    if requests is None and duration is None:
        duration = 600.0
    served = [m.strip() for m in models.split(",")]
    df = synth_trace(num_requests=requests, duration_s=duration, rate=rate, burstiness=burstiness,
                     served=served, zipf_alpha=zipf, rng=np.random.default_rng(seed))
    path = write_canonical(df, out)
    span = float(df["arrival_s"].iloc[-1])
    counts = ", ".join(f"{k} {v:,}" for k, v in model_counts(df).items())
    console.print(f"wrote {len(df):,} requests over {span:,.1f} s to {path} ({counts})",
                  highlight=False, soft_wrap=True)
    cmd = synth_command(out, num_requests=requests, duration_s=duration, rate=rate,
                        burstiness=burstiness, served=served, zipf_alpha=zipf, seed=seed)
    console.print(f"regenerate with (seed {seed}): {cmd}", highlight=False, soft_wrap=True,
                  markup=False)



# --- replay ------------------------------------------------------------------------------

def _split(value: Optional[str], option: str, conv=str) -> Optional[tuple]:
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
        raise ConfigError(f"{option}: cannot read '{value}' as a comma-separated list of "
                          f"{conv.__name__} values") from None


def _model_map(value: Optional[str]) -> Optional[tuple]:
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


def build_scenario(scenario_file: Optional[Path], **opts) -> "Scenario":
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
        base = scenario_from_toml_dict(data, source=str(scenario_file))
    changes = {k: v for k, v in opts.items() if v is not None}
    try:
        return dataclasses.replace(base, **changes)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"bad option value: {e}") from None


def _modes(mode: Optional[str]) -> Optional[tuple]:
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
    trace: Optional[Path] = typer.Argument(None, help="Trace file (BurstGPT/Azure CSV, Mooncake "
                                           "JSONL, canonical CSV); default: the bundled "
                                           "synthetic trace."),
    scenario: Optional[Path] = typer.Option(None, "--scenario", help="Scenario TOML; options "
                                            "given on the command line override it."),
    mode: Optional[str] = typer.Option(None, help="partitioned, sun, qsun, a comma list, or all "
                                       "[default: all]"),
    models: Optional[str] = typer.Option(None, help="Served task models, comma-separated "
                                         "[default: math,code,tool]"),
    model: Optional[str] = typer.Option(None, help="Base architecture: llama-3.1-8b, qwen3-8b, "
                                        "tiny-llama [default: llama-3.1-8b]"),
    zipf: Optional[float] = typer.Option(None, help="Label requests by Zipf(alpha) popularity."),
    shares: Optional[str] = typer.Option(None, help="Label requests by explicit shares, e.g. "
                                         "0.6,0.3,0.1."),
    model_map: Optional[str] = typer.Option(None, "--model-map", help="Map the trace's own "
                                            "models, e.g. ChatGPT=math,GPT-4=code."),
    prefill_workers: Optional[str] = typer.Option(None, "--prefill-workers", help="One count "
                                                  "for every model, or one per model [1]."),
    decode_workers: Optional[str] = typer.Option(None, "--decode-workers", help="Total decode "
                                                 "workers (split over partitioned's pools by "
                                                 "output-token share), or one per model [3]."),
    gpu: Optional[str] = typer.Option(None, help="h100, h200 or a100 [default: h100]"),
    qsun_precision: Optional[str] = typer.Option(None, "--qsun-precision", help="w4a16 or "
                                                 "w8a16 [w4a16]"),
    slo_ttft: Optional[float] = typer.Option(None, "--slo-ttft", help="TTFT SLO, seconds [2]"),
    slo_tpot: Optional[float] = typer.Option(None, "--slo-tpot", help="TPOT SLO, seconds [0.1]"),
    slo_attainment: Optional[float] = typer.Option(None, "--slo-attainment",
                                                   help="Attainment target [0.9]"),
    latency: Optional[str] = typer.Option(None, help="auto, profile or roofline [auto]"),
    profile: Optional[Path] = typer.Option(None, help="Profile directory (sunsim profile "
                                           "output) to take step times from."),
    router: Optional[str] = typer.Option(None, help="Decode router: round_robin, least_loaded, "
                                         "least_kv, power_of_two [least_loaded]"),
    max_num_seqs: Optional[int] = typer.Option(None, "--max-num-seqs", help="Decode batch cap "
                                               "[256]"),
    fmt: Optional[str] = typer.Option(None, "--format", help="Force the trace format: burstgpt, "
                                      "azure, mooncake, canonical."),
    keep_failed: Optional[bool] = typer.Option(None, "--keep-failed", help="Keep BurstGPT's "
                                               "failed requests."),
    rate_scale: Optional[float] = typer.Option(None, "--rate-scale", help="Multiply the request "
                                               "rate (compress time)."),
    window: Optional[str] = typer.Option(None, help="Keep arrivals in START,END seconds."),
    max_requests: Optional[int] = typer.Option(None, "--max-requests"),
    seed: Optional[int] = typer.Option(None, help="Seed for labelling and routing [0]"),
    out: Optional[Path] = typer.Option(None, help="Run directory [runs/replay-<time>]"),
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
        scenario, trace=str(trace) if trace else None, trace_format=fmt, keep_failed=keep_failed,
        window_s=win, rate_scale=rate_scale, max_requests=max_requests, modes=_modes(mode),
        base_model=model, served_models=_split(models, "--models"), zipf=zipf,
        shares=_split(shares, "--shares", float), model_map=_model_map(model_map), gpu=gpu,
        prefill_workers=_split(prefill_workers, "--prefill-workers", int),
        decode_workers=_split(decode_workers, "--decode-workers", int),
        qsun_precision=qsun_precision, slo_ttft_s=slo_ttft, slo_tpot_s=slo_tpot,
        slo_attainment=slo_attainment, latency=latency, profile=str(profile) if profile else None,
        decode_router=router, max_num_seqs=max_num_seqs, seed=seed)
    wl = load_workload(s)
    info = wl.info
    console.print(f"trace [bold]{info.get('path', s.trace)}[/] ({info.get('format')}): "
                  f"{len(wl.requests)} requests over {info.get('span_s', 0):.0f} s, "
                  f"{info.get('mean_rate', 0):.2f} req/s, inter-arrival CV "
                  f"{info.get('interarrival_cv', 0):.2f}", highlight=False)
    console.print("models (" + wl.labelling + "): " + ", ".join(
        f"{m} {c}" for m, c in wl.model_counts.items()), highlight=False)
    with Progress(TextColumn("{task.description:>12}"), BarColumn(), TextColumn(
            "{task.percentage:>3.0f}%"), TimeElapsedColumn(), console=err_console,
            disable=not progress, transient=True) as bar:
        tasks = {m: bar.add_task(m, total=1.0) for m in s.modes}
        r = run_replay(s, wl, on_progress=lambda m, f: bar.update(tasks[m], completed=f))
    for note in r.latency_notes:
        console.print(f"latency {note}", highlight=False)
    method = {x["method"] for x in r.summaries.values()}
    _print_table(r.table(), f"sunsim replay on {s.gpu} ({', '.join(sorted(method))} step "
                            f"times), SLO TTFT <= {s.slo_ttft_s} s, TPOT <= {s.slo_tpot_s} s")
    for line in sun_vs_partitioned(r.summaries):
        console.print(line, highlight=False)
    out_dir = out or default_run_dir("replay")
    write_run(r, out_dir, records_format, command="sunsim " + " ".join(sys.argv[1:]))
    console.print(f"wrote {out_dir}/ (scenario.toml, summary.json, records_<mode>."
                  f"{records_format}, ...)", highlight=False)


# --- profile: measure latency profiles; profile check ----------------------------------------

profile_app = _typer(help="Measure prefill/decode latency profiles with torch (sunsim profile "
                          "--model NAME --device cpu|cuda --precision bf16|w8a16|w4a16), or "
                          "check one (sunsim profile check DIR).",
                     invoke_without_command=True)
app.add_typer(profile_app, name="profile")


def _profile_ints(value: Optional[str], option: str) -> Optional[tuple]:
    if value is None:
        return None
    try:
        out = tuple(int(x) for x in value.split(",") if x.strip())
    except ValueError:
        from sunsim.errors import ProfileError
        raise ProfileError(f"{option} takes comma-separated integers, got '{value}'") from None
    if not out:
        from sunsim.errors import ProfileError
        raise ProfileError(f"{option} is empty")
    return out


def _print_roofline(d) -> None:
    from rich.table import Table

    from sunsim.profiling.analysis import roofline_ratios, roofline_summary

    df = roofline_ratios(d)
    bw, rate = df.attrs["copy_bandwidth_bytes_per_s"], df.attrs["matmul_flops_per_s"]
    s = roofline_summary(df)
    for mod, col, head in (("decode", "ratio", "decode step time / (bytes moved / measured "
                                               f"bandwidth {bw / 1e9:.1f} GB/s)"),
                           ("prefill", "matmul_fraction", "prefill achieved FLOP/s / measured "
                                                          f"matmul rate {rate / 1e12:.2f} "
                                                          "TFLOP/s")):
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
    console.print(f"decode / roofline: median {s['decode_ratio_median']:.2f}x "
                  f"(range {s['decode_ratio_min']:.2f}-{s['decode_ratio_max']:.2f}); "
                  f"prefill at {100 * s['prefill_fraction_median']:.0f}% of the matmul rate "
                  f"(median, best {100 * s['prefill_fraction_max']:.0f}%)"
                  if s["prefill_fraction_median"] == s["prefill_fraction_median"] else
                  f"decode / roofline: median {s['decode_ratio_median']:.2f}x "
                  f"(range {s['decode_ratio_min']:.2f}-{s['decode_ratio_max']:.2f})",
                  highlight=False)


def _print_check(d) -> float:
    from rich.table import Table

    from sunsim.latency.profiled import check_profile

    df = check_profile(d)
    t = Table(title=f"held-out error (leave-one-out) of {df.attrs['profile']}",
              title_justify="left")
    for c in ("module", "slice", "points", "MAPE %", "max APE %", "fit-only MAPE %"):
        t.add_column(c, justify="right")
    for r in df.itertuples(index=False):
        t.add_row(r.module, r.slice, str(r.points), f"{r.mape_pct:.2f}", f"{r.max_ape_pct:.2f}",
                  f"{r.fit_only_mape_pct:.2f}")
    console.print(t)
    console.print(f"decode fit: t = {df.attrs['decode_fit']} s", highlight=False)
    if df.attrs["prefill_fit"]:
        console.print(f"prefill fit: t = {df.attrs['prefill_fit']} s", highlight=False)
    med = df.attrs["median_mape_pct"]
    console.print(f"median held-out MAPE: [bold]{med:.2f}%[/] ({df.attrs['description']})",
                  highlight=False)
    return med


@profile_app.callback()
def profile_cmd(
    ctx: typer.Context,
    model: str = typer.Option("llama-3.1-8b", "--model", "-m",
                              help="Built-in model spec (llama-3.1-8b, qwen3-8b, tiny-llama)."),
    device: str = typer.Option("auto", "--device", "-d",
                               help="cpu, cuda (cuda:N) or auto (cuda when available)."),
    precision: str = typer.Option("bf16", "--precision", "-p",
                                  help="bf16 (prefill + decode), w8a16 or w4a16 (decode only)."),
    quick: bool = typer.Option(False, "--quick", help="Tiny grid and few repeats (tests); "
                               "written under <device-slug>-quick/."),
    out: Path = typer.Option(Path("profiles"), "--out", "-o", help="Root directory."),
    layers: Optional[int] = typer.Option(None, "--layers", help="Layers to run (rest scaled); "
                                         "default all, or 2 (quick 1) on a CPU for models over "
                                         "2 GiB, or what fits the GPU."),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads for torch."),
    batch_sizes: Optional[str] = typer.Option(None, "--batch-sizes",
                                              help="Decode batch sizes, e.g. 1,2,4,8."),
    contexts: Optional[str] = typer.Option(None, "--contexts",
                                           help="Decode context tokens per request, e.g. "
                                                "128,512,2048."),
    prefill_batch_sizes: Optional[str] = typer.Option(None, "--prefill-batch-sizes",
                                                      help="Prefill batch sizes, e.g. 1,2,4."),
    prompt_tokens: Optional[str] = typer.Option(None, "--prompt-tokens",
                                                help="Prefill prompt tokens, e.g. 64,256,1024."),
    max_prefill_tokens: Optional[int] = typer.Option(None, "--max-prefill-tokens",
                                                     help="Largest prefill batch (tokens)."),
    warmup: Optional[int] = typer.Option(None, "--warmup", help="Warm-up calls per point."),
    repeats: Optional[int] = typer.Option(None, "--repeats", help="Minimum timed repeats."),
    max_repeats: Optional[int] = typer.Option(None, "--max-repeats",
                                              help="Maximum timed repeats."),
    time_per_point: Optional[float] = typer.Option(None, "--time-per-point",
                                                   help="Seconds of repeats per grid point."),
    cuda_graphs: bool = typer.Option(False, "--cuda-graphs",
                                     help="Replay decode steps as CUDA graphs."),
    force: bool = typer.Option(False, "--force", help="Replace an existing profile."),
    seed: int = typer.Option(0, "--seed", help="Seed of the random weights and inputs."),
) -> None:
    """Measure a latency profile: prefill over prompt lengths x batch sizes, decode over
    batch size x context, on random weights with real kernels; write
    <out>/<device-slug>/<model>/<precision>/{prefill.csv,decode.csv,meta.json}."""
    if ctx.invoked_subcommand is not None:
        return
    import dataclasses

    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn)

    from sunsim.profiling import (default_grid, default_timing, profile_model,
                                  write_profile)
    from sunsim.profiling._torch import require_torch

    torch = require_torch()
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    kind = "cuda" if device.startswith("cuda") else "cpu"
    g = default_grid(kind, quick)
    g = dataclasses.replace(
        g, decode_batch_sizes=_profile_ints(batch_sizes, "--batch-sizes") or g.decode_batch_sizes,
        decode_context_tokens=_profile_ints(contexts, "--contexts") or g.decode_context_tokens,
        prefill_batch_sizes=(_profile_ints(prefill_batch_sizes, "--prefill-batch-sizes")
                             or g.prefill_batch_sizes),
        prefill_prompt_tokens=(_profile_ints(prompt_tokens, "--prompt-tokens")
                               or g.prefill_prompt_tokens),
        prefill_max_tokens=max_prefill_tokens or g.prefill_max_tokens)
    tm = default_timing(kind, quick)
    tm = dataclasses.replace(
        tm, warmup=tm.warmup if warmup is None else warmup,
        min_repeats=tm.min_repeats if repeats is None else repeats,
        max_repeats=max(tm.max_repeats if max_repeats is None else max_repeats,
                        tm.min_repeats if repeats is None else repeats),
        time_per_point_s=tm.time_per_point_s if time_per_point is None else time_per_point,
        cuda_graphs=cuda_graphs)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=err_console, transient=True) as bar:
        task = bar.add_task(f"profiling {model} {precision} on {device}", total=None)
        prof = profile_model(model, device, precision, quick=quick, grid=g, timing=tm,
                             layers=layers, threads=threads, seed=seed,
                             command="sunsim " + " ".join(sys.argv[1:]),
                             progress=lambda done, total, label: bar.update(
                                 task, completed=done, total=total,
                                 description=f"{model} {precision}: {label}"))
    d = write_profile(prof, out, force=force)
    m = prof.meta
    console.print(f"{m['device_name']} ({m['device_kind']}, {m['threads']} threads, torch "
                  f"{m['torch_version']}): copy {m['copy_bandwidth_bytes_per_s'] / 1e9:.1f} GB/s, "
                  f"BF16 matmul {m['matmul_flops_per_s'] / 1e12:.2f} TFLOP/s", highlight=False)
    scaled = (f"; {m['layers_run']} of {m['layers_total']} layers run, scaled"
              if m["layers_run"] != m["layers_total"] else "")
    console.print(f"wrote {d}/ ({', '.join(m['modules'])}; kernel "
                  f"{m['weight_quantisation']['kernel']}{scaled}; {m['wall_s']:.0f} s)",
                  highlight=False)
    _print_roofline(d)


@profile_app.command("check")
def profile_check_cmd(
    path: Path = typer.Argument(..., help="A profile directory, or a device/model directory "
                                          "or profiles/ root (every profile below it)."),
    roofline: bool = typer.Option(True, "--roofline/--no-roofline",
                                  help="Also print the distance to the measured roofline."),
    model: Optional[str] = typer.Option(None, "--model", "-m",
                                        help="Require profiles of this model."),
    precision: Optional[str] = typer.Option(None, "--precision", "-p",
                                            help="Require profiles at this precision."),
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
        raise ProfileError(f"{path}: no profile (meta.json) here or below; make one with "
                           "`sunsim profile --model NAME --device cpu|cuda`")
    meds = []
    for d in dirs:
        meds.append(_print_check(d))
        if roofline:
            _print_roofline(d)
    if len(meds) > 1:
        console.print("median held-out MAPE per profile: " + ", ".join(
            f"{d.relative_to(path)} {m:.2f}%" for d, m in zip(dirs, meds)), highlight=False)
