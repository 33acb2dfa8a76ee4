"""Model specs from Hugging Face ``config.json`` files: a path, a bundled config, or one of
aiconfigurator-core's ``model_configs`` when that package is installed.

Only dense decoder-only Transformers with a SwiGLU MLP and full (unwindowed) causal
grouped-query attention are accepted (Llama, Qwen2/Qwen3, Mistral-without-window shapes):
that is what :class:`~sunsim.specs.models.ModelSpec` describes and what the roofline and
the kernel-database importer compose. Anything else is refused with one line naming the
file and the key (:func:`check_dense`).

Bundled configs (``sunsim/data/model_configs/``, see its README.md): Meta's
``meta-llama/Llama-3.1-8B`` and ``-70B`` and Qwen's ``Qwen/Qwen3-8B`` and ``Qwen3-32B``
``config.json``, as shipped in aiconfigurator-core 0.12.0's ``model_configs``.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import re
from pathlib import Path
from typing import Any

from sunsim.errors import ConfigError

#: config.json keys that mark a mixture-of-experts model (value > 0 or not null).
MOE_KEYS = (
    "num_experts",
    "num_local_experts",
    "n_routed_experts",
    "moe_intermediate_size",
    "num_experts_per_tok",
)
#: keys of multi-head latent attention (DeepSeek-V2/V3, Kimi).
MLA_KEYS = ("kv_lora_rank", "q_lora_rank")
#: model_type values whose q and k get an RMSNorm per head (vLLM's Qwen3 decoder layer).
QK_NORM_TYPES = ("qwen3",)
_REQUIRED = (
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "vocab_size",
)


def bundled_dir() -> Path:
    """``sunsim/data/model_configs`` (``<org>--<Model>.json``)."""
    return Path(__file__).resolve().parent.parent / "data" / "model_configs"


def slug(name: str) -> str:
    """A config's sunsim model name: ``meta-llama/Llama-3.1-70B``,
    ``meta-llama--Meta-Llama-3.1-70B_config.json`` -> ``llama-3.1-70b``;
    ``Qwen/Qwen3-32B`` -> ``qwen3-32b``."""
    s = Path(name).name if name.endswith(".json") else name
    s = re.sub(r"(_config)?\.json$", "", s)
    s = s.replace("--", "/").split("/")[-1].lower()
    return s[len("meta-") :] if s.startswith("meta-llama") else s


def _aic_dir() -> Path | None:
    spec = importlib.util.find_spec("aiconfigurator_core")
    if spec is None or not spec.submodule_search_locations:
        return None
    d = Path(list(spec.submodule_search_locations)[0]) / "model_configs"
    return d if d.is_dir() else None


@functools.lru_cache(maxsize=1)
def _candidates() -> dict[str, Path]:
    """Model name -> config file: aiconfigurator-core's (when installed), then the bundled
    ones (which win for the same name). Listed once per process (package data)."""
    out: dict[str, Path] = {}
    aic = _aic_dir()
    if aic is not None:
        for p in sorted(aic.glob("*_config.json")):
            if not p.name.endswith("_hf_quant_config.json"):
                out[slug(p.name)] = p
    for p in sorted(bundled_dir().glob("*.json")):
        out[slug(p.name)] = p
    return out


def find_config(name: str) -> Path | None:
    """The config.json for ``name``: an existing file (or a directory holding
    ``config.json``), else a bundled or aiconfigurator-core config of that model name
    (:func:`slug`); None when there is none."""
    p = Path(name).expanduser()
    if p.is_dir() and (p / "config.json").is_file():
        return p / "config.json"
    if p.is_file():
        return p
    return _candidates().get(slug(name))


def known_configs(bundled_only: bool = False) -> list[str]:
    """Model names with a config sunsim can find (bundled, plus aiconfigurator-core's unless
    ``bundled_only``; dense or not)."""
    if bundled_only:
        return sorted(slug(p.name) for p in bundled_dir().glob("*.json"))
    return sorted(_candidates())


def read_config(path: Path) -> dict[str, Any]:
    """The parsed config.json; ConfigError (one line) when unreadable or not an object."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(f"{path}: cannot read a config.json ({e})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a config.json must be a JSON object")
    return raw


def _set(v: object) -> bool:
    return v is not None and v is not False and v != 0 and v != [] and v != {}


def check_dense(cfg: dict[str, Any], path: Path) -> None:
    """Raise ConfigError (one line naming ``path`` and the key) unless ``cfg`` is a dense
    decoder-only causal LM with SwiGLU and full grouped-query attention."""
    where = f"{path}: not a dense decoder-only model sunsim can simulate"
    if "text_config" in cfg:
        raise ConfigError(f"{where} (key 'text_config': a multimodal wrapper)")
    for key in MOE_KEYS:
        if _set(cfg.get(key)):
            raise ConfigError(f"{where} (key '{key}' = {cfg[key]!r}: mixture of experts)")
    for key in MLA_KEYS:
        if _set(cfg.get(key)):
            raise ConfigError(f"{where} (key '{key}': multi-head latent attention)")
    arch = cfg.get("architectures") or []
    if not arch or not all(str(a).endswith("ForCausalLM") for a in arch):
        raise ConfigError(f"{where} (key 'architectures' = {arch!r}: not a *ForCausalLM)")
    if cfg.get("is_decoder") is False or cfg.get("is_causal") is False:
        raise ConfigError(f"{where} (key 'is_causal'/'is_decoder' false: not causal)")
    if cfg.get("use_sliding_window") or (
        _set(cfg.get("sliding_window")) and cfg.get("use_sliding_window", True) is not False
    ):
        raise ConfigError(f"{where} (key 'sliding_window': windowed attention)")
    if _set(cfg.get("layer_types")) and len(set(cfg["layer_types"])) > 1:
        raise ConfigError(f"{where} (key 'layer_types': layers of different kinds)")
    act = cfg.get("hidden_act", "silu")
    if act != "silu":
        raise ConfigError(f"{where} (key 'hidden_act' = {act!r}: sunsim models SwiGLU, silu)")
    for key in _REQUIRED:
        if not isinstance(cfg.get(key), int) or cfg[key] <= 0:
            raise ConfigError(f"{path}: key '{key}' missing or not a positive integer")


def spec_fields(cfg: dict[str, Any], path: Path) -> dict[str, Any]:
    """:class:`ModelSpec` keyword arguments (without ``name``) of a dense config."""
    check_dense(cfg, path)
    heads = int(cfg["num_attention_heads"])
    kv = int(cfg.get("num_key_value_heads") or heads)
    head_dim = int(cfg.get("head_dim") or cfg["hidden_size"] // heads)
    if heads % kv:
        raise ConfigError(
            f"{path}: num_attention_heads {heads} is not a multiple of num_key_value_heads {kv}"
        )
    return {
        "hidden_size": int(cfg["hidden_size"]),
        "intermediate_size": int(cfg["intermediate_size"]),
        "num_layers": int(cfg["num_hidden_layers"]),
        "num_heads": heads,
        "num_kv_heads": kv,
        "head_dim": head_dim,
        "vocab_size": int(cfg["vocab_size"]),
        "max_model_len": int(cfg.get("max_position_embeddings") or 131072),
        "tie_embeddings": bool(cfg.get("tie_word_embeddings", False)),
        "qk_norm": str(cfg.get("model_type", "")) in QK_NORM_TYPES,
    }
