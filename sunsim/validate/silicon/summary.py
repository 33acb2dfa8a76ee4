"""Tables of ``sunsim validate silicon``: error by GPU, backend and model, the worst rows, and
the rows skipped by reason. Errors are relative: (simulated - measured) / measured, of the
mean TTFT and the mean TPOT of each row; the tables give the median and the 90th percentile
of their absolute values, and the median signed error (bias)."""

from __future__ import annotations

import pandas as pd

GROUP = ("system", "backend", "model_path")


def _stats(g: pd.DataFrame) -> dict[str, float]:
    out: dict[str, float] = {"rows": float(len(g))}
    for what in ("ttft", "tpot"):
        e = g[f"{what}_rel_error"].dropna()
        a = e.abs()
        out[f"{what}_median_abs"] = float(a.median()) if len(a) else float("nan")
        out[f"{what}_p90_abs"] = float(a.quantile(0.9)) if len(a) else float("nan")
        out[f"{what}_median_signed"] = float(e.median()) if len(e) else float("nan")
    return out


def error_table(res: pd.DataFrame) -> pd.DataFrame:
    """One row per (GPU, backend, model) with simulated rows, then ``all``: ``rows``, and per
    TTFT and TPOT the median and p90 of |relative error| and the median signed error."""
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
