"""Metrics: per-request records -> latency percentiles, throughput, SLO attainment, utilisation.

Definitions (ARCHITECTURE.md; vLLM and DistServe count them the same way):

* TTFT = ``first_token_at - arrived_at``.
* TPOT = ``(finished_at - first_token_at) / (output_tokens - 1)`` for outputs of more than one
  token (includes the KV transfer and decode queueing).
* ITL = time between consecutive tokens of one request (from the decode workers' token-weighted
  iteration-time histogram, bins 1.2% wide).
* E2E = ``finished_at - arrived_at``.
* throughput = output tokens of finished requests / measured window (first arrival to last
  finish); per GPU it is divided by all GPUs (prefill + decode).
* SLO attainment = fraction of all requests with TTFT <= SLO_TTFT and TPOT <= SLO_TPOT (a
  request without TPOT, i.e. one output token, needs only the TTFT; a rejected request misses).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from sunsim.engine.cluster import SimResult, itl_bin_edges
from sunsim.specs import SloSpec

PERCENTILES = (50, 90, 99)
LATENCIES = ("ttft_s", "tpot_s", "e2e_s")


def slo_met(records: pd.DataFrame, slo: SloSpec) -> pd.Series:
    """Boolean per request: finished, TTFT within ``slo.ttft_s`` and TPOT within ``slo.tpot_s``
    (requests with one output token have no TPOT and need only the TTFT)."""
    ok_ttft = records["ttft_s"] <= slo.ttft_s
    tpot = records["tpot_s"]
    ok_tpot = tpot.isna() | (tpot <= slo.tpot_s)
    return (records["status"] == "finished") & ok_ttft & ok_tpot


def slo_attainment(records: pd.DataFrame, slo: SloSpec) -> float:
    """Fraction of all requests (rejected ones count as misses) meeting both SLOs."""
    if len(records) == 0:
        return float("nan")
    return float(slo_met(records, slo).mean())


def latency_percentiles(
    records: pd.DataFrame, by: str | None = None, percentiles: Iterable[int] = PERCENTILES
) -> pd.DataFrame:
    """p50/p90/p99 (seconds) of TTFT, TPOT and E2E over finished requests.

    Returns a frame with one row per group (``by`` column values, or one row ``all``) and
    columns ``ttft_s_p50``, ``ttft_s_p90``, ..., ``e2e_s_p99`` plus ``num_finished``.
    """
    fin = records[records["status"] == "finished"]
    groups = (
        [("all", fin)]
        if by is None
        else [(str(k), g) for k, g in fin.groupby(by, observed=False, sort=False)]
    )
    rows = {}
    for key, g in groups:
        row: dict[str, float] = {"num_finished": float(len(g))}
        for col in LATENCIES:
            vals = g[col].dropna().to_numpy()
            for p in percentiles:
                row[f"{col}_p{p}"] = float(np.percentile(vals, p)) if len(vals) else float("nan")
        rows[key] = row
    return pd.DataFrame.from_dict(rows, orient="index")


def itl_percentiles(
    itl_hist: np.ndarray, percentiles: Iterable[int] = PERCENTILES
) -> dict[str, float]:
    """ITL percentiles (seconds) from a token-weighted histogram; each value is its bin's
    geometric centre, within 0.6% of the exact token percentile."""
    total = int(itl_hist.sum())
    edges = itl_bin_edges()
    out = {}
    cum = np.cumsum(itl_hist)
    for p in percentiles:
        if total == 0:
            out[f"itl_s_p{p}"] = float("nan")
            continue
        i = int(np.searchsorted(cum, p / 100 * total, side="left"))
        out[f"itl_s_p{p}"] = float(np.sqrt(edges[i] * edges[i + 1]))
    return out


def summarize(result: SimResult, slo: SloSpec) -> dict[str, Any]:
    """Everything one run reports, as a JSON-ready dict.

    Keys: ``mode``, ``method``, ``latency`` (model descriptions), ``gpus`` (prefill, decode,
    total), ``requests`` (total, finished, rejected, rejected_by_reason, preempted requests and
    preemptions), ``latency_s`` (overall percentiles incl. ITL), ``per_model`` (percentiles,
    counts, attainment per model), ``throughput`` (output tokens/s, per GPU, requests/s,
    window_s), ``slo`` (bounds, attainment, target, met), ``decode`` (mean busy fraction,
    time-weighted batch size, KV occupancy, peak batch, KV capacity tokens), ``prefill``
    (mean busy fraction), ``sim`` (events, wall seconds, simulated seconds).
    """
    rec = result.records
    cl = result.cluster
    fin = rec[rec["status"] == "finished"]
    rejected = rec[rec["status"] == "rejected"]
    met = slo_met(rec, slo)
    if len(fin):
        window = float(fin["finished_at"].max() - rec["arrived_at"].min())
    else:
        window = float("nan")
    out_tokens = int(fin["output_tokens"].sum())
    tput = out_tokens / window if window and window > 0 else float("nan")
    overall = latency_percentiles(rec).iloc[0].to_dict()
    overall.pop("num_finished", None)
    overall.update(itl_percentiles(result.itl_hist))
    per_model = {}
    pm = latency_percentiles(rec, by="model")
    for model, g in rec.groupby("model", observed=False, sort=False):
        d = pm.loc[str(model)].to_dict() if str(model) in pm.index else {}
        d["num_requests"] = int(len(g))
        d["num_finished"] = int((g["status"] == "finished").sum())
        d["slo_attainment"] = float(met[g.index].mean()) if len(g) else float("nan")
        per_model[str(model)] = d
    dw = result.decode_workers
    busy = dw["busy_s"].sum()
    attainment = float(met.mean()) if len(rec) else float("nan")
    return {
        "mode": cl.design.name,
        "method": result.method,
        "latency": {"prefill": result.prefill_latency, "decode": result.decode_latency},
        "gpus": {
            "prefill": cl.num_prefill_gpus,
            "decode": cl.num_decode_gpus,
            "total": cl.num_gpus,
            "decode_per_pool": list(cl.decode_workers),
            "prefill_per_model": list(cl.prefill_workers),
        },
        "requests": {
            "total": int(len(rec)),
            "finished": int(len(fin)),
            "rejected": int(len(rejected)),
            "rejected_by_reason": {
                str(k): int(v) for k, v in rejected["reject_reason"].value_counts().items()
            },
            "preempted_requests": int((rec["num_preemptions"] > 0).sum()),
            "preemptions": int(rec["num_preemptions"].sum()),
        },
        "latency_s": overall,
        "per_model": per_model,
        "throughput": {
            "window_s": window,
            "output_tokens": out_tokens,
            "output_tokens_per_s": tput,
            "output_tokens_per_s_per_gpu": tput / cl.num_gpus,
            "requests_per_s": len(fin) / window if window and window > 0 else float("nan"),
        },
        "slo": {
            "ttft_s": slo.ttft_s,
            "tpot_s": slo.tpot_s,
            "target": slo.attainment,
            "attainment": attainment,
            "met": bool(attainment >= slo.attainment),
        },
        "decode": {
            "kv_capacity_tokens": result.kv_capacity_tokens,
            "busy_frac_mean": float(dw["busy_frac"].mean()),
            "batch_size_mean": float((dw["mean_batch"] * dw["busy_s"]).sum() / busy)
            if busy > 0
            else 0.0,
            "kv_occupancy_mean": float(dw["kv_occupancy"].mean()),
            "peak_batch": int(dw["peak_batch"].max()),
        },
        "prefill": {"busy_frac_mean": float(result.prefill_workers["busy_frac"].mean())},
        "sim": {
            "events": result.num_events,
            "wall_s": result.wall_s,
            "sim_end_s": result.sim_end_s,
        },
    }


def comparison_table(summaries: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """Modes side by side: one column per mode, one row per headline metric."""
    rows: dict[str, dict[str, Any]] = {}
    for mode, s in summaries.items():
        lat = s["latency_s"]
        rows[mode] = {
            "GPUs (prefill+decode)": f"{s['gpus']['prefill']}+{s['gpus']['decode']}",
            "decode workers per pool": ",".join(str(x) for x in s["gpus"]["decode_per_pool"]),
            "finished / rejected": f"{s['requests']['finished']} / {s['requests']['rejected']}",
            "preemptions": s["requests"]["preemptions"],
            "TTFT p50 / p90 / p99 (s)": _trio(lat, "ttft_s"),
            "TPOT p50 / p90 / p99 (ms)": _trio(lat, "tpot_s", 1e3),
            "ITL p50 / p99 (ms)": f"{lat['itl_s_p50'] * 1e3:.1f} / {lat['itl_s_p99'] * 1e3:.1f}",
            "E2E p50 / p99 (s)": f"{lat['e2e_s_p50']:.2f} / {lat['e2e_s_p99']:.2f}",
            "throughput (tok/s)": round(s["throughput"]["output_tokens_per_s"], 1),
            "throughput per GPU (tok/s)": round(s["throughput"]["output_tokens_per_s_per_gpu"], 1),
            "SLO attainment": f"{s['slo']['attainment']:.1%}",
            "decode busy / batch / KV": (
                f"{s['decode']['busy_frac_mean']:.0%} / "
                f"{s['decode']['batch_size_mean']:.1f} / "
                f"{s['decode']['kv_occupancy_mean']:.0%}"
            ),
            "latency model": s["method"],
        }
    return pd.DataFrame(rows)


def _trio(lat: dict[str, float], key: str, scale: float = 1.0) -> str:
    vals = [lat[f"{key}_p{p}"] * scale for p in PERCENTILES]
    fmt = "{:.1f}" if scale != 1.0 else "{:.2f}"
    return " / ".join(fmt.format(v) for v in vals)


def sun_vs_partitioned(summaries: dict[str, dict[str, Any]]) -> list[str]:
    """Sentences comparing ``sun`` (and ``qsun``) with ``partitioned`` at the same decode
    workers: SLO attainment, throughput per GPU, TPOT; and, when the shared pool attains less,
    what the figures say about why. Empty when partitioned or sun was not run."""
    if "partitioned" not in summaries or "sun" not in summaries:
        return []
    p, s = summaries["partitioned"], summaries["sun"]
    lines = []
    pa, sa = p["slo"]["attainment"], s["slo"]["attainment"]
    pt = p["latency_s"]["tpot_s_p50"]
    st = s["latency_s"]["tpot_s_p50"]
    tput = (
        s["throughput"]["output_tokens_per_s_per_gpu"]
        / p["throughput"]["output_tokens_per_s_per_gpu"]
    )
    lines.append(
        f"sun vs partitioned, {s['gpus']['decode']} decode workers each: SLO attainment "
        f"{sa:.1%} vs {pa:.1%}; throughput per GPU x{tput:.2f}; TPOT p50 "
        f"{(st / pt - 1) * 100:+.1f}%."
    )
    if sa + 1e-12 < pa:
        why = []
        if s["latency_s"]["tpot_s_p90"] > p["latency_s"]["tpot_s_p90"]:
            why.append(
                f"the shared pool runs larger batches (mean {s['decode']['batch_size_mean']:.1f} "
                f"vs {p['decode']['batch_size_mean']:.1f}), so each iteration is slower and "
                f"TPOT p90 is {s['latency_s']['tpot_s_p90'] * 1e3:.1f} ms vs "
                f"{p['latency_s']['tpot_s_p90'] * 1e3:.1f} ms"
            )
        if s["latency_s"]["ttft_s_p90"] > p["latency_s"]["ttft_s_p90"] * 1.01:
            why.append(
                "TTFT p90 is higher (prefill is per model in both modes, so this comes "
                "from KV-transfer or routing differences)"
            )
        if s["requests"]["preemptions"] > p["requests"]["preemptions"]:
            why.append(
                f"more preemptions ({s['requests']['preemptions']} vs "
                f"{p['requests']['preemptions']})"
            )
        worst = sorted(p["per_model"].items(), key=lambda kv: -kv[1]["slo_attainment"])
        if worst:
            why.append(
                "per-model attainment partitioned/sun: "
                + ", ".join(
                    f"{m} {d['slo_attainment']:.0%}/{s['per_model'][m]['slo_attainment']:.0%}"
                    for m, d in worst
                )
            )
        lines.append("sun attains less than partitioned here: " + "; ".join(why) + ".")
    if "qsun" in summaries:
        q = summaries["qsun"]
        qt = q["latency_s"]["tpot_s_p50"]
        speed = (
            f"{(1 - qt / st) * 100:.1f}% faster"
            if qt <= st
            else f"{(qt / st - 1) * 100:.1f}% slower"
        )
        lines.append(
            f"qsun vs sun: TPOT p50 {qt * 1e3:.1f} ms vs {st * 1e3:.1f} ms "
            f"(qsun decodes {speed}), SLO attainment {q['slo']['attainment']:.1%}."
        )
    return lines
