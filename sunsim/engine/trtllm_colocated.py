"""A co-located worker scheduled as TensorRT-LLM's in-flight batching scheduler runs one with
its defaults: ``GUARANTEED_NO_EVICT`` admission, chunked context off, a ``max_num_tokens``
budget and ``max_batch_size`` per step, and the overlap scheduler.

TensorRT-LLM schedules each iteration in two passes (docs: "Scheduler", PyTorch backend;
"Useful Runtime Options"; ``cpp/tensorrt_llm/batch_manager/capacityScheduler.cpp`` and
``microBatchScheduler.cpp``), ahead of time:

1. **capacity scheduler**, ``GUARANTEED_NO_EVICT`` (the default ``capacity_scheduler_policy``):
   every request already generating is kept and its KV blocks *to completion* are reserved
   (``getRemainingBlocksToCompletion``: ``ceil((prompt + max_new_tokens) / tokens_per_block)``
   less the blocks it holds); then the waiting (context) requests in arrival order are
   admitted while their own blocks to completion fit in the free blocks left after those
   reservations, stopping at the first that does not fit (and at ``max_batch_size``
   requests). A started request is therefore never paused or evicted;
2. **micro-batch scheduler**: over those requests in order (the generating ones first, then
   the admitted contexts), a generation request takes one token of the ``max_num_tokens``
   budget; with chunked context off (``enable_chunked_prefill`` defaults to False) a context
   request takes its **whole prompt** in this step or, if it does not fit in what is left,
   stops the scan (it and every later request wait for the next iteration); at most
   ``max_batch_size`` requests per step. The contexts and the generations run as one batch
   (in-flight batching: the context tokens come first in the packed input);
3. **overlap scheduler** (PyTorch backend, on by default: ``disable_overlap_scheduler =
   False``, docs "Overlap Scheduler"): the executor schedules and launches step ``n + 1``
   while step ``n`` runs on the GPU, and handles step ``n``'s outputs (responses, finished
   requests) during step ``n + 1``. So the step starting at a boundary was scheduled when
   the step that just ended started: a request arriving during step ``n``, or at its start
   (a client answering a response sent then), is admitted from step ``n + 2``; with
   lock-step closed-loop clients every new request waits one step more than under vLLM's
   scheduler. An idle engine, or one with no request generating, schedules at once.

In sunsim's terms (:class:`TrtllmWorker`, the :class:`~sunsim.engine.colocated.ColocatedWorker`
with another step boundary): ``max_num_batched_tokens`` is ``max_num_tokens``,
``max_num_seqs`` is ``max_batch_size``, ``block_size`` is ``tokens_per_block``, and a
request's ``output_tokens`` is its ``max_new_tokens`` (the benchmark clients set
``max_tokens`` to the output length and ignore EOS). Both passes stop at the first request
that does not fit, so one FCFS scan applying both limits admits the same requests. A request
that is admitted emits its first token at the end of its context step and then decodes one
token per step; the step costs :meth:`~sunsim.latency.base.LatencyModel.mixed_step_time`.
Since the reservations of the admitted requests never exceed the cache, nothing is ever
preempted.

Bad input: a prompt longer than ``max_num_batched_tokens`` can never be scheduled without
chunked context (TensorRT-LLM refuses such a request); it raises
:class:`~sunsim.errors.ConfigError` when it reaches the worker. A request's reservation is
capped at the whole cache, so a request the arrival check accepts (its ``prompt + output - 1``
tokens fit) always runs once alone.

Not modelled: the overlap scheduler's extra decoding step of a finishing request (it is in
the step after its last token, which costs that step one more token), the
``MAX_UTILIZATION`` policy, chunked context (``enable_chunked_prefill``), KV block reuse,
LoRA and the per-step CPU overhead.
"""

from __future__ import annotations

from sunsim.engine.colocated import Chunk, ColocatedWorker
from sunsim.engine.request import Request, RequestStatus
from sunsim.errors import ConfigError

