"""Building a sunsim profile from aiconfigurator-core's kernel tables (``sunsim profile import``).

The profile has sunsim's own format and grid (:func:`sunsim.profiling.grid.default_grid`
``("cuda")``: decode B 1..256 x context 128..8192, prefill B 1..16 x L 64..8192 with at
most 16384 tokens), is written by :func:`sunsim.latency.profile_format.write_profile_dir`,
and its meta says ``method: "measured"`` with a ``source`` block: the package and version,
backend and version, system, each operator's ``kernel_source``, what was measured, what was
estimated and how, and how often each estimate rule fired. Each grid point's time is the sum
of kernel times (:mod:`sunsim.profiling.aic.compose`), so ``time_s_p10`` and ``time_s_p90``
equal the median and ``repeats`` is 1.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from sunsim import __version__
from sunsim.errors import ProfileError
from sunsim.latency.profile_format import ProfileMeta, write_profile_dir
from sunsim.profiling.aic import tables
from sunsim.profiling.aic.compose import StepComposer
from sunsim.profiling.aic.interp import AttentionTable, GemmTable
from sunsim.profiling.grid import ProfileGrid, default_grid
from sunsim.serialize import as_dict
from sunsim.specs import get_gpu, get_model, get_precision

DEVICE_SLUG = "{gpu}-aic-{backend}-{version}"


@dataclass
class ImportedProfile:
    """An imported profile: the tables (``prefill`` None for low-bit, decode-only
    precisions) and the meta, plus the composer that made them (for inspection)."""

    prefill: pd.DataFrame | None
    decode: pd.DataFrame
    meta: ProfileMeta
    composer: StepComposer
    estimates: Counter[str] = field(default_factory=Counter)


def device_slug(system: str, backend: str, version: str) -> str:
    """``h100_sxm``, ``vllm``, ``0.24.0`` -> ``h100-sxm-aic-vllm-0.24.0``."""
    return DEVICE_SLUG.format(gpu=system.replace("_", "-"), backend=backend, version=version)


def _frame(points: list[tuple[int, int, float]], kind: str) -> pd.DataFrame:
    tok, tot = ("context_tokens", "total_context_tokens")
    if kind == "prefill":
        tok, tot = ("prompt_tokens", "total_tokens")
    rows = [
        {
            "batch_size": b,
            tok: x,
            tot: b * x,
            "time_s_median": t,
            "time_s_p10": t,
            "time_s_p90": t,
            "repeats": 1,
        }
        for b, x, t in points
    ]
    return pd.DataFrame(rows)


def _composer(
    ts: tables.TableSet, model: str, precision: str, gpu: str
) -> tuple[StepComposer, dict[str, str], str, float]:
    """The composer, the kernel_source per operator, the device name and the best measured
    GEMM rate at ``precision`` (FLOP/s)."""
    spec = get_model(model)
    grows, gks, device = tables.gemm_rows(ts, precision)
    crows, cks = tables.attention_rows(
        ts, "context", spec.num_heads, spec.num_kv_heads, spec.head_dim
    )
    arows, aks = tables.attention_rows(
        ts, "generation", spec.num_heads, spec.num_kv_heads, spec.head_dim
    )
    head = None
    if precision != "bf16":
        hrows, hks, _ = tables.gemm_rows(ts, "bf16")
        head = GemmTable(hrows, f"{ts.system} {ts.backend} {ts.version} BF16 GEMM (LM head)")
    floor_ms = float(grows["latency"].min())
    rate = float((2 * grows["m"] * grows["n"] * grows["k"] / (grows["latency"] / 1e3)).max())
    comp = StepComposer(
        spec,
        GemmTable(grows, f"{ts.system} {ts.backend} {ts.version} GEMM"),
        AttentionTable(crows, "context attention"),
        AttentionTable(arows, "generation attention"),
        mem_bw=get_gpu(gpu).mem_bw,
        floor_ms=floor_ms,
        head=head,
    )
    kernels = {"gemm": gks, "context_attention": cks, "generation_attention": aks}
    if head is not None:
        kernels["lm_head_gemm"] = hks
    return comp, kernels, device, rate


def import_profile(
    gpu: str,
    backend: str,
    model: str,
    precision: str = "bf16",
    *,
    backend_version: str | None = None,
    data_root: str | Path | None = None,
    grid: ProfileGrid | None = None,
    command: str | None = None,
) -> ImportedProfile:
    """Compose a profile of ``model`` at ``precision`` on ``gpu`` (``h100``, ``h200``,
    ``a100``, ``b200``) from ``backend``'s kernel tables (``backend_version`` None: the
    newest with GEMM and attention tables). ``data_root``: a ``systems/data`` directory
    (default: the installed aiconfigurator-core's; tests pass small hand-written tables).

    Raises ProfileError (one line): aiconfigurator-core missing, an unknown GPU, backend or
    version, a precision or model shape with no measurements, a grid point outside the
    measured ranges. ConfigError: a model or precision sunsim does not know.
    """
    start = time.perf_counter()
    spec = get_model(model)
    precision = get_precision(precision).name
    if data_root is None:
        root, pkg_version = tables.package_info()
    else:
        root, pkg_version = Path(data_root), tables.PACKAGE_VERSION
    if not root.is_dir():
        raise ProfileError(f"{root}: no such kernel database directory")
    ts = tables.locate(root, gpu, backend, backend_version)
    comp, kernels, device, rate = _composer(ts, spec.name, precision, gpu)
    g = grid or default_grid("cuda")
    dec = [(b, c, comp.decode(b, c).total / 1e3) for b, c in g.decode_points()]
    pre = None
    if precision == "bf16":
        pre = [(b, l, comp.prefill(b, l).total / 1e3) for b, l in g.prefill_points()]
    estimates = comp.gemm.estimates + comp.context.estimates + comp.generation.estimates
    if comp.head is not comp.gemm:
        estimates += comp.head.estimates
    gspec = get_gpu(gpu)
    source = _source(ts, pkg_version, kernels, comp, estimates, precision)
    meta = ProfileMeta.from_dict(
        {
            "method": "measured",
            "model": spec.name,
            "precision": precision,
            "model_spec": as_dict(spec),
            "modules": ["prefill", "decode"] if pre is not None else ["decode"],
            "device_kind": "cuda",
            "device_name": device,
            "device_slug": device_slug(ts.system, ts.backend, ts.version),
            "gpu_key": tables_gpu_key(gpu),
            "device_memory_bytes": gspec.memory_bytes,
            "dtype": "bfloat16",
            "attention": f"{kernels['context_attention']} / {kernels['generation_attention']}",
            "layers_run": spec.num_layers,
            "layers_total": spec.num_layers,
            "scaling": {"scaled": False, "note": "every layer's operators summed"},
            "grid": as_dict(g),
            "fit_statistic": "median",
            "fit_statistic_note": "one composed value per point (sum of kernel medians)",
            "copy_bandwidth_bytes_per_s": gspec.mem_bw,
            "matmul_flops_per_s": rate,
            "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
            "sunsim_version": __version__,
            "command": command,
            "wall_s": time.perf_counter() - start,
            "source": source,
        },
        source="imported meta",
    )
    prefill = _frame(pre, "prefill") if pre is not None else None
    return ImportedProfile(prefill, _frame(dec, "decode"), meta, comp, estimates)


def tables_gpu_key(gpu: str) -> str:
    """sunsim's GPU key (``H100`` -> ``h100``)."""
    return gpu.lower()


def _source(
    ts: tables.TableSet,
    pkg_version: str,
    kernels: dict[str, str],
    comp: StepComposer,
    estimates: Counter[str],
    precision: str,
) -> dict[str, Any]:
    names = [f"{n} (n={nn}, k={k})" for n, nn, k in comp.layer_gemms()]
    elem = [f"{n} x{c}/step" for n, c, _ in comp.elementwise_kernels(1)]
    return {
        "package": tables.PACKAGE,
        "package_version": pkg_version,
        "license": "Apache-2.0 (NVIDIA); see sunsim/data/profiles/README.md",
        "backend": ts.backend,
        "backend_version": ts.version,
        "system": ts.system,
        "tensor_parallel_size": 1,
        "gemm_dtype": tables.GEMM_DTYPES[precision],
        "kernel_sources": kernels,
        "tables": [
            str(Path(*p.parts[-5:]))
            for p in (ts.gemm, ts.context_attention, ts.generation_attention)
        ],
        "measured": (
            "per layer: GEMMs " + ", ".join(names) + "; context attention (prefill, batch x "
            "prompt tokens) or generation attention (decode, batch x (context + 1) KV "
            "tokens); LM head GEMM (n = vocab) for one token per request. Latency column in "
            "ms, summed over layers"
        ),
        "interpolation": (
            "log-latency linear in log m along measured (n, k) columns, bilinear in "
            "(log n, log k); attention bilinear in (log batch, log length); no extrapolation: "
            "GEMMs beyond the largest measured m/n/k split into equal in-grid pieces, "
            "attention holes filled from the largest smaller batch x batch ratio"
        ),
        "estimated": {
            "kernels": elem,
            "rule": (
                "each kernel max(bytes moved / copy bandwidth, floor): bandwidth "
                f"{comp.mem_bw:.4g} B/s (sunsim.specs GpuSpec.mem_bw), floor "
                f"{comp.floor_ms * 1e3:.3g} us (the shortest GEMM the database measured on "
                "this system and backend); BF16 activations"
            ),
            "not_included": "sampling, scheduling and other engine CPU time",
        },
        "estimate_counts": dict(sorted(estimates.items())),
    }


def write_imported(prof: ImportedProfile, out: str | Path, *, force: bool = True) -> Path:
    """Write ``prof`` under ``out/<device_slug>/<model>/<precision>/``; returns the directory."""
    return write_profile_dir(out, prof.prefill, prof.decode, prof.meta, force=force)
