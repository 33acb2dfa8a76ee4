"""The KV cache's data type (vLLM's ``--kv-cache-dtype``): ``auto`` (the model's dtype, BF16
for every model sunsim knows) or ``fp8`` (one byte per element, E4M3 with per-tensor scales,
as vLLM, SGLang and TensorRT-LLM store it).

An FP8 KV cache halves the KV bytes per token (:func:`kv_bytes_per_element`), so a worker
holds twice the tokens, a disaggregated transfer moves half the bytes and a decode step
reads half the cache. Where the step times come from:

* a profile imported with an FP8 KV cache (``sunsim profile import`` / ``sunsim validate
  silicon``: meta ``source.kv_cache_dtype = "fp8"``, :func:`profile_kv_cache_dtype`) already
  times the FP8 KV-cache attention kernels that aiconfigurator-core measured; it is used
  as it is;
* any other latency model (a BF16-KV profile, the rooflines) is wrapped by
  :class:`FP8KVCacheLatency`, a **derived** estimate: the decode step's context (attention)
  share, :meth:`~sunsim.latency.base.LatencyModel.context_attention_time`, times
  :data:`FP8_ATTENTION_RATIO` = 0.5, the bytes ratio (decode attention is memory-bound: it
  reads the cache once). The measured FP8/BF16 generation-attention ratio in
  aiconfigurator-core 0.12.0 (Llama-3.1-8B heads, batch >= 16, context >= 1024, median per
  GPU and backend) is 0.50-0.51 for TensorRT-LLM on H100/H200, 0.55-0.76 for vLLM 0.24.0
  and 0.67-0.94 for SGLang 0.5.14, so the estimate is optimistic for vLLM and SGLang; the
  method label says ``derived``. Prefill times are left as they are (the prompt's KV is
  written once; its attention reads BF16 activations).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sunsim.errors import ConfigError
from sunsim.latency.base import LatencyModel

#: ``kv_cache_dtype`` values -> bytes per element (``auto``: the model's BF16).
KV_CACHE_DTYPES: dict[str, int] = {"auto": 2, "fp8": 1}
#: Derived FP8/BF16 time ratio of decode attention (module docstring): the bytes ratio.
FP8_ATTENTION_RATIO = 0.5


def kv_bytes_per_element(kv_cache_dtype: str) -> int:
    """Bytes per KV-cache element: 2 for ``auto`` (BF16), 1 for ``fp8``.

    Raises:
        ConfigError: an unknown value (one line naming the known ones).
    """
    if kv_cache_dtype not in KV_CACHE_DTYPES:
        raise ConfigError(
            f"kv_cache_dtype '{kv_cache_dtype}': choose one of {', '.join(KV_CACHE_DTYPES)}"
        )
    return KV_CACHE_DTYPES[kv_cache_dtype]


def profile_kv_cache_dtype(meta: Any) -> str:
    """The KV-cache dtype a profile's step times were measured with: meta
    ``source.kv_cache_dtype`` (``fp8``), else ``auto`` (BF16; every profile without the key).
    ``meta``: a :class:`~sunsim.latency.profile_meta.ProfileMeta` or its dict."""
    src = meta.get("source") if hasattr(meta, "get") else None
    value = src.get("kv_cache_dtype") if isinstance(src, dict) else None
    return "fp8" if value == "fp8" else "auto"


def latency_kv_cache_dtype(lat: LatencyModel) -> str:
    """The KV-cache dtype ``lat``'s step times assume (``auto`` unless it is, or wraps, an
    FP8-KV profile or an :class:`FP8KVCacheLatency`)."""
    seen: LatencyModel | None = lat
    while seen is not None:
        if isinstance(seen, FP8KVCacheLatency):
            return "fp8"
        meta = getattr(seen, "meta", None)
        if isinstance(meta, dict) and profile_kv_cache_dtype(meta) == "fp8":
            return "fp8"
        seen = getattr(seen, "inner", None)
    return "auto"


class FP8KVCacheLatency(LatencyModel):
    """``inner`` (BF16 KV cache) with an FP8 KV cache, derived (module docstring):
    ``kv_bytes_per_token`` halved, ``decode_step_time(B, C) = inner(B, C) - (1 -``
    :data:`FP8_ATTENTION_RATIO` ``) x inner.context_attention_time(B, C)``; prefill as
    ``inner``. ``method``: ``derived (<inner method> + FP8 KV cache: decode attention x
    0.5)``, so tables label its step times ``derived``."""

    def __init__(self, inner: LatencyModel) -> None:
        self.inner = inner
        note = f"FP8 KV cache: decode attention x {FP8_ATTENTION_RATIO:g}"
        self.method = f"derived ({inner.method} + {note})"
        self.description = f"{inner.description} + {note} (derived)"
        self.weight_bytes = inner.weight_bytes
        self.kv_bytes_per_token = inner.kv_bytes_per_token // 2
        self.max_model_len = inner.max_model_len
        self.has_prefill = bool(getattr(inner, "has_prefill", True))

    def prefill_time(self, prompt_lens: Sequence[int]) -> float:
        return self.inner.prefill_time(prompt_lens)

    def decode_step_time(self, batch_size: int, total_context_tokens: int) -> float:
        t = self.inner.decode_step_time(batch_size, total_context_tokens)
        attn = self.inner.context_attention_time(batch_size, total_context_tokens)
        return t - (1.0 - FP8_ATTENTION_RATIO) * attn

    def context_attention_time(self, batch_size: int, context_tokens: int) -> float:
        return FP8_ATTENTION_RATIO * self.inner.context_attention_time(batch_size, context_tokens)


def with_kv_cache_dtype(lat: LatencyModel, kv_cache_dtype: str) -> LatencyModel:
    """``lat`` with a KV cache of ``kv_cache_dtype``: itself for ``auto`` and for an FP8-KV
    profile (measured step times; :class:`~sunsim.latency.profiled.ProfiledLatency` already
    counts 1 byte per element), else :class:`FP8KVCacheLatency` (derived).

    Raises:
        ConfigError: an unknown ``kv_cache_dtype``.
    """
    kv_bytes_per_element(kv_cache_dtype)
    if kv_cache_dtype == "auto":
        return lat
    if latency_kv_cache_dtype(lat) == "fp8":
        return lat
    return FP8KVCacheLatency(lat)
