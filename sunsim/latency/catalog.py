"""Which step times ``sunsim replay`` and ``sunsim plan`` use for each GPU, model, weight
precision and tensor parallel size under ``latency = auto``: a bundled profile (measured or
derived), the calibrated roofline (analytic), or a refusal.

Generated, not written by hand: every cell is what :func:`sunsim.latency.resolve.resolve_latency`
resolves (so the README's "Precisions" table cannot disagree with the code), described from
the profile's ``meta.json`` (``method``, ``source.backend``/``backend_version``,
``source.derived_from``). ``python -m sunsim.latency.catalog`` prints the table (Markdown).
"""

from __future__ import annotations

import json
from pathlib import Path

from sunsim.data import profiles_root
from sunsim.errors import ConfigError
from sunsim.latency.base import LatencyModel
from sunsim.latency.resolve import gpu_key, resolve_latency

#: Columns: the served models' weights (``--precision``: prefill and decode) and qsun's
#: decode-only low-bit precisions (``--qsun-precision``; fp8 there is the ``fp8`` column's
#: decode).
PRECISIONS = ("bf16", "fp8", "w8a16", "w4a16")
#: Rows at one GPU per worker: these models on every GPU sunsim knows.
SINGLE_GPU_MODELS = ("llama-3.1-8b", "qwen3-8b")


def source_text(lat: LatencyModel) -> str:
    """A short description of where ``lat``'s step times come from: ``measured (vllm
    0.24.0)``, ``derived (BF16 x a100_sxm trtllm 1.0.0 ratio)`` for a profile with a
    ``source`` block, ``measured`` for one measured here, else the model's ``method`` word
    (``analytic``) with ``(calibrated)`` for the calibrated roofline."""
    meta = getattr(lat, "profile_meta", None)
    method = str(lat.method)
    if meta is None:
        word = method.split(" (")[0]
        return f"{word} (calibrated)" if "calibrated" in method else word
    src = meta.source or {}
    if not src:
        return str(meta.method)
    donor = src.get("derived_from")
    if isinstance(donor, dict):
        d = f"{donor.get('system')} {donor.get('backend')} {donor.get('backend_version')}"
        return f"{meta.method} (BF16 x {d} ratio)"
    return f"{meta.method} ({src.get('backend')} {src.get('backend_version')})"


def cell(gpu: str, model: str, precision: str, tensor_parallel_size: int = 1) -> str:
    """Where ``replay``/``plan`` take ``model``'s step times at ``precision`` on ``gpu`` from:
    the decode source, and ``; prefill <source>`` when prefill's differs (prefill only for
    ``bf16``/``fp8``: qsun's low-bit precisions are decode-only); ``refused (exit 2)`` when
    the resolution refuses (fp8 on a GPU without FP8 tensor cores, a tensor parallel size
    the GPU cannot time: the CLI's one error line)."""
    roles = ("decode", "prefill") if precision in ("bf16", "fp8") else ("decode",)
    texts = []
    for role in roles:
        try:
            lat, _ = resolve_latency(
                model, gpu, precision, role, tensor_parallel_size=tensor_parallel_size
            )
        except ConfigError:
            return "refused (exit 2)"
        texts.append(source_text(lat))
    if len(texts) == 2 and texts[1] != texts[0]:
        return f"{texts[0]}; prefill {texts[1]}"
    return texts[0]


def catalog_rows(root: Path | None = None) -> list[tuple[str, str, int]]:
    """(GPU, model, tensor parallel size) rows: :data:`SINGLE_GPU_MODELS` on every GPU of
    :data:`sunsim.specs.GPUS` at 1, then every (GPU, model, size > 1) a bundled profile's
    meta under ``root`` (default :func:`sunsim.data.profiles_root`) has."""
    from sunsim.specs import GPUS

    rows = [(g, m, 1) for g in GPUS for m in SINGLE_GPU_MODELS]
    more = set()
    for p in sorted(Path(root or profiles_root()).glob("*/*/*/meta.json")):
        meta = json.loads(p.read_text(encoding="utf-8"))
        tp = int((meta.get("source") or {}).get("tensor_parallel_size") or 1)
        if tp > 1 and meta.get("gpu_key") and not meta.get("quick"):
            more.add((gpu_key(str(meta["gpu_key"])), str(meta["model"]), tp))
    order = list(GPUS)
    rows += sorted(more, key=lambda r: (r[2], order.index(r[0]) if r[0] in order else 99, r[1]))
    return rows


def catalog_markdown(root: Path | None = None) -> str:
    """The table: one row per :func:`catalog_rows` entry, one column per :data:`PRECISIONS`
    (Markdown)."""
    head = "| GPU | model | TP | " + " | ".join(
        f"{p}" if p in ("bf16", "fp8") else f"{p} (qsun decode)" for p in PRECISIONS
    )
    lines = [head + " |", "|---|---|---|" + "---|" * len(PRECISIONS)]
    for gpu, model, tp in catalog_rows(root):
        cells = [cell(gpu, model, p, tp) for p in PRECISIONS]
        lines.append(f"| {gpu} | {model} | {tp} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    print(catalog_markdown())
