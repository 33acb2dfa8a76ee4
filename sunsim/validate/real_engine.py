"""The small real engine behind ``sunsim validate engine``: two torch worker processes.

A **prefill process** and a **decode process** (``multiprocessing`` spawn), each running
:class:`~sunsim.profiling.modules.DecoderModule` weights built from the same seed (so the
decode continues exactly the model the prefill ran), each with ``torch.set_num_threads(k)``.
They follow the simulator's rules (:mod:`sunsim.engine.prefill`, :mod:`sunsim.engine.decode`):

* prefill: requests are released at their trace arrival times (``time.perf_counter``, the
  system-wide monotonic clock, so both processes and the driver share one time base) into a
  FCFS queue; a batch takes requests while its prompt tokens stay within
  ``max_num_batched_tokens`` (a longer one runs alone); preempted requests come back to the front
  and recompute ``prompt + generated - 1`` tokens without emitting a token. One batch is a
  *packed* prefill (:func:`prefill_packed`): the linear layers run over all tokens of the
  batch at once, attention runs per request (causal SDPA over its own tokens), the LM head on
  each request's last token; greedy argmax gives the first output token.
* KV handoff: after its batch, the prefill process copies each request's KV (K and V of every
  layer, ``[kv_heads, tokens, head_dim]``) into that request's region of a **shared-memory
  staging tensor** (CUDA: a CUDA-IPC tensor) and sends a small notice through a pipe; this copy
  + notice is the "link". Requests of one batch are sent one after the other (a FIFO link).
* decode: continuous batching over a **paged KV cache** of ``kv_blocks`` blocks of 16 tokens
  (one tensor ``[layers, 2, kv_heads, blocks, 16, head_dim]``): at each iteration boundary
  it takes the notices that arrived, preempts the newest running request while the running
  requests' blocks for this iteration exceed the capacity (its blocks are freed and it is sent
  back to the prefill process with its generated token ids), then, when nothing was preempted,
  admits waiting requests FCFS while ``running < max_num_seqs`` and the cache has room for the
  request's whole current context (``ceil((prompt + generated) / 16)`` blocks); admission copies
  the staged KV into the request's blocks. One iteration (:func:`decode_step`) writes every
  request's new K/V into its block, gathers each request's blocks, and runs SDPA per request
  over its own context (so a batch mixes context lengths without padding), then the LM head and
  greedy argmax.

The simulator's profile is measured with these same two functions (:func:`decode_step`,
:func:`prefill_packed`), in the same worker processes, with the same thread count, before and
after the replay (repeats pooled), each under the conditions it meets in the replay (the
prefill after an idle spell while the decode process decodes; the decode back to back while
the prefill process prefills now and then; see :mod:`sunsim.validate.engine`).

Only this module's functions import torch (never at module level).
"""

from __future__ import annotations

import math
import os
import time
import traceback
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sunsim.specs import ModelSpec

#: Tokens per KV block (vLLM's default; the simulator's ``block_size``).
BLOCK_TOKENS = 16

#: A packed prefill pads its token count to a multiple of this. On a CPU, oneDNN compiles a
#: BF16 matmul kernel for every new row count M (about 1-3 ms each, measured here with torch
#: 2.13); the workers compile every padded M of the run before it starts (see ``_warm``), so
#: no replayed batch pays for compilation. Padding to 4 keeps that warm-up short and adds 1.5
#: tokens of linear-layer work per batch on average.
PREFILL_PAD_TOKENS = 4

#: oneDNN's primitive cache must hold every warmed shape (default capacity 1024).
ONEDNN_CACHE_CAPACITY = "16384"

clock = time.perf_counter  # CLOCK_MONOTONIC on Linux: one time base for all processes


