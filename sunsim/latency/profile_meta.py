"""``meta.json`` of a profile: the typed schema :class:`ProfileMeta` (part of the profile format,
:mod:`sunsim.latency.profile_format`).

The required keys are :data:`META_KEYS`; every other key is optional, and keys this version
does not know are kept (``model_extra``) and written back unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sunsim.errors import ProfileError, SunsimError
from sunsim.specs import MODELS, ModelSpec, get_precision

SCHEMA_VERSION = 1
#: ``meta.json`` ``fit_statistic`` -> the CSV column the model is fitted to.
FIT_STATISTICS = {"median": "time_s_median", "min": "time_s_min"}
#: Keys every ``meta.json`` must have.
META_KEYS = (
    "model",
    "precision",
    "method",
    "model_spec",
    "device_slug",
    "layers_run",
    "layers_total",
)
#: ModelSpec fields that must agree with sunsim's built-in spec of the same name.
_SPEC_SHAPE_FIELDS = (
    "hidden_size",
    "intermediate_size",
    "num_layers",
    "num_heads",
    "num_kv_heads",
    "head_dim",
    "vocab_size",
    "tie_embeddings",
    "qk_norm",
)

Json = dict[str, Any]


class ProfileMeta(BaseModel):
    """How, where and on what a profile was measured (``meta.json``).

    Written by :func:`sunsim.profiling.harness.profile_model` and by ``sunsim validate
    engine``; read by :class:`~sunsim.latency.profiled.ProfiledLatency`. Units: bytes,
    bytes per second, FLOP per second, seconds. Build from a dict with :meth:`from_dict` (it
    turns every problem into one-line :class:`~sunsim.errors.ProfileError`); :meth:`to_dict`
    gives back the keys that were set, unknown ones included.
    """

    model_config = ConfigDict(extra="allow", frozen=True, strict=True)

    schema_version: int = Field(SCHEMA_VERSION, ge=1, description="format version")
    method: str = Field(description='how the times were obtained, e.g. "measured"')
    quick: bool = Field(False, description="a tiny test grid; never used by default")
    model: str = Field(min_length=1, description="model name (sunsim.specs.MODELS)")
    precision: str = Field(description="bf16, w8a16 or w4a16")
    model_spec: Json = Field(description="every ModelSpec field of the profiled model")
    modules: list[Literal["prefill", "decode"]] | None = Field(None, description="measured")
    prefill_note: str | None = None
    device_kind: str | None = Field(None, description="cpu or cuda")
    device_name: str | None = None
    device_slug: str = Field(min_length=1, description="directory name of the device")
    gpu_key: str | None = Field(None, description="h100/h200/a100...; None for CPUs")
    device_memory_bytes: int | None = None
    torch_version: str | None = None
    cuda_version: str | None = None
    driver_version: str | None = None
    threads: int | None = None
    cpu_count: int | None = None
    cpu_name: str | None = None
    compute_capability: str | None = None
    dtype: str | None = None
    weight_quantisation: Json | None = None
    attention: str | None = None
    layers_run: int = Field(ge=1, description="layers timed")
    layers_total: int = Field(ge=1, description="layers of the model")
    scaling: Json | None = None
    grid: Json | None = None
    fit_statistic: Literal["median", "min"] = Field("median", description="fitted column")
    fit_statistic_note: str | None = None
    timing: Json | None = None
    copy_bandwidth_bytes_per_s: float | None = Field(None, gt=0)
    copy_bandwidth_median_bytes_per_s: float | None = Field(None, gt=0)
    copy_bytes: int | None = None
    matmul_flops_per_s: float | None = Field(None, gt=0)
    matmul_median_flops_per_s: float | None = Field(None, gt=0)
    matmul_n: int | None = None
    probes: int | None = None
    module_weight_bytes_run: int | None = None
    date: str | None = None
    sunsim_version: str | None = None
    command: str | None = None
    wall_s: float | None = None
    source: Json | None = Field(
        None,
        description="where imported times come from (sunsim profile import): package, "
        "package_version, backend, backend_version, system, kernel_sources, measured, "
        "estimated",
    )

    @property
    def method_label(self) -> str:
        """``method`` with its source when the profile was imported, e.g. ``measured
        (aiconfigurator-core 0.12.0, vllm 0.24.0, h100_sxm)``, ``..., h100_sxm, tp 2)`` under
        tensor parallelism, and for a derived one ``derived (aiconfigurator-core 0.12.0:
        h100_sxm vllm 0.24.0 BF16 x a100_sxm trtllm 1.0.0 W4A16/BF16 ratio)``; plain
        ``method`` otherwise."""
        src = self.source
        if not src:
            return self.method
        pkg = f"{src.get('package', '?')} {src.get('package_version', '?')}"
        be = f"{src.get('backend', '?')} {src.get('backend_version', '?')}"
        system = str(src.get("system", "?"))
        tp = int(src.get("tensor_parallel_size") or 1)
        tps = f", tp {tp}" if tp > 1 else ""
        donor = src.get("derived_from")
        if isinstance(donor, dict):
            prec = str(donor.get("precision", self.precision)).upper()
            d = f"{donor.get('system', '?')} {donor.get('backend', '?')} "
            d += str(donor.get("backend_version", "?"))
            return f"{self.method} ({pkg}: {system} {be} BF16 x {d} {prec}/BF16 ratio{tps})"
        return f"{self.method} ({pkg}, {be}, {system}{tps})"

    @field_validator("precision")
    @classmethod
    def _known_precision(cls, v: str) -> str:
        try:
            name = get_precision(v).name
        except SunsimError:
            raise ValueError(f"unknown precision '{v}' (bf16, w8a16, w4a16)") from None
        if name != v:
            raise ValueError(f"write the precision as '{name}', not '{v}'")
        return v

    @model_validator(mode="after")
    def _layers(self) -> ProfileMeta:
        if self.layers_run > self.layers_total:
            raise ValueError(
                f"layers_run {self.layers_run} exceeds layers_total {self.layers_total}"
            )
        return self

    @classmethod
    def from_dict(cls, raw: object, source: str | Path = "meta.json") -> ProfileMeta:
        """Validate ``raw`` (a parsed ``meta.json``); ``source`` names it in errors.

        Raises ProfileError: not an object, a missing required key, an unknown
        ``fit_statistic``, or a wrong type or range (one line naming the key).
        """
        if isinstance(raw, ProfileMeta):
            return raw
        if not isinstance(raw, dict):
            raise ProfileError(f"{source}: expected a JSON object; re-run `sunsim profile`")
        missing = [k for k in META_KEYS if k not in raw]
        if missing:
            raise ProfileError(
                f"{source}: missing key(s) {', '.join(missing)}; re-run `sunsim profile`"
            )
        stat = raw.get("fit_statistic", "median")
        if stat not in FIT_STATISTICS:
            raise ProfileError(
                f"{source}: fit_statistic '{stat}' is not one of {', '.join(FIT_STATISTICS)}"
            )
        try:
            # JSON semantics: a float field takes a JSON integer, nothing takes a string
            return cls.model_validate_json(json.dumps(raw, allow_nan=True))
        except ValidationError as e:
            err = e.errors()[0]
            key = ".".join(str(x) for x in err["loc"]) or "(top level)"
            msg = err["msg"].removeprefix("Value error, ")
            raise ProfileError(
                f"{source}: key '{key}': {msg} (got {err.get('input')!r}); fix it or re-run "
                "`sunsim profile`"
            ) from None

    def to_dict(self) -> Json:
        """The JSON object of ``meta.json``: the keys that were set, unknown ones included."""
        return self.model_dump(mode="json", exclude_unset=True)

    def get(self, key: str, default: Any = None) -> Any:
        """``meta.json`` value of ``key`` (known or extra), else ``default``."""
        return self.to_dict().get(key, default)


def tensor_parallel_size_of(meta: ProfileMeta | Json, source: str | Path = "meta.json") -> int:
    """GPUs per worker a profile was measured at: meta ``source.tensor_parallel_size``
    (written by ``sunsim profile import``); missing = 1 (``sunsim profile`` times one GPU).

    Raises ProfileError: a value that is not a positive integer (``source`` names the file).
    """
    src = meta.source if isinstance(meta, ProfileMeta) else meta.get("source")
    tp = src.get("tensor_parallel_size", 1) if isinstance(src, dict) else 1
    if isinstance(tp, bool) or not isinstance(tp, int) or tp < 1:
        raise ProfileError(
            f"{source}: source.tensor_parallel_size must be a positive integer, got {tp!r}; "
            "fix it or re-import the profile"
        )
    return tp


def time_column(meta: ProfileMeta | Json) -> str:
    """The CSV column a profile's model is fitted to (``meta.json`` ``fit_statistic``)."""
    stat = meta.fit_statistic if isinstance(meta, ProfileMeta) else meta.get("fit_statistic")
    return FIT_STATISTICS[stat or "median"]


def model_spec_of(meta: ProfileMeta, path: str | Path) -> ModelSpec:
    """The :class:`ModelSpec` in ``meta.model_spec``.

    Raises ProfileError: fields that ModelSpec does not take, or a shape that differs from
    sunsim's built-in spec of the same name.
    """
    try:
        spec = ModelSpec(**meta.model_spec)
    except (TypeError, ValueError, SunsimError) as e:
        raise ProfileError(
            f"{path}: model_spec does not match sunsim's ModelSpec ({e}); re-run `sunsim profile`"
        ) from None
    known = MODELS.get(spec.name)
    if known is not None and known != spec:
        diff = [f for f in _SPEC_SHAPE_FIELDS if getattr(known, f) != getattr(spec, f)]
        if diff:
            raise ProfileError(
                f"{path}: model_spec of '{spec.name}' differs from sunsim's "
                f"built-in spec in {', '.join(diff)}; re-profile the model"
            )
    return spec
