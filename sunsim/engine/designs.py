"""Serving designs as data: which pools exist, what each shares, at which precision.

A design is a small declarative record; the engine builds the same kinds of workers for every
design and reads from the record how many pools there are and which requests each may serve.
New designs (co-located, PrefillShare, multi-LoRA, heterogeneous pools) are new entries of
:data:`DESIGNS`, plus at most a new worker kind.

Sources: ``partitioned`` is conventional prefill/decode disaggregation (DistServe, OSDI'24;
Splitwise, ISCA'24) with one set of workers per task model; ``sun`` and ``qsun`` are SUN
(Shared Use of Next-token Prediction, arXiv 2603.02599): task-specific prefill modules and one
frozen decode module shared by every task model, in BF16 (``sun``) or weight-only low bits
(``qsun``, AWQ-style W4A16 by default). ``colocated`` is aggregated serving, what nearly every
public benchmark measures: each task model's workers run prefill and decode in one continuous
batch with chunked prefill under a token budget (vLLM V1's default scheduler; Sarathi-Serve,
Agrawal et al., OSDI'24), so there is no prefill pool and no KV transfer. ``lora`` is
multi-LoRA serving (S-LoRA, Sheng et al., MLSys'24; Punica, Chen et al., MLSys'24; vLLM's
``--enable-lora``): one base model and a LoRA adapter per task model, every co-located worker
batching every model's requests (one shared pool), at a per-step adapter cost and with at
most ``max_loras`` adapters in a batch (:mod:`sunsim.engine.lora`). It is the shared-base
co-located design: a co-located pool of the base alone would serve one model, not several.

``prefillshare`` is PrefillShare (arXiv 2602.12029): one frozen prefill module for every task
model, so one prefill pool (one worker count, like a shared decode pool), KV keyed by
content, per-model decode pools. ``icarus`` is ICaRus (Identical Cache Reuse, arXiv
2603.13281): a frozen logical encoder writes one KV cache that every model's LoRA logical
decoder reads, here as co-located workers that serve every model (one shared pool) with
content-keyed prefix caches.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum

from sunsim.errors import ConfigError


class PoolScope(str, Enum):  # noqa: UP042 - str() and format() as Enum, as before
    """Which requests a pool's workers serve: their own task model's (``per_model``: one pool
    per served model) or every model's (``shared``: one pool for all)."""

    PER_MODEL = "per_model"
    SHARED = "shared"


@dataclass(frozen=True)
class PoolDesign:
    """One kind of pool of a design.

    Attributes:
        scope: one pool per served model, or one shared pool.
        precision: weight precision of the module the pool runs (a key of
            :data:`sunsim.specs.PRECISIONS`).
        gpu: GPU type (a key of :data:`sunsim.specs.GPUS`); None: the scenario's GPU.
            Pools on a GPU other than the cluster's are refused by
            :class:`~sunsim.engine.spec.ClusterSpec` until the engine simulates them.
        tensor_parallel: GPUs per worker (vLLM's ``tensor_parallel_size``); a
            :class:`~sunsim.engine.spec.ClusterSpec` takes it when it is given no size of its
            own, and refuses another size when it is above 1.
    """

    scope: PoolScope
    precision: str = "bf16"
    gpu: str | None = None
    tensor_parallel: int = 1


@dataclass(frozen=True)
class Design:
    """A serving design: its prefill and decode pools.

    Attributes:
        name: the registry key (``partitioned``, ``sun``, ``qsun``).
        summary: one line for ``--help`` and reports.
        prefill: the prefill pools.
        decode: the decode pools.
        low_bit_decode: the scenario's low-bit decode precision (``qsun_precision``) replaces
            ``decode.precision``.
        colocated: one kind of worker runs both prefill and decode (aggregated serving,
            :mod:`sunsim.engine.colocated`): ``decode`` then describes those workers' pools
            (scope, precision of the one module they hold) and ``prefill`` is not built; the
            cluster counts them in ``colocated_workers``. A shared-base co-located design is
            one more entry with ``decode=PoolDesign(PoolScope.SHARED)``.
        lora: the task models are LoRA adapters of the base; workers pay the adapter cost
            and hold at most ``max_loras`` adapters per batch (:mod:`sunsim.engine.lora`).
        kv_shared_across_models: every model reads the same KV for the same tokens, so
            prefix-cache keys are content only (``prefillshare``, ``icarus``); otherwise
            they include the model (:mod:`sunsim.engine.prefix_cache`).
        paired_decode: every decoding request runs an encoder and a decoder row in one pass
            (ICaRus with LoRA; :class:`~sunsim.latency.paired.PairedDecodeLatency`).
    """

    name: str
    summary: str
    prefill: PoolDesign
    decode: PoolDesign
    low_bit_decode: bool = False
    colocated: bool = False
    lora: bool = False
    kv_shared_across_models: bool = False
    paired_decode: bool = False

    @property
    def shares_decode(self) -> bool:
        """Whether one decode pool serves every task model (model-agnostic decode routing)."""
        return self.decode.scope is PoolScope.SHARED

    def num_prefill_pools(self, num_models: int) -> int:
        """Prefill pools for ``num_models`` served models (one when the prefill is shared)."""
        return num_models if self.prefill.scope is PoolScope.PER_MODEL else 1

    def num_decode_pools(self, num_models: int) -> int:
        """Decode pools for ``num_models`` served models."""
        return num_models if self.decode.scope is PoolScope.PER_MODEL else 1

    def decode_pool_names(self, served_models: tuple[str, ...] | list[str]) -> list[str]:
        """Names of the decode pools: the served models' names, or ``["shared"]``."""
        return list(served_models) if self.decode.scope is PoolScope.PER_MODEL else ["shared"]

    def with_decode_precision(self, precision: str) -> Design:
        """This design with its decode pools at ``precision`` (for ``low_bit_decode`` designs)."""
        return replace(self, decode=replace(self.decode, precision=precision))


