"""GPUs and KV-cache links: memory, bandwidth and compute ceilings.

Sources of the constants:

* GPU datasheets: NVIDIA H100 SXM5 80 GB (3.35 TB/s HBM3, 989 TFLOP/s dense BF16),
  H200 SXM 141 GB (4.8 TB/s HBM3e, 989 TFLOP/s), A100 SXM 80 GB (2.04 TB/s, 312 TFLOP/s).
  B200 (NVIDIA HGX B200 datasheet, per GPU: 180 GB HBM3e, 7.7 TB/s, 2.25 PFLOP/s dense
  FP16/BF16 (4.5 with sparsity); the same figures as aiconfigurator-core 0.12.0's
  ``systems/b200_sxm.yaml``).
  Achieved ceilings measured on real machines (``docs/architecture.md``):
  H100 about 3.0 TB/s device copy and 798 TFLOP/s on an 8192^3 BF16 matmul; H200 about
  4.3 TB/s and 788 TFLOP/s. For the A100 no measurement exists; the roofline then uses
  the datasheet times the fractions measured on the H100 (0.90 of bandwidth, 0.81 of FLOP/s);
  the same for the B200 (no measurement either).
* L40S (NVIDIA L40S datasheet: 48 GB GDDR6, 864 GB/s, 362.05 TFLOP/s dense BF16 (733 with
  sparsity)); nobody measured it for sunsim: its achieved ceilings are the datasheet times the
  H100 fractions, as for the A100, and ``latency = "auto"`` times it with the calibrated
  roofline (:mod:`sunsim.latency.calibrated`).
* Link: NVIDIA ConnectX-7 NDR InfiniBand, 400 Gb/s = 50 GB/s per port.
"""

from __future__ import annotations

from dataclasses import dataclass

from sunsim.errors import ConfigError

GiB = 1024**3
GB = 1e9
TB = 1e12


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
    "b200": GpuSpec(
        "B200-SXM-180GB", 180 * 10**9, 7.7 * TB, 2250e12, 7.7 * TB * 0.90, 2250e12 * 0.81, False
    ),
    "l40s": GpuSpec(
        "L40S-48GB", 48 * 10**9, 0.864 * TB, 362.05e12, 0.864 * TB * 0.90, 362.05e12 * 0.81, False
    ),
}
GPU_ALIASES = {
    "h100-sxm": "h100",
    "h100-sxm-80gb": "h100",
    "h200-sxm": "h200",
    "h200-sxm-141gb": "h200",
    "a100-80gb": "a100",
    "a100-sxm-80gb": "a100",
    "b200-sxm": "b200",
    "b200-sxm-180gb": "b200",
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


def get_gpu(name: str) -> GpuSpec:
    """Look up a built-in GPU spec; raises :class:`ConfigError` naming the known ones."""
    key = name.lower()
    key = GPU_ALIASES.get(key, key)
    if key not in GPUS:
        raise ConfigError(f"unknown GPU '{name}'; known GPUs: {', '.join(GPUS)}")
    return GPUS[key]


#: NVLink bandwidth per GPU, per direction, bytes/s: half the bidirectional total of NVIDIA's
#: datasheets: A100 SXM 600 GB/s (NVLink 3), H100 SXM and H200 SXM 900 GB/s (NVLink 4), HGX
#: B200 1.8 TB/s per GPU (NVLink 5); the same figures as aiconfigurator-core 0.12.0's
#: ``systems/<gpu>.yaml`` ``intra_node_bw``. Tensor-parallel all-reduces of the roofline run at
#: it (:mod:`sunsim.specs.parallel`).
NVLINK_BW: dict[str, float] = {
    "a100": 300 * GB,
    "h100": 450 * GB,
    "h200": 450 * GB,
    "b200": 900 * GB,
}


def nvlink_bandwidth(gpu: GpuSpec | str) -> float:
    """NVLink bytes/s per direction of ``gpu`` (a spec or a GPU name) from :data:`NVLINK_BW`;
    raises :class:`ConfigError` for a GPU without a figure."""
    spec = get_gpu(gpu) if isinstance(gpu, str) else gpu
    for key, g in GPUS.items():
        if g.name == spec.name and key in NVLINK_BW:
            return NVLINK_BW[key]
    raise ConfigError(
        f"no NVLink bandwidth is known for {spec.name}, so tensor parallelism cannot be "
        f"timed on it; known: {', '.join(NVLINK_BW)}"
    )
