"""The check's summary: error statistics, the goal, side-by-side counts."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from sunsim.validate.engine.options import GOAL_TPOT_MEDIAN, GOAL_TTFT_MEDIAN


def _err_stats(x: pd.Series) -> dict:
    x = x.dropna()
    if x.empty:
        return {
            "n": 0,
            "median_abs": math.nan,
            "p90_abs": math.nan,
            "median": math.nan,
            "mean": math.nan,
        }
    a = x.abs()
    return {
        "n": int(len(x)),
        "median_abs": float(a.median()),
        "p90_abs": float(np.percentile(a, 90)),
        "median": float(x.median()),
        "mean": float(x.mean()),
    }


def summarize_check(
    comp: pd.DataFrame,
    iters: pd.DataFrame,
    eng: pd.DataFrame,
    sim_res: Any,
    pre_batches: pd.DataFrame,
) -> dict:
    """Errors (median / p90 of |relative error|, signed median and mean) of TTFT, TPOT, E2E
    and decode step time, the goal check and side-by-side counts."""
    both = comp[(comp["status_measured"] == "finished") & (comp["status_simulated"] == "finished")]
    ttft = _err_stats(both["ttft_rel_error"])
    tpot = _err_stats(both["tpot_rel_error"])
    e2e = _err_stats(both["e2e_rel_error"])
    step = _err_stats(iters["rel_error"])
    step_cpu = _err_stats(iters["cpu_rel_error"]) if "cpu_rel_error" in iters else None
    pre = _err_stats(pre_batches["rel_error"]) if len(pre_batches) else _err_stats(pd.Series([]))
    pre_cpu = _err_stats(pre_batches["cpu_rel_error"]) if "cpu_rel_error" in pre_batches else None
    summary = {
        "errors": {
            "ttft": ttft,
            "tpot": tpot,
            "e2e": e2e,
            "decode_step": step,
            "decode_step_cpu_time": step_cpu,
            "prefill_batch": pre,
            "prefill_batch_cpu_time": pre_cpu,
        },
        "goal": {
            "tpot_median_abs_max": GOAL_TPOT_MEDIAN,
            "ttft_median_abs_max": GOAL_TTFT_MEDIAN,
            "tpot_met": bool(tpot["median_abs"] <= GOAL_TPOT_MEDIAN),
            "ttft_met": bool(ttft["median_abs"] <= GOAL_TTFT_MEDIAN),
        },
        "requests": {
            "total": int(len(comp)),
            "finished_measured": int((comp["status_measured"] == "finished").sum()),
            "finished_simulated": int((comp["status_simulated"] == "finished").sum()),
            "rejected_measured": int((comp["status_measured"] == "rejected").sum()),
            "rejected_simulated": int((comp["status_simulated"] == "rejected").sum()),
            "compared": int(len(both)),
        },
        "medians": {
            "ttft_s_measured": float(both["ttft_s_measured"].median()),
            "ttft_s_simulated": float(both["ttft_s_simulated"].median()),
            "tpot_s_measured": float(both["tpot_s_measured"].median()),
            "tpot_s_simulated": float(both["tpot_s_simulated"].median()),
            "e2e_s_measured": float(both["e2e_s_measured"].median()),
            "e2e_s_simulated": float(both["e2e_s_simulated"].median()),
        },
        "decode": _decode_summary(iters, eng, sim_res.decode_workers.iloc[0]),
        "prefill": _prefill_summary(pre_batches, sim_res),
    }
    return summary


def _decode_summary(iters: pd.DataFrame, eng: pd.DataFrame, dw: Any) -> dict:
    """Decode side by side: iterations, mean and peak batch, preemptions, step times, the
    iteration boundaries' share (measured / simulated, ``dw`` the simulated worker's row)."""
    busy = iters[iters["boundary_s"].notna()]
    n = len(iters)
    meas_mean_batch = (
        float((iters["batch_size"] * iters["step_s"]).sum() / iters["step_s"].sum())
        if n
        else math.nan
    )
    return {
        "iterations_measured": int(n),
        "iterations_simulated": int(dw["num_iterations"]),
        "mean_batch_measured": meas_mean_batch,
        "mean_batch_simulated": float(dw["mean_batch"]),
        "peak_batch_measured": int(iters["batch_size"].max()) if n else 0,
        "peak_batch_simulated": int(dw["peak_batch"]),
        "preemptions_measured": int(eng["num_preemptions"].sum()),
        "preemptions_simulated": int(dw["num_preemptions"]),
        "step_s_mean_measured": float(iters["step_s"].mean()) if n else math.nan,
        "step_s_mean_predicted": float(iters["predicted_s"].mean()) if n else math.nan,
        "step_cpu_over_wall": float(iters["step_cpu_s"].sum() / iters["step_s"].sum())
        if n
        else math.nan,
        "boundary_s_median": float(busy["boundary_s"].median()) if len(busy) else math.nan,
        "boundary_over_step": float(busy["boundary_s"].sum() / busy["step_s"].sum())
        if len(busy)
        else math.nan,
    }


def _prefill_summary(b: pd.DataFrame, sim_res: Any) -> dict:
    """Prefill side by side: batches, transfer time, prefill time measured / predicted."""
    n = len(b)
    return {
        "batches_measured": int(n),
        "batches_simulated": int(sim_res.prefill_workers["num_batches"].iloc[0]),
        "transfer_s_median": float((b["transfers_end"] - b["end"]).median()) if n else math.nan,
        "prefill_s_mean_measured": float(b["prefill_s"].mean()) if n else math.nan,
        "prefill_s_mean_predicted": float(b["predicted_s"].mean()) if n else math.nan,
        "cpu_over_wall": float(b["cpu_s"].sum() / b["prefill_s"].sum()) if n else math.nan,
    }
