"""What a sweep writes and prints: the tidy table (``results.parquet``), ``sweep.json`` (the
grid, the counts, the cache key of every point) and a short markdown report (``sweep.md``):
where it ran, how many points were cached, run or failed, and a headline table, one row per
point and one column per mode and headline figure."""

from __future__ import annotations

import datetime as _dt
import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from sunsim import __version__
from sunsim.sweep.run import SweepResult

#: Files of a sweep directory.
RESULTS = "results.parquet"
SWEEP_JSON = "sweep.json"
REPORT_MD = "sweep.md"

#: Headline figures per kind: (column, heading, format).
HEADLINES = {
    "replay": (
        ("slo_attainment", "attainment", "{:.1%}"),
        ("throughput_per_gpu", "tok/s/GPU", "{:.1f}"),
    ),
    "plan": (("num_gpus", "GPUs", "{:.0f}"), ("throughput_per_gpu", "tok/s/GPU", "{:.1f}")),
}


def _fmt(v: Any, fmt: str = "{}") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, float) and fmt == "{}":
        return f"{v:g}"
    return fmt.format(v)


def headline(r: SweepResult) -> pd.DataFrame:
    """One row per point and mode: the point's grid columns (on its first row only), the
    mode and the kind's headline figures (:data:`HEADLINES`), as text; a failed point has
    one row saying ``failed``."""
    t = r.table
    grid = r.grid
    heads = HEADLINES[grid.kind]
    rows = []
    for p in grid.points:
        cols = {"point": str(p.index)}
        cols.update({k: _fmt(v) for k, v in grid.column_values(p).items()})
        blank = {k: "" for k in cols}
        sub = t[t["point"] == p.index] if len(t) else t
        if r.outcomes[p.index].get("error") or "mode" not in sub.columns:
            rows.append({**cols, "mode": "failed"})
            continue
        for j, (_, m) in enumerate(sub.iterrows()):
            row = {**(cols if j == 0 else blank), "mode": m["mode"]}
            row.update({head: _fmt(m.get(col), fmt) for col, head, fmt in heads})
            rows.append(row)
    return pd.DataFrame(rows).fillna("")


def markdown_table(df: pd.DataFrame) -> str:
    """``df`` as a GitHub markdown table (cells as text)."""
    head = "| " + " | ".join(map(str, df.columns)) + " |"
    rule = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(str(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def counts_line(r: SweepResult) -> str:
    """``N points: C cached, R run (F failed) in S s``."""
    n = len(r.grid.points)
    failed = f", {len(r.failed)} failed" if r.failed else ""
    return (
        f"{n} points: {len(r.cached)} cached, {len(r.ran) + len(r.failed)} run{failed} "
        f"in {r.wall_s:.1f} s"
    )


def _methods(r: SweepResult) -> list[str]:
    t = r.table
    return sorted(set(t["method"].dropna().astype(str))) if "method" in t.columns else []


def report_markdown(r: SweepResult, where: str, cache_dir: str | None) -> str:
    """The sweep's markdown report (module docstring)."""
    g = r.grid
    lines = [
        f"# sunsim sweep: {g.path.name}",
        "",
        f"- kind: {g.kind}; sunsim {__version__}; "
        f"{_dt.datetime.now().isoformat(timespec='seconds')}",
        f"- ran on: {where}",
        f"- {counts_line(r)}",
        f"- result cache: {cache_dir or 'off (memory only)'}",
    ]
    for a in g.axes:
        lines.append(f"- axis {a.name} ({a.section}.{a.key}): {', '.join(map(_fmt, a.values))}")
    explicit = len(g.points) - math.prod(len(a.values) for a in g.axes) if g.axes else len(g.points)
    if explicit:
        lines.append(f"- explicit points: {explicit}")
    methods = _methods(r)
    if methods:
        lines.append(f"- step times: {'; '.join(methods)}")
    lines += ["", markdown_table(headline(r))]
    for i in r.failed:
        lines.append(f"\npoint {i} failed: {r.outcomes[i]['error']}")
    return "\n".join(lines) + "\n"


def write_sweep(
    r: SweepResult, out: Path, where: str, cache_dir: str | None, command: str | None
) -> list[Path]:
    """Write ``results.parquet``, ``sweep.json``, ``sweep.md`` and, for a plan sweep, the
    planned GPUs against each axis (:mod:`sunsim.sweep.figures`) into ``out`` (which exists);
    returns the paths."""
    out = Path(out)
    files = [out / RESULTS, out / SWEEP_JSON, out / REPORT_MD]
    r.table.to_parquet(files[0], index=False)
    meta = {
        "kind": "sweep",
        "sunsim_version": __version__,
        "grid": str(r.grid.path.resolve()),
        "sweep_kind": r.grid.kind,
        "command": command,
        "ran_on": where,
        "cache_dir": cache_dir,
        "points": len(r.grid.points),
        "cached": r.cached,
        "ran": r.ran,
        "failed": {str(i): r.outcomes[i]["error"] for i in r.failed},
        "wall_s": r.wall_s,
        "point_wall_s": {str(i): r.outcomes[i].get("wall_s") for i in r.ran},
        "keys": {str(i): k for i, k in r.keys.items()},
    }
    files[1].write_text(json.dumps(meta, indent=2))
    from sunsim.sweep.figures import write_figures

    svgs = write_figures(r, out)
    md = report_markdown(r, where, cache_dir)
    if svgs:
        md += "\n" + "\n".join(f"![{p.stem}]({p.name})" for p in svgs) + "\n"
    files[2].write_text(md)
    return files + svgs + [p.with_suffix(".png") for p in svgs]
