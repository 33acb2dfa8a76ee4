"""SLO criteria: what one simulation's records score (:func:`evaluate`), whether a pool meets
the SLO (:func:`meets_slo` for decode, :func:`meets_prefill_goal` for prefill), and a goodput
evaluation's row (:func:`goodput_row`). Definitions: :mod:`sunsim.planner`."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from sunsim.metrics import slo_met
from sunsim.specs import SloSpec

#: Tolerance on attainment comparisons (fractions), so that 0.9 computed as 27/30 meets 0.9.
EPS = 1e-12

_EMPTY_GROUP: dict[str, Any] = {
    "n": 0,
    "attainment": 1.0,
    "ttft_attainment": 1.0,
    "tpot_attainment": 1.0,
    "ttft_q_s": 0.0,
    "tpot_q_s": 0.0,
    "rejected": 0,
    "preemptions": 0,
}


def evaluate(records: pd.DataFrame, slo: SloSpec, models: Iterable[str]) -> dict[str, Any]:
    """The numbers the planner's criteria need from one run's records.

    ``records``: one row per request with columns ``model``, ``status``, ``ttft_s``,
    ``tpot_s``, ``output_tokens``, ``num_preemptions`` (:func:`sunsim.engine.cluster.simulate`).

    Returns a JSON-ready dict: ``n``; ``attainment`` (joint, as
    :func:`sunsim.metrics.slo_attainment`), ``ttft_attainment``, ``tpot_attainment`` (one bound
    alone; requests without a TPOT meet the TPOT bound), ``ttft_q_s``, ``tpot_q_s`` (the
    ``slo.attainment``-quantile, seconds, rejected requests as +inf; None when infinite or no
    requests), ``rejected``, ``preemptions``; and the same per model under ``per_model``.
    """
    out = _eval_group(records, slo)
    out["per_model"] = {}
    col = records["model"].astype(str)
    for m in models:
        out["per_model"][m] = _eval_group(records[col == m], slo)
    return out


def _quantile(x: np.ndarray, q: float) -> float | None:
    """The ``q``-th percentile (0..100) of ``x`` with +inf entries; None when it is infinite;
    0.0 for no values."""
    if len(x) == 0:
        return 0.0
    v = (
        float(np.percentile(x, q, method="linear"))
        if np.isfinite(x).all()
        else float(np.percentile(np.where(np.isfinite(x), x, 1e300), q))
    )
    return v if v < 1e299 else None


def _eval_group(rec: pd.DataFrame, slo: SloSpec) -> dict[str, Any]:
    n = len(rec)
    if n == 0:
        return dict(_EMPTY_GROUP)
    fin = (rec["status"] == "finished").to_numpy()
    ttft = np.where(fin, rec["ttft_s"].to_numpy(dtype=float), np.inf)
    tpot_all = np.where(fin, rec["tpot_s"].to_numpy(dtype=float), np.inf)
    has_tpot = rec["output_tokens"].to_numpy() > 1
    ok_tpot = ~has_tpot | (tpot_all <= slo.tpot_s)
    q = slo.attainment * 100
    return {
        "n": int(n),
        "attainment": float(slo_met(rec, slo).mean()),
        "ttft_attainment": float((ttft <= slo.ttft_s).mean()),
        "tpot_attainment": float((fin & ok_tpot).mean()),
        "ttft_q_s": _quantile(ttft, q),
        "tpot_q_s": _quantile(tpot_all[has_tpot], q),
        "rejected": int((~fin).sum()),
        "preemptions": int(rec["num_preemptions"].sum()),
    }


def _group_meets(g: dict[str, Any], slo: SloSpec, kind: str) -> bool:
    if g["n"] == 0:
        return True
    if kind == "attainment":
        return bool(g["attainment"] >= slo.attainment - EPS)
    if g["ttft_q_s"] is None or g["tpot_q_s"] is None:
        return False
    return bool(g["ttft_q_s"] <= slo.ttft_s and g["tpot_q_s"] <= slo.tpot_s)


def meets_slo(
    ev: dict[str, Any], slo: SloSpec, kind: str, models: Iterable[str], overall: bool = True
) -> bool:
    """Decode criterion: all requests (unless ``overall`` is False: a pool judged on its own
    model's requests in a run of every model's) and every one of ``models`` (present in
    ``ev['per_model']``) meet the SLO of ``kind`` (``attainment`` or ``percentile``)."""
    groups = [ev] * overall + [ev["per_model"][m] for m in models if m in ev["per_model"]]
    return all(_group_meets(g, slo, kind) for g in groups)


def meets_prefill_goal(ev: dict[str, Any], goal: float, models: Iterable[str] = ()) -> bool:
    """Prefill criterion: TTFT-only attainment >= ``goal`` (or no requests), over all
    requests and over each of ``models`` (present in ``ev['per_model']``: one shared prefill
    pool holds every model to the goal, as per-model pools do)."""
    groups = [ev] + [ev["per_model"][m] for m in models if m in ev["per_model"]]
    return all(g["n"] == 0 or g["ttft_attainment"] >= goal - EPS for g in groups)


def goodput_row(mode: str, rate: float, ev: dict[str, Any], ok: bool) -> dict[str, Any]:
    """One row of a goodput frame: ``mode``, ``rate_scale``, ``attainment`` (all requests),
    ``min_model_attainment`` (the worst served model with requests), ``met``."""
    per = [g["attainment"] for g in ev["per_model"].values() if g["n"]]
    return {
        "mode": mode,
        "rate_scale": rate,
        "attainment": ev["attainment"],
        "min_model_attainment": min(per) if per else ev["attainment"],
        "met": ok,
    }