__all__ = ["TrtllmWorker"]

_PREFILLING = RequestStatus.PREFILLING


class TrtllmWorker(ColocatedWorker):
    """A :class:`~sunsim.engine.colocated.ColocatedWorker` scheduled as TensorRT-LLM's
    defaults schedule (module docstring); same arguments. ``reserved_blocks``: the KV blocks
    reserved to completion by the admitted, unfinished requests (never above the cache);
    ``known_waiting``: how many of the waiting requests (the first ones) were waiting when
    the step in progress started, so that the overlap scheduler saw them."""

    reserved_blocks = 0
    known_waiting = 0

    def reservation(self, r: Request) -> int:
        """KV blocks ``r`` reserves to completion when admitted: ``ceil((prompt_tokens +
        output_tokens) / block_size)``, at most the whole cache."""
        need = -(-(r.prompt_tokens + r.output_tokens) // self.block_size)
        cap = self.kv.capacity_blocks
        return need if need < cap else cap

    def submit(self, r: Request, front: bool = False, defer: bool = True) -> None:
        """Queue ``r`` (:meth:`ColocatedWorker.submit`).

        Raises:
            ConfigError: its prompt exceeds the token budget, so that without chunked
                context no step can ever hold it.
        """
        if r.prompt_tokens > self.token_budget:
            raise ConfigError(
                f"request {r.request_id}: its prompt ({r.prompt_tokens} tokens) exceeds "
                f"max_num_batched_tokens ({self.token_budget}); colocated_scheduler trtllm "
                "runs a whole prompt in one step (no chunked context): raise "
                "max_num_batched_tokens to at least the longest prompt"
            )
        super().submit(r, front, defer)

    def _boundary(self) -> None:
        """Admit and batch (module docstring), then run a mixed step, or decode: one
        iteration when a waiting request is held back only by the overlap scheduler (it
        joins the step after), else a run up to the next finish (nothing can be admitted
        before one); or go idle."""
        n = self.kv.num_seqs
        # the step starting now was scheduled when the step that just ended started (overlap
        # scheduler): only the requests waiting then may join; an idle engine, or one with
        # no request generating, schedules now, every waiting request
        known = self.known_waiting if self.busy and n else len(self.waiting)
        chunks, held = self._schedule_contexts(n, known)
        self.known_waiting = len(self.waiting)
        if chunks:
            self._start_mixed(n, chunks)
        elif n:
            self._plan_decode(n, held)
        else:
            self.busy = False

    def _schedule_contexts(self, n: int, known: int) -> tuple[list[Chunk], bool]:
        """The waiting requests that join this step with their whole prompt, FCFS, beside
        ``n`` generating requests: each must be among the first ``known`` waiting (those
        the overlap scheduler saw), its reservation must fit the cache, its prompt the
        tokens left, and a batch slot must be free; the scan stops at the first that does
        not. Also returns whether it stopped only because the head came after ``known``."""
        waiting = self.waiting
        cap = self.kv.capacity_blocks
        budget = self.token_budget - n
        slots = self.max_num_seqs - n
        reserved = self.reserved_blocks
        now = self.env.now
        chunks: list[Chunk] = []
        held = False
        while waiting and slots > 0:
            r = waiting[0]
            need = self.reservation(r)
            p = r.prompt_tokens
            if reserved + need > cap or p > budget:
                break
            if len(chunks) >= known:
                held = True
                break
            waiting.popleft()
            reserved += need
            budget -= p
            slots -= 1
            r.status = _PREFILLING
            r.prefill_started_at = now
            r.prefill_worker = self.wid
            chunks.append((r, p, 0))
        self.reserved_blocks = reserved
        return chunks, held

    def _finish(self, r: Request, end: float) -> None:
        """``r`` finished: its reservation is released."""
        self.reserved_blocks -= self.reservation(r)
        super()._finish(r, end)
