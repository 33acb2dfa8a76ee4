"""Reading aiconfigurator-core's measured kernel tables (its package data, with pandas).

Layout (aiconfigurator-core 0.12.0, ``systems/data/``)::

    <system>/gemm/<backend>/<version>/gemm_perf.parquet
        kernel_source, gemm_dtype, m (tokens), n (output features), k (input features), latency
    <system>/attention/<backend>/<version>/context_attention_perf.parquet
        kernel_source, batch_size, isl (prompt tokens per request), num_heads,
        num_key_value_heads, head_dim, kv_cache_dtype, window_size (absent on some), latency
    <system>/attention/<backend>/<version>/generation_attention_perf.parquet
        the same with isl = 1 and step; the KV length a decode step attends over is
        ``isl + step`` (2, 4, ..., 65536: step = 2^j - 1), as the package's own engine reads it
        ("one decode step at s = isl + 1")

``latency`` is milliseconds per kernel call (checked: an 8192^3-class BF16 GEMM on the H100,
m=32768 n=65536 k=12288, is 60.3 ms = 875 TFLOP/s, the H100's range; seconds or
microseconds would be 1000x off its datasheet), measured under CUDA graphs on the GPU the
``device`` column names. A table is chosen by system (``h100_sxm``), backend (``vllm``,
``sglang``, ``trtllm``) and backend version; within it, the rows of one data type and, where
several kernels were measured for the same shapes, of one ``kernel_source`` (the one with the
most rows for the model's shapes; every choice is recorded in the profile's meta).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pandas as pd

from sunsim.errors import ProfileError

PACKAGE = "aiconfigurator-core"
#: The version sunsim's bundled profiles were imported from (pinned in the ``aic`` extra).
PACKAGE_VERSION = "0.12.0"
#: sunsim GPU key -> aiconfigurator-core system name.
SYSTEMS = {"h100": "h100_sxm", "h200": "h200_sxm", "a100": "a100_sxm", "b200": "b200_sxm"}
#: sunsim precision -> GEMM ``gemm_dtype`` of the weights (FP8 W8A8 per-tensor ``fp8``;
#: weight-only int8/int4 for the low-bit precisions, where a backend measured them).
GEMM_DTYPES = {"bf16": "bfloat16", "fp8": "fp8", "w8a16": "int8_wo", "w4a16": "int4_wo"}


def package_info() -> tuple[Path, str]:
    """``(systems/data directory, version)`` of the installed aiconfigurator-core.

    Located without importing it (its compiled engine is never loaded). Raises ProfileError
    when it is not installed.
    """
    spec = importlib.util.find_spec("aiconfigurator_core")
    if spec is None or not spec.submodule_search_locations:
        raise ProfileError(
            f"{PACKAGE} is not installed; install it with `pip install 'sunsim[aic]'` "
            f"(or `pip install {PACKAGE}=={PACKAGE_VERSION}`)"
        )
    root = Path(list(spec.submodule_search_locations)[0]) / "systems" / "data"
    return root, metadata.version(PACKAGE)


def _versions(d: Path) -> list[str]:
    return sorted((p.name for p in d.iterdir() if p.is_dir()), key=_vkey) if d.is_dir() else []


def _vkey(v: str) -> tuple:
    out: list[tuple[int, object]] = []
    for part in v.replace("rc", ".rc.").replace("post", ".post.").split("."):
        out.append((0, int(part)) if part.isdigit() else (1, part))
    return tuple(out)


@dataclass(frozen=True)
class TableSet:
    """The located tables of one system, backend and version (paths) and the device name."""

    system: str
    backend: str
    version: str
    gemm: Path
    context_attention: Path
    generation_attention: Path


def locate(data_root: Path, gpu: str, backend: str, version: str | None) -> TableSet:
    """The GEMM and attention tables for sunsim GPU ``gpu`` (``h100``...), ``backend`` and
    ``version`` (None: the newest version that has both GEMM and attention tables).

    Raises ProfileError (one line): a GPU sunsim cannot import, a system missing from the
    database, an unknown backend, a version without both tables (listing what there is).
    """
    key = gpu.lower()
    if key not in SYSTEMS:
        raise ProfileError(
            f"--gpu '{gpu}': no imported GPU of that name; use one of {', '.join(SYSTEMS)}"
        )
    system = SYSTEMS[key]
    sys_dir = data_root / system
    if not sys_dir.is_dir():
        raise ProfileError(f"--gpu '{gpu}': {data_root} has no '{system}' data")
    gdir, adir = sys_dir / "gemm" / backend, sys_dir / "attention" / backend
    backends = sorted(p.name for p in (sys_dir / "gemm").iterdir() if p.is_dir())
    if not gdir.is_dir() or not adir.is_dir():
        raise ProfileError(
            f"--backend '{backend}': no GEMM and attention tables for {system}; "
            f"backends there: {', '.join(backends)}"
        )
    both = [v for v in _versions(gdir) if v in _versions(adir)]
    if version is None:
        if not both:
            raise ProfileError(
                f"--backend {backend}: no version of it has both tables for {system}"
            )
        version = both[-1]
    elif version not in both:
        raise ProfileError(
            f"--backend-version '{version}': no {backend} {version} GEMM and attention tables "
            f"for {system}; versions with both: {', '.join(both) or 'none'}"
        )
    return TableSet(
        system=system,
        backend=backend,
        version=version,
        gemm=gdir / version / "gemm_perf.parquet",
        context_attention=adir / version / "context_attention_perf.parquet",
        generation_attention=adir / version / "generation_attention_perf.parquet",
    )


def read_table(path: Path) -> pd.DataFrame:
    """One parquet table; ProfileError when it is missing or unreadable."""
    if not path.is_file():
        raise ProfileError(f"{path}: missing from the kernel database")
    try:
        df = pd.read_parquet(path)
    except Exception as e:  # pyarrow raises several error types
        raise ProfileError(f"{path}: cannot read parquet ({type(e).__name__}: {e})") from None
    if "latency" not in df.columns:
        raise ProfileError(f"{path}: no 'latency' column")
    return df


def pick_kernel(df: pd.DataFrame, what: str, path: Path) -> tuple[pd.DataFrame, str]:
    """The rows of the ``kernel_source`` with the most rows in ``df`` (already filtered to
    the shapes wanted), and its name. Raises ProfileError when ``df`` is empty."""
    if df.empty:
        raise ProfileError(f"{path}: no rows for {what}")
    if "kernel_source" not in df.columns:
        return df, "(unnamed)"
    counts = df.groupby("kernel_source").size().sort_values(ascending=False, kind="stable")
    ks = str(counts.index[0])
    return df[df["kernel_source"] == ks], ks


def gemm_dtypes(path: Path) -> list[str]:
    """The ``gemm_dtype`` values a GEMM table measured ([] when the file is missing)."""
    if not path.is_file():
        return []
    return sorted(str(x) for x in read_table(path)["gemm_dtype"].unique())


def gemm_rows(ts: TableSet, precision: str) -> tuple[pd.DataFrame, str, str]:
    """``(rows m, n, k, latency_ms; kernel_source; device name)`` of the GEMMs at
    ``precision``. Raises ProfileError when the backend measured none at that precision."""
    return gemm_rows_at(ts.gemm, precision, f"{ts.backend} {ts.version} on {ts.system}")


def gemm_rows_at(path: Path, precision: str, where: str) -> tuple[pd.DataFrame, str, str]:
    """:func:`gemm_rows` of the table at ``path`` (``where`` names it in errors)."""
    df = read_table(path)
    dtype = GEMM_DTYPES.get(precision)
    have = sorted(str(x) for x in df["gemm_dtype"].unique())
    sel = df[df["gemm_dtype"] == dtype] if dtype else df.iloc[0:0]
    if sel.empty:
        raise ProfileError(
            f"--precision {precision}: {where} has no {dtype or precision} GEMMs (it has "
            f"{', '.join(have)}); import a precision it measured or another backend"
        )
    rows, ks = pick_kernel(sel, f"{dtype} GEMMs", path)
    device = str(rows["device"].iloc[0]) if "device" in rows.columns else where
    out = rows[["m", "n", "k", "latency"]].groupby(["m", "n", "k"], as_index=False).median()
    return out, ks, device


#: sunsim ``kv_cache_dtype`` -> the tables' ``kv_cache_dtype`` (``auto``: the model's BF16).
KV_CACHE_DTYPES = {"auto": "bfloat16", "fp8": "fp8"}


def attention_rows(
    ts: TableSet,
    phase: str,
    num_heads: int,
    num_kv_heads: int,
    head_dim: int,
    kv_cache_dtype: str = "auto",
) -> tuple[pd.DataFrame, str]:
    """``(rows batch_size, length, latency_ms; kernel_source)`` of ``phase`` (``context``:
    length = isl; ``generation``: length = isl + step, the KV tokens attended over) for full
    (unwindowed) attention with these heads and a KV cache of ``kv_cache_dtype`` (``auto``:
    BF16; ``fp8``: the FP8 KV-cache kernels, :data:`KV_CACHE_DTYPES`). Raises ProfileError
    when the table has no rows for them."""
    path = ts.context_attention if phase == "context" else ts.generation_attention
    df = read_table(path)
    if "window_size" not in df.columns:
        df = df.assign(window_size=0)
    sel = df[
        (df["num_heads"] == num_heads)
        & (df["num_key_value_heads"] == num_kv_heads)
        & (df["head_dim"] == head_dim)
        & (df["window_size"] == 0)
        & (df["kv_cache_dtype"] == KV_CACHE_DTYPES[kv_cache_dtype])
    ]
    what = (
        f"{phase} attention with {num_heads} heads, {num_kv_heads} KV heads, head_dim "
        f"{head_dim}, {KV_CACHE_DTYPES[kv_cache_dtype]} KV cache"
    )
    rows, ks = pick_kernel(sel, what, path)
    length = rows["isl"] if phase == "context" else rows["isl"] + rows["step"]
    out = pd.DataFrame(
        {"batch_size": rows["batch_size"], "length": length, "latency": rows["latency"]}
    )
    return out.groupby(["batch_size", "length"], as_index=False).median(), ks
