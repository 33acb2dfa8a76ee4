"""Step-time profiles for a silicon row: the serving backend's kernels on the row's GPU, for
its model, precision and tensor parallel size.

Looked for, in order: a bundled profile (:func:`sunsim.data.profiles_root`) and one in the
cache directory whose meta says that GPU, backend (``source.backend``), model, precision and
tensor parallel size (``source.tensor_parallel_size``, missing = 1); else, when
aiconfigurator-core is installed, one imported now (:func:`sunsim.profiling.aic.import_profile`,
about a second) into the cache directory. The profile's backend version is the newest the
kernel database has for that GPU, which may differ from the version the row was measured
with; the results name both.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
from pathlib import Path

from sunsim.errors import SunsimError


class NoProfile(Exception):
    """No profile for a row's GPU, backend, model, precision and TP (``str()``: why)."""


def find_backend_profile(
    roots: list[Path],
    gpu: str,
    backend: str,
    model: str,
    precision: str,
    tp: int,
    kv_cache_dtype: str = "auto",
) -> Path | None:
    """The first profile directory under ``roots`` (``<slug>/<model>/<precision>/``) whose
    meta matches, KV-cache dtype included (``source.kv_cache_dtype``, missing = ``auto``;
    quick test-grid profiles excluded), or None."""
    from sunsim.latency.kv_cache_dtype import profile_kv_cache_dtype

    for root in roots:
        if not root.is_dir():
            continue
        for meta_path in sorted(root.glob(f"*/{model}/{precision}/meta.json")):
            try:
                meta = json.loads(meta_path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                continue
            src = meta.get("source") or {}
            if (
                not meta.get("quick")
                and meta.get("gpu_key") == gpu
                and src.get("backend") == backend
                and int(src.get("tensor_parallel_size") or 1) == tp
                and meta.get("model") == model
                and meta.get("precision") == precision
                and profile_kv_cache_dtype(meta) == kv_cache_dtype
            ):
                return meta_path.parent
    return None


def aic_installed() -> bool:
    """Whether aiconfigurator-core (the ``aic`` extra) is installed."""
    return importlib.util.find_spec("aiconfigurator_core") is not None


def backend_profile(
    cache: Path,
    gpu: str,
    backend: str,
    model: str,
    precision: str,
    tp: int,
    kv_cache_dtype: str = "auto",
) -> Path:
    """The profile directory for these, found or imported into ``cache`` (module docstring;
    ``kv_cache_dtype`` ``fp8``: imported with the FP8 KV-cache attention kernels).

    Raises:
        NoProfile: none bundled, and none can be imported (package missing, no kernel data
            for that GPU/backend/precision, or import at TP > 1 not in this build).
    """
    from sunsim.data import profiles_root

    found = find_backend_profile(
        [profiles_root(), cache], gpu, backend, model, precision, tp, kv_cache_dtype
    )
    if found is not None:
        return found
    if not aic_installed():
        raise NoProfile(
            f"no bundled {backend} profile for {gpu} {model} {precision} TP {tp}, and "
            "aiconfigurator-core is not installed to import one"
        )
    from sunsim.profiling.aic import import_profile, write_imported

    kw: dict[str, int | str] = {}
    if kv_cache_dtype != "auto":
        kw["kv_cache_dtype"] = kv_cache_dtype
    if tp != 1:
        if "tensor_parallel_size" not in inspect.signature(import_profile).parameters:
            raise NoProfile(f"profile import at tensor parallel size {tp} not in this build")
        kw["tensor_parallel_size"] = tp
    try:
        prof = import_profile(gpu, backend, model, precision, **kw)  # type: ignore[arg-type]
        d = write_imported(prof, cache)
    except SunsimError as e:
        kv = f" (KV cache {kv_cache_dtype})" if kv_cache_dtype != "auto" else ""
        raise NoProfile(
            f"no {backend} kernel data for {gpu} {model} {precision}{kv}: {e}"
        ) from None
    return Path(d)
