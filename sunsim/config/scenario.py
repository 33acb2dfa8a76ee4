"""The replay scenario: one frozen, validated pydantic dataclass, every field declared once.

Each field carries its help text, unit, TOML ``[section]``/key and command-line option
(:func:`~sunsim.config.fields.setting`); the TOML reader/writer and the CLI options are
derived from them. Bad values raise :class:`~sunsim.config.fields.ScenarioFieldError`
(a :class:`~sunsim.errors.ConfigError`) naming the field, in one line; impossible
combinations raise :class:`~sunsim.errors.ConfigError`.

Because :class:`Scenario` is a (pydantic) dataclass, ``dataclasses.replace(s, ...)``,
``dataclasses.fields``, ``dataclasses.asdict``, hashing and pickling work as before, and
``replace`` validates the changed copy. :meth:`Scenario.replace` does the same.

Upper bounds on counts exist to fail early with a message instead of a ``MemoryError`` deep
in the engine: every worker and every running sequence is a simulated object.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeAlias

from pydantic import ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.dataclasses import dataclass

from sunsim.config.fields import (
    Bool,
    Float,
    Int,
    PathStr,
    ScenarioFieldError,
    Str,
    describe_error,
    field_meta,
    setting,
)
from sunsim.engine.designs import DESIGNS, get_design
from sunsim.engine.router import ROUTERS
from sunsim.engine.spec import ClusterSpec, split_workers
from sunsim.errors import ConfigError
from sunsim.specs import GPU_ALIASES, GPUS, MODELS, GiB, LinkSpec, SloSpec
from sunsim.traces.formats import FORMATS

MODES = tuple(DESIGNS)

# Choices (shown by --help, checked on every scenario), built from their registries.
if TYPE_CHECKING:  # a type checker sees plain strings
    DesignName: TypeAlias = str
    RouterName: TypeAlias = str
    GpuName: TypeAlias = str
    ModelName: TypeAlias = str
    TraceFormat: TypeAlias = str
else:
    DesignName = Literal[MODES]
    RouterName = Literal[tuple(ROUTERS)]
    GpuName = Literal[tuple(GPUS)]
    ModelName = Literal[tuple(MODELS)]
    TraceFormat = Literal[("auto", *FORMATS)]
LatencySource = Literal["auto", "profile", "roofline"]
QsunPrecision = Literal["w4a16", "w8a16"]

#: Largest worker count of one pool: each worker is a simulated process with its own state.
MAX_WORKERS = 4096
_WORKERS_WHY = f"at most {MAX_WORKERS} workers per pool: each is a simulated process"
WorkerCount = Annotated[Int, Field(ge=1, le=MAX_WORKERS)]
Share = Annotated[Float, Field(ge=0)]


@dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class Scenario:
    """Everything a replay needs, as a user writes it (CLI options or a TOML file).

    Trace: ``trace`` (path; None = the bundled default trace), ``trace_format``,
    ``keep_failed``, ``window_s`` ((start, end) seconds), ``rate_scale``, ``max_requests``.
    Models: ``base_model``, ``served_models``, labelling by ``zipf`` alpha, ``shares`` or
    ``model_map`` (trace model -> served). Cluster: ``gpu``, ``prefill_workers`` (one count
    for every model, or one per model), ``decode_workers`` (one count = the total: the shared
    pool of sun/qsun, split over partitioned's per-model pools in proportion to each model's
    output tokens in the trace, at least 1 each; or one per model, summed for the shared
    pool), ``qsun_precision``, engine limits, routers, link. Latency: ``latency`` = ``auto``
    (a bundled profile for gpu+model+precision if there is one, else the roofline),
    ``profile`` (``profile`` path required) or ``roofline``. See each field's help.
    """

    trace: PathStr | None = setting(
        None, section="trace", key="path", option="TRACE",
        help="Trace file (BurstGPT/Azure CSV, Mooncake JSONL, canonical CSV); default: the "
        "bundled synthetic trace. Relative paths in a scenario file are relative to the file.",
    )  # fmt: skip
    trace_format: TraceFormat = setting(
        "auto", section="trace", key="format", option="--format", what="trace format",
        help="Trace format; auto detects it from the header.",
    )  # fmt: skip
    keep_failed: Bool = setting(
        False, section="trace", help="Keep BurstGPT's failed requests (Response tokens == 0)."
    )
    sort_arrivals: Bool = setting(
        False, section="trace",
        help="Re-sort rows whose timestamps go back by more than 1 s (else an error names "
        "the row).",
    )  # fmt: skip
    window_s: tuple[Float, Float] | None = setting(
        None, section="trace", option="--window", unit="s",
        help="Keep arrivals in START,END seconds.",
    )  # fmt: skip
    rate_scale: Float = setting(
        1.0, section="trace", gt=0, unit="x", help="Multiply the request rate (compress time)."
    )
    max_requests: Int | None = setting(
        None, section="trace", ge=1, unit="requests", help="Keep the first N requests."
    )
    modes: tuple[DesignName, ...] = setting(
        MODES, section="cluster", option="--mode", what="mode", min_length=1,
        help="Serving designs to run: one, a comma list, or all.",
    )  # fmt: skip
    base_model: ModelName = setting(
        "llama-3.1-8b", section="models", key="base", option="--model", what="model",
        help="Base architecture of the served models.",
    )  # fmt: skip
    served_models: tuple[Str, ...] = setting(
        ("math", "code", "tool"), section="models", key="served", option="--models",
        min_length=1, max_length=256, help="Served task models, comma-separated.",
    )  # fmt: skip
    zipf: Float | None = setting(
        None, section="models", ge=0, help="Label requests by Zipf(alpha) popularity."
    )
    shares: tuple[Share, ...] | None = setting(
        None, section="models", help="Label requests by explicit shares, e.g. 0.6,0.3,0.1."
    )
    model_map: tuple[tuple[Str, Str], ...] | None = setting(
        None, section="models", key="map",
        help="Map the trace's own models, e.g. ChatGPT=math,GPT-4=code.",
    )  # fmt: skip
    gpu: GpuName = setting("h100", section="cluster", what="GPU", help="GPU of every worker.")
    prefill_workers: tuple[WorkerCount, ...] = setting(
        (1,), section="cluster", unit="workers", reason=_WORKERS_WHY,
        help="Prefill workers: one count for every model, or one per model.",
    )  # fmt: skip
    decode_workers: tuple[WorkerCount, ...] = setting(
        (3,), section="cluster", unit="workers", reason=_WORKERS_WHY,
        help="Decode workers: the total (split over partitioned's pools by output-token "
        "share), or one per model.",
    )  # fmt: skip
    qsun_precision: QsunPrecision = setting(
        "w4a16", section="cluster", what="qsun precision", help="Weights of qsun's decode pool."
    )
    max_num_seqs: Int = setting(
        256, section="cluster", ge=1, le=65536, unit="sequences",
        reason="vLLM's own limit is far lower; more would exhaust memory",
        help="Decode batch cap: running sequences per decode worker.",
    )  # fmt: skip
    max_num_batched_tokens: Int = setting(
        8192, section="cluster", ge=1, le=2**20, unit="tokens", aliases=("max_batch_tokens",),
        reason="a larger prefill batch than any engine runs",
        help="Prefill batch budget: prompt tokens per prefill batch.",
    )  # fmt: skip
    block_size: Int = setting(
        16, section="cluster", ge=1, le=4096, unit="tokens", aliases=("kv_block_tokens",),
        reason="larger than any paged-attention kernel supports",
        help="Tokens per paged KV-cache block.",
    )  # fmt: skip
    gpu_memory_utilization: Float = setting(
        0.9, section="cluster", gt=0, le=1, unit="fraction",
        help="Fraction of GPU memory a decode worker may use (weights + KV cache + reserve).",
    )  # fmt: skip
    reserve_gib: Float = setting(
        2.0, section="cluster", ge=0, le=1024, unit="GiB", reason="more than any GPU holds",
        help="GPU memory kept free of weights and KV cache (activations, workspace).",
    )  # fmt: skip
    prefill_router: RouterName = setting(
        "least_loaded", section="cluster", what="prefill router",
        help="Router among a model's prefill workers.",
    )  # fmt: skip
    decode_router: RouterName = setting(
        "least_loaded", section="cluster", option="--router", what="decode router",
        help="Router among decode workers.",
    )  # fmt: skip
    link_gbps: Float = setting(
        400.0, section="cluster", gt=0, unit="Gb/s",
        help="KV-cache link bandwidth per prefill worker.",
    )  # fmt: skip
    link_latency_us: Float = setting(
        10.0, section="cluster", ge=0, unit="us", help="KV-cache link latency per transfer."
    )
    slo_ttft_s: Float = setting(
        2.0, section="slo", key="ttft_s", option="--slo-ttft", gt=0, unit="s", help="TTFT SLO."
    )
    slo_tpot_s: Float = setting(
        0.1, section="slo", key="tpot_s", option="--slo-tpot", gt=0, unit="s", help="TPOT SLO."
    )
    slo_attainment: Float = setting(
        0.9, section="slo", key="attainment", gt=0, le=1, unit="fraction",
        help="SLO attainment target (fraction of requests meeting both bounds).",
    )  # fmt: skip
    latency: LatencySource = setting(
        "auto", section="latency", key="source", what="latency source",
        help="Step times: auto (a bundled profile if one matches, else roofline), profile, "
        "roofline.",
    )  # fmt: skip
    profile: PathStr | None = setting(
        None, section="latency",
        help="Profile directory (sunsim profile output) to take step times from.",
    )  # fmt: skip
    gpu_hour_usd: tuple[tuple[Str, Annotated[Float, Field(gt=0)]], ...] | None = setting(
        None, section="cost", unit="$/GPU-hour", option="--gpu-hour-usd",
        help="Price per GPU-hour by GPU, e.g. h100=2.5,h200=3.2 (TOML: {h100 = 2.5}); "
        "default: sunsim.specs.pricing (Modal's 2026 on-demand list prices).",
    )  # fmt: skip
    seed: Int = setting(
        0, section="run", ge=0, le=2**32 - 1, reason="a 32-bit seed",
        help="Seed for labelling and routing.",
    )  # fmt: skip

    # --- validation ---------------------------------------------------------------------

    @field_validator("gpu", "base_model", mode="before")
    @classmethod
    def _lower_key(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = v.lower()
            return GPU_ALIASES.get(v, v)
        return v

    @field_validator(
        "modes", "served_models", "prefill_workers", "decode_workers", "shares", mode="before"
    )
    @classmethod
    def _as_tuple(cls, v: Any) -> Any:
        if isinstance(v, str) and v == "all":
            return MODES
        if isinstance(v, (str, int, float)):
            return (v,)
        return tuple(v) if isinstance(v, list) else v

    @field_validator("model_map", mode="before")
    @classmethod
    def _map_items(cls, v: Any) -> Any:
        if isinstance(v, dict):
            return tuple(v.items())
        return tuple(tuple(x) if isinstance(x, list) else x for x in v) if v else v

    @field_validator("gpu_hour_usd", mode="before")
    @classmethod
    def _price_items(cls, v: Any) -> Any:
        if isinstance(v, dict):
            v = tuple(v.items())
        if not v:
            return v
        out = []
        for item in v:
            name, price = tuple(item) if isinstance(item, (list, tuple)) else (item, None)
            key = GPU_ALIASES.get(str(name).lower(), str(name).lower())
            if key not in GPUS:
                raise ValueError(f"unknown GPU '{name}'; known GPUs: {', '.join(GPUS)}")
            out.append((key, price))
        return tuple(out)

    @model_validator(mode="wrap")
    @classmethod
    def _one_line(cls, values: Any, handler: Any) -> Any:
        try:
            return handler(values)
        except ValidationError as e:
            err = e.errors()[0]
            name = str(err["loc"][0]) if err.get("loc") else "scenario"
            info = cls.__pydantic_fields__.get(name)  # type: ignore[attr-defined]
            meta = field_meta(name, info) if info is not None else None
            if err["type"] == "unexpected_keyword_argument":
                raise ConfigError(f"unknown scenario field '{name}'") from None
            if err["type"] == "value_error" and meta is not None:
                what = str(err["ctx"]["error"])
                raise ScenarioFieldError(name, f"{what}, got {err['input']}") from None
            raise ScenarioFieldError(name, describe_error(err, meta)) from None

    @model_validator(mode="after")
    def _consistent(self) -> Scenario:
        if self.latency == "profile" and not self.profile:
            raise ConfigError("latency = 'profile' needs a profile path (--profile DIR)")
        n = len(self.served_models)
        if len(set(self.served_models)) != n:
            raise ConfigError(f"served model names must differ: {', '.join(self.served_models)}")
        for what, counts in (("prefill", self.prefill_workers), ("decode", self.decode_workers)):
            if len(counts) not in (1, n):
                total = " (the total)" if what == "decode" else ""
                raise ConfigError(
                    f"give one {what} worker count{total} or {n} (one per served model), "
                    f"got {len(counts)}"
                )
        if self.shares is not None:
            if len(self.shares) != n:
                raise ConfigError(f"{len(self.shares)} shares for {n} served models")
            if sum(self.shares) <= 0:
                raise ConfigError(f"shares must have a positive sum, got {self.shares}")
        if self.window_s is not None and not 0 <= self.window_s[0] < self.window_s[1]:
            raise ConfigError(
                f"window must be START,END with 0 <= START < END, got {self.window_s}"
            )
        if "partitioned" in self.modes and len(self.decode_workers) == 1:
            if self.decode_workers[0] < n:
                split_workers(self.decode_workers[0], [1.0] * n)  # raises: fewer than pools
        return self

    # --- derived views --------------------------------------------------------------------

    @property
    def gpu_prices(self) -> dict[str, float]:
        """``[cost] gpu_hour_usd`` as GPU -> US dollars per GPU-hour (empty: defaults)."""
        return dict(self.gpu_hour_usd or ())

    def replace(self, **changes: Any) -> Scenario:
        """A validated copy with ``changes`` (field name -> value); the same as
        ``dataclasses.replace(self, **changes)``. Raises :class:`ConfigError`."""
        import dataclasses

        return dataclasses.replace(self, **changes)

    @property
    def slo(self) -> SloSpec:
        """The latency SLOs (seconds) and attainment target."""
        return SloSpec(self.slo_ttft_s, self.slo_tpot_s, self.slo_attainment)

    @property
    def link(self) -> LinkSpec:
        """The KV-cache link: ``link_gbps`` Gb/s as bytes/s, ``link_latency_us`` as seconds."""
        return LinkSpec(bandwidth=self.link_gbps * 1e9 / 8, latency_s=self.link_latency_us * 1e-6)

    def decode_precision(self, mode: str) -> str:
        """The decode precision of design ``mode`` under this scenario."""
        d = get_design(mode)
        return self.qsun_precision if d.low_bit_decode else d.decode.precision

    def cluster(
        self, mode: str, output_tokens_per_model: Sequence[float] | None = None
    ) -> ClusterSpec:
        """The :class:`ClusterSpec` of ``mode``. ``output_tokens_per_model`` (served order)
        weights partitioned's split of a single decode-worker total."""
        n = len(self.served_models)
        pw = self.prefill_workers * n if len(self.prefill_workers) == 1 else self.prefill_workers
        dw = self.decode_workers
        design = get_design(mode)
        if not design.shares_decode:
            if len(dw) == 1:
                dw = split_workers(dw[0], output_tokens_per_model or [1.0] * n)
        else:
            dw = (sum(dw),)
        return ClusterSpec(
            design=design,
            served_models=self.served_models,
            prefill_workers=tuple(pw),
            decode_workers=tuple(dw),
            decode_precision=self.decode_precision(mode),
            gpu=self.gpu,
            max_num_seqs=self.max_num_seqs,
            max_num_batched_tokens=self.max_num_batched_tokens,
            block_size=self.block_size,
            gpu_memory_utilization=self.gpu_memory_utilization,
            reserve_bytes=int(self.reserve_gib * GiB),
            prefill_router=self.prefill_router,
            decode_router=self.decode_router,
            link=self.link,
        )


def scenario_fields() -> dict[str, Any]:
    """Field name -> :class:`~sunsim.config.fields.FieldMeta` of :class:`Scenario`, in
    declaration order (what the TOML layout and the CLI options are built from)."""
    fields = Scenario.__pydantic_fields__  # type: ignore[attr-defined]
    return {n: field_meta(n, f) for n, f in fields.items()}
