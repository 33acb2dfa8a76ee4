"""A co-located worker scheduled as SGLang's default scheduler runs one: prefill first,
decodes paused while a prefill batch runs.

SGLang's scheduler (``python/sglang/srt/managers/scheduler.py``,
``Scheduler.get_next_batch_to_run``) first tries to form a new prefill ("extend") batch from
its waiting queue (``get_new_batch_prefill``, FCFS by default, up to ``chunked_prefill_size``
new tokens, chunking the last prompt that does not fit, and only while the KV pool has room);
when it forms one, that batch runs alone: "run prefill first if possible". Only when no
prefill batch can be formed does the running batch decode one token per request. Mixing the
decodes into prefill batches (Sarathi-style, what vLLM V1 does) needs
``--enable-mixed-chunk``, off by default. So under a burst of arrivals every running request
stops for the whole burst's prefill, and requests admitted together decode together:
clients that start together stay in step.

:class:`SglangWorker` keeps :class:`~sunsim.engine.colocated.ColocatedWorker`'s paged KV
cache, FCFS admission, preemption (SGLang "retracts" a decode when the KV pool overflows,
as V1 preempts) and records; only the choice of step differs:

* a step boundary with a partly computed prompt or a waiting request: a prefill-only step
  (no decodes; ``mixed_step_time(0, 0, chunks)``) of up to ``max_num_batched_tokens``
  tokens (SGLang's ``chunked_prefill_size``, whose default SGLang sets from the GPU's memory
  and its version; not checked here), the partial prompt first, then waiting requests FCFS
  while ``max_num_seqs`` (``max_running_requests``) and the KV blocks allow; the decoding
  requests do not advance;
* otherwise (nothing admissible): the decodes, exactly as the base worker plans them.

Not modelled: SGLang's ``new_token_ratio`` reservation of KV for future decode tokens
(admission stops earlier when the pool is nearly full), its radix cache, and the overlap
scheduler's CPU/GPU pipelining.
"""

from __future__ import annotations

from sunsim.engine.colocated import Chunk, ColocatedWorker, tokens_to_compute

__all__ = ["SglangWorker"]


class SglangWorker(ColocatedWorker):
    """A :class:`~sunsim.engine.colocated.ColocatedWorker` that runs prefill-first steps
    (module docstring); same arguments."""

    def _boundary(self) -> None:
        if (self.waiting or self.partial is not None) and self._prefill_step():
            return
        self.run_decodes = True
        super()._boundary()

    def _prefill_step(self) -> bool:
        """Start a prefill-only step if a chunk fits (module docstring); whether it did.
        The decodes' blocks are counted at the next decode iteration, as the base worker
        counts them, so a prefill never takes the room their next token needs."""
        kv = self.kv
        bs = self.block_size
        cap = kv.capacity_blocks
        used = kv.blocks_at(self.iteration + 1) if kv.num_seqs else 0
        if used > cap:
            return False  # the decodes overflow: the base worker preempts
        budget = self.token_budget
        chunks: list[Chunk] = []
        p = self.partial
        if p is not None:
            done = self.partial_done
            c = min(tokens_to_compute(p) - done, budget)
            blocks = -(-(done + c) // bs)
            if used + blocks > cap:
                return False
            used += blocks
            budget -= c
            chunks.append((p, c, done))
        self._admit(chunks, used, budget)
        if not chunks:
            return False
        self.run_decodes = False
        dt = self.mixed_step_time(0, 0, [(c, b) for _, c, b in chunks])
        self._start(0, sum(c + b for _, c, b in chunks), [dt], chunks)
        return True
