"""The choices and bounds of :class:`~sunsim.config.scenario.Scenario`'s fields.

Choice types (``Literal``) are built from their registries (designs, routers, GPUs, trace
formats, precisions), so ``--help`` and every scenario check list the same names; a type
checker sees plain strings. Upper bounds on counts fail early with a message instead of a
``MemoryError`` deep in the engine: every worker and every running sequence is a simulated
object.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal, TypeAlias

from pydantic import Field

from sunsim.config.fields import Float, Int
from sunsim.engine.designs import (
    DEFAULT_DESIGNS,
    DESIGNS,
    LOW_BIT_PRECISIONS,
    WEIGHT_PRECISIONS,
)
from sunsim.engine.router import ROUTERS
from sunsim.engine.spec import COLOCATED_SCHEDULERS
from sunsim.latency.kv_cache_dtype import KV_CACHE_DTYPES
from sunsim.specs import GPUS
from sunsim.traces.formats import FORMATS

MODES = tuple(DESIGNS)
#: The modes a scenario runs unless told (``--mode all`` is :data:`MODES`).
DEFAULT_MODES = DEFAULT_DESIGNS

# Choices (shown by --help, checked on every scenario), built from their registries.
if TYPE_CHECKING:  # a type checker sees plain strings
    DesignName: TypeAlias = str
    RouterName: TypeAlias = str
    GpuName: TypeAlias = str
    TraceFormat: TypeAlias = str
    QsunPrecision: TypeAlias = str
    WeightPrecision: TypeAlias = str
    KvCacheDtype: TypeAlias = str
    ColocatedScheduler: TypeAlias = str
else:
    DesignName = Literal[MODES]
    RouterName = Literal[tuple(ROUTERS)]
    GpuName = Literal[tuple(GPUS)]
    TraceFormat = Literal[("auto", *FORMATS)]
    QsunPrecision = Literal[LOW_BIT_PRECISIONS]
    WeightPrecision = Literal[WEIGHT_PRECISIONS]
    KvCacheDtype = Literal[tuple(KV_CACHE_DTYPES)]
    ColocatedScheduler = Literal[COLOCATED_SCHEDULERS]
LatencySource = Literal["auto", "profile", "roofline", "calibrated"]
EngineOverheadName = Literal["none", "vllm", "sglang", "trtllm"]
SessionArrivals = Literal["timestamp", "after_previous"]

#: Largest closed-loop concurrency and prompt count: each is a simulated, recorded request.
MAX_CONCURRENCY = 1_000_000
MAX_PROMPTS = 10_000_000
#: Largest worker count of one pool: each worker is a simulated process with its own state.
MAX_WORKERS = 4096
WORKERS_WHY = f"at most {MAX_WORKERS} workers per pool: each is a simulated process"
#: A worker count: 0 only as one model's part of a shared pool; every pool gets at least 1
#: (:func:`sunsim.config.consistency.check_pool_counts`).
WorkerCount = Annotated[Int, Field(ge=0, le=MAX_WORKERS)]
TP_WHY = "the largest power of two in one NVLink domain (GB200 NVL72)"
Share = Annotated[Float, Field(ge=0)]
