"""Specs of what is simulated, independent of any scenario: model architectures (Hugging Face
``config.json`` fields), weight precisions, GPUs and links, latency SLOs.

Owns: the built-in registries :data:`MODELS`, :data:`PRECISIONS`, :data:`GPUS` and their
look-ups, which raise :class:`~sunsim.errors.ConfigError` naming the known keys.
"""

from sunsim.specs.hardware import GB, GPU_ALIASES, GPUS, TB, GiB, GpuSpec, LinkSpec, get_gpu
from sunsim.specs.models import MODELS, ModelSpec, get_model, weight_bytes
from sunsim.specs.precisions import PRECISIONS, Precision, get_precision
from sunsim.specs.slo import SloSpec

__all__ = [
    "GB",
    "GPU_ALIASES",
    "GPUS",
    "TB",
    "GiB",
    "GpuSpec",
    "LinkSpec",
    "get_gpu",
    "MODELS",
    "ModelSpec",
    "get_model",
    "weight_bytes",
    "PRECISIONS",
    "Precision",
    "get_precision",
    "SloSpec",
]
