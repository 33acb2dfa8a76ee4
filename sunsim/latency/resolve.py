"""Which latency model a run uses: a given profile, a bundled measured one, or the roofline.

The one place that decides it (:func:`resolve_latency`); ``sunsim replay`` and ``sunsim plan``
call it once per pool role and precision.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from sunsim.data import profiles_root
from sunsim.errors import ConfigError, ProfileError
from sunsim.latency.base import LatencyModel
from sunsim.latency.roofline import RooflineLatency
from sunsim.specs import GPU_ALIASES, ModelSpec, get_gpu, get_model, get_precision

#: ``latency`` setting: ``auto`` (a measured profile if there is one, else the calibrated
#: roofline), ``profile`` (a profile is required), ``roofline`` (always the plain roofline),
#: ``calibrated`` (always the calibrated roofline, :mod:`sunsim.latency.calibrated`).
LatencySource = Literal["auto", "profile", "roofline", "calibrated"]
Role = Literal["prefill", "decode"]


#: GPUs without FP8 tensor cores: ``fp8`` (W8A8) cannot run on them (NVIDIA A100 datasheet:
#: Ampere tensor cores do TF32, BF16, FP16, INT8 and INT4; FP8 came with Ada and Hopper), and
#: aiconfigurator-core 0.12.0 has no fp8 GEMM table for a100_sxm.
NO_FP8_TENSOR_CORES = frozenset({"a100"})


def resolve_latency(
    base_model: str,
    gpu: str,
    precision: str,
    role: str,
    source: str = "auto",
    profile: str | Path | None = None,
    *,
    profiles: str | Path | None = None,
    tensor_parallel_size: int = 1,
) -> tuple[LatencyModel, str]:
    """The latency model for ``role`` (``prefill``/``decode``) of ``base_model`` at
    ``precision`` on ``gpu`` for a worker of ``tensor_parallel_size`` GPUs, and a one-line
    note saying where it came from.

    ``source``: ``roofline`` always uses :class:`RooflineLatency` (at that tensor parallel
    size), ``calibrated`` always :func:`calibrated_latency` (at that size: fitted at 1, its
    efficiencies applied to one GPU's share plus the all-reduce term);
    otherwise ``profile`` (a device, model or precision directory), when given, is
    loaded, and it is an error if it has no matching model/precision, (for ``prefill``) no
    prefill measurements, or was measured at another tensor parallel size; without it, a
    bundled profile (under ``profiles``, default :func:`sunsim.data.profiles_root`) measured
    on ``gpu`` for this model, precision and tensor parallel size (meta
    ``source.tensor_parallel_size``, missing = 1: :func:`profile_tensor_parallel_size`) is
    used, else the calibrated roofline, and the note says so.

    Raises:
        ProfileError: a bad or mismatched ``profile``.
        ConfigError: unknown model, GPU or precision; ``fp8`` on a GPU without FP8 tensor
            cores (:data:`NO_FP8_TENSOR_CORES`); a tensor parallel size that is not a
            power of two in 1..64 or does not divide the model's heads and KV heads.
    """
    from sunsim.latency import profiled

    model = get_model(base_model)
    tp = tensor_parallel_size
    why = precision_refused(precision, gpu)
    if why:
        raise ConfigError(f"precision {precision} (W8A8) on {gpu}: {why}")
    roof = RooflineLatency(get_gpu(gpu), model, precision, tensor_parallel_size=tp)
    if source == "roofline":
        return roof, f"{role}: {roof.description} (asked for)"
    if source == "calibrated":
        cal = calibrated_latency(gpu, model, precision, tp)
        return cal, f"{role}: {cal.description} (asked for)"
    if profile:
        d = profiled.resolve_profile(Path(profile), model.name, precision)
        lat = profiled.ProfiledLatency.from_dir(d, model=model.name, precision=precision)
        check_profile_role(lat, role, d)
        check_profile_tensor_parallel(lat, tp, role, d)
        return lat, f"{role}: {lat.description} from {d}"
    root = Path(profiles) if profiles is not None else profiles_root()
    if root.exists():
        found = profiled.find_profile(
            root,
            gpu_key=gpu_key(gpu),
            model=model.name,
            precision=precision,
            tensor_parallel_size=tp,
        )
        if found is not None:
            lat = profiled.ProfiledLatency.from_dir(found, model=model.name, precision=precision)
            if has_role(lat, role):
                return lat, f"{role}: {lat.description} from {found}"
    at_tp = f" at tensor_parallel_size {tp}" if tp > 1 else ""
    fallback = calibrated_latency(gpu, model, precision, tp)
    return fallback, (
        f"{role}: no measured profile for {gpu} {model.name} {precision}{at_tp}; "
        f"using {fallback.description}"
    )


def precision_refused(precision: str, gpu: str) -> str | None:
    """Why weights at ``precision`` cannot run on ``gpu`` (one clause), or None when they can:
    ``fp8`` (W8A8) on a GPU of :data:`NO_FP8_TENSOR_CORES`. This is a property of the
    hardware, so it is refused under every ``latency`` source; a precision the GPU can run
    but nobody measured on it falls back to the labelled calibrated roofline under ``auto``
    (:func:`resolve_latency`)."""
    if get_precision(precision).name == "fp8" and gpu_key(gpu) in NO_FP8_TENSOR_CORES:
        return (
            "this GPU has no FP8 tensor cores and no FP8 kernel was measured on it; "
            "use bf16, w8a16 or w4a16 there"
        )
    return None


def calibrated_latency(
    gpu: str, model: ModelSpec, precision: str, tensor_parallel_size: int = 1
) -> LatencyModel:
    """The calibrated roofline (:class:`~sunsim.latency.calibrated.CalibratedLatency`) of
    ``model`` at ``precision`` on ``gpu`` for a worker of ``tensor_parallel_size`` GPUs,
    with the bundled coefficients.

    ``auto`` takes it, not the plain roofline, where nothing was measured: both are analytic
    and labelled so, and on every GPU held out of its fit it is the closer of the two
    (README, "Calibrated roofline"); at tensor parallel 2-4 too, against the bundled
    measured TP profiles (median |decode error| 5-25% vs 24-59% for the plain roofline:
    tests/test_measured_gpus.py).
    Raises ProfileError: unreadable bundled coefficients; ConfigError as the roofline's.
    """
    from sunsim.latency.calibrated import CalibratedLatency

    return CalibratedLatency(
        get_gpu(gpu), model, precision, tensor_parallel_size=tensor_parallel_size
    )


def gpu_key(name: str) -> str:
    """The canonical GPU key of ``name`` (``H100`` -> ``h100``, aliases resolved)."""
    key = name.lower()
    return GPU_ALIASES.get(key, key)


def has_role(lat: LatencyModel, role: str) -> bool:
    """Whether ``lat`` can time ``role``: decode always; prefill unless it is a decode-only
    profile (``has_prefill`` False)."""
    has = getattr(lat, "has_prefill", True) if role == "prefill" else True
    return bool(has)


def profile_tensor_parallel_size(lat: LatencyModel) -> int:
    """The tensor parallel size a profiled model was measured at: its meta
    ``source.tensor_parallel_size`` (:func:`sunsim.latency.profile_meta.tensor_parallel_size_of`;
    missing = 1, as every ``sunsim profile`` harness run is one GPU); 1 for a model without a
    profile meta."""
    from sunsim.latency.profile_meta import tensor_parallel_size_of

    meta = getattr(lat, "profile_meta", None)
    where = Path(getattr(lat, "path", ".")) / "meta.json"
    return 1 if meta is None else tensor_parallel_size_of(meta, where)


def check_profile_tensor_parallel(lat: LatencyModel, tp: int, role: str, d: Path) -> None:
    """Raise ProfileError when profile ``lat`` (from ``d``) was measured at another tensor
    parallel size than ``tp``, the size of the ``role`` pool's workers."""
    got = profile_tensor_parallel_size(lat)
    if got != tp:
        raise ProfileError(
            f"{d}: this profile was measured at tensor_parallel_size {got}, the {role} "
            f"workers run at {tp}; pass a profile made at {tp} (`sunsim profile import "
            f"--tensor-parallel-size {tp}`) or set {role}_tensor_parallel_size = {got}"
        )


def check_profile_role(lat: LatencyModel, role: str, d: Path) -> None:
    """Raise ProfileError when profile ``lat`` (from directory ``d``) cannot time ``role``."""
    if not has_role(lat, role):
        raise ProfileError(
            f"{d}: this profile has no prefill measurements (decode-only "
            f"precision); point --profile at a directory that also holds bf16"
        )
