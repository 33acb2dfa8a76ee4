"""Frozen configuration: model and GPU specs, links, SLOs and the replay scenario.

Sources of the constants:

* Model specs are the fields of the models' Hugging Face ``config.json``
  (meta-llama/Llama-3.1-8B, Qwen/Qwen3-8B-Base).
* GPU datasheets: NVIDIA H100 SXM5 80 GB (3.35 TB/s HBM3, 989 TFLOP/s dense BF16),
  H200 SXM 141 GB (4.8 TB/s HBM3e, 989 TFLOP/s), A100 SXM 80 GB (2.04 TB/s, 312 TFLOP/s).
  Achieved ceilings measured on real machines (``../shared/design/ARCHITECTURE.md``):
  H100 about 3.0 TB/s device copy and 798 TFLOP/s on an 8192^3 BF16 matmul; H200 about
  4.3 TB/s and 788 TFLOP/s. For the A100 no measurement exists; the roofline then uses
  the datasheet times the fractions measured on the H100 (0.90 of bandwidth, 0.81 of FLOP/s).
* Link: NVIDIA ConnectX-7 NDR InfiniBand, 400 Gb/s = 50 GB/s per port.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sunsim.errors import ConfigError

GiB = 1024**3
GB = 1e9
TB = 1e12


@dataclass(frozen=True)
class ModelSpec:
    """A decoder-only Transformer, as in its Hugging Face ``config.json``.

    Fields keep the config.json meaning: ``hidden_size``, ``intermediate_size`` (SwiGLU MLP),
    ``num_layers`` (num_hidden_layers), ``num_heads`` (num_attention_heads), ``num_kv_heads``
    (num_key_value_heads, grouped-query attention), ``head_dim``, ``vocab_size``,
    ``max_model_len`` (max_position_embeddings, tokens), ``tie_embeddings``, ``qk_norm``
    (Qwen3's RMSNorm on q and k).
    """

    name: str
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int
    max_model_len: int = 131072
    tie_embeddings: bool = False
    qk_norm: bool = False

    @property
    def layer_linear_params(self) -> int:
        """Weights of one layer's linear projections (q, k, v, o, gate, up, down)."""
        h, i = self.hidden_size, self.intermediate_size
        q = h * self.num_heads * self.head_dim
        kv = 2 * h * self.num_kv_heads * self.head_dim
        o = self.num_heads * self.head_dim * h
        mlp = 3 * h * i
        return q + kv + o + mlp

    @property
    def layer_norm_params(self) -> int:
        """RMSNorm weights of one layer (two norms, plus q/k norms when ``qk_norm``)."""
        n = 2 * self.hidden_size
        if self.qk_norm:
            n += 2 * self.head_dim
        return n

    @property
    def embedding_params(self) -> int:
        return self.vocab_size * self.hidden_size

    @property
    def lm_head_params(self) -> int:
        return 0 if self.tie_embeddings else self.vocab_size * self.hidden_size

    @property
    def num_params(self) -> int:
        """All parameters (Llama-3.1-8B: 8.03e9)."""
        return (
            self.num_layers * (self.layer_linear_params + self.layer_norm_params)
            + self.embedding_params
            + self.lm_head_params
            + self.hidden_size
        )

    def kv_bytes_per_token(self, bytes_per_element: int = 2) -> int:
        """KV-cache bytes per token: 2 (K and V) x layers x kv_heads x head_dim x bytes.

        Llama-3.1-8B in BF16: 2 x 32 x 8 x 128 x 2 = 131072 bytes (128 KiB).
        """
        return 2 * self.num_layers * self.num_kv_heads * self.head_dim * bytes_per_element


#: Built-in model specs (Hugging Face config.json of each).
MODELS: dict[str, ModelSpec] = {
    "llama-3.1-8b": ModelSpec(
        name="llama-3.1-8b",
        hidden_size=4096,
        intermediate_size=14336,
        num_layers=32,
        num_heads=32,
        num_kv_heads=8,
        head_dim=128,
        vocab_size=128256,
        max_model_len=131072,
    ),
    "qwen3-8b": ModelSpec(
        name="qwen3-8b",
        hidden_size=4096,
        intermediate_size=12288,
        num_layers=36,
        num_heads=32,
        num_kv_heads=8,
        head_dim=128,
        vocab_size=151936,
        max_model_len=32768,
        qk_norm=True,
    ),
    # A small spec of the same shape family, for CPU profiles and quick tests.
    "tiny-llama": ModelSpec(
        name="tiny-llama",
        hidden_size=512,
        intermediate_size=1536,
        num_layers=4,
        num_heads=8,
        num_kv_heads=2,
        head_dim=64,
        vocab_size=32000,
        max_model_len=8192,
    ),
}


@dataclass(frozen=True)
class Precision:
    """How a module's linear weights are stored.

    ``weight_bits`` per weight of the linear layers, plus a BF16 scale and a BF16 zero point
    per ``group_size`` weights for grouped quantisation (AWQ-style W4A16 uses group 128;
    W8A16 per output channel, so its overhead is negligible). Embedding and LM head stay
    BF16, as AWQ and GPTQ checkpoints keep them.
    """

    name: str
    weight_bits: int
    group_size: int = 0  # 0: no groups (per-channel or none)

    @property
    def linear_bytes_per_weight(self) -> float:
        b = self.weight_bits / 8
        if self.group_size:
            b += 4 / self.group_size  # BF16 scale + BF16 zero per group
        return b


PRECISIONS: dict[str, Precision] = {
    "bf16": Precision("bf16", 16),
    "w8a16": Precision("w8a16", 8),
    "w4a16": Precision("w4a16", 4, group_size=128),
}


def weight_bytes(model: ModelSpec, precision: str = "bf16") -> int:
    """Bytes of one module's weights in GPU memory (linear layers at ``precision``; norms,
    embedding and LM head in BF16). Llama-3.1-8B BF16: 16.06e9 bytes."""
    p = get_precision(precision)
    linear = model.num_layers * model.layer_linear_params * p.linear_bytes_per_weight
    other = (
        model.num_layers * model.layer_norm_params
        + model.embedding_params
        + model.lm_head_params
        + model.hidden_size
    ) * 2
    return int(linear + other)


@dataclass(frozen=True)
class GpuSpec:
    """One GPU: memory (bytes), bandwidth (bytes/s) and dense BF16 rate (FLOP/s).

    ``*_datasheet`` are the vendor's figures; ``mem_bw`` and ``bf16_flops`` are the achieved
    ceilings the roofline uses (measured where ``measured`` says so, see module docstring).
    """

    name: str
    memory_bytes: int
    mem_bw_datasheet: float
    bf16_flops_datasheet: float
    mem_bw: float
    bf16_flops: float
    measured: bool


GPUS: dict[str, GpuSpec] = {
    "h100": GpuSpec("H100-SXM-80GB", 80 * 10**9, 3.35 * TB, 989e12, 3.0 * TB, 798e12, True),
    "h200": GpuSpec("H200-SXM-141GB", 141 * 10**9, 4.8 * TB, 989e12, 4.3 * TB, 788e12, True),
    "a100": GpuSpec(
        "A100-SXM-80GB", 80 * 10**9, 2.04 * TB, 312e12, 2.04 * TB * 0.90, 312e12 * 0.81, False
    ),
}
GPU_ALIASES = {
    "h100-sxm": "h100",
    "h100-sxm-80gb": "h100",
    "h200-sxm": "h200",
    "h200-sxm-141gb": "h200",
    "a100-80gb": "a100",
    "a100-sxm-80gb": "a100",
}


@dataclass(frozen=True)
class LinkSpec:
    """The KV-cache link out of one prefill worker: ``latency_s`` + bytes / ``bandwidth``.

    Default: one ConnectX-7 NDR port, 400 Gb/s = 50e9 bytes/s, 10 microseconds.
    """

    bandwidth: float = 50e9
    latency_s: float = 10e-6

    def transfer_time(self, num_bytes: float) -> float:
        """Seconds to move ``num_bytes`` over the link (no contention)."""
        return self.latency_s + num_bytes / self.bandwidth


@dataclass(frozen=True)
class SloSpec:
    """Latency SLOs (seconds) and the attainment target (fraction of requests)."""

    ttft_s: float = 2.0
    tpot_s: float = 0.1
    attainment: float = 0.9

    def __post_init__(self) -> None:
        if not (self.ttft_s > 0 and self.tpot_s > 0):
            raise ConfigError(
                f"SLO bounds must be positive seconds (ttft_s={self.ttft_s}, "
                f"tpot_s={self.tpot_s}); pass e.g. --slo-ttft 2 --slo-tpot 0.1"
            )
        if not (0 < self.attainment <= 1):
            raise ConfigError(f"SLO attainment target must be in (0, 1], got {self.attainment}")


MODES = ("partitioned", "sun", "qsun")
ROUTERS = ("round_robin", "least_loaded", "least_kv", "power_of_two", "central")


def get_model(name: str) -> ModelSpec:
    """Look up a built-in model spec; raises :class:`ConfigError` naming the known ones."""
    key = name.lower()
    if key not in MODELS:
        raise ConfigError(f"unknown model '{name}'; known models: {', '.join(MODELS)}")
    return MODELS[key]


def get_gpu(name: str) -> GpuSpec:
    """Look up a built-in GPU spec; raises :class:`ConfigError` naming the known ones."""
    key = name.lower()
    key = GPU_ALIASES.get(key, key)
    if key not in GPUS:
        raise ConfigError(f"unknown GPU '{name}'; known GPUs: {', '.join(GPUS)}")
    return GPUS[key]


def get_precision(name: str) -> Precision:
    key = name.lower()
    if key not in PRECISIONS:
        raise ConfigError(f"unknown precision '{name}'; known: {', '.join(PRECISIONS)}")
    return PRECISIONS[key]


@dataclass(frozen=True)
class ClusterSpec:
    """The cluster of one run, resolved for one mode.

    ``prefill_workers[i]`` and, for ``partitioned``, ``decode_workers[i]`` belong to
    ``served_models[i]``; for ``sun``/``qsun`` ``decode_workers`` has one entry, the shared
    pool. One worker is one GPU (tensor parallel 1). ``max_batch_tokens`` is the prefill
    batch's token budget; ``max_num_seqs`` the decode batch's request cap;
    ``kv_block_tokens`` the paged KV cache's block size (vLLM: 16 tokens). ``gpu`` is a key
    of :data:`GPUS`; its memory sizes the KV cache.
    KV capacity per decode worker = (memory x ``gpu_memory_utilization`` - decode weight bytes
    - ``reserve_bytes``) / KV bytes per token, rounded down to whole blocks.
    """

    mode: str
    served_models: tuple[str, ...]
    prefill_workers: tuple[int, ...]
    decode_workers: tuple[int, ...]
    decode_precision: str = "bf16"
    gpu: str = "h100"
    max_num_seqs: int = 256
    max_batch_tokens: int = 8192
    kv_block_tokens: int = 16
    gpu_memory_utilization: float = 0.9
    reserve_bytes: int = 2 * GiB
    prefill_router: str = "least_loaded"
    decode_router: str = "least_loaded"
    link: LinkSpec = field(default_factory=LinkSpec)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"unknown mode '{self.mode}'; choose one of {', '.join(MODES)}")
        n = len(self.served_models)
        if n == 0:
            raise ConfigError("no served models; pass e.g. --models math,code,tool")
        if len(set(self.served_models)) != n:
            raise ConfigError(f"served model names repeat: {', '.join(self.served_models)}")
        if len(self.prefill_workers) != n:
            raise ConfigError(
                f"{len(self.prefill_workers)} prefill worker counts for {n} models; "
                "give one number or one per model"
            )
        want = n if self.mode == "partitioned" else 1
        if len(self.decode_workers) != want:
            raise ConfigError(
                f"mode {self.mode} needs {want} decode worker count(s), "
                f"got {len(self.decode_workers)}"
            )
        if any(w < 1 for w in self.prefill_workers):
            raise ConfigError("every model needs at least 1 prefill worker")
        if any(w < 1 for w in self.decode_workers):
            raise ConfigError("every decode pool needs at least 1 worker")
        for r, what in ((self.prefill_router, "prefill"), (self.decode_router, "decode")):
            if r not in ROUTERS:
                raise ConfigError(
                    f"unknown {what} router '{r}'; choose one of {', '.join(ROUTERS)}"
                )
        if self.max_num_seqs < 1 or self.max_batch_tokens < 1 or self.kv_block_tokens < 1:
            raise ConfigError("max_num_seqs, max_batch_tokens and kv_block_tokens must be >= 1")
        if not (0 < self.gpu_memory_utilization <= 1):
            raise ConfigError("gpu_memory_utilization must be in (0, 1]")
        get_precision(self.decode_precision)
        get_gpu(self.gpu)

    @property
    def num_prefill_gpus(self) -> int:
        return sum(self.prefill_workers)

    @property
    def num_decode_gpus(self) -> int:
        return sum(self.decode_workers)

    @property
    def num_gpus(self) -> int:
        return self.num_prefill_gpus + self.num_decode_gpus


