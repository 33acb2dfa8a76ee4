"""Writing the check's files and its figure."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import pandas as pd

from sunsim.serialize import jsonable
from sunsim.validate.engine.options import EngineCheck


def cfg_dict(cfg: Any) -> dict:
    d = asdict(replace(cfg, arrival_s=(), prompt_tokens=(), output_tokens=()))
    d["num_requests"] = len(cfg.arrival_s)
    return d


def write_engine_check(res: EngineCheck) -> list[Path]:
    """Write the check's files under ``res.out_dir``; returns their paths."""
    out = res.out_dir
    files = []

    def csv(df: pd.DataFrame, name: str) -> None:
        p = out / name
        df.to_csv(p, index=False, float_format="%.6g")
        files.append(p)

    csv(res.comparison, "comparison.csv")
    csv(res.iterations, "iterations.csv")
    csv(res.engine_records, "engine_records.csv")
    csv(res.sim_records, "sim_records.csv")
    csv(res.prefill_batches, "prefill_batches.csv")
    csv(res.link, "link.csv")
    p = out / "summary.json"
    p.write_text(
        json.dumps(jsonable({**res.summary, "engine_config": res.config}), indent=2) + "\n",
        encoding="utf-8",
    )
    files.append(p)
    p = out / "measured_vs_simulated.png"
    fig = figure(res)
    fig.savefig(p, dpi=120, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    files.append(p)
    return files


def figure(res: EngineCheck) -> Any:
    """Scatter of simulated against measured TTFT and TPOT per request, and of the profile's
    predicted against the measured decode step time per iteration (y = x dashed)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    comp = res.comparison
    ok = comp[(comp["status_measured"] == "finished") & (comp["status_simulated"] == "finished")]
    it = res.iterations
    e = res.summary["errors"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    panels = [
        (
            axes[0],
            ok["ttft_s_measured"] * 1e3,
            ok["ttft_s_simulated"] * 1e3,
            "TTFT (ms)",
            e["ttft"],
            "requests",
        ),
        (
            axes[1],
            ok["tpot_s_measured"] * 1e3,
            ok["tpot_s_simulated"] * 1e3,
            "TPOT (ms)",
            e["tpot"],
            "requests",
        ),
        (
            axes[2],
            it["step_s"] * 1e3,
            it["predicted_s"] * 1e3,
            "decode step (ms)",
            e["decode_step"],
            "iterations",
        ),
    ]
    for panel in panels:
        _panel(*panel)
    s = res.summary["settings"]
    fig.suptitle(
        f"sunsim validate engine: {s['model']} on {s['device_name']} "
        f"({s['threads_per_process']} thread(s) per process), {s['num_requests']} "
        f"requests of {Path(s['trace']).name}",
        fontsize=11,
    )
    fig.tight_layout()
    return fig


def _panel(ax: Any, x: pd.Series, y: pd.Series, name: str, st: dict[str, Any], what: str) -> None:
    """One scatter of :func:`figure`: measured ``x`` against simulated (or profile-predicted)
    ``y`` (ms), y = x dashed, log axes when the values span more than 20x; ``st`` the
    errors' ``median_abs``, ``p90_abs`` and ``n`` (``what``: requests or iterations)."""
    m = x.notna() & y.notna()
    x, y = x[m], y[m]
    ax.scatter(x, y, s=8 if what == "requests" else 3, alpha=0.6)
    if len(x):
        lo = float(min(x.min(), y.min()))
        hi = float(max(x.max(), y.max()))
        ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="y = x")
        if lo > 0 and hi / lo > 20:
            from sunsim.report.figures import log_axes

            log_axes(ax)
    ax.set_xlabel(f"measured {name}")
    ax.set_ylabel(f"simulated {name}" if what == "requests" else f"profile-predicted {name}")
    ax.set_title(
        f"{name}: |err| median {100 * (st['median_abs'] or math.nan):.1f}%, "
        f"p90 {100 * (st['p90_abs'] or math.nan):.1f}% ({st['n']} {what})",
        fontsize=10,
    )
    ax.legend(loc="upper left", fontsize=8)
