"""Designs side by side: the headline comparison table and the sentences comparing ``sun``
and ``qsun`` with ``partitioned``. Both take mode -> :class:`RunSummary` (or the plain
summary dicts of ``summary.json``, read through :meth:`RunSummary.from_dict`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from sunsim.metrics.latency import PERCENTILES
from sunsim.metrics.summary import GpuCounts, LatencyPercentiles, RunSummary


def as_summary(s: RunSummary | Mapping[str, Any]) -> RunSummary:
    """``s`` as a :class:`RunSummary` (a plain summary dict is validated by ``from_dict``)."""
    return s if isinstance(s, RunSummary) else RunSummary.from_dict(s)


def comparison_table(summaries: Mapping[str, RunSummary | Mapping[str, Any]]) -> pd.DataFrame:
    """Modes side by side: one column per mode, one row per headline metric (strings and
    rounded numbers, as ``sunsim replay`` prints them).

    ``GPUs (prefill+decode)`` counts GPUs (workers x tensor parallel size); ``decode workers
    per pool`` counts workers; when any mode runs a tensor parallel size above 1, a row
    ``GPUs per worker (prefill / decode)`` says it."""
    rows: dict[str, dict[str, Any]] = {}
    parsed = {mode: as_summary(raw) for mode, raw in summaries.items()}
    any_tp = any(_tp(s) != (1, 1) for s in parsed.values())
    for mode, s in parsed.items():
        lat = s.latency_s
        rows[mode] = {
            "GPUs (prefill+decode)": _gpus(s),
            **({"GPUs per worker (prefill / decode)": "{} / {}".format(*_tp(s))} if any_tp else {}),
            "decode workers per pool": ",".join(
                str(x) for x in (s.gpus.decode_per_pool or s.gpus.colocated_per_pool)
            ),
            "finished / rejected": f"{s.requests.finished} / {s.requests.rejected}",
            "preemptions": s.requests.preemptions,
            "TTFT p50 / p90 / p99 (s)": _trio(lat, "ttft_s"),
            "TPOT p50 / p90 / p99 (ms)": _trio(lat, "tpot_s", 1e3),
            "ITL p50 / p99 (ms)": f"{lat.itl_s_p50 * 1e3:.1f} / {lat.itl_s_p99 * 1e3:.1f}",
            "E2E p50 / p99 (s)": f"{lat.e2e_s_p50:.2f} / {lat.e2e_s_p99:.2f}",
            "throughput (tok/s)": round(s.throughput.output_tokens_per_s, 1),
            "throughput per GPU (tok/s)": round(s.throughput.output_tokens_per_s_per_gpu, 1),
            "SLO attainment": f"{s.slo.attainment:.1%}",
            "decode busy / batch / KV": (
                f"{s.decode.busy_frac_mean:.0%} / "
                f"{s.decode.batch_size_mean:.1f} / "
                f"{s.decode.kv_occupancy_mean:.0%}"
            ),
            "latency model": s.method,
        }
    return pd.DataFrame(rows)


def _tp(s: RunSummary) -> tuple[int, int]:
    """(prefill, decode) GPUs per worker of ``s``."""
    return s.gpus.prefill_tensor_parallel_size, s.gpus.decode_tensor_parallel_size


def _decode_workers(s: RunSummary) -> str:
    """``N decode workers``, with their GPUs when a worker is more than one."""
    n = sum(s.gpus.decode_per_pool)
    return f"{n} decode workers" + (f" ({s.gpus.decode} GPUs)" if s.gpus.decode != n else "")


def _gpus(s: RunSummary) -> str:
    """``prefill+decode`` GPUs, or ``N co-located`` for a co-located design (with the GPU
    types when a pool has its own: :func:`gpus_text`)."""
    return gpus_text(s.gpus, total=False)


def gpus_text(g: GpuCounts, total: bool = True) -> str:
    """GPUs by pool, as the tables show them: ``2+3=5`` (prefill+decode=all; without the sum
    for ``total=False``), ``6 co-located``; with the pools' GPU types when a pool has its own
    (heterogeneous pools: ``2 H100+3 H200=5``, ``6 co-located H200``)."""
    pre = f" {g.prefill_gpu.upper()}" if g.prefill_gpu else ""
    dec = f" {g.decode_gpu.upper()}" if g.decode_gpu else ""
    if g.colocated:
        return f"{g.colocated} co-located{dec}"
    return f"{g.prefill}{pre}+{g.decode}{dec}" + (f"={g.total}" if total else "")


def _trio(lat: LatencyPercentiles, key: str, scale: float = 1.0) -> str:
    vals = [getattr(lat, f"{key}_p{p}") * scale for p in PERCENTILES]
    fmt = "{:.1f}" if scale != 1.0 else "{:.2f}"
    return " / ".join(fmt.format(v) for v in vals)


def sun_vs_partitioned(summaries: Mapping[str, RunSummary | Mapping[str, Any]]) -> list[str]:
    """Sentences comparing ``sun`` (and ``qsun``) with ``partitioned`` at the same decode
    workers (and their GPUs at a tensor parallel size above 1): SLO attainment, throughput
    per GPU, TPOT; and, when the shared pool attains less,
    what the figures say about why. Empty when partitioned or sun was not run."""
    if "partitioned" not in summaries or "sun" not in summaries:
        return []
    p, s = as_summary(summaries["partitioned"]), as_summary(summaries["sun"])
    pa, sa = p.slo.attainment, s.slo.attainment
    pt, st = p.latency_s.tpot_s_p50, s.latency_s.tpot_s_p50
    tput = s.throughput.output_tokens_per_s_per_gpu / p.throughput.output_tokens_per_s_per_gpu
    lines = [
        f"sun vs partitioned, {_decode_workers(s)} each: SLO attainment "
        f"{sa:.1%} vs {pa:.1%}; throughput per GPU x{tput:.2f}; TPOT p50 "
        f"{(st / pt - 1) * 100:+.1f}%."
    ]
    if sa + 1e-12 < pa:
        lines.append("sun attains less than partitioned here: " + "; ".join(_why(p, s)) + ".")
    if "qsun" in summaries:
        q = as_summary(summaries["qsun"])
        qt = q.latency_s.tpot_s_p50
        speed = (
            f"{(1 - qt / st) * 100:.1f}% faster"
            if qt <= st
            else f"{(qt / st - 1) * 100:.1f}% slower"
        )
        caveat = _qsun_caveat(q.method, s.method)
        lines.append(
            f"qsun vs sun: TPOT p50 {qt * 1e3:.1f} ms vs {st * 1e3:.1f} ms "
            f"(qsun decodes {speed}), SLO attainment {q.slo.attainment:.1%}.{caveat}"
        )
    return lines


def _qsun_caveat(qm: str, sm: str) -> str:
    """What the qsun vs sun TPOT comparison is worth, given both runs' step-time labels."""
    if qm == sm:
        return ""
    if "derived" in qm and "derived" not in sm:
        return (
            f" Not like for like: qsun's low-bit decode step times are {qm}: an estimate (a "
            "measured BF16 GEMM scaled by a weight-only/BF16 kernel ratio measured on another "
            f"GPU or backend, the rule in the profile's meta), sun's are {sm}; the speed-up is "
            "estimated, not measured."
        )
    if "analytic" in qm and "analytic" not in sm:
        return (
            f" Not like for like: qsun's step times are {qm} (the roofline's ideal bandwidth "
            f"ratio), sun's {sm}."
        )
    return f" Not like for like: qsun's step times are {qm}, sun's {sm}."