def split_workers(total: int, weights: Sequence[float]) -> tuple[int, ...]:
    """Split ``total`` workers over pools in proportion to ``weights``, at least 1 each.

    Largest-remainder rounding (Hamilton's method). Raises :class:`ConfigError` when
    ``total`` is smaller than the number of pools.
    """
    n = len(weights)
    if total < n:
        raise ConfigError(
            f"{total} decode workers cannot give each of {n} models its own "
            f"pool in partitioned mode; use at least {n}"
        )
    w = [max(float(x), 0.0) for x in weights]
    s = sum(w)
    if s <= 0:
        w, s = [1.0] * n, float(n)
    spare = total - n  # one each first
    quotas = [spare * x / s for x in w]
    base = [int(q) for q in quotas]
    rest = spare - sum(base)
    order = sorted(range(n), key=lambda i: (-(quotas[i] - base[i]), i))
    for i in order[:rest]:
        base[i] += 1
    return tuple(b + 1 for b in base)


def replace(obj: Any, **changes: Any) -> Any:
    """``dataclasses.replace`` re-exported for convenience."""
    return dataclasses.replace(obj, **changes)


def as_dict(obj: Any) -> dict[str, Any]:
    """A dataclass as a plain dict (tuples become lists), for TOML/JSON."""

    def conv(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {k: conv(x) for k, x in dataclasses.asdict(v).items()}
        if isinstance(v, (tuple, list)):
            return [conv(x) for x in v]
        if isinstance(v, Mapping):
            return {k: conv(x) for k, x in v.items()}
        return v

    return conv(obj)


# --- the replay scenario -----------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    """Everything a replay needs, as a user writes it (CLI options or a TOML file).

    Trace: ``trace`` (path; None = the bundled default trace), ``trace_format``
    (auto/burstgpt/azure/mooncake/canonical), ``keep_failed``, ``window_s`` ((start, end)
    seconds), ``rate_scale`` (x request rate), ``max_requests``.
    Models: ``base_model`` (a key of :data:`MODELS`), ``served_models`` (task-specific model
    names), labelling by ``zipf`` alpha, ``shares`` or ``model_map`` (trace model -> served).
    Cluster: ``gpu`` (a key of :data:`GPUS`), ``prefill_workers`` (one number for every model,
    or one per model), ``decode_workers`` (one number = the total: the shared pool of
    sun/qsun, split over partitioned's per-model pools in proportion to each model's output
    tokens in the trace, at least 1 each; or one per model, summed for the shared pool),
    ``qsun_precision`` (w4a16/w8a16), engine limits, routers, link.
    Latency: ``latency`` = ``auto`` (a bundled profile for gpu+model+precision if there is
    one, else the roofline), ``profile`` (``profile`` path required) or ``roofline``.
    """

    trace: str | None = None
    trace_format: str = "auto"
    keep_failed: bool = False
    window_s: tuple[float, float] | None = None
    rate_scale: float = 1.0
    max_requests: int | None = None
    modes: tuple[str, ...] = MODES
    base_model: str = "llama-3.1-8b"
    served_models: tuple[str, ...] = ("math", "code", "tool")
    zipf: float | None = None
    shares: tuple[float, ...] | None = None
    model_map: tuple[tuple[str, str], ...] | None = None
    gpu: str = "h100"
    prefill_workers: tuple[int, ...] = (1,)
    decode_workers: tuple[int, ...] = (3,)
    qsun_precision: str = "w4a16"
    max_num_seqs: int = 256
    max_batch_tokens: int = 8192
    kv_block_tokens: int = 16
    gpu_memory_utilization: float = 0.9
    reserve_gib: float = 2.0
    prefill_router: str = "least_loaded"
    decode_router: str = "least_loaded"
    link_gbps: float = 400.0
    link_latency_us: float = 10.0
    slo_ttft_s: float = 2.0
    slo_tpot_s: float = 0.1
    slo_attainment: float = 0.9
    latency: str = "auto"
    profile: str | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        for m in self.modes:
            if m not in MODES:
                raise ConfigError(f"unknown mode '{m}'; choose from {', '.join(MODES)} or all")
        if not self.modes:
            raise ConfigError("no modes to run")
        get_model(self.base_model)
        get_gpu(self.gpu)
        if self.qsun_precision not in ("w4a16", "w8a16"):
            raise ConfigError(f"qsun_precision must be w4a16 or w8a16, got '{self.qsun_precision}'")
        if self.latency not in ("auto", "profile", "roofline"):
            raise ConfigError(f"latency must be auto, profile or roofline, got '{self.latency}'")
        if self.latency == "profile" and not self.profile:
            raise ConfigError("latency = 'profile' needs a profile path (--profile DIR)")
        if self.rate_scale <= 0:
            raise ConfigError(f"rate_scale must be > 0, got {self.rate_scale}")
        if self.zipf is not None and self.zipf < 0:
            raise ConfigError(f"zipf alpha must be >= 0, got {self.zipf}")
        n = len(self.served_models)
        if len(self.prefill_workers) not in (1, n):
            raise ConfigError(
                f"give one prefill worker count or {n} (one per served model), "
                f"got {len(self.prefill_workers)}"
            )
        if len(self.decode_workers) not in (1, n):
            raise ConfigError(
                f"give one decode worker count (the total) or {n} (one per served "
                f"model), got {len(self.decode_workers)}"
            )
        if self.shares is not None and len(self.shares) != n:
            raise ConfigError(f"{len(self.shares)} shares for {n} served models")
        if any(w < 1 for w in self.prefill_workers):
            raise ConfigError(
                f"prefill worker counts must be >= 1, got "
                f"{','.join(map(str, self.prefill_workers))}"
            )
        if any(w < 1 for w in self.decode_workers):
            raise ConfigError(
                f"decode worker counts must be >= 1, got {','.join(map(str, self.decode_workers))}"
            )
        if (
            "partitioned" in self.modes
            and len(self.decode_workers) == 1
            and self.decode_workers[0] < n
        ):
            split_workers(self.decode_workers[0], [1.0] * n)  # raises: fewer workers than pools
        for r, what in ((self.prefill_router, "prefill"), (self.decode_router, "decode")):
            if r not in ROUTERS:
                raise ConfigError(
                    f"unknown {what} router '{r}'; choose one of {', '.join(ROUTERS)}"
                )
        SloSpec(self.slo_ttft_s, self.slo_tpot_s, self.slo_attainment)

    @property
    def slo(self) -> SloSpec:
        return SloSpec(self.slo_ttft_s, self.slo_tpot_s, self.slo_attainment)

    @property
    def link(self) -> LinkSpec:
        return LinkSpec(bandwidth=self.link_gbps * 1e9 / 8, latency_s=self.link_latency_us * 1e-6)

    def decode_precision(self, mode: str) -> str:
        return self.qsun_precision if mode == "qsun" else "bf16"

    def cluster(
        self, mode: str, output_tokens_per_model: Sequence[float] | None = None
    ) -> ClusterSpec:
        """The :class:`ClusterSpec` of ``mode``. ``output_tokens_per_model`` (served order)
        weights partitioned's split of a single decode-worker total."""
        n = len(self.served_models)
        pw = self.prefill_workers * n if len(self.prefill_workers) == 1 else self.prefill_workers
        dw = self.decode_workers
        if mode == "partitioned":
            if len(dw) == 1:
                dw = split_workers(dw[0], output_tokens_per_model or [1.0] * n)
        else:
            dw = (sum(dw),)
        return ClusterSpec(
            mode=mode,
            served_models=self.served_models,
            prefill_workers=tuple(pw),
            decode_workers=tuple(dw),
            decode_precision=self.decode_precision(mode),
            gpu=self.gpu,
            max_num_seqs=self.max_num_seqs,
            max_batch_tokens=self.max_batch_tokens,
            kv_block_tokens=self.kv_block_tokens,
            gpu_memory_utilization=self.gpu_memory_utilization,
            reserve_bytes=int(self.reserve_gib * GiB),
            prefill_router=self.prefill_router,
            decode_router=self.decode_router,
            link=self.link,
        )


# TOML layout: section -> keys of Scenario (same names, no prefixes).
SCENARIO_TOML = {
    "trace": {
        "path": "trace",
        "format": "trace_format",
        "keep_failed": "keep_failed",
        "window_s": "window_s",
        "rate_scale": "rate_scale",
        "max_requests": "max_requests",
    },
    "models": {
        "base": "base_model",
        "served": "served_models",
        "zipf": "zipf",
        "shares": "shares",
        "map": "model_map",
    },
    "cluster": {
        "modes": "modes",
        "gpu": "gpu",
        "prefill_workers": "prefill_workers",
        "decode_workers": "decode_workers",
        "qsun_precision": "qsun_precision",
        "max_num_seqs": "max_num_seqs",
        "max_batch_tokens": "max_batch_tokens",
        "kv_block_tokens": "kv_block_tokens",
        "gpu_memory_utilization": "gpu_memory_utilization",
        "reserve_gib": "reserve_gib",
        "prefill_router": "prefill_router",
        "decode_router": "decode_router",
        "link_gbps": "link_gbps",
        "link_latency_us": "link_latency_us",
    },
    "slo": {"ttft_s": "slo_ttft_s", "tpot_s": "slo_tpot_s", "attainment": "slo_attainment"},
    "latency": {"source": "latency", "profile": "profile"},
    "run": {"seed": "seed"},
}
_TUPLE_FIELDS = {
    "window_s",
    "modes",
    "served_models",
    "shares",
    "prefill_workers",
    "decode_workers",
}


def scenario_to_toml_dict(s: Scenario) -> dict[str, dict[str, Any]]:
    """The scenario as nested TOML tables (None values left out)."""
    out: dict[str, dict[str, Any]] = {}
    for section, keys in SCENARIO_TOML.items():
        table = {}
        for key, attr in keys.items():
            v = getattr(s, attr)
            if v is None:
                continue
            if attr == "model_map":
                v = dict(v)
            elif isinstance(v, tuple):
                v = list(v)
            table[key] = v
        out[section] = table
    return out


def scenario_from_toml_dict(
    d: Mapping[str, Any], source: str = "scenario", base: Scenario | None = None
) -> Scenario:
    """Build a :class:`Scenario` from nested TOML tables, on top of ``base``.

    Raises :class:`ConfigError` naming the file and key for unknown sections or keys.
    """
    changes: dict[str, Any] = {}
    for section, table in d.items():
        if section not in SCENARIO_TOML or not isinstance(table, Mapping):
            raise ConfigError(
                f"{source}: unknown section [{section}]; known: {', '.join(SCENARIO_TOML)}"
            )
        for key, v in table.items():
            attr = SCENARIO_TOML[section].get(key)
            if attr is None:
                raise ConfigError(
                    f"{source}: unknown key '{key}' in [{section}]; known: "
                    f"{', '.join(SCENARIO_TOML[section])}"
                )
            if attr == "model_map":
                v = tuple((str(a), str(b)) for a, b in dict(v).items())
            elif attr in _TUPLE_FIELDS:
                v = tuple(v) if isinstance(v, (list, tuple)) else (v,)
            changes[attr] = v
    try:
        return dataclasses.replace(base or Scenario(), **changes)
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{source}: bad value: {e}") from None
