"""``sunsim profile`` (measure prefill/decode latency profiles with torch) and
``sunsim profile check DIR`` (held-out error and distance to the roofline)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from sunsim.cli.app import app, make_typer
from sunsim.cli.format import command_line, console, err_console, split_list

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
    from sunsim.profiling import write_profile
    from sunsim.profiling._torch import require_torch

    torch = require_torch()
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    kind = "cuda" if device.startswith("cuda") else "cpu"
    ints = {
        k: split_list(v, "--" + k.replace("_", "-"), int)
        for k, v in dict(
            batch_sizes=batch_sizes,
            contexts=contexts,
            prefill_batch_sizes=prefill_batch_sizes,
            prompt_tokens=prompt_tokens,
        ).items()
    }
    g = _grid(kind, quick, ints, max_prefill_tokens)
    tm = _timing(kind, quick, warmup, repeats, max_repeats, time_per_point, passes)
    tm = _replace(tm, cuda_graphs=cuda_graphs, fit_statistic=statistic)
    run = dict(grid=g, timing=tm, layers=layers, threads=threads, seed=seed)
    prof = _measure(model, device, precision, quick, run)
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


def _measure(model: str, device: str, precision: str, quick: bool, run: dict) -> Any:
    """Run the harness with a progress bar on stderr."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from sunsim.profiling import profile_model

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    ) as bar:
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


def _print_profile(m: dict, d: Path) -> None:
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