#: The design registry: name -> design, in the order reports list them.
DESIGNS: dict[str, Design] = {
    "partitioned": Design(
        "partitioned",
        "conventional disaggregation: every task model owns its prefill and decode workers",
        prefill=PoolDesign(PoolScope.PER_MODEL),
        decode=PoolDesign(PoolScope.PER_MODEL),
    ),
    "sun": Design(
        "sun",
        "SUN: per-model prefill, one shared frozen decode pool (served precision) for all models",
        prefill=PoolDesign(PoolScope.PER_MODEL),
        decode=PoolDesign(PoolScope.SHARED),
    ),
    "qsun": Design(
        "qsun",
        "QSUN: SUN with the shared decode module in low bits (W4A16 default, W8A16)",
        prefill=PoolDesign(PoolScope.PER_MODEL),
        decode=PoolDesign(PoolScope.SHARED, precision="w4a16"),
        low_bit_decode=True,
    ),
    "colocated": Design(
        "colocated",
        "co-located (aggregated): each task model's workers run prefill and decode in one "
        "continuous batch with chunked prefill (vLLM's default scheduler)",
        prefill=PoolDesign(PoolScope.PER_MODEL),
        decode=PoolDesign(PoolScope.PER_MODEL),
        colocated=True,
    ),
    "lora": Design(
        "lora",
        "multi-LoRA: one base model, a LoRA adapter per task model; every co-located worker "
        "batches every model's requests (S-LoRA, Punica, vLLM --enable-lora)",
        prefill=PoolDesign(PoolScope.SHARED),
        decode=PoolDesign(PoolScope.SHARED),
        colocated=True,
        lora=True,
    ),
    "prefillshare": Design(
        "prefillshare",
        "PrefillShare: one frozen prefill module shared by all models (one prefill pool, "
        "prompt KV computed once and cached by content), per-model decode pools",
        prefill=PoolDesign(PoolScope.SHARED),
        decode=PoolDesign(PoolScope.PER_MODEL),
        kv_shared_across_models=True,
    ),
    "icarus": Design(
        "icarus",
        "ICaRus: one KV cache for all models (frozen logical encoder, LoRA logical decoders) "
        "on co-located workers that each serve every model",
        prefill=PoolDesign(PoolScope.SHARED),
        decode=PoolDesign(PoolScope.SHARED),
        colocated=True,
        kv_shared_across_models=True,
        paired_decode=True,
    ),
}

#: The designs a scenario runs by default (``--mode all`` runs every design): the
#: disaggregated ones, which the SUN comparison is about.
#: PrefillShare and ICaRus pay off on workloads with shared prefixes: they are opted into.
DEFAULT_DESIGNS: tuple[str, ...] = tuple(
    n for n, d in DESIGNS.items() if not d.colocated and not d.kv_shared_across_models
)

#: Low-bit precisions a ``low_bit_decode`` design may run (fp8: W8A8, one byte per weight).
LOW_BIT_PRECISIONS = ("w4a16", "w8a16", "fp8")
#: Weight precisions of the served models (every pool but a ``low_bit_decode`` design's
#: decode pool): BF16, or FP8 W8A8 (vLLM's ``--quantization fp8``).
WEIGHT_PRECISIONS = ("bf16", "fp8")


def get_design(name: str) -> Design:
    """Look up a design; raises :class:`ConfigError` naming the known ones."""
    d = DESIGNS.get(str(name).lower())
    if d is None:
        raise ConfigError(f"unknown design '{name}'; choose one of {', '.join(DESIGNS)}")
    return d
