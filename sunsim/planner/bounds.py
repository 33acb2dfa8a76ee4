"""Analytic bounds the searches start from and check up front: :func:`decode_start` (a lower
bound on decode workers) and :func:`check_feasible` (an SLO below what one GPU can do for a
request alone fails before any search)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from sunsim.config import Scenario
from sunsim.engine.cluster import kv_capacity_blocks
from sunsim.engine.designs import get_design
from sunsim.engine.spec import ClusterSpec
from sunsim.errors import ConfigError
from sunsim.latency.paired import design_decode_latency
from sunsim.planner.criteria import EPS


def decode_start(req: pd.DataFrame, cluster: ClusterSpec, decode_latency: Any) -> int:
    """An analytic lower bound on decode workers, the search's first count.

    Output tokens per second over the trace's span, divided by what one worker decodes at the
    largest batch that fits (``min(max_num_seqs, KV capacity / mean context)``, mean context
    = prompt + half the output, tokens), at that batch's step time (seconds).
    """
    if len(req) < 2:
        return 1
    decode_latency = design_decode_latency(cluster.design.paired_decode, decode_latency)
    span = float(req["arrival_s"].iloc[-1] - req["arrival_s"].iloc[0])
    if span <= 0:
        return 1
    out = req["output_tokens"].to_numpy(dtype=float)
    ctx = float(np.mean(req["prompt_tokens"].to_numpy(dtype=float) + out / 2))
    cap_tokens = kv_capacity_blocks(cluster, decode_latency) * cluster.block_size
    b = int(max(1, min(cluster.max_num_seqs, cap_tokens // max(ctx, 1.0))))
    per_worker = b / decode_latency.decode_step_time(b, int(b * ctx))
    return max(1, int(math.ceil(out.sum() / span / per_worker)))


def check_feasible(
    req: pd.DataFrame,
    s: Scenario,
    mode: str,
    kind: str,
    prefill_goal: float,
    prefill_latency: Any,
    decode_latency: Any,
) -> None:
    """Raise :class:`~sunsim.errors.ConfigError` when no number of workers can meet the SLO
    for ``mode``: more requests than the miss budget allows have a standalone prefill time
    above the TTFT bound, or a single-request decode step (context = prompt + half the
    output; ICaRus's paired rows for a ``paired_decode`` design) above the TPOT bound."""
    if len(req) == 0:
        return
    need_ttft = prefill_goal if kind == "attainment" else s.slo.attainment
    _check_ttft(req, s, need_ttft, prefill_latency)
    _check_tpot(req, s, mode, design_decode_latency(get_design(mode).paired_decode, decode_latency))


def _check_ttft(req: pd.DataFrame, s: Scenario, need: float, prefill_latency: Any) -> None:
    slo = s.slo
    p = req["prompt_tokens"].to_numpy()
    pt = {int(x): prefill_latency.prefill_time([int(x)]) for x in np.unique(p)}
    t_pre = np.array([pt[int(x)] for x in p])
    ok = t_pre <= slo.ttft_s
    if ok.mean() < need - EPS:
        i = int(np.argmax(~ok))
        raise ConfigError(
            f"TTFT SLO {slo.ttft_s} s is below the prefill time alone of {(~ok).mean():.1%} "
            f"of the requests (a {int(p[i])}-token prompt takes {t_pre[i]:.3f} s on "
            f"{s.pool_gpu('prefill')} "
            f"with {prefill_latency.method} step times); no number of prefill workers can reach "
            f"{need:.1%}: raise --slo-ttft or lower --slo-attainment"
        )


def _check_tpot(req: pd.DataFrame, s: Scenario, mode: str, decode_latency: Any) -> None:
    slo = s.slo
    p = req["prompt_tokens"].to_numpy()
    o = req["output_tokens"].to_numpy()
    has = o > 1
    if not has.any():
        return
    ctx = p[has] + o[has] // 2
    st = {int(c): decode_latency.decode_step_time(1, int(c)) for c in np.unique(ctx)}
    t_dec = np.array([st[int(c)] for c in ctx])
    ok = np.ones(len(req), dtype=bool)
    ok[np.flatnonzero(has)] = t_dec <= slo.tpot_s
    need = slo.attainment
    if ok.mean() < need - EPS:
        raise ConfigError(
            f"TPOT SLO {slo.tpot_s * 1e3:.2f} ms is below the single-request decode step time "
            f"({min(st.values()) * 1e3:.2f} ms or more, {mode}, {decode_latency.method} step "
            f"times on {s.pool_gpu('decode')}) for {(~ok).mean():.1%} of the requests; no number "
            "of decode "
            f"workers can reach {need:.1%}: raise --slo-tpot or lower --slo-attainment"
        )
