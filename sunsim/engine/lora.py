"""Multi-LoRA co-located workers: the ``lora`` design's workers.

The standard multi-LoRA deployment is co-located: vLLM's ``--enable-lora`` serves every
adapter from the same aggregated engine (continuous batching with chunked prefill), as do
S-LoRA and Punica, which batch the requests of every adapter in one decode batch. So a
:class:`LoraWorker` is a :class:`~sunsim.engine.colocated.ColocatedWorker` of one shared
pool (every worker serves every task model), scheduling exactly as it does, with two
additions (the figures and formulas are in :mod:`sunsim.engine.lora_spec`):

* **adapters per batch**: the requests of a step (running, partly prefilled and admitted)
  use at most ``max_loras`` distinct adapters. A waiting request whose adapter would exceed
  that is skipped for this step and keeps its place in the queue, while requests behind it
  with a resident adapter may be admitted -- vLLM V1's rule (``Scheduler.schedule``:
  ``len(scheduled_loras) == max_loras`` and its adapter not among them: skip it);
* **adapter cost**: each step's (or planned decode run's) time is
  :meth:`~sunsim.engine.lora_spec.LoraSpec.step_time` of the base time, the distinct
  adapters of the batch and its tokens, plus the load time of each of those adapters not in
  the worker's ``max_loras`` GPU slots (least recently used slot evicted), added to the
  step that first uses it.

A decode-only run keeps its batch (it ends at the first finish or arrival), so its adapters
and per-step cost are constant over the run.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from sunsim.engine.colocated import Chunk, ColocatedWorker
from sunsim.engine.request import Request

__all__ = ["LoraWorker"]


class LoraWorker(ColocatedWorker):
    """A co-located worker of the ``lora`` design (module docstring). ``num_loads`` counts the
    adapters copied into its slots; ``slots`` holds the resident adapters (model indices),
    least recently used first."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        lora = self.sim.cluster.lora
        assert lora is not None, "the lora design needs a LoraSpec (ClusterSpec.lora)"
        self.lora = lora
        self.slots: OrderedDict[int, None] = OrderedDict()
        self.num_loads = 0

    def _batch_adapters(self, chunks: list[Chunk] | None) -> set[int]:
        """Adapters (model indices) of the decoding requests, the partly prefilled one and
        ``chunks``."""
        ads = {r.model_idx for r in self.running.values()}
        if self.partial is not None:
            ads.add(self.partial.model_idx)
        if chunks:
            ads.update(r.model_idx for r, _, _ in chunks)
        return ads

    def _admission_filter(self, chunks: list[Chunk]) -> Callable[[Request], bool] | None:
        """At most ``max_loras`` distinct adapters in the step's batch."""
        active = self._batch_adapters(chunks)
        cap = self.lora.max_loras

        def allow(r: Request) -> bool:
            if r.model_idx in active:
                return True
            if len(active) < cap:
                active.add(r.model_idx)
                return True
            return False

        return allow

    def _load(self, adapters: set[int]) -> float:
        """Seconds to copy the adapters not resident into slots; mark all as used now."""
        slots = self.slots
        loads = 0
        for a in sorted(adapters):
            if a in slots:
                slots.move_to_end(a)
                continue
            if len(slots) >= self.lora.max_loras:
                for old in slots:  # least recently used slot not needed by this batch
                    if old not in adapters:
                        del slots[old]
                        break
            slots[a] = None
            loads += 1
        self.num_loads += loads
        return loads * self.lora.load_s

    def _start(self, n: int, ctx: int, cum: list[float], chunks: list[Chunk] | None) -> None:
        """The base step times ``cum`` with the adapter cost of this batch and its loads."""
        adapters = self._batch_adapters(chunks)
        tokens = n + (sum(c for _, c, _ in chunks) if chunks else 0)
        load = self._load(adapters)
        d = len(adapters)
        lora = self.lora
        out = []
        prev_base = 0.0
        t = load
        for base in cum:
            t += lora.step_time(base - prev_base, d, tokens)
            prev_base = base
            out.append(t)
        super()._start(n, ctx, out, chunks)
