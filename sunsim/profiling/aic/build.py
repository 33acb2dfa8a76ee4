"""Building a sunsim profile from aiconfigurator-core's kernel tables (``sunsim profile import``).

The profile has sunsim's own format and grid (:func:`sunsim.profiling.grid.default_grid`
``("cuda")``: decode B 1..256 x context 128..8192, prefill B 1..16 x L 64..8192 with at
most 16384 tokens), is written by :func:`sunsim.latency.profile_format.write_profile_dir`,
and its meta says ``method: "measured"`` (or ``"derived"``: a low-bit precision the backend
did not measure, :mod:`sunsim.profiling.aic.derive`) with a ``source`` block: the package and
version, backend and version, system, ``tensor_parallel_size``, each operator's
``kernel_source``, what was measured, what was estimated and how, how often each estimate
rule fired, and for derived profiles the donor and the rule (``derived_from``). Each grid
point's time is the sum of kernel times (:mod:`sunsim.profiling.aic.compose`), so
``time_s_p10`` and ``time_s_p90`` equal the median and ``repeats`` is 1. Prefill is composed
for BF16 and FP8 (W8A8 speeds prefill up too); W8A16/W4A16 profiles are decode-only (QSUN
keeps prefill in BF16).
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
from sunsim.profiling.aic import comm, derive, tables
from sunsim.profiling.aic.compose import GemmLookup, StepComposer
from sunsim.profiling.aic.interp import AttentionTable, GemmTable
from sunsim.profiling.grid import ProfileGrid, default_grid
from sunsim.serialize import as_dict
from sunsim.specs import ModelSpec, get_gpu, get_model, get_precision

DEVICE_SLUG = "{gpu}-aic-{backend}-{version}"
#: precisions whose profiles have prefill (the others are QSUN's decode-only low-bit ones)
PREFILL_PRECISIONS = ("bf16", "fp8")


@dataclass
class ImportedProfile:
    """An imported profile: the tables (``prefill`` None for low-bit, decode-only
    precisions) and the meta, plus the composer that made them (for inspection)."""

    prefill: pd.DataFrame | None
    decode: pd.DataFrame
    meta: ProfileMeta
    composer: StepComposer
    estimates: Counter[str] = field(default_factory=Counter)


def device_slug(
    system: str,
    backend: str,
    version: str,
    tensor_parallel_size: int = 1,
    kv_cache_dtype: str = "auto",
) -> str:
    """``h100_sxm``, ``vllm``, ``0.24.0`` -> ``h100-sxm-aic-vllm-0.24.0``; with
    ``tensor_parallel_size`` N > 1 ``...-tp<N>``; with an FP8 KV cache ``...-kvfp8``."""
    slug = DEVICE_SLUG.format(gpu=system.replace("_", "-"), backend=backend, version=version)
    slug += f"-tp{tensor_parallel_size}" if tensor_parallel_size > 1 else ""
    return slug + ("-kvfp8" if kv_cache_dtype == "fp8" else "")


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


@dataclass
class _Parts:
    """What :func:`_composer` found: the composer, kernel sources, device, best GEMM rate,
    the derived-from block (None when measured) and the comm tables used."""

    comp: StepComposer
    kernels: dict[str, str]
    device: str
    rate: float
    derived: dict[str, Any] | None = None
    comm: dict[str, str] = field(default_factory=dict)


def _layer_gemms(
    root: Path, ts: tables.TableSet, precision: str
) -> tuple[GemmLookup, GemmTable, dict[str, str], str, dict[str, Any] | None]:
    """The layers' GEMM table at ``precision`` (measured, or derived when the backend has
    no weight-only GEMMs), the BF16 table, kernel sources, device and derived-from block."""
    brows, bks, device = tables.gemm_rows(ts, "bf16")
    bf16 = GemmTable(brows, f"{ts.system} {ts.backend} {ts.version} BF16 GEMM")
    if precision == "bf16":
        return bf16, bf16, {"gemm": bks}, device, None
    dtype = tables.GEMM_DTYPES[precision]
    if dtype in tables.gemm_dtypes(ts.gemm) or precision not in derive.DONORS:
        rows, ks, device = tables.gemm_rows(ts, precision)  # raises: no data
        low = GemmTable(rows, f"{ts.system} {ts.backend} {ts.version} {precision} GEMM")
        return low, bf16, {"gemm": ks, "lm_head_gemm": bks}, device, None
    donor = derive.pick_donor(root, ts.system, precision)
    dlow, dbf16, dks = derive.donor_tables(root, donor, precision)
    name = f"{ts.system} {ts.backend} {ts.version} {precision} GEMM (derived)"
    table = derive.DerivedGemmTable(bf16, dlow, dbf16, name)
    block = {
        "system": donor[0],
        "backend": donor[1],
        "backend_version": donor[2],
        "precision": precision,
        "rule": derive.RULE.format(low=f"{dtype} GEMM"),
        "kernel_sources": dks,
        "not_used": derive.REJECTED,
        "why": (
            f"{ts.backend} {ts.version} on {ts.system} measured no {dtype} GEMMs; "
            f"{donor[1]} {donor[2]} on {donor[0]} measured both {dtype} and BF16"
        ),
    }
    return table, bf16, {"gemm": f"{bks} x donor ratio", "lm_head_gemm": bks}, device, block


def _composer(
    root: Path,
    ts: tables.TableSet,
    model: str,
    precision: str,
    gpu: str,
    tp: int,
    kv_cache_dtype: str = "auto",
) -> _Parts:
    """The composer of ``model`` at ``precision`` on ``tp`` GPUs and what it is made of."""
    spec = get_model(model)
    if spec.num_heads % tp or (spec.num_kv_heads % tp and tp % spec.num_kv_heads):
        raise ProfileError(
            f"--tensor-parallel-size {tp}: {spec.name}'s {spec.num_heads} heads and "
            f"{spec.num_kv_heads} KV heads do not split over {tp} GPUs"
        )
    gemm, bf16, kernels, device, derived = _layer_gemms(root, ts, precision)
    ar = ga = None
    comm_src: dict[str, str] = {}
    if tp > 1:
        ar, ga = comm.allreduce_table(root, ts, tp), comm.gather_table(root, ts, tp)
        comm_src = {"all_reduce": ar.source, "all_gather": ga.source}
        kernels.update({"all_reduce": ar.source.split(" ", 1)[1], "all_gather": "NCCL"})
    heads, kv = spec.num_heads // tp, max(1, spec.num_kv_heads // tp)
    crows, cks = tables.attention_rows(ts, "context", heads, kv, spec.head_dim, kv_cache_dtype)
    arows, aks = tables.attention_rows(ts, "generation", heads, kv, spec.head_dim, kv_cache_dtype)
    kernels.update({"context_attention": cks, "generation_attention": aks})
    floor_ms = min(min(lat) for _, lat in bf16.cols.values())
    measured = gemm if isinstance(gemm, GemmTable) else bf16
    rate = max(
        2 * m * n * k / (t / 1e3)
        for (n, k), (ms, lat) in measured.cols.items()
        for m, t in zip(ms, lat)
    )
    comp = StepComposer(
        spec,
        gemm,
        AttentionTable(crows, "context attention"),
        AttentionTable(arows, "generation attention"),
        mem_bw=get_gpu(gpu).mem_bw,
        floor_ms=floor_ms,
        head=bf16 if precision != "bf16" else None,
        tp=tp,
        allreduce=ar,
        gather=ga,
        act_quant=precision == "fp8",
        kv_cache_bytes=1 if kv_cache_dtype == "fp8" else 2,
    )
    return _Parts(comp, kernels, device, rate, derived, comm_src)


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
    tensor_parallel_size: int = 1,
    kv_cache_dtype: str = "auto",
) -> ImportedProfile:
    """Compose a profile of ``model`` (a name or config.json, :func:`sunsim.specs.get_model`)
    at ``precision`` on one GPU of ``tensor_parallel_size`` ``gpu``s (``h100``, ``h200``,
    ``a100``, ``b200``) from ``backend``'s kernel tables (``backend_version`` None: the
    newest with GEMM and attention tables). ``data_root``: a ``systems/data`` directory
    (default: the installed aiconfigurator-core's; tests pass small hand-written tables).
    W8A16/W4A16 where the backend measured no weight-only GEMMs: ``method: "derived"``
    (:mod:`sunsim.profiling.aic.derive`). ``kv_cache_dtype`` ``fp8`` (vLLM's
    ``--kv-cache-dtype fp8``): context and generation attention from the tables' FP8
    KV-cache kernels, the KV-cache write at 1 byte per element; the meta says
    ``source.kv_cache_dtype: "fp8"`` and the slug ends ``-kvfp8`` (``auto``: BF16, as before).

    Raises ProfileError (one line): aiconfigurator-core missing, an unknown GPU, backend or
    version, a precision or model shape with no measurements (FP8 where no FP8 GEMM was
    measured), a tensor-parallel size without comm tables, a grid point outside the
    measured ranges, an FP8 KV cache where no FP8 KV-cache attention was measured.
    ConfigError: a model or precision sunsim does not know.
    """
    start = time.perf_counter()
    if kv_cache_dtype not in tables.KV_CACHE_DTYPES:
        raise ProfileError(
            f"--kv-cache-dtype '{kv_cache_dtype}': choose {' or '.join(tables.KV_CACHE_DTYPES)}"
        )
    spec = get_model(model)
    precision = get_precision(precision).name
    if data_root is None:
        root, pkg_version = tables.package_info()
    else:
        root, pkg_version = Path(data_root), tables.PACKAGE_VERSION
    if not root.is_dir():
        raise ProfileError(f"{root}: no such kernel database directory")
    ts = tables.locate(root, gpu, backend, backend_version)
    tp = int(tensor_parallel_size)
    if tp < 1:
        raise ProfileError(f"--tensor-parallel-size {tp}: must be 1 or more")
    parts = _composer(root, ts, model, precision, gpu, tp, kv_cache_dtype)
    comp = parts.comp
    g = grid or default_grid("cuda")
    dec = [(b, c, comp.decode(b, c).total / 1e3) for b, c in g.decode_points()]
    pre = None
    if precision in PREFILL_PRECISIONS:
        pre = [(b, l, comp.prefill(b, l).total / 1e3) for b, l in g.prefill_points()]
    estimates = _estimates(comp)
    source = _source(ts, pkg_version, parts, estimates, precision)
    if kv_cache_dtype == "fp8":  # absent: the model's BF16 (every profile before this key)
        source["kv_cache_dtype"] = "fp8"
    meta = _meta(spec, precision, pre is not None, parts, ts, tp, kv_cache_dtype, g, gpu)
    meta = ProfileMeta.from_dict(
        {**meta, "command": command, "wall_s": time.perf_counter() - start, "source": source},
        source="imported meta",
    )
    prefill = _frame(pre, "prefill") if pre is not None else None
    return ImportedProfile(prefill, _frame(dec, "decode"), meta, comp, estimates)


def _meta(
    spec: ModelSpec,
    precision: str,
    has_prefill: bool,
    parts: Any,
    ts: Any,
    tp: int,
    kv_cache_dtype: str,
    g: ProfileGrid,
    gpu: str,
) -> dict[str, Any]:
    """The imported profile's meta fields, less ``command``, ``wall_s`` and ``source``."""
    kernels, gspec = parts.kernels, get_gpu(gpu)
    return {
        "method": "derived" if parts.derived else "measured",
        "model": spec.name,
        "precision": precision,
        "model_spec": as_dict(spec),
        "modules": ["prefill", "decode"] if has_prefill else ["decode"],
        "device_kind": "cuda",
        "device_name": parts.device,
        "device_slug": device_slug(ts.system, ts.backend, ts.version, tp, kv_cache_dtype),
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
        "matmul_flops_per_s": parts.rate,
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "sunsim_version": __version__,
    }


def _estimates(comp: StepComposer) -> Counter[str]:
    """Every estimate rule that fired in ``comp``'s tables, with counts."""
    out = Counter[str]()
    seen: set[int] = set()
    for t in (comp.gemm, comp.head, comp.context, comp.generation, comp.allreduce, comp.gather):
        if t is not None and id(t) not in seen:
            seen.add(id(t))
            out += getattr(t, "estimates", Counter())
    return out


def tables_gpu_key(gpu: str) -> str:
    """sunsim's GPU key (``H100`` -> ``h100``)."""
    return gpu.lower()


def _source(
    ts: tables.TableSet,
    pkg_version: str,
    parts: _Parts,
    estimates: Counter[str],
    precision: str,
) -> dict[str, Any]:
    comp = parts.comp
    names = [f"{n} (n={nn}, k={k})" for n, nn, k in comp.layer_gemms()]
    elem = [f"{n} x{c}/step" for n, c, _ in comp.elementwise_kernels(1)]
    tp = comp.tp
    what = "measured" if parts.derived is None else "measured (BF16; low-bit derived)"
    out: dict[str, Any] = {
        "package": tables.PACKAGE,
        "package_version": pkg_version,
        "license": "Apache-2.0 (NVIDIA); see sunsim/data/profiles/README.md",
        "backend": ts.backend,
        "backend_version": ts.version,
        "system": ts.system,
        "tensor_parallel_size": tp,
        "gemm_dtype": tables.GEMM_DTYPES[precision],
        "kernel_sources": parts.kernels,
        "tables": [
            str(Path(*p.parts[-5:]))
            for p in (ts.gemm, ts.context_attention, ts.generation_attention)
        ]
        + [v.split(" ", 1)[0] for v in parts.comm.values()],
        what: (
            f"per layer on one GPU of {tp}: GEMMs " + ", ".join(names) + f"; context attention "
            f"({comp.heads} heads, {comp.kv_heads} KV heads; prefill, batch x prompt tokens) "
            "or generation attention (decode, batch x (context + 1) KV tokens); LM head GEMM "
            f"(n = vocab / {tp}, BF16) for one token per request"
            + (
                f"; collectives: {2 * comp.spec.num_layers + 1} all-reduces of tokens x hidden "
                "BF16 elements (2 per layer + the embedding's) and 1 all_gather of sampled x "
                "vocab logits per step, from " + "; ".join(parts.comm.values())
                if tp > 1
                else ""
            )
            + ". Latency column in ms, summed over layers"
        ),
        "interpolation": (
            "log-latency linear in log m along measured (n, k) columns, bilinear in "
            "(log n, log k); attention bilinear in (log batch, log length); collectives "
            "log-linear in message size; no extrapolation: GEMMs beyond the largest measured "
            "m/n/k split into equal in-grid pieces, attention holes filled from the largest "
            "smaller batch x batch ratio"
        ),
        "estimated": {
            "kernels": elem,
            "rule": (
                "each kernel max(bytes moved / copy bandwidth, floor): bandwidth "
                f"{comp.mem_bw:.4g} B/s (sunsim.specs GpuSpec.mem_bw), floor "
                f"{comp.floor_ms * 1e3:.3g} us (the shortest BF16 GEMM the database measured "
                "on this system and backend); BF16 activations"
            ),
            "not_included": "sampling, scheduling and other engine CPU time",
        },
        "estimate_counts": dict(sorted(estimates.items())),
    }
    if parts.derived is not None:
        out["derived_from"] = parts.derived
    return out


def write_imported(prof: ImportedProfile, out: str | Path, *, force: bool = True) -> Path:
    """Write ``prof`` under ``out/<device_slug>/<model>/<precision>/``; returns the directory."""
    return write_profile_dir(out, prof.prefill, prof.decode, prof.meta, force=force)
