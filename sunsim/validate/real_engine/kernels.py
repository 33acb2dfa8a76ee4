"""The real engine's two kernels, used by the replay and by the engine's own profile.

Both run the layers of a :class:`~sunsim.profiling.modules.DecoderModule` (its weights, RoPE
tables, :meth:`~DecoderModule.norm`, :meth:`~DecoderModule.rope`, :meth:`~DecoderModule.head`,
its attention): what differs from the harness's module is only the data layout -- the
decode step reads and writes a **paged KV cache** (scatter of each request's new K/V into its
block, gather of its blocks, attention per request over its own context), and the prefill is
**packed** (the linear layers over all tokens of the batch, attention per request).

Shapes: the paged cache is ``[layers, 2, kv_heads, blocks, block_tokens, head_dim]`` (BF16);
a prefill's KV is ``[layers, 2, kv_heads, tokens, head_dim]``. Torch is imported inside the
functions only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sunsim.engine.scheduler import blocks_for
from sunsim.validate.real_engine.config import BLOCK_TOKENS, PREFILL_PAD_TOKENS


def _qkv(mod: Any, layer: dict, x: Any, rows: int, cos: Any, sin: Any) -> tuple[Any, Any, Any]:
    """Attention norm, fused QKV projection, (Qwen3) q/k norm and RoPE of ``x[rows, H]``:
    ``q[rows, nh, hd]``, ``k[rows, nkv, hd]`` (both rotated), ``v[rows, nkv, hd]``."""
    nh, nkv, hd = mod.nh, mod.nkv, mod.hd
    qkv = layer["qkv"](mod.norm(x, layer["attn_norm"])).view(rows, nh + 2 * nkv, hd)
    q, k, v = qkv.split([nh, nkv, nkv], dim=1)
    if "q_norm" in layer:
        q = mod.norm(q, layer["q_norm"])
        k = mod.norm(k, layer["k_norm"])
    return mod.rope(q, cos, sin), mod.rope(k, cos, sin), v


def _finish_layer(mod: Any, layer: dict, x: Any, attn: Any) -> Any:
    """Output projection + residual, then MLP norm, SwiGLU MLP + residual (as
    ``DecoderModule``'s layer), on ``x[rows, H]`` and ``attn[rows, nh * hd]``."""
    import torch.nn.functional as F

    x = x + layer["o"](attn)
    gate, up = layer["gate_up"](mod.norm(x, layer["mlp_norm"])).chunk(2, dim=-1)
    return x + layer["down"](F.silu(gate) * up).view(x.shape)


def _decode_index(
    ids: Sequence[int],
    ctxs: Sequence[int],
    tables: Sequence[Sequence[int]],
    bt: int,
    device: Any,
) -> tuple[Any, ...]:
    """One int64 tensor holding, per request, the input token, its position, the block and
    offset its new K/V goes to, and (flat) the blocks to gather; returned as views."""
    import torch

    b = len(ids)
    pos = [c - 1 for c in ctxs]
    flat: list[int] = []
    for t, c in zip(tables, ctxs):
        flat.extend(t[: blocks_for(c, bt)])
    idx = torch.tensor(
        [*ids, *pos, *(t[p // bt] for t, p in zip(tables, pos)), *(p % bt for p in pos), *flat],
        dtype=torch.int64,
        device=device,
    )
    return idx[:b], idx[b : 2 * b], idx[2 * b : 3 * b], idx[3 * b : 4 * b], idx[4 * b :]


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

    b, bt = len(ids), block_tokens
    nh, nkv, hd = mod.nh, mod.nkv, mod.hd
    nbs = [blocks_for(c, bt) for c in ctxs]
    ids_t, pos_t, blk_t, off_t, flat_t = _decode_index(ids, ctxs, tables, bt, mod.device)
    x = F.embedding(ids_t, mod.embed)  # [B, H]
    cos = mod.cos[pos_t].unsqueeze(1)  # [B, 1, hd]
    sin = mod.sin[pos_t].unsqueeze(1)
    for li, layer in enumerate(mod.layers):
        q, k, v = _qkv(mod, layer, x, b, cos, sin)  # [B, nh | nkv, hd]
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
            oi = mod.attention(q[i : i + 1].unsqueeze(2), ki, vi, causal=False)
            outs.append(oi.view(1, nh * hd))
            s += nb
        x = _finish_layer(mod, layer, x, torch.cat(outs, 0))
    return mod.head(x).argmax(-1).tolist()


def _packed_ids(prompts: Sequence[Sequence[int]], t: int, device: Any) -> tuple[Any, Any]:
    """Token ids and positions ``[t]`` of the packed prompts, padded with token 0 at
    position 0."""
    import torch

    flat: list[int] = []
    pos: list[int] = []
    for p in prompts:
        flat.extend(p)
        pos.extend(range(len(p)))
    extra = t - len(flat)
    flat.extend([0] * extra)
    pos.extend([0] * extra)
    idx = torch.tensor(flat + pos, dtype=torch.int64, device=device)
    return idx[:t], idx[t:]


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
    extra = t - sum(lens)
    nh, nkv, hd = mod.nh, mod.nkv, mod.hd
    ids_t, pos_t = _packed_ids(prompts, t, mod.device)
    x = F.embedding(ids_t, mod.embed)  # [T, H]
    cos = mod.cos[pos_t].unsqueeze(1)  # [T, 1, hd]
    sin = mod.sin[pos_t].unsqueeze(1)
    kv = torch.empty(len(mod.layers), 2, nkv, t, hd, dtype=mod.dtype, device=mod.device)
    starts = [0]
    for n in lens:
        starts.append(starts[-1] + n)
    for li, layer in enumerate(mod.layers):
        q, k, v = _qkv(mod, layer, x, t, cos, sin)
        q = q.transpose(0, 1)  # [nh, T, hd]
        kv[li, 0].copy_(k.transpose(0, 1))
        kv[li, 1].copy_(v.transpose(0, 1))
        outs = []
        for i, n in enumerate(lens):
            a, e = starts[i], starts[i + 1]
            qi = q[:, a:e].unsqueeze(0)
            ki = kv[li, 0, :, a:e].unsqueeze(0)
            vi = kv[li, 1, :, a:e].unsqueeze(0)
            oi = mod.attention(qi, ki, vi, causal=True)
            outs.append(oi[0].transpose(0, 1).reshape(n, nh * hd))
        if extra:
            outs.append(x.new_zeros(extra, nh * hd))
        x = _finish_layer(mod, layer, x, torch.cat(outs, 0) if len(outs) > 1 else outs[0])
    last = torch.tensor([e - 1 for e in starts[1:]], dtype=torch.int64, device=mod.device)
    first = mod.head(x.index_select(0, last)).argmax(-1).tolist()
    return first, kv


def new_pool(mod: Any, num_blocks: int, block_tokens: int = BLOCK_TOKENS, fill: bool = True) -> Any:
    """A paged KV cache ``[layers, 2, kv_heads, num_blocks, block_tokens, head_dim]`` (BF16),
    filled with random values (a random block tiled, as the profiling harness does)."""
    import torch

    from sunsim.profiling.modules import KV_FILL_CHUNK, tile_fill

    shape = (len(mod.layers), 2, mod.nkv, num_blocks, block_tokens, mod.hd)
    pool = torch.empty(shape, dtype=mod.dtype, device=mod.device)
    if fill:
        gen = torch.Generator(device=mod.device).manual_seed(7)
        chunk = torch.empty(
            min(KV_FILL_CHUNK, pool.numel()), dtype=mod.dtype, device=mod.device
        ).normal_(0.0, 1.0, generator=gen)
        tile_fill(pool, chunk)
    return pool


def warm_shapes(mod: Any, rows: Sequence[int], head_rows: Sequence[int]) -> None:
    """Run the four linear layers of layer 0 (every layer has the same shapes) once on
    ``M`` rows for every ``M`` in ``rows``, and the LM head on ``head_rows``, so that oneDNN
    has compiled the kernels of those shapes before anything is timed."""
    import torch

    layer = mod.layers[0]
    h = mod.embed.shape[1]
    inter = layer["down"].in_features

    def zeros(m: int, n: int) -> Any:
        return torch.zeros(m, n, dtype=mod.dtype, device=mod.device)

    for m in rows:
        layer["qkv"](zeros(m, h))
        layer["o"](zeros(m, mod.nh * mod.hd))
        layer["gate_up"](zeros(m, h))
        layer["down"](zeros(m, inter))
    for m in head_rows:
        mod.head(zeros(m, h))
