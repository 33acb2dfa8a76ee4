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
from dataclasses import dataclass
from typing import Any

from sunsim.engine.designs import DESIGNS, get_design
from sunsim.engine.router import ROUTERS
from sunsim.engine.spec import ClusterSpec, split_workers
from sunsim.errors import ConfigError
from sunsim.specs import GiB, LinkSpec, SloSpec, get_gpu, get_model

MODES = tuple(DESIGNS)


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
    max_num_batched_tokens: int = 8192
    block_size: int = 16
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
        "max_num_batched_tokens": "max_num_batched_tokens",
        "block_size": "block_size",
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