@dataclass(frozen=True)
class EngineConfig:
    """Everything the two worker processes need (picklable; no torch objects).

    Requests (trace order, sorted by arrival): ``arrival_s`` (seconds from the replay's start),
    ``prompt_tokens``, ``output_tokens``. Engine: ``kv_blocks`` (decode KV capacity in blocks
    of ``block_tokens``), ``max_num_seqs``, ``max_num_batched_tokens`` (prefill budget), ``threads``
    (torch intra-op threads per process), ``pin_cpus`` ((prefill CPU, decode CPU) or None).
    Profile grid: ``decode_batch_sizes`` x ``decode_contexts`` (context tokens attended per
    request), ``prefill_batch_sizes`` x ``prefill_prompt_tokens`` (kept when the batch holds at
    most ``max_num_batched_tokens``), each point ``warmup`` calls then ``min_repeats`` ..
    ``max_repeats`` repeats filling ``time_per_point_s`` per pass; every timed prefill follows
    ``prefill_idle_s`` seconds of sleep, as a replayed prefill follows the wait for its request
    (caches cooled, the core given to others). Link calibration: transfers of ``link_tokens``
    tokens, ``link_repeats`` each.
    """

    spec: ModelSpec
    device: str
    threads: int
    arrival_s: tuple[float, ...]
    prompt_tokens: tuple[int, ...]
    output_tokens: tuple[int, ...]
    kv_blocks: int
    max_num_seqs: int
    max_num_batched_tokens: int
    decode_batch_sizes: tuple[int, ...]
    decode_contexts: tuple[int, ...]
    prefill_batch_sizes: tuple[int, ...]
    prefill_prompt_tokens: tuple[int, ...]
    block_tokens: int = BLOCK_TOKENS
    seed: int = 0
    pin_cpus: tuple[int, int] | None = None
    warmup: int = 2
    min_repeats: int = 5
    max_repeats: int = 40
    time_per_point_s: float = 0.25
    link_tokens: tuple[int, ...] = (16, 64, 256, 1024)
    link_repeats: int = 7
    prefill_pad: int = PREFILL_PAD_TOKENS
    prefill_idle_s: float = 0.0

    @property
    def longest_prefill(self) -> int:
        """The most tokens one prefill batch can hold: the budget, or a longer lone
        request (a prompt, or a recompute of ``prompt + output - 2`` tokens)."""
        one = max(
            (p + max(o - 2, 0) for p, o in zip(self.prompt_tokens, self.output_tokens)), default=1
        )
        return max(self.max_num_batched_tokens, one, max(self.prefill_prompt_tokens))

    @property
    def max_positions(self) -> int:
        longest = max((p + o for p, o in zip(self.prompt_tokens, self.output_tokens)), default=1)
        return (
            max(
                longest,
                max(self.decode_contexts),
                max(self.prefill_prompt_tokens),
                max(self.link_tokens),
            )
            + 1
        )

    def prefill_points(self) -> list[tuple[int, int]]:
        return [
            (b, l)
            for b in self.prefill_batch_sizes
            for l in self.prefill_prompt_tokens
            if b * l <= max(self.max_num_batched_tokens, l)
        ]

    def decode_points(self) -> list[tuple[int, int]]:
        return [(b, c) for c in self.decode_contexts for b in self.decode_batch_sizes]


