"""Model specs: decoder-only Transformers as in their Hugging Face ``config.json``, and the bytes
their weights take at a precision.

Sources: the ``config.json`` of meta-llama/Llama-3.1-8B and Qwen/Qwen3-8B-Base (built in);
any other dense decoder-only model from its Hugging Face ``config.json``
(:mod:`sunsim.specs.hf_config`: a path, a bundled config or an aiconfigurator-core one).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sunsim.errors import ConfigError
from sunsim.specs import hf_config
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
    """The model spec called ``name``: a built-in one (:data:`MODELS`), a path to a Hugging
    Face ``config.json`` (or a directory holding one), or a model name with a bundled config
    (``meta-llama/Llama-3.1-70B``, ``llama-3.1-70b``, ``Qwen/Qwen3-32B``, ...) or, when
    aiconfigurator-core is installed, one of its ``model_configs``. Names whose config
    matches a built-in model (``meta-llama/Llama-3.1-8B``) give the built-in spec.

    Raises :class:`ConfigError` (one line): an unknown name (listing the known ones), an
    unreadable config, or a config that is not a dense decoder-only model (naming the key).
    """
    key = name.lower()
    if key in MODELS:
        return MODELS[key]
    path = hf_config.find_config(name)
    if path is None and name.endswith(".json"):
        raise ConfigError(f"{name}: no such config.json file")
    if path is None:
        known = sorted(set(MODELS) | set(hf_config.known_configs(bundled_only=True)))
        raise ConfigError(
            f"unknown model '{name}'; use a built-in or bundled name ({', '.join(known)}), "
            "a model of aiconfigurator-core's model_configs, or the path of a Hugging Face "
            "config.json"
        )
    return model_from_config(path)


def model_from_config(path: str | Path) -> ModelSpec:
    """The :class:`ModelSpec` of the dense decoder-only model in ``config.json`` at ``path``;
    named by :func:`hf_config.slug` of the file (or of its directory for ``config.json``).
    A name that is built in returns the built-in spec when the shapes agree. ConfigError
    (one line naming the file and key) otherwise (see :func:`hf_config.check_dense`)."""
    p = Path(path)
    fields = hf_config.spec_fields(hf_config.read_config(p), p)
    label = p.parent.name if p.name == "config.json" else p.name
    spec = ModelSpec(name=hf_config.slug(label), **fields)
    known = MODELS.get(spec.name)
    if known is not None:
        same = all(
            getattr(known, f) == getattr(spec, f)
            for f in ("hidden_size", "intermediate_size", "num_layers", "num_heads")
            + ("num_kv_heads", "head_dim", "vocab_size", "tie_embeddings", "qk_norm")
        )
        if not same:
            raise ConfigError(
                f"{p}: its shapes differ from sunsim's built-in '{spec.name}'; rename the "
                "file or its directory"
            )
        return known
    return spec
