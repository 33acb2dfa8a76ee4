"""The pools of a co-located design: its workers (:class:`~sunsim.engine.colocated.ColocatedWorker`,
or :class:`~sunsim.engine.lora.LoraWorker` for ``lora``) and the routers that reach them.

Moved out of :mod:`sunsim.engine.colocated` unchanged but for the worker class parameter.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from sunsim.engine.colocated import ColocatedWorker
from sunsim.engine.lora import LoraWorker
from sunsim.engine.router import make_router

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from sunsim.engine.cluster import ClusterSim

__all__ = ["build_colocated_pools"]


def build_colocated_pools(sim: ClusterSim, rng: np.random.Generator) -> None:
    """Build ``sim``'s co-located workers (``cluster.colocated_workers`` per pool), with
    the decode latency model's step times; set the cluster's routers so that arrivals reach
    them through its prefill routers (one per model: its pool, or the shared pool), and its
    decode workers list to them (statistics). No prefill workers, no links. The workers are
    :class:`~sunsim.engine.lora.LoraWorker` when the cluster has LoRA adapters."""
    cl = sim.cluster
    router = "least_loaded" if cl.decode_router == "central" else cl.decode_router
    worker = LoraWorker if cl.lora is not None else ColocatedWorker
    if cl.colocated_scheduler == "sglang":
        from sunsim.engine.sglang_colocated import SglangWorker

        worker = SglangWorker
    elif cl.colocated_scheduler == "trtllm":
        from sunsim.engine.trtllm_colocated import TrtllmWorker

        worker = TrtllmWorker
    workers: list[ColocatedWorker] = []
    routers = []
    for p, count in enumerate(cl.colocated_workers):
        ws = []
        for _ in range(count):
            w = worker(
                sim, len(workers), p, sim.decode_latency, sim.policy, cl.max_num_batched_tokens
            )
            workers.append(w)
            ws.append(w)
        routers.append(make_router(router, ws, rng))
    n = len(cl.served_models)
    per_model = routers if len(routers) == n and not cl.design.shares_decode else routers[:1] * n
    # the cluster reads workers through the attributes both kinds have (duck typing)
    sim.prefill_workers = []
    sim.prefill_routers = cast(Any, per_model)
    sim.decode_workers = list(workers)
    sim.pool_routers = cast(Any, routers)
    sim.decode_router_of_model = cast(Any, per_model)
