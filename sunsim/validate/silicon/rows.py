"""The rows of aiconfigurator-core's ``systems/silicon_sample.csv``: reading, the fit /
validation split, and which rows sunsim can express (or why not).

The file (aiconfigurator-core 0.12.0, Apache-2.0, NVIDIA) holds end-to-end measurements of
real serving runs: one row per (model, GPU, backend, precision, mode, ISL, OSL, concurrency,
parallelism) with ``silicon_ttft_ms`` and ``silicon_tpot_ms``, the benchmark client's **mean**
TTFT and mean TPOT in milliseconds (aiconfigurator's collectors write
``metrics["mean_ttft"] * 1000`` and ``metrics["mean_tpot"] * 1000``; its accuracy tools
compare predictions with these per row). The client ran a closed loop at a fixed
concurrency, named ``silicon_concurrency=N`` in ``silicon_data_source``.

Split (:func:`in_fit_set`): a row belongs to the engine-overhead fit set iff the first 8 hex
digits of SHA-256 of its ``id``, as an integer, mod 100 are below :data:`FIT_PERCENT` (30):
deterministic, independent of row order, and about 30% of every backend's rows.
``sunsim validate silicon`` reports only the others.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.util
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from sunsim.errors import ConfigError
from sunsim.validate.silicon.sources import (
    client_lengths_of,
    kv_cache_dtype_of,
    token_budget_of,
)

#: Share of rows (percent) in the overhead fit set, by hashed id.
FIT_PERCENT = 30
#: The package and file the rows come from.
PACKAGE = "aiconfigurator_core"
CSV_IN_PACKAGE = ("systems", "silicon_sample.csv")

REQUIRED_COLUMNS = (
    "id", "backend", "model_path", "system", "precision", "mode", "isl", "osl",
    "gemm_quant_mode", "batch_size", "tp_size", "pp_size", "attention_dp_size",
    "prefill_num_workers", "prefill_tp_size", "decode_batch_size", "decode_num_workers",
    "decode_tp_size", "silicon_ttft_ms", "silicon_tpot_ms",
)  # fmt: skip
_NUMERIC = (
    "isl", "osl", "batch_size", "tp_size", "pp_size", "attention_dp_size",
    "prefill_num_workers", "prefill_tp_size", "prefill_pp_size", "prefill_attention_dp_size",
    "decode_batch_size", "decode_num_workers", "decode_tp_size", "decode_pp_size",
    "decode_attention_dp_size", "silicon_ttft_ms", "silicon_tpot_ms",
)  # fmt: skip

#: ``gemm_quant_mode`` -> sunsim precision key. Empty (no quantization) runs the checkpoint's
#: own weights: the dense checkpoints in the file (Llama-3.1, Qwen3) are BF16.
PRECISION_OF = {
    "": "bf16",
    "bf16": "bf16",
    "fp8": "fp8",  # per-tensor FP8 weights and activations (W8A8)
    "fp8_block": "fp8_block",  # block-scaled FP8 (DeepSeek style): not W8A8 per tensor
    "nvfp4": "nvfp4",
    "int4_wo": "w4a16",  # weight-only INT4
    "int8_wo": "w8a16",  # weight-only INT8
}


def default_csv() -> Path:
    """``systems/silicon_sample.csv`` of the installed aiconfigurator-core (located, never
    imported). Raises :class:`ConfigError` when the package is not installed."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "aiconfigurator-core is not installed: pip install 'aiconfigurator-core==0.12.0' "
            "(the aic extra), or pass --csv PATH to a silicon_sample.csv"
        )
    return Path(list(spec.submodule_search_locations)[0]).joinpath(*CSV_IN_PACKAGE)


