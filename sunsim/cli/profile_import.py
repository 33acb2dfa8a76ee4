"""``sunsim profile import``: a profile composed from NVIDIA's measured kernel database
(aiconfigurator-core, the ``aic`` extra), in sunsim's own format."""

from __future__ import annotations

from pathlib import Path

import typer

from sunsim.cli.format import command_line, console
from sunsim.cli.profile import profile_app


@profile_app.command("import")
def profile_import_cmd(
    gpu: str = typer.Option(..., "--gpu", help="h100, h200, a100 or b200."),
    backend: str = typer.Option("vllm", "--backend", help="Serving backend whose kernels to use."),
    backend_version: str | None = typer.Option(
        None,
        "--backend-version",
        help="Backend version (default: the newest with GEMM and attention tables, e.g. 0.24.0).",
    ),
    model: str = typer.Option(
        "llama-3.1-8b",
        "--model",
        "-m",
        help="A built-in or bundled model (llama-3.1-8b, qwen3-8b, llama-3.1-70b, qwen3-32b, "
        "meta-llama/Llama-3.1-70B, ...) or the path of a dense model's config.json.",
    ),
    precision: str = typer.Option(
        "bf16",
        "--precision",
        "-p",
        help="bf16, fp8 (W8A8, where FP8 GEMMs were measured), w8a16/w4a16 (decode only; "
        "measured weight-only GEMMs, else derived from a donor GPU's low-bit/BF16 ratio).",
    ),
    tensor_parallel_size: int = typer.Option(
        1,
        "--tensor-parallel-size",
        "--tp",
        help="GPUs per model (Megatron sharding; all-reduce and logits gather from the "
        "measured comm tables); writes <gpu>-aic-<backend>-<version>-tp<N>/.",
    ),
    kv_cache_dtype: str = typer.Option(
        "auto",
        "--kv-cache-dtype",
        help="auto (BF16 KV cache) or fp8 (attention from the FP8 KV-cache kernels; writes "
        "...-kvfp8/).",
    ),
    out: Path = typer.Option(Path("profiles"), "--out", "-o", help="Root directory."),
) -> None:
    """Compose prefill and decode step times per grid point from measured GEMM, attention
    and (under tensor parallelism) communication kernels, plus stated estimates for
    elementwise ops, and write <out>/<gpu>-aic-<backend>-<version>[-tp<N>]/<model>/<precision>/."""
    from sunsim.profiling.aic import import_profile, write_imported

    prof = import_profile(
        gpu,
        backend,
        model,
        precision,
        backend_version=backend_version,
        command=command_line(),
        tensor_parallel_size=tensor_parallel_size,
        kv_cache_dtype=kv_cache_dtype,
    )
    d = write_imported(prof, out)
    m = prof.meta
    src = m.source or {}
    ks = src.get("kernel_sources", {})
    console.print(
        f"{m.method_label}: {m.model} {m.precision} on {m.device_name}; kernels "
        + ", ".join(f"{k} {v}" for k, v in ks.items()),
        highlight=False,
    )
    est = src.get("estimate_counts") or {}
    note = "; estimates: " + ", ".join(f"{k} ({v})" for k, v in est.items()) if est else ""
    console.print(
        f"wrote {d}/ ({', '.join(m.modules or [])}; {len(prof.decode)} decode points"
        + (f", {len(prof.prefill)} prefill points" if prof.prefill is not None else "")
        + f"{note})",
        highlight=False,
    )
