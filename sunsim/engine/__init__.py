"""The engine: a SimPy model of a prefill/decode-disaggregated multi-LLM cluster.

It owns everything between a workload (a frame of requests) and the per-request records:
which pools and workers a serving design has, how requests are routed, prefilled, moved over
KV links, scheduled into decode batches over a paged KV cache, and when each token comes out.
It never imports the CLI, metrics, report or torch. Its rooms, one job each:

* :mod:`~sunsim.engine.request`: a request in flight and its :class:`RequestStatus`;
* :mod:`~sunsim.engine.designs` / :mod:`~sunsim.engine.spec`: serving designs as data
  (:data:`DESIGNS`) and the resolved cluster of one run (:class:`ClusterSpec`);
* :mod:`~sunsim.engine.kv_cache`: the paged KV cache's block accounting;
* :mod:`~sunsim.engine.scheduler`: the decode scheduling policy (reject, preempt newest, FCFS
  admission), shared with the real engine in :mod:`sunsim.validate`;
* :mod:`~sunsim.engine.prefill`, :mod:`~sunsim.engine.decode`: the workers, which only
  advance time (decode in planned runs of iterations); :mod:`~sunsim.engine.colocated`:
  the co-located worker of aggregated designs (prefill and decode in one batch, chunked);
  :mod:`~sunsim.engine.lora`: the multi-LoRA co-located worker of ``lora`` (its adapter
  arithmetic in :mod:`~sunsim.engine.lora_spec`);
  :mod:`~sunsim.engine.decode_stats`: a decode worker's statistics and run log;
* :mod:`~sunsim.engine.kv_link`: FIFO KV-cache links; :mod:`~sunsim.engine.router`: routers;
* :mod:`~sunsim.engine.cluster`: the wiring, the run's counters and :func:`simulate`;
* :mod:`~sunsim.engine.records`: per-request records; :mod:`~sunsim.engine.result`: the
  :class:`SimResult` of a run.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the names below, imported on first use so that importing the designs
    # registry or the cluster spec (as the configuration does) does not load pandas and SimPy
    from sunsim.engine.cluster import kv_capacity_blocks, simulate
    from sunsim.engine.designs import DESIGNS
    from sunsim.engine.result import SimResult, itl_bin_edges
    from sunsim.engine.spec import ClusterSpec

_HOME = {
    "DESIGNS": "sunsim.engine.designs",
    "ClusterSpec": "sunsim.engine.spec",
    "SimResult": "sunsim.engine.result",
    "itl_bin_edges": "sunsim.engine.result",
    "kv_capacity_blocks": "sunsim.engine.cluster",
    "simulate": "sunsim.engine.cluster",
}

__all__ = ["DESIGNS", "ClusterSpec", "SimResult", "itl_bin_edges", "kv_capacity_blocks", "simulate"]


def __getattr__(name: str) -> Any:
    """Import a re-exported name from its room on first use (PEP 562)."""
    if name in _HOME:
        return getattr(importlib.import_module(_HOME[name]), name)
    raise AttributeError(f"module 'sunsim.engine' has no attribute {name!r}")
