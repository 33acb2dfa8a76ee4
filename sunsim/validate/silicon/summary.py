"""Tables of ``sunsim validate silicon``: error by GPU, backend and model, the worst rows, and
the rows skipped by reason. Errors are relative: (simulated - measured) / measured, of the
mean TTFT and the mean TPOT of each row; the tables give the median and the 90th percentile
of their absolute values, and the median signed error (bias).

Each class also says how often its mean TTFT falls as only the concurrency rises
(:func:`ttft_falls`), measured and simulated. More clients sending the same requests to the
same deployment queue at least as much, so a measured fall is run-to-run variation the file
does not show directly; the share of falls bounds how closely any simulator can follow that
class's TTFT. The simulated share is the control: a simulated TTFT falls only where a
higher concurrency breaks up a lock-step wave of clients, rarely."""

from __future__ import annotations

import pandas as pd

GROUP = ("system", "backend", "model_path")
#: Columns that, with :data:`GROUP`, fix a deployment and workload but for its concurrency.
SHAPE = (
    "backend_version", "precision", "mode", "isl", "osl", "tp_size",
    "prefill_num_workers", "prefill_tp_size", "decode_num_workers", "decode_tp_size",
)  # fmt: skip
#: A mean TTFT more than this share below the one at the next lower concurrency is a fall.
FALL = 0.05


def ttft_falls(g: pd.DataFrame, column: str) -> tuple[int, int]:
    """(steps, falls) of result rows: a step is a pair of rows of the same class
    (:data:`GROUP`) and :data:`SHAPE` (the columns ``g`` has) at adjacent concurrencies
    (``concurrency`` column), and a fall a step whose ``column`` (``silicon_ttft_ms`` or
    ``sim_ttft_ms``) at the higher concurrency is more than :data:`FALL` below the one at
    the lower (no ``concurrency`` column: no steps)."""
    steps = falls = 0
    if "concurrency" not in g.columns:
        return 0, 0
    by = [c for c in (*GROUP, *SHAPE) if c in g.columns]
    for _, s in g.dropna(subset=[column]).groupby(by, dropna=False, sort=False):
        t = s.sort_values("concurrency", kind="stable")[column].to_numpy()
        steps += max(len(t) - 1, 0)
        falls += int((t[1:] < (1.0 - FALL) * t[:-1]).sum())
    return steps, falls


def _stats(g: pd.DataFrame) -> dict[str, float]:
    out: dict[str, float] = {"rows": float(len(g))}
    for what in ("ttft", "tpot"):
        e = g[f"{what}_rel_error"].dropna()
        a = e.abs()
        out[f"{what}_median_abs"] = float(a.median()) if len(a) else float("nan")
        out[f"{what}_p90_abs"] = float(a.quantile(0.9)) if len(a) else float("nan")
        out[f"{what}_median_signed"] = float(e.median()) if len(e) else float("nan")
    steps, falls = ttft_falls(g, "silicon_ttft_ms") if len(g) else (0, 0)
    out["ttft_steps"] = float(steps)
    out["measured_ttft_falls"] = falls / steps if steps else float("nan")
    sim = ttft_falls(g, "sim_ttft_ms")[1] if len(g) else 0
    out["sim_ttft_falls"] = sim / steps if steps else float("nan")
    return out


def error_table(res: pd.DataFrame) -> pd.DataFrame:
    """One row per (GPU, backend, model) with simulated rows, then ``all``: ``rows``, per
    TTFT and TPOT the median and p90 of |relative error| and the median signed error, and
    ``ttft_steps``, ``measured_ttft_falls`` and ``sim_ttft_falls`` (:func:`ttft_falls`; the
    falls as shares of the steps, NaN without steps; ``all`` sums its classes' steps)."""
    ok = res[res["status"] == "ok"]
    rows = []
    for key, g in ok.groupby(list(GROUP), sort=True):
        rows.append(dict(zip(GROUP, key, strict=True)) | _stats(g))
    if len(ok):
        rows.append(dict.fromkeys(GROUP, "") | {"system": "all"} | _stats(ok))
    return pd.DataFrame(rows, columns=[*GROUP, *_stats(ok.iloc[:0]).keys()])


def worst_rows(res: pd.DataFrame, n: int = 10) -> pd.DataFrame:
    """The ``n`` simulated rows with the largest max(|TTFT error|, |TPOT error|)."""
    ok = res[res["status"] == "ok"].copy()
    ok["worst"] = ok[["ttft_rel_error", "tpot_rel_error"]].abs().max(axis=1)
    cols = ["id", "silicon_ttft_ms", "sim_ttft_ms", "ttft_rel_error"]
    cols += ["silicon_tpot_ms", "sim_tpot_ms", "tpot_rel_error"]
    return ok.sort_values("worst", ascending=False).head(n)[cols]


def skip_counts(res: pd.DataFrame) -> pd.DataFrame:
    """Rows not simulated (skipped or refused), by reason, most first: ``reason``, ``rows``,
    ``example`` (the first row's detail)."""
    not_ok = res[res["status"] != "ok"]
    if not len(not_ok):
        return pd.DataFrame(columns=["reason", "rows", "example"])
    g = not_ok.groupby("reason", sort=False)
    out = pd.DataFrame(
        {"rows": g.size(), "example": g["detail"].first().fillna("").astype(str)}
    ).reset_index()
    return out.sort_values(["rows", "reason"], ascending=[False, True], ignore_index=True)