def rejection(cfg: EngineConfig, i: int) -> str:
    """Why request ``i`` is rejected at arrival ('' when it is not), by the simulator's rules
    (:meth:`sunsim.engine.cluster.ClusterSim._arrive`)."""
    p, o = cfg.prompt_tokens[i], cfg.output_tokens[i]
    if p + o > cfg.spec.max_model_len:
        return "exceeds_max_model_len"
    if -(-(p + o - 1) // cfg.block_tokens) > cfg.kv_blocks:
        return "exceeds_kv_capacity"
    return ""


def staging_offsets(cfg: EngineConfig) -> tuple[list[int], int]:
    """Token offset of each request's staging region and the staging length (tokens).

    A request's region holds ``round_up(prompt + output, block_tokens)`` tokens: enough for
    any recompute (``prompt + generated - 1`` tokens) and a whole number of blocks.
    """
    bt = cfg.block_tokens
    offs, at = [], 0
    for p, o in zip(cfg.prompt_tokens, cfg.output_tokens):
        offs.append(at)
        at += -(-(p + o) // bt) * bt
    return offs, max(at, -(-max(cfg.link_tokens) // bt) * bt)


# -- the two kernels: used by the replay and by the profile ------------------------------------


def rope(mod: Any, x: Any, cos: Any, sin: Any) -> Any:
    """:meth:`DecoderModule.rope` of ``mod`` (the same rotary embedding as the profile)."""
    return mod.rope(x, cos, sin)


def decode_step(
    mod: Any,
    pool: Any,
    ids: Sequence[int],
    ctxs: Sequence[int],
    tables: Sequence[Sequence[int]],
    block_tokens: int = BLOCK_TOKENS,
) -> list[int]:
    """One decode iteration of a batch whose requests have different context lengths.

    Args:
        mod: a :class:`~sunsim.profiling.modules.DecoderModule` (its weights and RoPE tables).
        pool: the paged KV cache ``[layers, 2, kv_heads, blocks, block_tokens, head_dim]``.
        ids: each request's input token (the last token it emitted).
        ctxs: each request's context tokens attended in this iteration (``prompt +
            generated``); the input token's K/V is written at position ``ctx - 1``.
        tables: each request's block ids (at least ``ceil(ctx / block_tokens)``).

    Returns:
        each request's next token (greedy argmax), a Python list (a device sync on CUDA).
    """
    import torch
    import torch.nn.functional as F

    b = len(ids)
    bt = block_tokens
    dev = mod.device
    nh, nkv, hd = mod.nh, mod.nkv, mod.hd
    pos = [c - 1 for c in ctxs]
    nbs = [-(-c // bt) for c in ctxs]
    flat: list[int] = []
    for t, nb in zip(tables, nbs):
        flat.extend(t[:nb])
    idx = torch.tensor(
        [*ids, *pos, *(t[p // bt] for t, p in zip(tables, pos)), *(p % bt for p in pos), *flat],
        dtype=torch.int64,
        device=dev,
    )
    ids_t, pos_t = idx[:b], idx[b : 2 * b]
    blk_t, off_t, flat_t = idx[2 * b : 3 * b], idx[3 * b : 4 * b], idx[4 * b :]
    x = F.embedding(ids_t, mod.embed)  # [B, H]
    cos = mod.cos[pos_t].unsqueeze(1)  # [B, 1, hd]
    sin = mod.sin[pos_t].unsqueeze(1)
    h = x.shape[-1]
    for li, layer in enumerate(mod.layers):
        y = mod.norm(x, layer["attn_norm"])
        qkv = layer["qkv"](y).view(b, nh + 2 * nkv, hd)
        q, k, v = qkv.split([nh, nkv, nkv], dim=1)
        if "q_norm" in layer:
            q = mod.norm(q, layer["q_norm"])
            k = mod.norm(k, layer["k_norm"])
        q = rope(mod, q, cos, sin)  # [B, nh, hd]
        k = rope(mod, k, cos, sin)  # [B, nkv, hd]
        kp, vp = pool[li, 0], pool[li, 1]  # [nkv, blocks, bt, hd]
        kp[:, blk_t, off_t] = k.transpose(0, 1)
        vp[:, blk_t, off_t] = v.transpose(0, 1)
        kg = kp.index_select(1, flat_t)  # [nkv, sum(nb), bt, hd]
        vg = vp.index_select(1, flat_t)
        outs = []
        s = 0
        for i in range(b):
            nb, c = nbs[i], ctxs[i]
            ki = kg[:, s : s + nb].reshape(nkv, nb * bt, hd)[:, :c].unsqueeze(0)
            vi = vg[:, s : s + nb].reshape(nkv, nb * bt, hd)[:, :c].unsqueeze(0)
            qi = q[i : i + 1].unsqueeze(2)  # [1, nh, 1, hd]
            if mod._gqa:
                oi = F.scaled_dot_product_attention(qi, ki, vi, enable_gqa=True)
            else:  # torch < 2.5
                rep = nh // nkv
                oi = F.scaled_dot_product_attention(
                    qi, ki.repeat_interleave(rep, 1), vi.repeat_interleave(rep, 1)
                )
            outs.append(oi.view(1, nh * hd))
            s += nb
        attn = torch.cat(outs, 0)
        x = x + layer["o"](attn)
        y = mod.norm(x, layer["mlp_norm"])
        gate, up = layer["gate_up"](y).chunk(2, dim=-1)
        x = x + layer["down"](F.silu(gate) * up).view(b, h)
    return mod.head(x).argmax(-1).tolist()


def prefill_packed(
    mod: Any, prompts: Sequence[Sequence[int]], pad: int = PREFILL_PAD_TOKENS
) -> tuple[list[int], Any]:
    """A packed prefill of prompts of different lengths (token ids).

    The linear layers run over the ``T = sum(lengths)`` tokens at once (padded with token 0 up
    to a multiple of ``pad``; the padding is never attended); attention runs per request
    (causal SDPA over its own tokens, positions from 0); the final norm and LM head on each
    request's last token; greedy argmax.

    Returns:
        ``(first tokens, kv)``: ``kv[layers, 2, kv_heads, T_padded, head_dim]`` holds every
        request's K (index 0, after RoPE) and V (index 1), request ``i`` at tokens
        ``sum(lengths[:i]) .. sum(lengths[:i+1])``.
    """
    import torch
    import torch.nn.functional as F

    lens = [len(p) for p in prompts]
    t = -(-sum(lens) // pad) * pad
    dev = mod.device
    nh, nkv, hd = mod.nh, mod.nkv, mod.hd
    flat: list[int] = []
    pos: list[int] = []
    for p in prompts:
        flat.extend(p)
        pos.extend(range(len(p)))
    extra = t - len(flat)
    if extra:
        flat.extend([0] * extra)
        pos.extend([0] * extra)
    idx = torch.tensor(flat + pos, dtype=torch.int64, device=dev)
    ids_t, pos_t = idx[:t], idx[t:]
    x = F.embedding(ids_t, mod.embed)  # [T, H]
    h = x.shape[-1]
    cos = mod.cos[pos_t].unsqueeze(1)  # [T, 1, hd]
    sin = mod.sin[pos_t].unsqueeze(1)
    kv = torch.empty(len(mod.layers), 2, nkv, t, hd, dtype=mod.dtype, device=dev)
    starts = [0]
    for n in lens:
        starts.append(starts[-1] + n)
    for li, layer in enumerate(mod.layers):
        y = mod.norm(x, layer["attn_norm"])
        qkv = layer["qkv"](y).view(t, nh + 2 * nkv, hd)
        q, k, v = qkv.split([nh, nkv, nkv], dim=1)
        if "q_norm" in layer:
            q = mod.norm(q, layer["q_norm"])
            k = mod.norm(k, layer["k_norm"])
        q = rope(mod, q, cos, sin).transpose(0, 1)  # [nh, T, hd]
        kv[li, 0].copy_(rope(mod, k, cos, sin).transpose(0, 1))
        kv[li, 1].copy_(v.transpose(0, 1))
        outs = []
        for i, n in enumerate(lens):
            a, e = starts[i], starts[i + 1]
            qi = q[:, a:e].unsqueeze(0)
            ki = kv[li, 0, :, a:e].unsqueeze(0)
            vi = kv[li, 1, :, a:e].unsqueeze(0)
            if mod._gqa:
                oi = F.scaled_dot_product_attention(qi, ki, vi, is_causal=True, enable_gqa=True)
            else:  # torch < 2.5
                rep = nh // nkv
                oi = F.scaled_dot_product_attention(
                    qi, ki.repeat_interleave(rep, 1), vi.repeat_interleave(rep, 1), is_causal=True
                )
            outs.append(oi[0].transpose(0, 1).reshape(n, nh * hd))
        if extra:
            outs.append(x.new_zeros(extra, nh * hd))
        attn = torch.cat(outs, 0) if len(outs) > 1 else outs[0]
        x = x + layer["o"](attn)
        y = mod.norm(x, layer["mlp_norm"])
        gate, up = layer["gate_up"](y).chunk(2, dim=-1)
        x = x + layer["down"](F.silu(gate) * up).view(t, h)
    last = torch.tensor([e - 1 for e in starts[1:]], dtype=torch.int64, device=dev)
    first = mod.head(x.index_select(0, last)).argmax(-1).tolist()
    return first, kv


def new_pool(mod: Any, num_blocks: int, block_tokens: int = BLOCK_TOKENS, fill: bool = True) -> Any:
    """A paged KV cache ``[layers, 2, kv_heads, num_blocks, block_tokens, head_dim]`` (BF16),
    filled with random values (a random block tiled, as the profiling harness does)."""
    import torch

    from sunsim.profiling.modules import KV_FILL_CHUNK, tile_fill

    pool = torch.empty(
        len(mod.layers),
        2,
        mod.nkv,
        num_blocks,
        block_tokens,
        mod.hd,
        dtype=mod.dtype,
        device=mod.device,
    )
    if fill:
        gen = torch.Generator(device=mod.device).manual_seed(7)
        chunk = torch.empty(
            min(KV_FILL_CHUNK, pool.numel()), dtype=mod.dtype, device=mod.device
        ).normal_(0.0, 1.0, generator=gen)
        tile_fill(pool, chunk)
    return pool


# -- timing ---------------------------------------------------------------------------------------


def time_calls(
    fn: Callable[[], Any],
    *,
    warmup: int,
    min_repeats: int,
    max_repeats: int,
    budget_s: float,
    idle_s: float = 0.0,
) -> tuple[list[float], list[float]]:
    """``warmup`` calls, then repeats until ``min_repeats`` are done and ``budget_s`` seconds
    of calls have passed (at most ``max_repeats``), each timed call after ``idle_s`` seconds of
    sleep. Returns (wall seconds, thread CPU seconds) per repeat. ``fn`` must return only when
    its work is done (the kernels above end with a ``.tolist()``, a device sync on CUDA)."""
    for _ in range(warmup):
        fn()
    wall: list[float] = []
    cpu: list[float] = []
    spent = 0.0
    while len(wall) < max_repeats and (len(wall) < min_repeats or spent < budget_s):
        if idle_s > 0:
            time.sleep(idle_s)
        c0 = time.thread_time()
        t0 = clock()
        fn()
        wall.append(clock() - t0)
        cpu.append(time.thread_time() - c0)
        spent += wall[-1]
    return wall, cpu


# -- the worker processes -----------------------------------------------------------------------


def _ready(conn: Any) -> Callable[[], bool]:
    """A cheap non-blocking "has ``conn`` data?" check: one ``poll(2)`` syscall on a reused
    poll object (``Connection.poll()`` builds a selector per call: about 80 us right after a
    decode step, with the interpreter's caches cold, against 10 us for this)."""
    import select

    if not hasattr(select, "poll"):  # pragma: no cover - not Linux
        return lambda: conn.poll()
    p = select.poll()
    p.register(conn.fileno(), select.POLLIN)
    return lambda: bool(p.poll(0))


@dataclass
class _Seq:
    """A request in the decode process."""

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
        return self.prompt + len(self.tokens)


def warm_shapes(mod: Any, rows: Sequence[int], head_rows: Sequence[int]) -> None:
    """Run the four linear layers of layer 0 (every layer has the same shapes) once on
    ``M`` rows for every ``M`` in ``rows``, and the LM head on ``head_rows``, so that oneDNN
    has compiled the kernels of those shapes before anything is timed."""
    import torch

    layer = mod.layers[0]
    h = mod.embed.shape[1]
    inter = layer["down"].in_features
    for m in rows:
        layer["qkv"](torch.zeros(m, h, dtype=mod.dtype, device=mod.device))
        layer["o"](torch.zeros(m, mod.nh * mod.hd, dtype=mod.dtype, device=mod.device))
        layer["gate_up"](torch.zeros(m, h, dtype=mod.dtype, device=mod.device))
        layer["down"](torch.zeros(m, inter, dtype=mod.dtype, device=mod.device))
    for m in head_rows:
        mod.head(torch.zeros(m, h, dtype=mod.dtype, device=mod.device))


def _setup_torch(cfg: EngineConfig, role: str) -> Any:
    for var in ("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "DNNL_PRIMITIVE_CACHE_CAPACITY"):
        os.environ.setdefault(var, ONEDNN_CACHE_CAPACITY)  # before torch is imported
    import torch
    import torch.multiprocessing  # noqa: F401  (registers the tensor-sharing reductions)

    torch.set_num_threads(cfg.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # pragma: no cover - already set
        pass
    if cfg.pin_cpus is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cfg.pin_cpus[0] if role == "prefill" else cfg.pin_cpus[1]})
    return torch


def _sync(torch: Any, device: Any) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def worker_main(
    role: str, cfg: EngineConfig, ctrl: Any, res: Any, kv_conn: Any, back_conn: Any
) -> None:
    """Entry point of a worker process (``role`` = ``prefill`` or ``decode``).

    Pipes: ``ctrl`` (driver -> this worker: commands), ``res`` (this worker -> driver: replies),
    ``kv_conn`` (prefill -> decode: staging tensor, KV notices, calibration), ``back_conn``
    (decode -> prefill: recompute requests, calibration acks). Commands: ``("profile", pass)``,
    ``("link",)``, ``("go", t0)``, ``("stop",)`` (prefill: end once idle), ``("busy",)``
    (work as during the replay until ``("idle",)``: decode a typical batch over and over, or
    prefill a typical prompt after every mean time between arrivals), ``("exit",)``.
    Any exception is sent to the driver as ``("error", role, traceback)``.
    """
    try:
        import faulthandler
        import signal

        if hasattr(signal, "SIGUSR1"):  # `kill -USR1 <pid>` prints the worker's stacks
            faulthandler.register(signal.SIGUSR1, all_threads=True)
        torch = _setup_torch(cfg, role)
        from sunsim.profiling.modules import DecoderModule
        from sunsim.profiling.timing import device_info

        with torch.inference_mode():
            mod = DecoderModule(
                cfg.spec,
                precision="bf16",
                device=cfg.device,
                max_positions=cfg.max_positions,
                seed=cfg.seed,
            )
            w = (_PrefillProc if role == "prefill" else _DecodeProc)(
                cfg, mod, kv_conn, back_conn, ctrl
            )
            info = device_info(cfg.device)
            info["pid"] = os.getpid()
            info["affinity"] = (
                sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
            )
            info["nice"] = (
                os.getpriority(os.PRIO_PROCESS, 0) if hasattr(os, "getpriority") else None
            )
            autogroup = "/proc/self/autogroup"
            info["autogroup"] = (
                open(autogroup, encoding="ascii").read().strip()
                if os.path.exists(autogroup)
                else None
            )
            res.send(("ready", role, info))
            while True:
                msg = ctrl.recv()
                cmd = msg[0]
                if cmd == "exit":
                    break
                if cmd == "profile":
                    res.send(("profile", role, w.profile()))
                elif cmd == "link":
                    res.send(("link", role, w.link()))
                elif cmd == "busy":  # work as during the replay until ("idle",)
                    res.send(("idle", role, w.busy()))
                elif cmd == "go":
                    res.send(("replay", role, w.replay(msg[1])))
                elif cmd == "stop":  # a stop that arrived outside the replay: nothing to do
                    continue
                else:  # pragma: no cover - driver bug
                    raise RuntimeError(f"unknown command {msg!r}")
    except BaseException:  # noqa: BLE001 - report everything to the driver
        try:
            res.send(("error", role, traceback.format_exc()))
        except Exception:  # pragma: no cover
            pass


class _PrefillProc:
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
        cfg, mod = self.cfg, self.mod
        torch = self.torch
        gen = torch.Generator().manual_seed(cfg.seed + 11)
        rows = []
        for b, l in cfg.prefill_points():
            prompts = torch.randint(0, cfg.spec.vocab_size, (b, l), generator=gen).tolist()
            wall, cpu = time_calls(
                lambda: prefill_packed(mod, prompts, cfg.prefill_pad),
                warmup=cfg.warmup,
                min_repeats=cfg.min_repeats,
                max_repeats=cfg.max_repeats,
                budget_s=cfg.time_per_point_s,
                idle_s=cfg.prefill_idle_s,
            )
            rows.append({"batch_size": b, "prompt_tokens": l, "wall": wall, "cpu": cpu})
        return rows

    def _send_kv(self, rid: int, kv: Any, start: int, n: int) -> tuple[float, float]:
        """Copy ``n`` tokens of KV (from ``kv[..., start:start+n, :]``) into request ``rid``'s
        staging region; returns (copy start, copy end) times. The caller sends the notice."""
        o = self.offsets[rid]
        t0 = clock()
        self.staging[:, :, :, o : o + n].copy_(kv[:, :, :, start : start + n])
        _sync(self.torch, self.mod.device)
        return t0, clock()

    def link(self) -> list[dict]:
        """Calibration: transfers of ``link_tokens`` tokens into the staging tensor, each
        followed by a notice; the decode process timestamps each notice on arrival and acks."""
        cfg = self.cfg
        torch = self.torch
        nmax = max(cfg.link_tokens)
        kv = torch.randn(
            len(self.mod.layers), 2, self.mod.nkv, nmax, self.mod.hd, device=self.mod.device
        ).to(self.mod.dtype)
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
        from multiprocessing.connection import wait

        cfg, mod = self.cfg, self.mod
        n = len(cfg.arrival_s)
        arr = [t0 + a for a in cfg.arrival_s]
        budget = cfg.max_num_batched_tokens
        queue: deque = deque()  # (rid, generated, generated token ids to recompute or None)
        rec: dict[int, dict] = {}
        batches: list[dict] = []
        stop = False
        back_ready, ctrl_ready = _ready(self.back_conn), _ready(self.ctrl)
        i = 0
        while True:
            now = clock()
            while i < n and arr[i] <= now:
                why = rejection(cfg, i)
                if why:
                    rec[i] = {"rejected": why}
                else:
                    queue.append((i, 0, None))
                i += 1
            while back_ready():
                m = self.back_conn.recv()  # ("recompute", rid, generated, token ids)
                queue.appendleft((m[1], m[2], m[3]))
            while ctrl_ready():
                if self.ctrl.recv()[0] == "stop":
                    stop = True
            if queue:
                self._batch(queue, budget, rec, batches)
                continue
            if stop and i >= n:
                break
            if i < n:
                left = arr[i] - clock()
                if left > 0.002:
                    wait([self.back_conn, self.ctrl], left - 0.0015)
                else:
                    while clock() < arr[i]:  # the last 2 ms: spin, for a punctual release
                        pass
            else:
                wait([self.back_conn, self.ctrl])
        return {"requests": rec, "batches": batches}

    def _batch(self, queue: deque, budget: int, rec: dict, batches: list) -> None:
        cfg = self.cfg
        batch = []
        tokens = 0
        while queue:
            rid, g, toks = queue[0]
            k = cfg.prompt_tokens[rid] + (g - 1 if g > 1 else 0)
            if batch and tokens + k > budget:
                break
            queue.popleft()
            batch.append((rid, g, toks, k))
            tokens += k
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
            if g == 0:  # a fresh request: the prefill emits its first token
                r["first_token_at"] = t_done
                if cfg.output_tokens[rid] == 1:
                    r["finished_at"] = t_done
                    s += k
                    continue
                g, last = 1, tok
            else:  # a recompute emits no token
                last = -1
            c0, c1 = self._send_kv(rid, kv, s, k)
            self.kv_conn.send(("kv", rid, g, last, c0, c1))
            r["transfers"].append((c0, c1, clock(), k))
            s += k
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


class _DecodeProc:
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
        cfg, mod = self.cfg, self.mod
        torch = self.torch
        bt = cfg.block_tokens
        pts = cfg.decode_points()
        need = max(b * -(-c // bt) for b, c in pts)
        pool = new_pool(mod, need, bt)
        gen = torch.Generator().manual_seed(cfg.seed + 12)
        rows = []
        for b, c in pts:
            nb = -(-c // bt)
            tables = [list(range(i * nb, (i + 1) * nb)) for i in range(b)]
            ids = torch.randint(0, cfg.spec.vocab_size, (b,), generator=gen).tolist()
            ctxs = [c] * b
            wall, cpu = time_calls(
                lambda: decode_step(mod, pool, ids, ctxs, tables, bt),
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
        nb = -(-ctx // bt)
        pool = new_pool(self.mod, b * nb, bt)
        tables = [list(range(i * nb, (i + 1) * nb)) for i in range(b)]
        steps = 0
        t0 = clock()
        ctrl_ready = _ready(self.ctrl)
        while not ctrl_ready():
            decode_step(self.mod, pool, [1] * b, [ctx] * b, tables, bt)
            steps += 1
        msg = self.ctrl.recv()
        if msg[0] != "idle":  # pragma: no cover - driver bug
            raise RuntimeError(f"expected 'idle' while busy, got {msg!r}")
        return {"steps": steps, "seconds": clock() - t0, "batch_size": b, "context_tokens": ctx}

    def link(self) -> list[dict]:
        out = []
        while True:
            m = self.kv_conn.recv()
            t = clock()
            if m[0] == "cal_end":
                return out
            self.back_conn.send(("ack",))
            out.append({"tokens": m[1], "received": t})

    def _admit_copy(self, s: _Seq, blocks: list) -> None:
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

    def replay(self, t0: float) -> dict:
        from multiprocessing.connection import wait

        cfg, mod = self.cfg, self.mod
        bt = cfg.block_tokens
        cap = cfg.kv_blocks
        max_seqs = cfg.max_num_seqs
        expected = sum(
            1
            for i in range(len(cfg.arrival_s))
            if not rejection(cfg, i) and cfg.output_tokens[i] > 1
        )
        free = list(range(cap - 1, -1, -1))  # a stack of free block ids
        seqs: dict[int, _Seq] = {}
        waiting: deque = deque()
        running: list[_Seq] = []
        iters: list[tuple] = []
        done = 0
        num_preempt = 0
        prev_end = None
        kv_conn = self.kv_conn
        kv_ready = _ready(kv_conn)
        prev_cpu = 0.0
        while done < expected:
            if not running and not waiting:
                wait([kv_conn])  # idle: sleep until a KV notice arrives
                prev_end = None
            while kv_ready():
                m = kv_conn.recv()  # ("kv", rid, generated, last token, copy start, copy end)
                t = clock()
                rid = m[1]
                s = seqs.get(rid)
                if s is None:
                    s = seqs[rid] = _Seq(
                        rid,
                        cfg.prompt_tokens[rid],
                        cfg.output_tokens[rid],
                        tokens=[m[3]],
                        kv_received_at=t,
                    )
                waiting.append(s)
            # growth: preempt the newest while this iteration's blocks exceed the capacity
            blocks = sum(-(-s.ctx // bt) for s in running)
            preempted = 0
            while blocks > cap:
                s = running.pop()
                blocks -= -(-s.ctx // bt)
                free.extend(s.blocks)
                s.blocks = []
                s.num_preemptions += 1
                preempted += 1
                g = len(s.tokens)
                self.back_conn.send(("recompute", s.rid, g, s.tokens[: g - 1]))
            num_preempt += preempted
            admitted = 0
            if waiting and len(running) < max_seqs and not preempted:
                while waiting and len(running) < max_seqs:
                    s = waiting[0]
                    need = -(-s.ctx // bt)
                    if blocks + need > cap:
                        break
                    waiting.popleft()
                    blocks += need
                    s.blocks = [free.pop() for _ in range(need)]
                    self._admit_copy(s, s.blocks)
                    if s.decode_started_at < 0:
                        s.decode_started_at = clock()
                    running.append(s)
                    admitted += 1
            if not running:
                continue
            for s in running:  # blocks for this iteration's new token
                while len(s.blocks) * bt < s.ctx:
                    s.blocks.append(free.pop())
            n = len(running)
            ctx_total = sum(s.ctx for s in running)
            c0 = time.thread_time()
            t_start = clock()
            nxt = decode_step(
                mod,
                self.pool,
                [s.tokens[-1] for s in running],
                [s.ctx for s in running],
                [s.blocks for s in running],
                bt,
            )
            t_end = clock()
            c1 = time.thread_time()
            cpu = c1 - c0
            keep = []
            fin = 0
            for s, tok in zip(running, nxt):
                s.tokens.append(tok)
                if len(s.tokens) >= s.output:
                    s.finished_at = t_end
                    free.extend(s.blocks)
                    s.blocks = []
                    fin += 1
                else:
                    keep.append(s)
            running = keep
            done += fin
            iters.append(
                (
                    t_start,
                    t_end - t_start,
                    cpu,
                    n,
                    ctx_total,
                    (t_start - prev_end) if prev_end is not None else math.nan,
                    (c0 - prev_cpu) if prev_end is not None else math.nan,
                    admitted,
                    preempted,
                    fin,
                    cap - len(free),
                )
            )
            prev_end = t_end
            prev_cpu = c1
        reqs = {
            s.rid: {
                "kv_received_at": s.kv_received_at,
                "decode_started_at": s.decode_started_at,
                "finished_at": s.finished_at,
                "num_preemptions": s.num_preemptions,
            }
            for s in seqs.values()
        }
        return {"requests": reqs, "iterations": iters, "num_preemptions": num_preempt}
