"""The engine's measurements as frames: per-request records in the simulator's columns
(:func:`engine_records`), the request-by-request comparison with the simulation
(:func:`compare_requests`), per decode iteration (:func:`iterations_frame`) and per prefill
batch (:func:`batches_frame`) with the profile's predictions."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from sunsim.engine.records import add_latency_columns


def engine_records(cfg: Any, raw: dict, req: pd.DataFrame) -> pd.DataFrame:
    """Per-request engine timestamps (seconds from the replay's start), in the simulator's
    record columns, plus ``kv_received_at`` (the decode process read the notice)."""
    t0 = raw["t0"]
    pre = raw["replay"]["prefill"]["requests"]
    dec = raw["replay"]["decode"]["requests"]
    rows = []
    for i in range(len(req)):
        p = pre.get(i, {})
        d = dec.get(i, {})
        why = p.get("rejected", "")
        fin = d.get("finished_at", p.get("finished_at", math.nan))
        tr = p.get("transfers") or []
        rows.append(
            {
                "request_id": i,
                "prompt_tokens": int(req["prompt_tokens"].iat[i]),
                "output_tokens": int(req["output_tokens"].iat[i]),
                "arrived_at": float(req["arrival_s"].iat[i]),
                "prefill_started_at": p.get("prefill_started_at", math.nan) - t0,
                "first_token_at": p.get("first_token_at", math.nan) - t0,
                "kv_ready_at": (tr[0][2] - t0) if tr else math.nan,
                "kv_received_at": d.get("kv_received_at", math.nan) - t0,
                "decode_started_at": d.get("decode_started_at", math.nan) - t0,
                "finished_at": fin - t0,
                "num_preemptions": int(d.get("num_preemptions", 0)),
                "status": "rejected" if why else ("finished" if fin == fin else "unfinished"),
                "reject_reason": why or cfg.reject_reason(i),
            }
        )
    return add_latency_columns(pd.DataFrame(rows))


COMPARED = (
    "prefill_started_at",
    "first_token_at",
    "kv_ready_at",
    "decode_started_at",
    "finished_at",
    "num_preemptions",
    "ttft_s",
    "tpot_s",
    "e2e_s",
)


def compare_requests(eng: pd.DataFrame, sim: pd.DataFrame) -> pd.DataFrame:
    """One row per request: ``request_id``, ``prompt_tokens``, ``output_tokens``,
    ``arrived_at``, ``status_measured``, ``status_simulated``, for each of
    :data:`COMPARED` ``<name>_measured`` and ``<name>_simulated``, and for TTFT, TPOT, E2E
    ``<metric>_rel_error`` = simulated / measured - 1 (NaN where undefined). (The check adds
    ``ttft_s_level_matched`` and ``tpot_s_level_matched``: see :class:`LevelScaledLatency`.)"""
    out = pd.DataFrame(
        {
            "request_id": eng["request_id"].to_numpy(),
            "prompt_tokens": eng["prompt_tokens"].to_numpy(),
            "output_tokens": eng["output_tokens"].to_numpy(),
            "arrived_at": eng["arrived_at"].to_numpy(),
            "status_measured": eng["status"].to_numpy(),
            "status_simulated": sim["status"].astype(str).to_numpy(),
        }
    )
    for c in COMPARED:
        out[f"{c}_measured"] = eng[c].to_numpy(dtype=float)
        out[f"{c}_simulated"] = sim[c].to_numpy(dtype=float)
    for m in ("ttft", "tpot", "e2e"):
        meas = out[f"{m}_s_measured"]
        with np.errstate(invalid="ignore", divide="ignore"):
            out[f"{m}_rel_error"] = out[f"{m}_s_simulated"] / meas - 1.0
    return out


def iterations_frame(raw: dict, latency: Any, cpu_latency: Any = None) -> pd.DataFrame:
    """One row per engine decode iteration: ``iteration``, ``started_at`` (s from the replay's
    start), ``batch_size``, ``total_context_tokens``, ``step_s`` (measured wall),
    ``step_cpu_s`` (thread CPU time), ``predicted_s`` (the profile's
    ``decode_step_time(batch, total context)``), ``rel_error`` (predicted / measured - 1),
    ``boundary_s`` (wall time between the previous step's end and this step's start while the
    worker stayed busy: taking KV notices, preempting, admitting, block bookkeeping; NaN after
    an idle spell; ``boundary_cpu_s`` the thread CPU time of it), ``admitted``, ``preempted``,
    ``finished``, ``blocks_used`` (blocks held during the step); with
    ``cpu_latency`` also ``predicted_cpu_s`` and ``cpu_rel_error`` (the CPU-time view, see
    :func:`statistic_latency`)."""
    it = raw["replay"]["decode"]["iterations"]
    cols = [
        "started_at",
        "step_s",
        "step_cpu_s",
        "batch_size",
        "total_context_tokens",
        "boundary_s",
        "boundary_cpu_s",
        "admitted",
        "preempted",
        "finished",
        "blocks_used",
    ]
    df = pd.DataFrame(it, columns=cols)
    df["started_at"] -= raw["t0"]
    df.insert(0, "iteration", np.arange(len(df)))
    step = latency.decode_step_time
    df["predicted_s"] = [
        step(int(b), int(c)) for b, c in zip(df["batch_size"], df["total_context_tokens"])
    ]
    df["rel_error"] = df["predicted_s"] / df["step_s"] - 1.0
    if cpu_latency is not None:
        cstep = cpu_latency.decode_step_time
        df["predicted_cpu_s"] = [
            cstep(int(b), int(c)) for b, c in zip(df["batch_size"], df["total_context_tokens"])
        ]
        df["cpu_rel_error"] = df["predicted_cpu_s"] / df["step_cpu_s"] - 1.0
    return df


def batches_frame(raw: dict, latency: Any, cpu_latency: Any = None) -> pd.DataFrame:
    """One row per engine prefill batch: ``batch``, ``start``, ``end``, ``transfers_end``
    (s from the replay's start), ``prefill_s`` (measured wall), ``cpu_s`` (thread CPU time),
    ``batch_size``, ``tokens``, ``lens`` (tokens per request, ``;``-separated), ``recomputes``,
    ``predicted_s`` (the profile's ``prefill_time(lens)``), ``rel_error``; with ``cpu_latency``
    also ``predicted_cpu_s`` and ``cpu_rel_error``."""
    b = pd.DataFrame(
        raw["replay"]["prefill"]["batches"],
        columns=[
            "start",
            "end",
            "transfers_end",
            "cpu_s",
            "batch_size",
            "tokens",
            "lens",
            "recomputes",
        ],
    )
    for c in ("start", "end", "transfers_end"):
        b[c] -= raw["t0"]
    b.insert(0, "batch", np.arange(len(b)))
    b.insert(4, "prefill_s", b["end"] - b["start"])
    lens = b.pop("lens")
    b["lens"] = [";".join(str(int(x)) for x in ls) for ls in lens]
    b["predicted_s"] = [latency.prefill_time([int(x) for x in ls]) for ls in lens]
    b["rel_error"] = b["predicted_s"] / b["prefill_s"] - 1.0
    if cpu_latency is not None:
        b["predicted_cpu_s"] = [cpu_latency.prefill_time([int(x) for x in ls]) for ls in lens]
        b["cpu_rel_error"] = b["predicted_cpu_s"] / b["cpu_s"] - 1.0
    return b