def _why(p: RunSummary, s: RunSummary) -> list[str]:
    """Reasons the shared pool (``s``) attains less than partitioned (``p``)."""
    why = []
    if s.latency_s.tpot_s_p90 > p.latency_s.tpot_s_p90:
        why.append(
            f"the shared pool runs larger batches (mean {s.decode.batch_size_mean:.1f} "
            f"vs {p.decode.batch_size_mean:.1f}), so each iteration is slower and "
            f"TPOT p90 is {s.latency_s.tpot_s_p90 * 1e3:.1f} ms vs "
            f"{p.latency_s.tpot_s_p90 * 1e3:.1f} ms"
        )
    if s.latency_s.ttft_s_p90 > p.latency_s.ttft_s_p90 * 1.01:
        why.append(
            "TTFT p90 is higher (prefill is per model in both modes, so this comes "
            "from KV-transfer or routing differences)"
        )
    if s.requests.preemptions > p.requests.preemptions:
        why.append(f"more preemptions ({s.requests.preemptions} vs {p.requests.preemptions})")
    worst = sorted(p.per_model.items(), key=lambda kv: -kv[1].slo_attainment)
    if worst:
        why.append(
            "per-model attainment partitioned/sun: "
            + ", ".join(
                f"{m} {d.slo_attainment:.0%}/{s.per_model[m].slo_attainment:.0%}" for m, d in worst
            )
        )
    return why
