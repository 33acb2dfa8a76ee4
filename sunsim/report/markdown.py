"""Rendering a :class:`~sunsim.report.contents.ReportContent` as Markdown (``report.md``),
with the figures linked as ``report_figures/<name>.svg`` (a PNG lies beside each)."""

from __future__ import annotations

import pandas as pd

from sunsim.report.contents import ReportContent
from sunsim.report.prefix import PREFIX_TITLE
from sunsim.report.tables import fmt


def md_table(df: pd.DataFrame, index: bool = True) -> str:
    """``df`` as a GitHub-flavoured Markdown table (``|`` in cells escaped)."""
    cols = ([""] if index else []) + [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for idx, row in df.iterrows():
        vals = ([str(idx)] if index else []) + [fmt(v) for v in row.tolist()]
        lines.append("| " + " | ".join(v.replace("|", "\\|") for v in vals) + " |")
    return "\n".join(lines)


def render_markdown(c: ReportContent) -> str:
    """The Markdown report: the answer (sentence, table, context), figures, details (notes,
    goodput, sweep, every metric, per model), provenance, scenario and the command that made
    the report."""
    md = [
        f"# {c.title}: {c.name}",
        "",
        f"**{c.answer.sentence}**",
        "",
        md_table(c.answer.table, index=False),
        "",
        "| | |",
        "|---|---|",
        *[f"| {k} | {v.replace('|', '/')} |" for k, v in c.answer.context],
        "",
        f"Step times: **{c.method}**"
        + (
            " (partly the analytic roofline model, not a measurement)"
            if "analytic" in c.method
            else ""
        )
        + ".",
        "",
        "## Figures",
        "",
    ]
    for f in c.figures:
        md += [f"![{f.name}]({f.path.parent.name}/{f.path.stem}.svg)", "", f"*{f.caption}*", ""]
    md += ["## Details", "", md_table(c.headline), ""]
    if c.notes:
        md += [c.notes, ""]
    gp_md = (
        f"\n**Goodput** (highest rate scale meeting the SLO at fixed workers): {c.goodput[0]}\n"
        if c.goodput
        else ""
    )
    sweep_md = (
        f"\n## Sweep over {c.sweep[0]}\n\n" + md_table(c.sweep[1], index=False) + "\n"
        if c.sweep
        else ""
    )
    md.append(gp_md + sweep_md)
    if len(c.prefix_cache):
        md += [f"## {PREFIX_TITLE}", "", md_table(c.prefix_cache, index=False), ""]
    if len(c.per_model):
        md += ["## Per model", "", md_table(c.per_model, index=False), ""]
    md += ["## Provenance", "", "| | |", "|---|---|"]
    md += [f"| {k} | {v.replace('|', '/')} |" for k, v in c.provenance]
    if c.scenario_toml:
        md += ["", "```toml", c.scenario_toml.rstrip(), "```"]
    if c.command:
        md += ["", f"Report made with `{c.command}`."]
    return "\n".join(md) + "\n"
