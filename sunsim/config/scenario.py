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
from typing import Annotated, Any

from pydantic import ConfigDict, Field, field_validator, model_validator
from pydantic.dataclasses import dataclass

from sunsim.config import normalise
from sunsim.config.choices import (
    DEFAULT_MODES,
    MAX_CONCURRENCY,
    MAX_PROMPTS,
    TP_WHY,
    WORKERS_WHY,
    ColocatedScheduler,
    DesignName,
    EngineOverheadName,
    GpuName,
    KvCacheDtype,
    LatencySource,
    QsunPrecision,
    RouterName,
    SessionArrivals,
    Share,
    TraceFormat,
    WeightPrecision,
    WorkerCount,
)
from sunsim.config.cluster_of import cluster_of
from sunsim.config.consistency import check_consistent
from sunsim.config.fields import (
    Bool,
    Float,
    Int,
    PathStr,
    Str,
    field_meta,
    one_line_errors,
    setting,
)
from sunsim.engine.designs import (
    get_design,
)
from sunsim.engine.spec import ClusterSpec
from sunsim.specs import LinkSpec, SloSpec
from sunsim.specs.parallel import MAX_TENSOR_PARALLEL_SIZE
from sunsim.specs.pricing import price_items

_COUNT_KEYS = ("prefill_workers", "decode_workers", "colocated_workers")


@dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class Scenario:
    """Everything a replay needs, as a user writes it (CLI options or a TOML file).

    Sections: ``[trace]`` (file, format, window, rate, request limit), ``[workload]`` (closed
    loops, session arrivals), ``[models]`` (base and served models, labelling), ``[cluster]``
    (GPUs, worker counts per pool, tensor parallelism, precisions, engine limits, routers,
    prefix caching, link), ``[slo]``, ``[latency]`` (``auto``: a bundled profile for
    gpu+model+precision+TP if there is one, else the calibrated roofline) and ``[cost]``.
    Each field's help (``python -m sunsim.config.reference``, the README's options table) is
    the one description of what it means; cross-field rules are in
    :mod:`sunsim.config.consistency`, a design's cluster in :mod:`sunsim.config.cluster_of`.
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
    request_rate: Float | None = setting(
        None, section="trace", gt=0, unit="req/s",
        help="Offered load in requests per second (vLLM bench's --request-rate): sets the "
        "rate scale to this / the trace's mean rate (after window and max_requests); "
        "instead of rate_scale.",
    )  # fmt: skip
    max_concurrency: Int | None = setting(
        None, section="workload", ge=1, le=MAX_CONCURRENCY, unit="clients",
        reason="each client is a request in flight",
        help="Closed loop instead of a trace: this many clients, each sending its next "
        "request when its last one ends (vLLM bench's --max-concurrency).",
    )  # fmt: skip
    num_prompts: Int = setting(
        1000, section="workload", ge=1, le=MAX_PROMPTS, unit="requests",
        reason="every request is simulated and recorded",
        help="Closed loop: requests sent in all (vLLM bench's --num-prompts).",
    )  # fmt: skip
    input_len: Int = setting(
        1024, section="workload", ge=1, le=2**24, unit="tokens",
        reason="longer than any model's context",
        help="Closed loop: prompt tokens per request (vLLM's --random-input-len).",
    )  # fmt: skip
    output_len: Int = setting(
        128, section="workload", ge=1, le=2**24, unit="tokens",
        reason="longer than any model's context",
        help="Closed loop: output tokens per request (vLLM's --random-output-len).",
    )  # fmt: skip
    range_ratio: Float = setting(
        0.0, section="workload", ge=0, lt=1, unit="fraction",
        help="Closed loop: draw lengths uniformly in [L(1-r), L(1+r)] (vLLM's "
        "--random-range-ratio); 0 keeps them fixed.",
    )  # fmt: skip
    session_arrivals: SessionArrivals = setting(
        "timestamp", section="workload",
        help="Trace sessions (session_id, turn): timestamp sends every call at its trace "
        "time (open loop); after_previous sends a session's next call when its previous "
        "call ends, plus think time (sunsim/engine/session_loop.py).",
    )  # fmt: skip
    think_time_s: Float | None = setting(
        None, section="workload", ge=0, unit="s",
        help="after_previous: mean think time between a call's end and its session's next "
        "call (exponential, seeded); unset: the trace's gap between the two calls.",
    )  # fmt: skip
    modes: tuple[DesignName, ...] = setting(
        DEFAULT_MODES, section="cluster", option="--mode", what="mode", min_length=1,
        help="Serving designs to run: one, a comma list, or all (every design, colocated "
        "and lora too).",
    )  # fmt: skip
    base_model: Str = setting(
        "llama-3.1-8b", section="models", key="base", option="--model", what="model",
        help="Base architecture of the served models: a built-in or bundled name "
        "(llama-3.1-8b, qwen3-8b, llama-3.1-70b, qwen3-32b, meta-llama/Llama-3.1-70B, ...) "
        "or the path of a dense model's Hugging Face config.json.",
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
    prefill_gpu: GpuName | None = setting(
        None, section="cluster", what="prefill GPU",
        help="GPU of the prefill pools (heterogeneous pools); default: gpu.",
    )  # fmt: skip
    decode_gpu: GpuName | None = setting(
        None, section="cluster", what="decode GPU",
        help="GPU of the decode pools and co-located workers (heterogeneous pools); "
        "default: gpu.",
    )  # fmt: skip
    prefill_workers: tuple[WorkerCount, ...] = setting(
        (1,), section="cluster", unit="workers", reason=WORKERS_WHY,
        help="Prefill workers: one count for every model, or one per model (summed into "
        "one shared pool by prefillshare, where a model's part may be 0, e.g. 1,0,0 = a pool "
        "of 1; every other pool needs at least 1).",
    )  # fmt: skip
    decode_workers: tuple[WorkerCount, ...] = setting(
        (3,), section="cluster", unit="workers", reason=WORKERS_WHY,
        help="Decode workers: the total (split over partitioned's pools by output-token "
        "share), or one per model (summed into sun's and qsun's shared pool, where a model's "
        "part may be 0; every per-model pool needs at least 1).",
    )  # fmt: skip
    colocated_workers: tuple[WorkerCount, ...] = setting(
        (2,), section="cluster", unit="workers", reason=WORKERS_WHY,
        help="Co-located workers (colocated mode: each runs prefill and decode of its model): "
        "one count for every model, or one per model (summed into lora's and icarus's shared "
        "pool, where a model's part may be 0, e.g. 1,0,0 = a pool of 1).",
    )  # fmt: skip
    max_loras: Int = setting(
        4, section="cluster", ge=1, le=4096, unit="adapters", reason=WORKERS_WHY,
        help="lora mode: distinct LoRA adapters in one worker's batch, and its GPU slots "
        "(vLLM's max_loras).",
    )  # fmt: skip
    max_lora_rank: Int = setting(
        16, section="cluster", ge=1, le=1024, unit="rank", reason="above any served LoRA rank",
        help="lora mode: the rank every adapter slot is sized for (vLLM's max_lora_rank).",
    )  # fmt: skip
    lora_overhead_per_adapter: Float = setting(
        0.0, section="cluster", ge=0, le=10, unit="fraction", reason="ten step times each",
        help="lora mode: measured fraction of the base step time added per distinct adapter "
        "in the batch, on top of the derived adapter cost (sunsim/engine/lora_spec.py).",
    )  # fmt: skip
    precision: WeightPrecision = setting(
        "bf16", section="cluster", what="precision",
        help="Weights of every pool's model (qsun's decode pool: qsun_precision): bf16, or fp8 "
        "(W8A8, E4M3 weights and activations: vLLM's --quantization fp8); step times from the "
        "bundled fp8 profiles where measured (H100, H200, B200), else the calibrated roofline.",
    )  # fmt: skip
    qsun_precision: QsunPrecision = setting(
        "w4a16", section="cluster", what="qsun precision",
        help="Weights of qsun's decode pool: w4a16, w8a16 (weight-only) or fp8 (W8A8).",
    )  # fmt: skip
    tensor_parallel_size: Int = setting(
        1, section="cluster", ge=1, le=MAX_TENSOR_PARALLEL_SIZE, unit="GPUs", reason=TP_WHY,
        help="GPUs per worker (tensor parallelism), every pool: a power of two dividing the "
        "model's attention and KV heads. Every GPU count is workers x this.",
    )  # fmt: skip
    prefill_tensor_parallel_size: Int | None = setting(
        None, section="cluster", ge=1, le=MAX_TENSOR_PARALLEL_SIZE, unit="GPUs",
        reason=TP_WHY, help="GPUs per prefill worker; default: tensor_parallel_size.",
    )  # fmt: skip
    decode_tensor_parallel_size: Int | None = setting(
        None, section="cluster", ge=1, le=MAX_TENSOR_PARALLEL_SIZE, unit="GPUs",
        reason=TP_WHY, help="GPUs per decode worker; default: tensor_parallel_size.",
    )  # fmt: skip
    max_num_seqs: Int = setting(
        256, section="cluster", ge=1, le=65536, unit="sequences",
        reason="vLLM's own limit is far lower; more would exhaust memory",
        help="Decode batch cap: running sequences per decode worker.",
    )  # fmt: skip
    max_num_batched_tokens: Int = setting(
        8192, section="cluster", ge=1, le=2**20, unit="tokens", aliases=("max_batch_tokens",),
        reason="a larger prefill batch than any engine runs",
        help="Token budget: prompt tokens per prefill batch (co-located workers: decode and "
        "prompt-chunk tokens per step).",
    )  # fmt: skip
    block_size: Int = setting(
        16, section="cluster", ge=1, le=4096, unit="tokens", aliases=("kv_block_tokens",),
        reason="larger than any paged-attention kernel supports",
        help="Tokens per paged KV-cache block.",
    )  # fmt: skip
    kv_cache_dtype: KvCacheDtype = setting(
        "auto", section="cluster", what="KV-cache dtype",
        help="KV-cache data type (vLLM's name): auto (the model's BF16) or fp8 (1 byte per "
        "element: twice the tokens per worker; decode attention from FP8-KV profiles, else "
        "derived, sunsim/latency/kv_cache_dtype.py).",
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
    enable_prefix_caching: bool = setting(
        False, section="cluster",
        help="Prefix caching (vLLM's name): prefill and co-located workers keep prompt KV "
        "blocks by content hash (the trace's hash_ids), LRU-evicted; off: every request "
        "prefills its whole prompt.",
    )  # fmt: skip
    colocated_scheduler: ColocatedScheduler = setting(
        "vllm", section="cluster", what="co-located scheduler",
        help="Scheduler of co-located workers: vllm (decode-first mixed steps, chunked "
        "prefill), sglang (prefill-first, decodes paused) or trtllm (TensorRT-LLM's defaults: "
        "whole prompts, no chunking; admission reserves KV for prompt + output; overlap "
        "scheduler).",
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
        help="Step times: auto (a bundled profile if one matches, else calibrated), profile, "
        "roofline, calibrated (the roofline at efficiencies fitted to measured GPUs).",
    )  # fmt: skip
    profile: PathStr | None = setting(
        None, section="latency",
        help="Profile directory (sunsim profile output) to take step times from.",
    )  # fmt: skip
    engine_overhead: EngineOverheadName = setting(
        "none", section="latency", what="engine overhead",
        help="Add a serving backend's per-step CPU overhead (scheduling, sampling, input "
        "preparation) to every step: none, or vllm/sglang/trtllm with coefficients fitted on "
        "measured end-to-end runs (sunsim/latency/overhead.py).",
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

    _model_key = field_validator("base_model", mode="before")(normalise.model_key)
    _gpu_key = field_validator("gpu", "prefill_gpu", "decode_gpu", mode="before")(normalise.gpu_key)
    _as_tuple = field_validator("modes", "served_models", "shares", *_COUNT_KEYS, mode="before")(
        normalise.as_tuple
    )
    _map_items = field_validator("model_map", mode="before")(normalise.map_items)
    _price_items = field_validator("gpu_hour_usd", mode="before")(price_items)

    @model_validator(mode="wrap")
    @classmethod
    def _one_line(cls, values: Any, handler: Any) -> Any:
        return one_line_errors(cls, values, handler)  # sunsim.config.fields

    @model_validator(mode="after")
    def _consistent(self) -> Scenario:
        check_consistent(self)  # sunsim.config.consistency
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
    def closed_loop(self) -> bool:
        """Whether the workload is closed-loop clients (``max_concurrency`` set), not a trace."""
        return self.max_concurrency is not None

    @property
    def slo(self) -> SloSpec:
        """The latency SLOs (seconds) and attainment target."""
        return SloSpec(self.slo_ttft_s, self.slo_tpot_s, self.slo_attainment)

    @property
    def link(self) -> LinkSpec:
        """The KV-cache link: ``link_gbps`` Gb/s as bytes/s, ``link_latency_us`` as seconds."""
        return LinkSpec(bandwidth=self.link_gbps * 1e9 / 8, latency_s=self.link_latency_us * 1e-6)

    def decode_precision(self, mode: str) -> str:
        """The decode weight precision of design ``mode`` under this scenario:
        ``qsun_precision`` for a low-bit-decode design (qsun), else ``precision``."""
        d = get_design(mode)
        return self.qsun_precision if d.low_bit_decode else self.precision

    @property
    def prefill_precision(self) -> str:
        """The weight precision of every design's prefill pools (and of co-located workers'
        prompt chunks): ``precision``."""
        return self.precision

    def pool_tensor_parallel_size(self, role: str) -> int:
        """GPUs per worker of the ``role`` (``prefill``/``decode``) pools: its own key, else
        ``tensor_parallel_size``."""
        own = getattr(self, f"{role}_tensor_parallel_size")
        return int(self.tensor_parallel_size if own is None else own)

    def cluster(
        self, mode: str, output_tokens_per_model: Sequence[float] | None = None
    ) -> ClusterSpec:
        """The :class:`ClusterSpec` of ``mode`` (:func:`sunsim.config.cluster_of.cluster_of`).
        ``output_tokens_per_model`` (served order) weights partitioned's split of a single
        decode-worker total."""
        return cluster_of(self, mode, output_tokens_per_model)

    def pool_gpu(self, role: str) -> str:
        """GPU of the ``role`` (``prefill``/``decode``) pools: its own key, else ``gpu``."""
        own = getattr(self, f"{role}_gpu")
        return str(self.gpu if own is None else own)


def scenario_fields() -> dict[str, Any]:
    """Field name -> :class:`~sunsim.config.fields.FieldMeta` of :class:`Scenario`, in
    declaration order (what the TOML layout and the CLI options are built from)."""
    fields = Scenario.__pydantic_fields__  # type: ignore[attr-defined]
    return {n: field_meta(n, f) for n, f in fields.items()}
