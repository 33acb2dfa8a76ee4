"""Metrics: per-request records -> latency percentiles, SLO attainment, the typed run summary.

Owns the field's metric definitions and the :class:`RunSummary` contract. It reads records
only (the frames of a :class:`~sunsim.engine.cluster.SimResult`: one row per request, worker
rows, the ITL histogram), never the engine's objects, and writes no files
(:mod:`sunsim.runs` writes ``summary.json`` from ``RunSummary.to_dict()``).

Definitions (docs/ and ARCHITECTURE.md; vLLM and DistServe count them the same way):

* TTFT = ``first_token_at - arrived_at``.
* TPOT = ``(finished_at - first_token_at) / (output_tokens - 1)`` for outputs of more than one
  token (includes the KV transfer and decode queueing).
* ITL = time between consecutive tokens of one request (from the decode workers' token-weighted
  iteration-time histogram, bins 1.2% wide).
* E2E = ``finished_at - arrived_at``.
* throughput = output tokens of finished requests / measured window (first arrival to last
  finish); per GPU it is divided by all GPUs (prefill + decode).
* SLO attainment = fraction of all requests with TTFT <= SLO_TTFT and TPOT <= SLO_TPOT (a
  request without TPOT, i.e. one output token, needs only the TTFT; a rejected request misses).

Modules: :mod:`~sunsim.metrics.latency` (SLO checks, percentiles), :mod:`~sunsim.metrics.summary`
(the :class:`RunSummary` types, ``to_dict``/``from_dict``), :mod:`~sunsim.metrics.build`
(:func:`summarize`), :mod:`~sunsim.metrics.compare` (designs side by side),
:mod:`~sunsim.metrics.cost` (GPUs, $/hour, $ per million output tokens, saving against
partitioned), :mod:`~sunsim.metrics.benchmark` (per-design metrics under vLLM's benchmark names,
``SCHEMA_VERSION``).
"""

from sunsim.metrics.build import summarize
from sunsim.metrics.compare import as_summary, comparison_table, sun_vs_partitioned
from sunsim.metrics.latency import (
    LATENCIES,
    PERCENTILES,
    itl_percentiles,
    latency_percentiles,
    slo_attainment,
    slo_met,
)
from sunsim.metrics.summary import (
    DecodeUtilisation,
    GpuCounts,
    LatencyModels,
    LatencyPercentiles,
    ModelSummary,
    PrefillUtilisation,
    RequestCounts,
    RunSummary,
    SimStats,
    SloResult,
    SummaryFormatError,
    Throughput,
)

__all__ = [
    "LATENCIES",
    "PERCENTILES",
    "DecodeUtilisation",
    "GpuCounts",
    "LatencyModels",
    "LatencyPercentiles",
    "ModelSummary",
    "PrefillUtilisation",
    "RequestCounts",
    "RunSummary",
    "SimStats",
    "SloResult",
    "SummaryFormatError",
    "Throughput",
    "as_summary",
    "comparison_table",
    "itl_percentiles",
    "latency_percentiles",
    "slo_attainment",
    "slo_met",
    "summarize",
    "sun_vs_partitioned",
]