def read_silicon(path: str | Path) -> pd.DataFrame:
    """The rows of a silicon CSV, numeric columns as floats, text columns as strings ("" for
    empty), plus ``concurrency`` (:func:`concurrency_of`).

    Raises:
        ConfigError: a missing or unreadable file, missing columns, or a non-numeric value
            (one line naming the file, row and column).
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: no such silicon CSV file")
    try:
        df = pd.read_csv(p, dtype=str, keep_default_na=False)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise ConfigError(f"{p}: not a readable CSV ({str(e).splitlines()[0]})") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise ConfigError(f"{p}: not a silicon_sample.csv: missing column(s) {', '.join(missing)}")
    for c in _NUMERIC:
        if c not in df.columns:
            df[c] = ""
        num = pd.to_numeric(df[c].str.strip().replace("", "nan"), errors="coerce")
        bad = num.isna() & (df[c].str.strip() != "")
        if bad.any():
            i = int(bad.to_numpy().nonzero()[0][0])
            raise ConfigError(
                f"{p}: row {i + 2}, column {c}: expected a number, got '{df[c].iloc[i]}'"
            )
        df[c] = num.astype(float)
    if "silicon_data_source" not in df.columns:
        df["silicon_data_source"] = ""
    if df["id"].duplicated().any():
        dup = df.loc[df["id"].duplicated(), "id"].iloc[0]
        raise ConfigError(f"{p}: row id '{dup}' appears twice; ids must be unique")
    df["concurrency"] = [concurrency_of(r) for r in df.to_dict("records")]
    return df


def concurrency_of(row: dict[str, Any]) -> float:
    """The benchmark client's concurrency: ``silicon_concurrency=N`` in ``silicon_data_source``
    when given; else ``batch_size`` x attention data-parallel size (aggregated) or
    ``decode_batch_size`` x ``decode_num_workers`` x decode attention data-parallel size
    (disaggregated), which equal it on every row that has both. NaN when unknown."""
    m = re.search(r"silicon_concurrency=(\d+)", str(row.get("silicon_data_source", "")))
    if m:
        return float(m.group(1))
    if row.get("mode") == "agg":
        return _num(row.get("batch_size")) * max(_num(row.get("attention_dp_size"), 1.0), 1.0)
    return (
        _num(row.get("decode_batch_size"))
        * _num(row.get("decode_num_workers"))
        * max(_num(row.get("decode_attention_dp_size"), 1.0), 1.0)
    )


def _num(v: Any, default: float = math.nan) -> float:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return default
    return default if math.isnan(x) else x


def in_fit_set(row_id: str) -> bool:
    """Whether row ``row_id`` is in the overhead fit set (see the module docstring)."""
    h = int(hashlib.sha256(str(row_id).encode("utf-8")).hexdigest()[:8], 16)
    return h % 100 < FIT_PERCENT


@dataclass(frozen=True)
class Case:
    """One row sunsim can express: what :func:`~sunsim.validate.silicon.mapping.row_scenario`
    builds a scenario from. Token counts in tokens, times in seconds."""

    row_id: str
    mode: str  # "agg" or "disagg"
    model: str  # sunsim model name
    model_path: str  # the row's Hugging Face name
    gpu: str  # sunsim GPU key
    backend: str
    backend_version: str
    precision: str  # sunsim precision key
    isl: int
    osl: int
    concurrency: int
    tensor_parallel_size: int  # agg: the worker's TP; disagg: unused (see the pools)
    prefill_workers: int
    prefill_tensor_parallel_size: int
    decode_workers: int
    decode_tensor_parallel_size: int
    max_num_seqs: int  # the engine's batch cap: batch_size (agg), decode_batch_size (disagg)
    prefill_batch_size: int  # disagg: requests per prefill batch (1 when not given)
    ttft_s: float
    tpot_s: float
    #: the serving KV cache's dtype (:func:`kv_cache_dtype_of`): ``auto`` (BF16) or ``fp8``
    kv_cache_dtype: str = "auto"
    #: the benchmark client's lengths (:func:`client_lengths_of`): drawn uniformly from
    #: ``[low x ISL, ISL]`` and ``[low x OSL, OSL]``; 1.0: fixed at ISL and OSL
    length_low_ratio: float = 1.0
    #: the aggregated engine's token budget per step when the row's collection documents it
    #: (:func:`token_budget_of`, tokens); None: the backend's default (``mapping``)
    max_num_batched_tokens: int | None = None


@dataclass(frozen=True)
class Skip:
    """A row sunsim cannot express: ``reason`` (a short category, counted) and ``detail``."""

    row_id: str
    reason: str
    detail: str


def classify(row: dict[str, Any], *, for_fit: bool = False) -> Case | Skip:
    """The :class:`Case` of a silicon row, or a :class:`Skip` naming the first missing piece,
    checked in this order (so each row is counted under its most basic reason): the
    measurements and shape; the model (dense, known), GPU and precision; pipeline and
    attention data parallelism; a disaggregated row's worker counts; tensor parallelism.

    What a row needs is looked up in sunsim's registries at run time (the model through
    :func:`sunsim.specs.get_model`, the GPU, the precision, the ``colocated`` design for
    aggregated rows, a tensor parallel size field of :class:`~sunsim.engine.spec.ClusterSpec`
    for TP > 1), so rows become expressible as those features land, without changes here.
    The serving backend's profile is checked when the row runs (``profiles``).
    ``for_fit``: the overhead fit's analytic steady state needs neither the design nor the
    engine's tensor parallelism (only a profile at the row's TP), so those are not checked.
    """
    rid = str(row["id"])
    why = _basic(row)
    if why is not None:
        return Skip(rid, *why)
    found = _registries(row, for_fit)
    if isinstance(found, tuple) and len(found) == 2:
        return Skip(rid, *found)
    for why in (_parallelism(row), _workers(row)):
        if why is not None:
            return Skip(rid, *why)
    model, gpu, precision = found
    agg = row["mode"] == "agg"
    tp = int(_num(row.get("tp_size"), 1)) if agg else 1
    ptp = int(_num(row.get("prefill_tp_size"), 1))
    dtp = int(_num(row.get("decode_tp_size"), 1))
    tps = {tp} if agg else {ptp, dtp}
    if max(tps) > 1 and not for_fit and not tensor_parallel_supported():
        return Skip(rid, "tensor parallelism not simulated", f"TP {max(tps)}")
    return Case(
        row_id=rid,
        mode=str(row["mode"]),
        model=model,
        model_path=str(row["model_path"]),
        gpu=gpu,
        backend=str(row["backend"]),
        backend_version=str(row.get("backend_version", "")),
        precision=precision,
        isl=int(row["isl"]),
        osl=int(row["osl"]),
        concurrency=int(row["concurrency"]),
        tensor_parallel_size=tp,
        prefill_workers=1 if agg else int(_num(row.get("prefill_num_workers"), 1)),
        prefill_tensor_parallel_size=tp if agg else ptp,
        decode_workers=1 if agg else int(_num(row.get("decode_num_workers"), 1)),
        decode_tensor_parallel_size=tp if agg else dtp,
        max_num_seqs=max(1, int(_num(row.get("batch_size" if agg else "decode_batch_size"), 1))),
        prefill_batch_size=max(1, int(_num(row.get("prefill_batch_size"), 1))),
        ttft_s=float(row["silicon_ttft_ms"]) / 1e3,
        tpot_s=float(row["silicon_tpot_ms"]) / 1e3,
        kv_cache_dtype=kv_cache_dtype_of(row, precision),
        length_low_ratio=client_lengths_of(row),
        max_num_batched_tokens=token_budget_of(row),
    )


def _basic(row: dict[str, Any]) -> tuple[str, str] | None:
    """Measurements, lengths, concurrency and mode present and sane."""
    if row.get("mode") not in ("agg", "disagg"):
        return "unknown mode", f"mode '{row.get('mode')}'"
    for c in ("silicon_ttft_ms", "silicon_tpot_ms", "isl", "osl", "concurrency"):
        if not _num(row.get(c)) > 0:
            return "missing measurement or shape", f"{c} = {row.get(c)}"
    return None


def _workers(row: dict[str, Any]) -> tuple[str, str] | None:
    """A disaggregated row names its prefill and decode worker counts."""
    if row["mode"] == "disagg" and not (
        _num(row.get("prefill_num_workers")) >= 1 and _num(row.get("decode_num_workers")) >= 1
    ):
        return "disaggregated row without worker counts", "prefill/decode_num_workers empty"
    return None


def _parallelism(row: dict[str, Any]) -> tuple[str, str] | None:
    """Pipeline and attention data parallelism are not simulated."""
    prefixes = ("",) if row["mode"] == "agg" else ("prefill_", "decode_")
    for pre in prefixes:
        if _num(row.get(f"{pre}pp_size"), 1) > 1:
            return "pipeline parallelism not simulated", f"{pre}pp_size {row[f'{pre}pp_size']:g}"
        if _num(row.get(f"{pre}attention_dp_size"), 1) > 1:
            return (
                "attention data parallelism not simulated",
                f"{pre}attention_dp_size {row[f'{pre}attention_dp_size']:g}",
            )
    return None


def _registries(row: dict[str, Any], for_fit: bool) -> tuple[str, str, str] | tuple[str, str]:
    """(model, gpu, precision) sunsim keys, or (reason, detail)."""
    from sunsim.engine.designs import DESIGNS
    from sunsim.specs import get_gpu, get_precision

    try:
        model = sunsim_model(str(row["model_path"]))
    except ConfigError as e:
        return "model not in sunsim (or not dense)", f"{row['model_path']}: {e}"
    try:
        get_gpu(str(row["system"]).replace("_", "-"))
    except ConfigError:
        return "GPU not in sunsim", str(row["system"])
    gpu = gpu_key(str(row["system"]))
    quant = str(row.get("gemm_quant_mode") or "").strip().lower()
    prec = PRECISION_OF.get(quant, quant)
    try:
        prec = get_precision(prec).name
    except ConfigError:
        return "precision not in sunsim", f"{quant or 'bf16'} (as '{prec}')"
    if row["mode"] == "agg" and "colocated" not in DESIGNS and not for_fit:
        return "co-located design not in this build", "aggregated serving needs 'colocated'"
    return model, gpu, prec


@functools.lru_cache(maxsize=256)
def sunsim_model(model_path: str) -> str:
    """sunsim's name for a Hugging Face model name: :func:`sunsim.specs.get_model` of the
    name itself, else of its last part lowercased without ``-Instruct``/``-FP8``/``-NVFP4``
    (same architecture: ``meta-llama/Llama-3.1-8B-Instruct`` -> ``llama-3.1-8b``). Raises
    the first :class:`ConfigError` when neither is known."""
    from sunsim.specs import get_model

    try:
        return str(get_model(model_path).name)
    except ConfigError as first:
        base = model_path.rsplit("/", 1)[-1].lower()
        for suffix in ("-nvfp4", "-fp8", "-instruct"):
            base = base.removesuffix(suffix)
        try:
            return str(get_model(base).name)
        except ConfigError:
            raise first from None


def gpu_key(system: str) -> str:
    """sunsim's GPU key of an aiconfigurator system name (``h100_sxm`` -> ``h100``)."""
    from sunsim.latency.resolve import gpu_key as key

    return key(system.replace("_", "-"))


def tensor_parallel_supported() -> bool:
    """Whether this build simulates tensor parallelism (a ``*tensor_parallel_size`` field of
    :class:`~sunsim.engine.spec.ClusterSpec`)."""
    from sunsim.engine.spec import ClusterSpec

    return any("tensor_parallel_size" in f.name for f in dataclasses.fields(ClusterSpec))
