"""``sunsim profile`` (measure prefill/decode latency profiles with torch) and
``sunsim profile check DIR`` (held-out error and distance to the roofline)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from sunsim.cli.app import app, make_typer
from sunsim.cli.format import command_line, console, progress_bar
from sunsim.cli.profile_checks import checked_request

profile_app = make_typer(
    help="Measure prefill/decode latency profiles with torch (sunsim profile "
    "--model NAME --device cpu|cuda --precision bf16|w8a16|w4a16), or "
    "check one (sunsim profile check DIR).",
    invoke_without_command=True,
)
app.add_typer(profile_app, name="profile")


def _print_roofline(d: Path) -> None:
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


def _print_check(d: Path) -> float:
    from rich.table import Table

    from sunsim.latency.profile_check import check_profile

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
    return float(med)


ModelOpt = Annotated[
    str,
    typer.Option("--model", "-m", help="Built-in model spec (llama-3.1-8b, qwen3-8b, tiny-llama)."),
]
DeviceOpt = Annotated[
    str, typer.Option("--device", "-d", help="cpu, cuda (cuda:N) or auto (cuda when available).")
]
PrecisionOpt = Annotated[
    str,
    typer.Option(
        "--precision", "-p", help="bf16 (prefill + decode), w8a16 or w4a16 (decode only)."
    ),
]
QuickOpt = Annotated[
    bool,
    typer.Option(
        "--quick", help="Tiny grid and few repeats (tests); written under <device-slug>-quick/."
    ),
]
OutOpt = Annotated[Path, typer.Option("--out", "-o", help="Root directory.")]
LayersOpt = Annotated[
    int | None,
    typer.Option(
        "--layers",
        help="Layers to run (rest scaled); default all, or 2 (quick 1) on a CPU for models "
        "over 2 GiB, or what fits the GPU.",
    ),
]
ThreadsOpt = Annotated[int | None, typer.Option("--threads", help="CPU threads for torch.")]
BatchSizesOpt = Annotated[
    str | None, typer.Option("--batch-sizes", help="Decode batch sizes, e.g. 1,2,4,8.")
]
ContextsOpt = Annotated[
    str | None,
    typer.Option("--contexts", help="Decode context tokens per request, e.g. 128,512,2048."),
]
PrefillBatchSizesOpt = Annotated[
    str | None, typer.Option("--prefill-batch-sizes", help="Prefill batch sizes, e.g. 1,2,4.")
]
PromptTokensOpt = Annotated[
    str | None, typer.Option("--prompt-tokens", help="Prefill prompt tokens, e.g. 64,256,1024.")
]
MaxPrefillTokensOpt = Annotated[
    int | None, typer.Option("--max-prefill-tokens", help="Largest prefill batch (tokens).")
]
WarmupOpt = Annotated[int | None, typer.Option("--warmup", help="Warm-up calls per point.")]
RepeatsOpt = Annotated[int | None, typer.Option("--repeats", help="Minimum timed repeats.")]
MaxRepeatsOpt = Annotated[int | None, typer.Option("--max-repeats", help="Maximum timed repeats.")]
TimePerPointOpt = Annotated[
    float | None, typer.Option("--time-per-point", help="Seconds of repeats per grid point.")
]
PassesOpt = Annotated[
    int | None,
    typer.Option(
        "--passes", help="Sweeps over the grid, repeats pooled (default: cpu 20, cuda/quick 1)."
    ),
]
CudaGraphsOpt = Annotated[
    bool, typer.Option("--cuda-graphs", help="Replay decode steps as CUDA graphs.")
]
StatisticOpt = Annotated[
    str,
    typer.Option(
        "--statistic",
        help="What the latency model fits: median or min (the fastest repeat); auto = median "
        "on cuda, min on a (shared) cpu.",
    ),
]
ForceOpt = Annotated[bool, typer.Option("--force", help="Replace an existing profile.")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of the random weights and inputs.")]


@profile_app.callback()
def profile_cmd(
    ctx: typer.Context,
    model: ModelOpt = "llama-3.1-8b",
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "bf16",
    quick: QuickOpt = False,
    out: OutOpt = Path("profiles"),
    layers: LayersOpt = None,
    threads: ThreadsOpt = None,
    batch_sizes: BatchSizesOpt = None,
    contexts: ContextsOpt = None,
    prefill_batch_sizes: PrefillBatchSizesOpt = None,
    prompt_tokens: PromptTokensOpt = None,
    max_prefill_tokens: MaxPrefillTokensOpt = None,
    warmup: WarmupOpt = None,
    repeats: RepeatsOpt = None,
    max_repeats: MaxRepeatsOpt = None,
    time_per_point: TimePerPointOpt = None,
    passes: PassesOpt = None,
    cuda_graphs: CudaGraphsOpt = False,
    statistic: StatisticOpt = "auto",
    force: ForceOpt = False,
    seed: SeedOpt = 0,
) -> None:
    """Measure a latency profile: prefill over prompt lengths x batch sizes, decode over
    batch size x context, on random weights with real kernels; write
    <out>/<device-slug>/<model>/<precision>/{prefill.csv,decode.csv,meta.json}."""
    if ctx.invoked_subcommand is not None:
        return
    from sunsim.profiling import write_profile

    req = checked_request(ctx.params)  # every option checked before torch starts work
    kind = "cuda" if req.device.startswith("cuda") else "cpu"
    g = _grid(kind, quick, req.grid, max_prefill_tokens)
    tm = _timing(kind, quick, warmup, repeats, max_repeats, time_per_point, passes)
    tm = _replace(tm, cuda_graphs=cuda_graphs, fit_statistic=req.statistic)
    run = dict(grid=g, timing=tm, layers=layers, threads=threads, seed=seed)
    prof = _measure(req.model, req.device, req.precision, quick, run)
    d = write_profile(prof, out, force=force)
    _print_profile(prof.meta, d)
    _print_roofline(d)


def _replace(obj: Any, **changes: Any) -> Any:
    import dataclasses

    return dataclasses.replace(obj, **changes)


def _grid(kind: str, quick: bool, ints: dict[str, Any], max_prefill_tokens: int | None) -> Any:
    """The default grid of ``kind`` with the grid options given on the command line."""
    from sunsim.profiling import default_grid

    g = default_grid(kind, quick)
    return _replace(
        g,
        decode_batch_sizes=ints["batch_sizes"] or g.decode_batch_sizes,
        decode_context_tokens=ints["contexts"] or g.decode_context_tokens,
        prefill_batch_sizes=ints["prefill_batch_sizes"] or g.prefill_batch_sizes,
        prefill_prompt_tokens=ints["prompt_tokens"] or g.prefill_prompt_tokens,
        prefill_max_tokens=max_prefill_tokens or g.prefill_max_tokens,
    )


def _timing(
    kind: str,
    quick: bool,
    warmup: int | None,
    repeats: int | None,
    max_repeats: int | None,
    time_per_point: float | None,
    passes: int | None,
) -> Any:
    """The default timing of ``kind`` with the timing options given on the command line."""
    from sunsim.profiling import default_timing

    tm = default_timing(kind, quick)
    min_repeats = tm.min_repeats if repeats is None else repeats
    return _replace(
        tm,
        warmup=tm.warmup if warmup is None else warmup,
        min_repeats=min_repeats,
        max_repeats=max(tm.max_repeats if max_repeats is None else max_repeats, min_repeats),
        time_per_point_s=tm.time_per_point_s if time_per_point is None else time_per_point,
        passes=tm.passes if passes is None else passes,
    )


def _measure(model: str, device: str, precision: str, quick: bool, run: dict[str, Any]) -> Any:
    """Run the harness with a progress bar on stderr."""

    from sunsim.profiling import profile_model

    with progress_bar() as bar:
        task = bar.add_task(f"profiling {model} {precision} on {device}", total=None)
        return profile_model(
            model,
            device,
            precision,
            quick=quick,
            command=command_line(),
            progress=lambda done, total, label: bar.update(
                task, completed=done, total=total, description=f"{model} {precision}: {label}"
            ),
            **run,
        )


def _print_profile(m: dict[str, Any], d: Path) -> None:
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

    _check_profile_path(path, model, precision)
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


def _check_profile_path(path: Path, model: str | None, precision: str | None) -> None:
    """PATH exists and is a directory; --model and --precision are known names."""
    from sunsim.cli.checks import check_model, check_precision
    from sunsim.errors import ProfileError

    if model is not None:
        check_model("--model", model)
    if precision is not None:
        check_precision("--precision", precision)
    if not path.exists():
        raise ProfileError(f"PATH {path}: does not exist; give a profile directory")
    if not path.is_dir():
        raise ProfileError(f"PATH {path}: is a file; give the profile directory that holds it")
