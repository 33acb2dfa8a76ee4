"""The real engine's decode process: continuous batching over a paged KV cache.

The cache is ``kv_blocks`` blocks of ``block_tokens`` tokens (one tensor ``[layers, 2,
kv_heads, blocks, block_tokens, head_dim]``). At each iteration boundary the process takes the
KV notices that arrived, then schedules by the simulator's own policy
(:class:`sunsim.engine.scheduler.DecodePolicy`): preempt the newest running request while the
running requests' blocks for this iteration exceed the capacity (its blocks are freed and it
is sent back to the prefill process with its generated token ids); when nothing was
preempted, admit waiting requests FCFS while the policy allows (admission copies the staged
KV into the request's blocks). One iteration is :func:`~.kernels.decode_step`.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from sunsim.engine.scheduler import DecodePolicy, blocks_for
from sunsim.validate.real_engine.config import EngineConfig, clock, staging_offsets
from sunsim.validate.real_engine.kernels import decode_step, new_pool, warm_shapes
from sunsim.validate.real_engine.timing import ready, time_calls


@dataclass
class Seq:
    """A request in the decode process (times from :data:`~.config.clock`, -1 until set)."""

    rid: int
    prompt: int
    output: int
    tokens: list = field(default_factory=list)  # generated token ids
    blocks: list = field(default_factory=list)
    num_preemptions: int = 0
    kv_received_at: float = -1.0
    decode_started_at: float = -1.0
    finished_at: float = -1.0

    @property
    def ctx(self) -> int:
        """Context tokens attended at the next iteration: prompt + generated."""
        return self.prompt + len(self.tokens)


@dataclass
class _Replay:
    """The decode replay's state: free block ids (a stack), requests, queues, counters."""

    free: list
    seqs: dict = field(default_factory=dict)
    waiting: deque = field(default_factory=deque)
    running: list = field(default_factory=list)
    iters: list = field(default_factory=list)
    done: int = 0
    num_preemptions: int = 0


