"""The real engine's prefill process.

Requests are released at their trace arrival times (:data:`~.config.clock`, the system-wide
monotonic clock, so both processes and the driver share one time base) into a FCFS queue; a
batch takes requests while its prompt tokens stay within ``max_num_batched_tokens`` (a
longer one runs alone); preempted requests come back to the front and recompute ``prompt +
generated - 1`` tokens without emitting a token. One batch is a packed prefill
(:func:`~.kernels.prefill_packed`). After its batch the process copies each request's KV into
that request's region of a shared-memory **staging tensor** (CUDA: a CUDA-IPC tensor) and
sends a small notice through a pipe: this copy + notice is the "link" (FIFO: requests of one
batch are sent one after the other). Requests rejected at arrival follow the simulator's
rules (:func:`sunsim.engine.scheduler.reject_reason`).
"""

from __future__ import annotations

import time
from collections import deque
from functools import partial
from typing import Any

from sunsim.validate.real_engine.config import EngineConfig, clock, staging_offsets
from sunsim.validate.real_engine.kernels import prefill_packed, warm_shapes
from sunsim.validate.real_engine.timing import ready, sync, time_calls


class PrefillProc:
    """The prefill worker's state and its commands (see :func:`~.worker.worker_main`)."""

    def __init__(
        self, cfg: EngineConfig, mod: Any, kv_conn: Any, back_conn: Any, ctrl: Any
    ) -> None:
        import torch

        self.torch = torch
        self.cfg, self.mod = cfg, mod
        self.kv_conn, self.back_conn, self.ctrl = kv_conn, back_conn, ctrl
        self.offsets, total = staging_offsets(cfg)
        self.staging = torch.zeros(
            len(mod.layers), 2, mod.nkv, total, mod.hd, dtype=mod.dtype, device=mod.device
        )
        if mod.device.type == "cpu":
            self.staging.share_memory_()
        kv_conn.send(("staging", self.staging))
        gen = torch.Generator().manual_seed(cfg.seed + 1)
        v = cfg.spec.vocab_size
        self.prompt_ids = [
            torch.randint(0, v, (p,), generator=gen).tolist() for p in cfg.prompt_tokens
        ]
        self._warm()

    def _warm(self) -> None:
        """Compile every padded token count a batch can have (and the LM head for up to 64
        requests), warm the staging tensor and the transfer path."""
        cfg = self.cfg
        pad = cfg.prefill_pad
        top = -(-cfg.longest_prefill // pad) * pad
        warm_shapes(self.mod, range(pad, top + 1, pad), range(1, 65))
        for _ in range(2):
            _first, kv = prefill_packed(self.mod, [[1] * 8, [2] * 8], pad)
            self._send_kv(0, kv, 0, 8)

    def busy(self) -> dict:
        """Prefill a typical prompt (the slice's mean prompt length) after every idle spell of
        ``prefill_idle_s`` seconds until the driver sends ``("idle",)``: what the prefill
        process does during the replay, under which the decode process profiles its kernel
        (each prefill streams the prefill weights through the caches the decode shares)."""
        from multiprocessing.connection import wait

        cfg = self.cfg
        n = len(cfg.prompt_tokens) or 1
        length = max(1, round(sum(cfg.prompt_tokens) / n))
        gap = cfg.prefill_idle_s if cfg.prefill_idle_s > 0 else 0.5
        prompt = [[1 + i % (cfg.spec.vocab_size - 1) for i in range(length)]]
        count = 0
        t0 = clock()
        while not wait([self.ctrl], gap):
            prefill_packed(self.mod, prompt, cfg.prefill_pad)
            count += 1
        msg = self.ctrl.recv()
        if msg[0] != "idle":  # pragma: no cover - driver bug
            raise RuntimeError(f"expected 'idle' while busy, got {msg!r}")
        return {"prefills": count, "seconds": clock() - t0, "prompt_tokens": length, "gap_s": gap}

    def profile(self) -> list[dict]:
        """One pass over the prefill grid: rows of ``batch_size``, ``prompt_tokens``,
        ``wall`` and ``cpu`` (seconds per repeat)."""
        cfg, mod = self.cfg, self.mod
        gen = self.torch.Generator().manual_seed(cfg.seed + 11)
        rows = []
        for b, n in cfg.prefill_points():
            prompts = self.torch.randint(0, cfg.spec.vocab_size, (b, n), generator=gen).tolist()
            wall, cpu = time_calls(
                partial(prefill_packed, mod, prompts, cfg.prefill_pad),
                warmup=cfg.warmup,
                min_repeats=cfg.min_repeats,
                max_repeats=cfg.max_repeats,
                budget_s=cfg.time_per_point_s,
                idle_s=cfg.prefill_idle_s,
            )
            rows.append({"batch_size": b, "prompt_tokens": n, "wall": wall, "cpu": cpu})
        return rows

    def _send_kv(self, rid: int, kv: Any, start: int, n: int) -> tuple[float, float]:
        """Copy ``n`` tokens of KV (from ``kv[..., start:start+n, :]``) into request ``rid``'s
        staging region; returns (copy start, copy end) times. The caller sends the notice."""
        o = self.offsets[rid]
        t0 = clock()
        self.staging[:, :, :, o : o + n].copy_(kv[:, :, :, start : start + n])
        sync(self.torch, self.mod.device)
        return t0, clock()

    def link(self) -> list[dict]:
        """Calibration: transfers of ``link_tokens`` tokens into the staging tensor, each
        followed by a notice; the decode process timestamps each notice on arrival and acks."""
        cfg, mod = self.cfg, self.mod
        nmax = max(cfg.link_tokens)
        kv = self.torch.randn(len(mod.layers), 2, mod.nkv, nmax, mod.hd, device=mod.device)
        kv = kv.to(mod.dtype)
        out = []
        sizes = [n for _ in range(cfg.link_repeats + 1) for n in cfg.link_tokens]
        for i, n in enumerate(sizes):
            t0, t1 = self._send_kv(0, kv, 0, n)
            self.kv_conn.send(("cal", n, t0, t1))
            self.back_conn.recv()  # the ack: one transfer at a time
            if i >= len(cfg.link_tokens):  # the first round is a warm-up
                out.append({"tokens": n, "copy_start": t0, "copy_end": t1})
        self.kv_conn.send(("cal_end",))
        return out

    def replay(self, t0: float) -> dict:
        """Serve the slice (arrivals from ``t0``) until the driver's ``("stop",)`` once every
        request arrived: ``{"requests": {rid: record}, "batches": [batch record]}``."""
        from multiprocessing.connection import wait

        cfg = self.cfg
        n = len(cfg.arrival_s)
        arr = [t0 + a for a in cfg.arrival_s]
        queue: deque = deque()  # (rid, generated, generated token ids to recompute or None)
        rec: dict[int, dict] = {}
        batches: list[dict] = []
        stop = False
        back_ready, ctrl_ready = ready(self.back_conn), ready(self.ctrl)
        i = 0
        while True:
            i = self._release(arr, i, queue, rec)
            while back_ready():
                m = self.back_conn.recv()  # ("recompute", rid, generated, token ids)
                queue.appendleft((m[1], m[2], m[3]))
            while ctrl_ready():
                if self.ctrl.recv()[0] == "stop":
                    stop = True
            if queue:
                self._batch(queue, rec, batches)
                continue
            if stop and i >= n:
                break
            left = arr[i] - clock() if i < n else None
            if left is None:
                wait([self.back_conn, self.ctrl])
            elif left > 0.002:
                wait([self.back_conn, self.ctrl], left - 0.0015)
            else:
                while clock() < arr[i]:  # the last 2 ms: spin, for a punctual release
                    pass
        return {"requests": rec, "batches": batches}

    def _release(self, arr: list[float], i: int, queue: deque, rec: dict) -> int:
        """Queue (or reject) the requests that have arrived from ``i`` on; returns the next
        request not yet arrived."""
        now = clock()
        while i < len(arr) and arr[i] <= now:
            why = self.cfg.reject_reason(i)
            if why:
                rec[i] = {"rejected": why}
            else:
                queue.append((i, 0, None))
            i += 1
        return i

    def _take(self, queue: deque) -> tuple[list[tuple], int]:
        """The next batch off the queue: ``(rid, generated, token ids, tokens)`` per request
        while the tokens stay within the budget (a longer request alone), and its tokens."""
        batch: list[tuple] = []
        tokens = 0
        while queue:
            rid, g, toks = queue[0]
            k = self.cfg.prompt_tokens[rid] + (g - 1 if g > 1 else 0)
            if batch and tokens + k > self.cfg.max_num_batched_tokens:
                break
            queue.popleft()
            batch.append((rid, g, toks, k))
            tokens += k
        return batch, tokens

    def _batch(self, queue: deque, rec: dict, batches: list) -> None:
        """Prefill the next batch and hand each request's KV to the decode process."""
        cfg = self.cfg
        batch, tokens = self._take(queue)
        prompts = [
            self.prompt_ids[rid] + (list(toks[: g - 1]) if g > 1 else [])
            for rid, g, toks, _k in batch
        ]
        c0 = time.thread_time()
        t_start = clock()
        first, kv = prefill_packed(self.mod, prompts, cfg.prefill_pad)
        t_done = clock()
        cpu = time.thread_time() - c0
        s = 0
        for (rid, g, _toks, k), tok in zip(batch, first):
            r = rec.setdefault(rid, {"prefill_started_at": t_start, "transfers": []})
            s += k
            if g == 0:  # a fresh request: the prefill emits its first token
                r["first_token_at"] = t_done
                if cfg.output_tokens[rid] == 1:
                    r["finished_at"] = t_done
                    continue
                g, last = 1, tok
            else:  # a recompute emits no token
                last = -1
            c0, c1 = self._send_kv(rid, kv, s - k, k)
            self.kv_conn.send(("kv", rid, g, last, c0, c1))
            r["transfers"].append((c0, c1, clock(), k))
        batches.append(
            {
                "start": t_start,
                "end": t_done,
                "transfers_end": clock(),
                "cpu_s": cpu,
                "batch_size": len(batch),
                "tokens": tokens,
                "lens": [b[3] for b in batch],
                "recomputes": sum(1 for b in batch if b[1] > 0),
            }
        )
