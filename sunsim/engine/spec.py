"""The resolved cluster of one simulated run: its design, pools, engine limits and link.

Built from a scenario (:meth:`sunsim.config.Scenario.cluster`) or directly by tests and the
planner; the engine reads nothing else about the cluster.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sunsim.engine.designs import Design, get_design
from sunsim.engine.lora_spec import LoraSpec
from sunsim.engine.router import ROUTERS
from sunsim.errors import ConfigError
from sunsim.specs import GPU_ALIASES, GiB, LinkSpec, get_gpu, get_precision
from sunsim.specs.parallel import check_tensor_parallel_size

#: A co-located worker's schedulers (``colocated_scheduler``): vLLM V1's
#: (:mod:`sunsim.engine.colocated`), SGLang's (:mod:`sunsim.engine.sglang_colocated`) and
#: TensorRT-LLM's (:mod:`sunsim.engine.trtllm_colocated`) defaults.
COLOCATED_SCHEDULERS = ("vllm", "sglang", "trtllm")


@dataclass(frozen=True)
class ClusterSpec:
    """The cluster of one run, resolved for one design.

    ``prefill_workers`` has one count per prefill pool: ``prefill_workers[i]`` belongs to
    ``served_models[i]``, or, for a design whose prefill is shared (``prefillshare``), one count,
    the pool every model's requests are prefilled on; ``decode_workers`` has one count per
    decode pool: one per served model when the design's decode scope is per model
    (``partitioned``), else one, the shared pool (``sun``/``qsun``). One worker is
    ``prefill_tensor_parallel_size`` (prefill) or ``decode_tensor_parallel_size`` (decode)
    GPUs; every GPU count is workers x that size.
    A co-located design (``design.colocated``) has neither: its ``colocated_workers`` has one
    count per pool of workers that run prefill and decode (one per served model for
    ``colocated``), each ``decode_tensor_parallel_size`` GPUs, and
    ``prefill_workers``/``decode_workers`` are empty.

    Attributes:
        design: the serving design (a :class:`~sunsim.engine.designs.Design`, or its registry
            name, looked up on construction).
        decode_precision: the decode module's weight precision; None: the design's.
        gpu: a key of :data:`sunsim.specs.GPUS`; its memory sizes the KV cache.
        max_num_seqs: the decode batch's request cap (vLLM's name).
        max_num_batched_tokens: the prefill batch's token budget (vLLM's name).
        block_size: tokens per block of the paged KV cache (vLLM: 16).
        gpu_memory_utilization: fraction of GPU memory the engine may use (vLLM's name).
        reserve_bytes: memory kept back for activations and the runtime, bytes.
        prefill_router, decode_router: keys of :data:`sunsim.engine.router.ROUTERS`.
        link: the KV-cache link out of each prefill worker.
        prefill_tensor_parallel_size, decode_tensor_parallel_size: GPUs per prefill / decode
            worker (vLLM's ``tensor_parallel_size``); None: the design's pool record
            (``PoolDesign.tensor_parallel``, 1 for every built-in design). A design whose
            record says N > 1 runs only at N. Powers of two from 1 to 64
            (:func:`sunsim.specs.parallel.check_tensor_parallel_size` says why); whether they
            divide the model's heads is checked where the model is known (the scenario and
            the latency models).
        colocated_workers: co-located workers per pool (co-located designs only).
        prefill_gpu, decode_gpu: GPU type of the prefill / decode pools (heterogeneous
            pools: prefill on H100, decode on H200...); None: the design's pool record
            (``PoolDesign.gpu``), else ``gpu``. Co-located workers run on ``decode_gpu``.
            Read them resolved as :attr:`prefill_gpu_name` / :attr:`decode_gpu_name`.
        lora: the adapters of a ``lora`` design (:class:`~sunsim.engine.lora_spec.LoraSpec`:
            ``max_loras``, ``max_lora_rank``, their costs); required by it, refused by others.
        enable_prefix_caching: keep computed prompt blocks by content hash on prefill and
            co-located workers (vLLM's name; :mod:`sunsim.engine.prefix_hooks`); needs the
            requests' ``hash_ids``.

    KV capacity per decode worker = (TP x memory of ``decode_gpu_name`` x
    ``gpu_memory_utilization`` - decode weight bytes - TP x ``reserve_bytes`` - the LoRA slots'
    bytes) / KV bytes per token, rounded down to whole blocks
    (:func:`sunsim.engine.cluster.kv_capacity_blocks`).

    Raises:
        ConfigError: an unknown design, router, precision or GPU, counts that do not match
            the design's pools, or a tensor parallel size out of bounds or unlike the
            design's.
    """

    design: Design
    served_models: tuple[str, ...]
    prefill_workers: tuple[int, ...]
    decode_workers: tuple[int, ...]
    decode_precision: str | None = None
    gpu: str = "h100"
    max_num_seqs: int = 256
    max_num_batched_tokens: int = 8192
    block_size: int = 16
    gpu_memory_utilization: float = 0.9
    reserve_bytes: int = 2 * GiB
    prefill_router: str = "least_loaded"
    decode_router: str = "least_loaded"
    link: LinkSpec = field(default_factory=LinkSpec)
    prefill_tensor_parallel_size: int | None = None
    decode_tensor_parallel_size: int | None = None
    colocated_workers: tuple[int, ...] = ()
    prefill_gpu: str | None = None
    decode_gpu: str | None = None
    lora: LoraSpec | None = None
    enable_prefix_caching: bool = False
    #: a co-located worker's scheduler (:data:`COLOCATED_SCHEDULERS`): ``vllm`` (decode-first
    #: mixed batches), ``sglang`` (prefill-first, decodes paused:
    #: :mod:`sunsim.engine.sglang_colocated`) or ``trtllm`` (whole prompts, no-evict
    #: reservations: :mod:`sunsim.engine.trtllm_colocated`)
    colocated_scheduler: str = "vllm"

    def __post_init__(self) -> None:
        if not isinstance(self.design, Design):
            object.__setattr__(self, "design", get_design(str(self.design)))
        if self.decode_precision is None:
            object.__setattr__(self, "decode_precision", self.design.decode.precision)
        n = len(self.served_models)
        if n == 0:
            raise ConfigError("no served models; pass e.g. --models math,code,tool")
        if len(set(self.served_models)) != n:
            raise ConfigError(f"served model names repeat: {', '.join(self.served_models)}")
        colocated = self.design.colocated
        if colocated:
            self._check_colocated(n)
        elif self.colocated_workers:
            raise ConfigError(
                f"design {self.design.name} has no co-located workers; "
                "colocated_workers is for co-located designs"
            )
        elif len(self.prefill_workers) != self.design.num_prefill_pools(n):
            raise ConfigError(
                f"{len(self.prefill_workers)} prefill worker counts for {n} models; "
                + ("give one number or one per model" if self.design.num_prefill_pools(n) == n
                   else f"design {self.design.name} has one shared prefill pool: give one count")
            )  # fmt: skip
        want = self.design.num_decode_pools(n)
        if not colocated and len(self.decode_workers) != want:
            raise ConfigError(
                f"design {self.design.name} needs {want} decode worker count(s), "
                f"got {len(self.decode_workers)}"
            )
        if any(w < 1 for w in self.prefill_workers):
            raise ConfigError("every prefill pool needs at least 1 worker")
        if any(w < 1 for w in self.decode_workers):
            raise ConfigError("every decode pool needs at least 1 worker")
        for r, what in ((self.prefill_router, "prefill"), (self.decode_router, "decode")):
            if r not in ROUTERS:
                raise ConfigError(
                    f"unknown {what} router '{r}'; choose one of {', '.join(ROUTERS)}"
                )
        if self.max_num_seqs < 1 or self.max_num_batched_tokens < 1 or self.block_size < 1:
            raise ConfigError("max_num_seqs, max_num_batched_tokens and block_size must be >= 1")
        if not (0 < self.gpu_memory_utilization <= 1):
            raise ConfigError("gpu_memory_utilization must be in (0, 1]")
        get_precision(str(self.decode_precision))
        get_gpu(self.gpu)
        for role, pool in (("prefill", self.design.prefill), ("decode", self.design.decode)):
            self._set_tensor_parallel(role, pool.tensor_parallel)
            self._set_pool_gpu(role, pool.gpu)
        if self.design.lora != (self.lora is not None):
            raise ConfigError(
                f"design {self.design.name} "
                + ("needs its LoRA adapters (max_loras, max_lora_rank)" if self.design.lora
                   else "has no LoRA adapters; lora is for the lora design")
            )  # fmt: skip

    def _set_pool_gpu(self, role: str, design_gpu: str | None) -> None:
        """Fill ``<role>_gpu`` from the design's pool record when None; check it is a known
        GPU and, when the design pins one, that GPU."""
        name = f"{role}_gpu"
        g = getattr(self, name)
        if g is None:
            g = design_gpu
            object.__setattr__(self, name, g)
        if g is None:
            return
        spec = get_gpu(str(g))  # raises for an unknown GPU
        g = GPU_ALIASES.get(str(g).lower(), str(g).lower())
        object.__setattr__(self, name, g)
        if design_gpu is not None and spec != get_gpu(design_gpu):
            raise ConfigError(
                f"design {self.design.name} runs its {role} pools on {design_gpu}; "
                f"set {name} = {design_gpu}, got {g}"
            )

    @property
    def prefill_gpu_name(self) -> str:
        """The prefill pools' GPU: ``prefill_gpu``, else ``gpu``."""
        return str(self.prefill_gpu or self.gpu)

    @property
    def decode_gpu_name(self) -> str:
        """The decode (and co-located) pools' GPU: ``decode_gpu``, else ``gpu``."""
        return str(self.decode_gpu or self.gpu)

    @property
    def gpus_by_type(self) -> dict[str, int]:
        """GPU key (``h100``...) -> GPUs of that type: prefill GPUs on
        :attr:`prefill_gpu_name`, decode and co-located GPUs on :attr:`decode_gpu_name`; GPU
        types with no GPU are left out."""
        out: dict[str, int] = {}
        for g, n in (
            (self.prefill_gpu_name, self.num_prefill_gpus),
            (self.decode_gpu_name, self.num_decode_gpus + self.num_colocated_gpus),
        ):
            if n:
                out[g] = out.get(g, 0) + n
        return out

    def _set_tensor_parallel(self, role: str, design_tp: int) -> None:
        """Fill ``<role>_tensor_parallel_size`` from the design when None; check it."""
        name = f"{role}_tensor_parallel_size"
        tp = getattr(self, name)
        if tp is None:
            tp = design_tp
            object.__setattr__(self, name, tp)
        check_tensor_parallel_size(tp, name)
        if design_tp != 1 and tp != design_tp:
            raise ConfigError(
                f"design {self.design.name} runs its {role} workers at tensor parallel size "
                f"{design_tp}; set {name} = {design_tp}, got {tp}"
            )

    def _check_colocated(self, n: int) -> None:
        """A co-located design: one count per pool, no prefill or decode pools, and vLLM's
        own rule ``max_num_batched_tokens >= max_num_seqs`` (every running decode gets its
        token each step)."""
        want = self.design.num_decode_pools(n)
        if len(self.colocated_workers) != want:
            raise ConfigError(
                f"design {self.design.name} needs {want} co-located worker count(s), "
                f"got {len(self.colocated_workers)}"
            )
        if any(w < 1 for w in self.colocated_workers):
            raise ConfigError("every co-located pool needs at least 1 worker")
        sched = self.colocated_scheduler
        if sched not in COLOCATED_SCHEDULERS:
            raise ConfigError(
                f"colocated_scheduler '{sched}': choose {', '.join(COLOCATED_SCHEDULERS[:-1])} "
                f"or {COLOCATED_SCHEDULERS[-1]}"
            )
        if sched != "vllm" and self.lora is not None:
            raise ConfigError(f"colocated_scheduler {sched} is not simulated with LoRA adapters")
        if sched == "trtllm" and self.enable_prefix_caching:
            raise ConfigError(
                "colocated_scheduler trtllm is not simulated with enable_prefix_caching"
            )
        if self.prefill_workers or self.decode_workers:
            raise ConfigError(
                f"design {self.design.name} has no prefill or decode pools; give its workers "
                "as colocated_workers"
            )
        if self.max_num_batched_tokens < self.max_num_seqs:
            raise ConfigError(
                f"co-located workers need max_num_batched_tokens ({self.max_num_batched_tokens})"
                f" >= max_num_seqs ({self.max_num_seqs}), as vLLM requires"
            )

    @property
    def decode_pool_names(self) -> list[str]:
        """Names of the decode pools, in ``decode_workers`` order."""
        return self.design.decode_pool_names(self.served_models)

    @property
    def num_prefill_gpus(self) -> int:
        """Prefill workers x ``prefill_tensor_parallel_size``."""
        return sum(self.prefill_workers) * int(self.prefill_tensor_parallel_size or 1)

    @property
    def num_decode_gpus(self) -> int:
        """Decode workers x ``decode_tensor_parallel_size``."""
        return sum(self.decode_workers) * int(self.decode_tensor_parallel_size or 1)

    @property
    def num_colocated_gpus(self) -> int:
        """Co-located workers x ``decode_tensor_parallel_size`` (0 for disaggregated designs):
        a co-located worker runs the decode module's latency model and KV cache."""
        return sum(self.colocated_workers) * int(self.decode_tensor_parallel_size or 1)

    @property
    def num_gpus(self) -> int:
        """Prefill plus decode plus co-located GPUs."""
        return self.num_prefill_gpus + self.num_decode_gpus + self.num_colocated_gpus


def split_workers(total: int, weights: Sequence[float]) -> tuple[int, ...]:
    """Split ``total`` workers over pools in proportion to ``weights``, at least 1 each.

    Largest-remainder rounding (Hamilton's method). Raises :class:`ConfigError` when
    ``total`` is smaller than the number of pools.
    """
    n = len(weights)
    if total < n:
        raise ConfigError(
            f"{total} decode workers cannot give each of {n} models its own "
            f"decode pool (per-model decode pools); use at least {n}"
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