class DecodeProc:
    """The decode worker's state and its commands (see :func:`~.worker.worker_main`)."""

    def __init__(
        self, cfg: EngineConfig, mod: Any, kv_conn: Any, back_conn: Any, ctrl: Any
    ) -> None:
        import torch

        self.torch = torch
        self.cfg, self.mod = cfg, mod
        self.kv_conn, self.back_conn, self.ctrl = kv_conn, back_conn, ctrl
        msg = kv_conn.recv()
        if msg[0] != "staging":  # pragma: no cover - protocol bug
            raise RuntimeError(f"expected the staging tensor first, got {msg[0]!r}")
        self.staging = msg[1]
        self.offsets, _ = staging_offsets(cfg)
        self.pool = new_pool(mod, cfg.kv_blocks, cfg.block_tokens)
        self.policy = DecodePolicy(cfg.max_num_seqs, cfg.kv_blocks, cfg.block_tokens)
        self._warm()

    def _warm(self) -> None:
        """Compile the kernels of every batch size up to ``max_num_seqs`` (the linear layers
        and LM head run on B rows), touch the staging tensor's pages."""
        cfg = self.cfg
        bt = cfg.block_tokens
        top = max(cfg.max_num_seqs, max(cfg.decode_batch_sizes))
        warm_shapes(self.mod, range(1, top + 1), range(1, top + 1))
        b = min(4, cfg.kv_blocks)
        tables = [[i] for i in range(b)]
        for _ in range(2):
            decode_step(self.mod, self.pool, [1] * b, [bt] * b, tables, bt)
        self.staging.view(-1)[::2048].float().sum()  # one read per 4 KiB page

    def profile(self) -> list[dict]:
        """One pass over the decode grid: rows of ``batch_size``, ``context_tokens``,
        ``wall`` and ``cpu`` (seconds per repeat)."""
        cfg, mod = self.cfg, self.mod
        bt = cfg.block_tokens
        pts = cfg.decode_points()
        pool = new_pool(mod, max(b * blocks_for(c, bt) for b, c in pts), bt)
        gen = self.torch.Generator().manual_seed(cfg.seed + 12)
        rows = []
        for b, c in pts:
            nb = blocks_for(c, bt)
            tables = [list(range(i * nb, (i + 1) * nb)) for i in range(b)]
            ids = self.torch.randint(0, cfg.spec.vocab_size, (b,), generator=gen).tolist()
            ctxs = [c] * b
            wall, cpu = time_calls(
                partial(decode_step, mod, pool, ids, ctxs, tables, bt),
                warmup=cfg.warmup,
                min_repeats=cfg.min_repeats,
                max_repeats=cfg.max_repeats,
                budget_s=cfg.time_per_point_s,
            )
            rows.append({"batch_size": b, "context_tokens": c, "wall": wall, "cpu": cpu})
        del pool
        return rows

    def busy(self) -> dict:
        """Decode a typical batch (``min(4, max_num_seqs)`` requests of the slice's mean
        prompt + half its mean output) step after step until the driver sends ``("idle",)``:
        the load the decode process puts on the machine during the replay, under which the
        prefill process profiles its kernel."""
        cfg = self.cfg
        bt = cfg.block_tokens
        n = len(cfg.prompt_tokens) or 1
        ctx = max(1, round(sum(cfg.prompt_tokens) / n + sum(cfg.output_tokens) / (2 * n)))
        b = min(4, cfg.max_num_seqs)
        nb = blocks_for(ctx, bt)
        pool = new_pool(self.mod, b * nb, bt)
        tables = [list(range(i * nb, (i + 1) * nb)) for i in range(b)]
        steps = 0
        t0 = clock()
        ctrl_ready = ready(self.ctrl)
        while not ctrl_ready():
            decode_step(self.mod, pool, [1] * b, [ctx] * b, tables, bt)
            steps += 1
        msg = self.ctrl.recv()
        if msg[0] != "idle":  # pragma: no cover - driver bug
            raise RuntimeError(f"expected 'idle' while busy, got {msg!r}")
        return {"steps": steps, "seconds": clock() - t0, "batch_size": b, "context_tokens": ctx}

    def link(self) -> list[dict]:
        """Calibration: timestamp each notice on arrival and ack it."""
        out: list[dict] = []
        while True:
            m = self.kv_conn.recv()
            t = clock()
            if m[0] == "cal_end":
                return out
            self.back_conn.send(("ack",))
            out.append({"tokens": m[1], "received": t})

    def _admit_copy(self, s: Seq, blocks: list) -> None:
        """Copy ``s``'s staged KV into its newly allocated blocks (whole blocks)."""
        torch = self.torch
        bt = self.cfg.block_tokens
        o = self.offsets[s.rid]
        nb = len(blocks)
        src = self.staging[:, :, :, o : o + nb * bt]
        src = src.reshape(src.shape[0], 2, src.shape[2], nb, bt, src.shape[-1])
        self.pool.index_copy_(
            3, torch.tensor(blocks, dtype=torch.int64, device=self.mod.device), src
        )

    # -- the replay ---------------------------------------------------------------------------

    def replay(self, t0: float) -> dict:
        """Decode every request that reaches this process until all expected ones finished:
        ``{"requests": {rid: record}, "iterations": [tuple], "num_preemptions": int}`` (the
        iteration tuple's fields: see :func:`sunsim.validate.engine.records.iterations_frame`)."""
        from multiprocessing.connection import wait

        cfg = self.cfg
        expected = sum(
            1
            for i in range(len(cfg.arrival_s))
            if not cfg.reject_reason(i) and cfg.output_tokens[i] > 1
        )
        st = _Replay(free=list(range(cfg.kv_blocks - 1, -1, -1)))
        kv_ready = ready(self.kv_conn)
        prev: tuple[float, float] | None = None  # (previous step's end, its thread CPU time)
        while st.done < expected:
            if not st.running and not st.waiting:
                wait([self.kv_conn])  # idle: sleep until a KV notice arrives
                prev = None
            while kv_ready():
                self._arrive(st, self.kv_conn.recv())
            blocks, preempted = self._preempt(st)
            admitted = 0 if preempted else self._admit(st, blocks)
            if st.running:
                prev = self._step(st, prev, admitted, preempted)
        reqs = {
            s.rid: {
                "kv_received_at": s.kv_received_at,
                "decode_started_at": s.decode_started_at,
                "finished_at": s.finished_at,
                "num_preemptions": s.num_preemptions,
            }
            for s in st.seqs.values()
        }
        return {"requests": reqs, "iterations": st.iters, "num_preemptions": st.num_preemptions}

    def _arrive(self, st: _Replay, m: tuple) -> None:
        """A KV notice ``("kv", rid, generated, last token, copy start, copy end)``: the
        request joins the waiting queue (a first arrival creates its :class:`Seq`)."""
        t = clock()
        rid = m[1]
        s = st.seqs.get(rid)
        if s is None:
            cfg = self.cfg
            s = st.seqs[rid] = Seq(
                rid, cfg.prompt_tokens[rid], cfg.output_tokens[rid], tokens=[m[3]], kv_received_at=t
            )
        st.waiting.append(s)

    def _preempt(self, st: _Replay) -> tuple[int, int]:
        """Preempt the newest running request while the policy says so (its blocks freed, it
        goes back to the prefill process); returns (blocks of this iteration, preempted)."""
        bt = self.cfg.block_tokens
        blocks = sum(blocks_for(s.ctx, bt) for s in st.running)
        preempted = 0
        while self.policy.must_preempt(blocks):
            s = st.running.pop()
            blocks -= blocks_for(s.ctx, bt)
            st.free.extend(s.blocks)
            s.blocks = []
            s.num_preemptions += 1
            preempted += 1
            g = len(s.tokens)
            self.back_conn.send(("recompute", s.rid, g, s.tokens[: g - 1]))
        st.num_preemptions += preempted
        return blocks, preempted

    def _admit(self, st: _Replay, blocks: int) -> int:
        """Admit waiting requests FCFS while the policy allows; returns how many."""
        admitted = 0
        while st.waiting:
            s = st.waiting[0]
            need = self.policy.admission_blocks(s.prompt, len(s.tokens))
            if not self.policy.can_admit(len(st.running), blocks, need):
                break
            st.waiting.popleft()
            blocks += need
            s.blocks = [st.free.pop() for _ in range(need)]
            self._admit_copy(s, s.blocks)
            if s.decode_started_at < 0:
                s.decode_started_at = clock()
            st.running.append(s)
            admitted += 1
        return admitted

    def _step(
        self, st: _Replay, prev: tuple[float, float] | None, admitted: int, preempted: int
    ) -> tuple[float, float]:
        """One decode iteration of the running requests, its record appended to
        ``st.iters``; returns (its end, thread CPU time at its end)."""
        bt = self.cfg.block_tokens
        running = st.running
        for s in running:  # blocks for this iteration's new token
            while len(s.blocks) * bt < s.ctx:
                s.blocks.append(st.free.pop())
        n = len(running)
        ctx_total = sum(s.ctx for s in running)
        c0 = time.thread_time()
        t_start = clock()
        nxt = decode_step(
            self.mod,
            self.pool,
            [s.tokens[-1] for s in running],
            [s.ctx for s in running],
            [s.blocks for s in running],
            bt,
        )
        t_end = clock()
        c1 = time.thread_time()
        keep = []
        for s, tok in zip(running, nxt):
            s.tokens.append(tok)
            if len(s.tokens) >= s.output:
                s.finished_at = t_end
                st.free.extend(s.blocks)
                s.blocks = []
            else:
                keep.append(s)
        fin = n - len(keep)
        st.running = keep
        st.done += fin
        boundary = (t_start - prev[0], c0 - prev[1]) if prev is not None else (math.nan, math.nan)
        used = self.cfg.kv_blocks - len(st.free)
        st.iters.append(
            (
                t_start,
                t_end - t_start,
                c1 - c0,
                n,
                ctx_total,
                *boundary,
                admitted,
                preempted,
                fin,
                used,
            )
        )
        return t_end, c1
