"""The prefill and decode modules of a decoder-only Transformer, in plain torch.

Built from a :class:`~sunsim.config.ModelSpec` (the fields of a Hugging Face ``config.json``)
with random weights (timing does not depend on weight values): token embedding, per layer
RMSNorm -> fused QKV projection -> (Qwen3: q/k RMSNorm) -> rotary position embedding (RoPE,
rotate-half form) -> grouped-query attention through
``torch.nn.functional.scaled_dot_product_attention`` (``enable_gqa=True``) with a KV cache ->
output projection -> RMSNorm -> SwiGLU MLP (fused gate/up, SiLU, down); final RMSNorm and
the LM head (computed only for each request's last token, as serving engines do).

The linear layers q/k/v/o/gate/up/down are :class:`~sunsim.profiling.quant.Linear` at the
module's precision (BF16, W8A16 or W4A16 with real packed kernels); embedding, norms and LM
head stay BF16 (as AWQ/GPTQ checkpoints keep them). Only ``layers_run`` of the model's
``num_layers`` layers are built; the harness scales (see :mod:`sunsim.profiling.harness`).

Shapes: prefill takes token ids ``[B, L]`` (B requests of L tokens each) and writes each
layer's K/V into ``kv[layer] = (k[B, kv_heads, L, head_dim], v[...])``; decode takes ids
``[B]`` at position ``pos`` (every request has ``pos`` cached tokens) and a KV cache
``kv[layer] = (k[B, kv_heads, >= pos + 1, head_dim], v[...])``, writes the new token's K/V at
``pos`` and attends over ``pos + 1`` tokens. Both return logits ``[B, vocab]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sunsim.errors import ProfileError
from sunsim.profiling._torch import require_torch
from sunsim.profiling.quant import Linear
from sunsim.specs import ModelSpec, get_precision

RMS_EPS = 1e-5
ROPE_THETA = 500000.0  # Llama 3 (config.json rope_theta); the value does not change timing
INIT_STD = 0.02
KV_FILL_CHUNK = 1_000_003  # elements (prime, so the tiling does not align with head_dim)


def tile_fill(t: Any, chunk: Any) -> None:
    """Fill contiguous ``t`` by repeating ``chunk`` (1-D, same dtype/device)."""
    flat = t.view(-1)
    n, m = flat.numel(), chunk.numel()
    reps = n // m
    if reps:
        flat[: reps * m].view(reps, m).copy_(chunk.expand(reps, m))
    rest = n - reps * m
    if rest:
        flat[reps * m :].copy_(chunk[:rest])


def _sdpa_supports_gqa(torch: Any) -> bool:
    major, minor = (int(x) for x in torch.__version__.split(".")[:2])
    return (major, minor) >= (2, 5)


class DecoderModule:
    """A decoder stack of ``layers_run`` layers of ``spec`` at ``precision`` on ``device``.

    Args:
        spec: the architecture.
        layers_run: how many layers to build (1..spec.num_layers).
        precision: ``bf16``, ``w8a16`` or ``w4a16`` for the layers' linear weights.
        device: ``"cpu"`` or ``"cuda"`` (or ``"cuda:N"``).
        max_positions: the longest position the RoPE table must cover (tokens).
        seed: seeds the torch generator that draws the random weights.

    Raises:
        ProfileError: bad ``layers_run``, a quantised kernel that is missing on the device.
    """

    def __init__(
        self,
        spec: ModelSpec,
        *,
        layers_run: int | None = None,
        precision: str = "bf16",
        device: str = "cpu",
        max_positions: int = 8192,
        seed: int = 0,
    ) -> None:
        torch = require_torch()
        self.spec = spec
        self.precision = get_precision(precision).name
        n = spec.num_layers if layers_run is None else int(layers_run)
        if not 1 <= n <= spec.num_layers:
            raise ProfileError(
                f"layers to run must be in 1..{spec.num_layers} for {spec.name}, got {layers_run}"
            )
        self.layers_run = n
        self.device = torch.device(device)
        self.dtype = torch.bfloat16
        gen = torch.Generator(device=self.device).manual_seed(seed)
        h, hd = spec.hidden_size, spec.head_dim
        self.nh, self.nkv, self.hd = spec.num_heads, spec.num_kv_heads, hd
        self._gqa = _sdpa_supports_gqa(torch)

        def rand(*shape: int, std: float = INIT_STD) -> Any:
            t = torch.empty(shape, dtype=self.dtype, device=self.device)
            return t.normal_(0.0, std, generator=gen)

        def ones(*shape: int) -> Any:
            return torch.ones(shape, dtype=self.dtype, device=self.device)

        self.embed = rand(spec.vocab_size, h, std=1.0)
        self.lm_head = self.embed if spec.tie_embeddings else rand(spec.vocab_size, h)
        self.final_norm = ones(h)
        self.layers: list[dict[str, Any]] = []
        qkv_out = (self.nh + 2 * self.nkv) * hd
        for _ in range(n):
            layer = {
                "attn_norm": ones(h),
                "mlp_norm": ones(h),
                "qkv": Linear(rand(qkv_out, h), self.precision),
                "o": Linear(rand(h, self.nh * hd), self.precision),
                "gate_up": Linear(rand(2 * spec.intermediate_size, h), self.precision),
                "down": Linear(rand(h, spec.intermediate_size), self.precision),
            }
            if spec.qk_norm:
                layer["q_norm"] = ones(hd)
                layer["k_norm"] = ones(hd)
            self.layers.append(layer)
        self.kernel = self.layers[0]["qkv"].kernel
        # RoPE tables [max_positions, head_dim] (rotate-half layout, as HF Llama).
        inv = 1.0 / (
            ROPE_THETA ** (torch.arange(0, hd, 2, device=self.device, dtype=torch.float32) / hd)
        )
        pos = torch.arange(max_positions + 1, device=self.device, dtype=torch.float32)
        freqs = torch.outer(pos, inv)
        emb = torch.cat([freqs, freqs], dim=-1)
        self.cos = emb.cos().to(self.dtype)
        self.sin = emb.sin().to(self.dtype)
        self.max_positions = max_positions

    # -- pieces --------------------------------------------------------------------------------
    def norm(self, x: Any, w: Any) -> Any:
        """RMSNorm of ``x[..., H]`` with weight ``w[H]`` (eps as Llama-3.1's config)."""
        import torch.nn.functional as F

        return F.rms_norm(x, (x.shape[-1],), w, RMS_EPS)

    @staticmethod
    def _rotate_half(x: Any) -> Any:
        import torch

        half = x.shape[-1] // 2
        return torch.cat([-x[..., half:], x[..., :half]], dim=-1)

    def rope(self, x: Any, cos: Any, sin: Any) -> Any:
        """Rotary embedding of ``x[B, heads, S, head_dim]`` with tables ``cos``/``sin``
        ``[S, head_dim]`` (rotate-half layout, as HF Llama)."""
        return x * cos + self._rotate_half(x) * sin

    def attention(self, q: Any, k: Any, v: Any, causal: bool) -> Any:
        """Grouped-query SDPA on ``q[B, heads, S, head_dim]`` and ``k, v[B, kv_heads, T,
        head_dim]``: ``enable_gqa`` on torch >= 2.5, the KV heads repeated before."""
        import torch.nn.functional as F

        if self._gqa:
            return F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=True)
        rep = self.nh // self.nkv  # torch < 2.5: expand the KV heads explicitly
        return F.scaled_dot_product_attention(
            q, k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1), is_causal=causal
        )

    def _layer(
        self,
        layer: dict[str, Any],
        x: Any,
        cos: Any,
        sin: Any,
        kv: tuple[Any, Any],
        pos: int | None,
    ) -> Any:
        """One layer on hidden states ``x[B, S, H]``; prefill when ``pos`` is None (S tokens
        from position 0, causal), else decode of S == 1 token at position ``pos``."""
        import torch.nn.functional as F

        b, s, h = x.shape
        nh, nkv, hd = self.nh, self.nkv, self.hd
        y = self.norm(x, layer["attn_norm"]).reshape(b * s, h)
        qkv = layer["qkv"](y).view(b, s, nh + 2 * nkv, hd)
        q, k, v = qkv.split([nh, nkv, nkv], dim=2)
        if "q_norm" in layer:
            q = self.norm(q, layer["q_norm"])
            k = self.norm(k, layer["k_norm"])
        q = self.rope(q.transpose(1, 2), cos, sin)  # [B, nh, S, hd]
        k = self.rope(k.transpose(1, 2), cos, sin)  # [B, nkv, S, hd]
        v = v.transpose(1, 2)
        k_cache, v_cache = kv
        if pos is None:
            k_cache.copy_(k)  # the prefill writes its KV cache (sent to the decode worker)
            v_cache.copy_(v)
            attn = self.attention(q, k, v, causal=True)
        else:
            k_cache[:, :, pos] = k[:, :, 0]
            v_cache[:, :, pos] = v[:, :, 0]
            attn = self.attention(
                q, k_cache[:, :, : pos + 1], v_cache[:, :, : pos + 1], causal=False
            )
        o = attn.transpose(1, 2).reshape(b * s, nh * hd)
        x = x + layer["o"](o).view(b, s, h)
        y = self.norm(x, layer["mlp_norm"]).reshape(b * s, h)
        gate, up = layer["gate_up"](y).chunk(2, dim=-1)
        return x + layer["down"](F.silu(gate) * up).view(b, s, h)

    def head(self, last: Any) -> Any:
        """Final RMSNorm and LM head on the last hidden state of each request ``[B, H]``."""
        import torch.nn.functional as F

        return F.linear(self.norm(last, self.final_norm), self.lm_head)

    # -- the two modules ---------------------------------------------------------------------
    def prefill(self, ids: Any, kv: Sequence[tuple[Any, Any]]) -> Any:
        """Prefill ``ids[B, L]`` from position 0, writing every layer's KV into ``kv``;
        returns the first output token's logits ``[B, vocab]``."""
        import torch.nn.functional as F

        return self.head(self.prefill_layers(F.embedding(ids, self.embed), kv)[:, -1])

    def prefill_layers(self, x: Any, kv: Sequence[tuple[Any, Any]]) -> Any:
        """The layers of :meth:`prefill` alone, on embedded tokens ``x[B, L, H]``; returns the
        hidden states ``[B, L, H]`` (timed to scale k-layer runs)."""
        s = x.shape[1]
        if s > self.max_positions:
            raise ProfileError(
                f"prompt of {s} tokens exceeds the RoPE table ({self.max_positions})"
            )
        cos, sin = self.cos[:s], self.sin[:s]
        for layer, c in zip(self.layers, kv):
            x = self._layer(layer, x, cos, sin, c, None)
        return x

    def prefill_base(self, ids: Any) -> Any:
        """What :meth:`prefill` does outside the layers: embedding of all tokens, final norm
        and LM head of the last ones (timed to scale k-layer runs)."""
        import torch.nn.functional as F

        x = F.embedding(ids, self.embed)
        return self.head(x[:, -1])

    def decode_step(self, ids: Any, kv: Sequence[tuple[Any, Any]], pos: int) -> Any:
        """One decode iteration for ``ids[B]``, each request with ``pos`` cached tokens."""
        import torch.nn.functional as F

        x = F.embedding(ids, self.embed).unsqueeze(1)  # [B, 1, H]
        return self.head(self.decode_layers(x, kv, pos)[:, 0])

    def decode_layers(self, x: Any, kv: Sequence[tuple[Any, Any]], pos: int) -> Any:
        """The layers of :meth:`decode_step` alone, on embedded tokens ``x[B, 1, H]`` at
        position ``pos``; returns the hidden states ``[B, 1, H]`` (timed to scale k-layer
        runs)."""
        if pos >= self.max_positions:
            raise ProfileError(f"position {pos} exceeds the RoPE table ({self.max_positions})")
        cos, sin = self.cos[pos : pos + 1], self.sin[pos : pos + 1]
        for layer, c in zip(self.layers, kv):
            x = self._layer(layer, x, cos, sin, c, pos)
        return x

    def decode_base(self, ids: Any) -> Any:
        """What :meth:`decode_step` does outside the layers: embedding, final norm, LM head."""
        import torch.nn.functional as F

        return self.head(F.embedding(ids, self.embed))

    # -- helpers --------------------------------------------------------------------------------
    def new_kv(
        self, batch_size: int, tokens: int, *, random: bool = True, seed: int = 1
    ) -> list[tuple[Any, Any]]:
        """A KV cache ``[(k, v)] * layers_run`` of ``[B, kv_heads, tokens, head_dim]`` BF16,
        filled with random values (a random block of about 1e6 values, tiled; never zeros)
        unless ``random`` is False."""
        torch = require_torch()
        gen = torch.Generator(device=self.device).manual_seed(seed)
        chunk = None
        if random:  # a random block tiled over the cache: as good as random for timing, and
            # far faster than drawing every value (normal_ runs at ~0.1 GB/s on one CPU core)
            chunk = torch.empty(KV_FILL_CHUNK, dtype=self.dtype, device=self.device)
            chunk.normal_(0.0, 1.0, generator=gen)
        out = []
        for _ in range(self.layers_run):
            pair = []
            for _ in range(2):
                t = torch.empty(
                    batch_size, self.nkv, tokens, self.hd, dtype=self.dtype, device=self.device
                )
                if chunk is not None:
                    tile_fill(t, chunk)
                pair.append(t)
            out.append((pair[0], pair[1]))
        return out

    def random_ids(self, *shape: int, seed: int = 2) -> Any:
        """Random token ids of ``shape`` (int64) on the module's device."""
        torch = require_torch()
        gen = torch.Generator(device=self.device).manual_seed(seed)
        return torch.randint(0, self.spec.vocab_size, shape, generator=gen, device=self.device)

    @property
    def weight_nbytes(self) -> int:
        """Bytes of the weights built (layers run, embedding, norms, LM head)."""
        n = sum(l[k].nbytes for l in self.layers for k in ("qkv", "o", "gate_up", "down"))
        n += sum(2 * l[k].numel() for l in self.layers for k in l if k.endswith("norm"))
        n += 2 * self.embed.numel() + 2 * self.final_norm.numel()
        if self.lm_head is not self.embed:
            n += 2 * self.lm_head.numel()
        return n
