"""The small real engine behind ``sunsim validate engine``: two torch worker processes.

A **prefill process** (:mod:`.prefill_proc`) and a **decode process** (:mod:`.decode_proc`),
``multiprocessing`` spawn, each running :class:`~sunsim.profiling.modules.DecoderModule`
weights built from the same seed (so the decode continues exactly the model the prefill ran),
each with ``torch.set_num_threads(k)`` (:mod:`.worker`). They follow the simulator's rules:
the prefill batches FCFS within ``max_num_batched_tokens`` as :mod:`sunsim.engine.prefill`;
the decode schedules by the simulator's own policy object
(:class:`sunsim.engine.scheduler.DecodePolicy`) and requests are rejected at arrival by
:func:`sunsim.engine.scheduler.reject_reason`. The KV cache goes from one to the other through
a shared-memory staging tensor and a notice on a pipe (the "link").

Rooms: :mod:`.config` (:class:`EngineConfig`, the clock, the staging layout; no torch),
:mod:`.kernels` (the packed prefill and the paged-KV decode step, on the harness module's
layers), :mod:`.timing` (timing of the kernels for the engine's own profile), :mod:`.worker`
(a worker's entry point and command loop), :mod:`.prefill_proc`, :mod:`.decode_proc`.

The simulator's profile is measured with these same two kernels (:func:`decode_step`,
:func:`prefill_packed`), in the same worker processes, with the same thread count, before and
after the replay (repeats pooled), each under the conditions it meets in the replay (see
:mod:`sunsim.validate.engine`). Only the kernels and the processes import torch (never at
module level).
"""

from sunsim.validate.real_engine.config import (
    BLOCK_TOKENS,
    ONEDNN_CACHE_CAPACITY,
    PREFILL_PAD_TOKENS,
    EngineConfig,
    clock,
    staging_offsets,
)
from sunsim.validate.real_engine.kernels import decode_step, new_pool, prefill_packed, warm_shapes
from sunsim.validate.real_engine.timing import time_calls
from sunsim.validate.real_engine.worker import worker_main

__all__ = [
    "BLOCK_TOKENS",
    "ONEDNN_CACHE_CAPACITY",
    "PREFILL_PAD_TOKENS",
    "EngineConfig",
    "clock",
    "decode_step",
    "new_pool",
    "prefill_packed",
    "staging_offsets",
    "time_calls",
    "warm_shapes",
    "worker_main",
]
