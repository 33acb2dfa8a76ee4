"""What each collection of ``silicon_sample.csv`` rows was run with, beyond the row's own
columns: the benchmark client's lengths, the KV-cache dtype, and the engine's token budget.
Each rule names its source (the collection's published client or deployment rules); the
file itself does not record these. :func:`~.rows.classify` puts them into the
:class:`~.rows.Case`.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["client_lengths_of", "kv_cache_dtype_of", "token_budget_of"]


def _number(v: Any, default: float = 0.0) -> float:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return default
    return default if math.isnan(x) else x


#: ``silicon_data_source`` marks of the runs made with InferenceMAX's benchmark client, and
#: its ``--random-range-ratio``. The ``source_file=2026-04-06.csv`` rows are InferenceMAX's
#: sweep (SemiAnalysis, measured 2025-10-29: Llama-3.1-70B FP8/FP4 on H100/H200/B200 with
#: vLLM and TensorRT-LLM, ISL/OSL 1024/1024, 1024/8192, 8192/1024, its grid); its client
#: (``bench_serving/benchmark_serving.py --dataset-name random --random-range-ratio 0.8
#: --num-prompts 10 x CONC --max-concurrency CONC --request-rate inf --ignore-eos``, the
#: InferenceMAX README) draws every prompt and output length uniformly from ``[int(0.8 L),
#: L]`` (``sample_random_requests`` of that script).
INFERENCEMAX_SOURCES = ("source_file=2026-04-06.csv",)
INFERENCEMAX_RANGE_RATIO = 0.8


def client_lengths_of(row: dict[str, Any]) -> float:
    """The low end of the benchmark client's length range as a share of ISL/OSL (``Case.
    length_low_ratio``): :data:`INFERENCEMAX_RANGE_RATIO` for InferenceMAX's runs
    (:data:`INFERENCEMAX_SOURCES` in ``silicon_data_source``), else 1.0 (fixed lengths: the
    other collections name ISL and OSL as the lengths sent)."""
    src = str(row.get("silicon_data_source", ""))
    return INFERENCEMAX_RANGE_RATIO if any(m in src for m in INFERENCEMAX_SOURCES) else 1.0


#: ``silicon_data_source`` mark of the runs deployed by aiconfigurator's own generator for
#: its gap analysis (vLLM 0.12, SGLang 0.5, TensorRT-LLM 1.x on H100/H200, "aic-auto-gap-
#: analysis"), the backends whose token budget follows its benchmark rule (:func:`token_budget_of`)
#: and the slack that rule adds to the prompt (tokens).
AIC_GAP_ANALYSIS_SOURCES = ("aic-auto-gap-analysis",)
AIC_BUDGET_BACKENDS = ("vllm",)
AIC_BENCHMARK_SLACK_TOKENS = 1500


def token_budget_of(row: dict[str, Any]) -> int | None:
    """The aggregated engine's token budget per step (vLLM's ``max_num_batched_tokens``) when
    the row's collection documents it, else None (the backend's default, :mod:`.mapping`).

    The gap-analysis rows (:data:`AIC_GAP_ANALYSIS_SOURCES` in ``silicon_data_source``) were
    served from deployments written by aiconfigurator's generator in benchmark mode; its
    rules (``generator/rule_plugin/benchmark/{vllm,trtllm}.rule`` of ai-dynamo/aiconfigurator)
    set, for an aggregated worker of ``max_batch_size`` (the row's ``batch_size``),
    ``max_num_tokens = max_batch_size + ISL + 1500``. The file itself does not record the
    budget, so this is a reading, checked on the fit set (never on reported rows):

    * vLLM (:data:`AIC_BUDGET_BACKENDS`): Qwen3-32B's fit-set median |TTFT error| 25.2% at
      vLLM's default 8192 -> 15.3% (p90 163% -> 33%), 9.7% once the fitted corrections of
      :mod:`.correction_fit` are on: at 8192 fixed-length clients stay in lock-step waves
      whose TTFT is 2-3x the measured one;
    * TensorRT-LLM: worse here, with the fitted corrections refitted on top (H100 Qwen3-32B
      24% -> 81%, Llama-3.1-8B 46% -> 62%) under vLLM's chunked scheduler; with TensorRT-LLM's
      own scheduler (``colocated_scheduler = trtllm``; 2026-12-02, merged code), before
      corrections H100 Qwen3-32B 29.5% -> 23.8% but Llama-3.1-8B 39.2% -> 48.3%, and with the
      corrections refitted the fit set's median 12.7% -> 16.2%;
    * SGLang (``max_prefill_tokens = ISL + 1500`` with ``enable_mixed_chunk``): worse (12.4%
      -> 14.3% before corrections; mixed chunks 71%).

    So only vLLM rows take it; the others keep their backend's default.
    """
    src = str(row.get("silicon_data_source", ""))
    if (
        row.get("mode") != "agg"
        or str(row.get("backend")) not in AIC_BUDGET_BACKENDS
        or not any(m in src for m in AIC_GAP_ANALYSIS_SOURCES)
    ):
        return None
    isl = int(_number(row.get("isl")))
    return max(1, int(_number(row.get("batch_size"), 1.0))) + isl + AIC_BENCHMARK_SLACK_TOKENS


def kv_cache_dtype_of(row: dict[str, Any], precision: str) -> str:
    """The KV-cache dtype a row was served with. The file has no such column, so:
    a ``kv_cache_dtype`` (or ``kvcache_quant_mode``) column when a file has one, else the
    default for the row's checkpoint: ``fp8`` for FP8 (W8A8) rows, ``auto`` (BF16) for
    the others. The FP8 default is aiconfigurator-core 0.12.0's own for FP8 checkpoints
    (``sdk/models/helpers.py``: an ``fp8``/``fp8_block``/``nvfp4`` quantised checkpoint gets
    ``kvcache_quant_mode = fp8``), and what the FP8 serving recipes run: NVIDIA's ModelOpt
    FP8 checkpoints carry ``kv_cache_quant_algo: FP8``, which TensorRT-LLM applies by default,
    and InferenceMAX's vLLM FP8 recipes pass ``--kv-cache-dtype fp8``."""
    for col in ("kv_cache_dtype", "kvcache_quant_mode"):
        v = str(row.get(col) or "").strip().lower()
        if v:
            return "fp8" if v.startswith("fp8") else "auto"
    return "fp8" if precision == "fp8" else "auto"
