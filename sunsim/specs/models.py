"""Model specs: decoder-only Transformers as in their Hugging Face ``config.json``, and the bytes
their weights take at a precision.

Sources: the ``config.json`` of meta-llama/Llama-3.1-8B and Qwen/Qwen3-8B-Base.
"""

from __future__ import annotations

from dataclasses import dataclass

from sunsim.errors import ConfigError
from sunsim.specs.precisions import get_precision


@dataclass(frozen=True)
class ModelSpec:
    """A decoder-only Transformer, as in its Hugging Face ``config.json``.

    Fields keep the config.json meaning: ``hidden_size``, ``intermediate_size`` (SwiGLU MLP),
    ``num_layers`` (num_hidden_layers), ``num_heads`` (num_attention_heads), ``num_kv_heads``
    (num_key_value_heads, grouped-query attention), ``head_dim``, ``vocab_size``,
    ``max_model_len`` (max_position_embeddings, tokens), ``tie_embeddings``, ``qk_norm``
    (Qwen3's RMSNorm on q and k).
    """

    name: str
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int
    max_model_len: int = 131072
    tie_embeddings: bool = False
    qk_norm: bool = False

    @property
    def layer_linear_params(self) -> int:
        """Weights of one layer's linear projections (q, k, v, o, gate, up, down)."""
        h, i = self.hidden_size, self.intermediate_size
        q = h * self.num_heads * self.head_dim
        kv = 2 * h * self.num_kv_heads * self.head_dim
        o = self.num_heads * self.head_dim * h
        mlp = 3 * h * i
        return q + kv + o + mlp

    @property
    def layer_norm_params(self) -> int:
        """RMSNorm weights of one layer (two norms, plus q/k norms when ``qk_norm``)."""
        n = 2 * self.hidden_size
        if self.qk_norm:
            n += 2 * self.head_dim
        return n

    @property
    def embedding_params(self) -> int:
        return self.vocab_size * self.hidden_size

    @property
    def lm_head_params(self) -> int:
        return 0 if self.tie_embeddings else self.vocab_size * self.hidden_size

    @property
    def num_params(self) -> int:
        """All parameters (Llama-3.1-8B: 8.03e9)."""
        return (
            self.num_layers * (self.layer_linear_params + self.layer_norm_params)
            + self.embedding_params
            + self.lm_head_params
            + self.hidden_size
        )

    def kv_bytes_per_token(self, bytes_per_element: int = 2) -> int:
        """KV-cache bytes per token: 2 (K and V) x layers x kv_heads x head_dim x bytes.

        Llama-3.1-8B in BF16: 2 x 32 x 8 x 128 x 2 = 131072 bytes (128 KiB).
        """
        return 2 * self.num_layers * self.num_kv_heads * self.head_dim * bytes_per_element


#: Built-in model specs (Hugging Face config.json of each).
MODELS: dict[str, ModelSpec] = {
    "llama-3.1-8b": ModelSpec(
        name="llama-3.1-8b",
        hidden_size=4096,
        intermediate_size=14336,
        num_layers=32,
        num_heads=32,
        num_kv_heads=8,
        head_dim=128,
        vocab_size=128256,
        max_model_len=131072,
    ),
    "qwen3-8b": ModelSpec(
        name="qwen3-8b",
        hidden_size=4096,
        intermediate_size=12288,
        num_layers=36,
        num_heads=32,
        num_kv_heads=8,
        head_dim=128,
        vocab_size=151936,
        max_model_len=32768,
        qk_norm=True,
    ),
    # A small spec of the same shape family, for CPU profiles and quick tests.
    "tiny-llama": ModelSpec(
        name="tiny-llama",
        hidden_size=512,
        intermediate_size=1536,
        num_layers=4,
        num_heads=8,
        num_kv_heads=2,
        head_dim=64,
        vocab_size=32000,
        max_model_len=8192,
    ),
}


def weight_bytes(model: ModelSpec, precision: str = "bf16") -> int:
    """Bytes of one module's weights in GPU memory (linear layers at ``precision``; norms,
    embedding and LM head in BF16). Llama-3.1-8B BF16: 16.06e9 bytes."""
    p = get_precision(precision)
    linear = model.num_layers * model.layer_linear_params * p.linear_bytes_per_weight
    other = (
        model.num_layers * model.layer_norm_params
        + model.embedding_params
        + model.lm_head_params
        + model.hidden_size
    ) * 2
    return int(linear + other)


def get_model(name: str) -> ModelSpec:
    """Look up a built-in model spec; raises :class:`ConfigError` naming the known ones."""
    key = name.lower()
    if key not in MODELS:
        raise ConfigError(f"unknown model '{name}'; known models: {', '.join(MODELS)}")
    return MODELS[key]
