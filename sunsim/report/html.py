"""Rendering a :class:`~sunsim.report.contents.ReportContent` as one self-contained HTML page
(figures embedded as SVG with a PNG fallback, base64; no external resources).

``write_report``, ``REPLAY_FIGURES`` and ``PLAN_FIGURES`` are still importable from here for
existing callers; they live in :mod:`sunsim.report.writer` and
:mod:`sunsim.report.figure_set` (import them from :mod:`sunsim.report`).
"""

from __future__ import annotations

import base64
import html
import re
from typing import Any

import pandas as pd

from sunsim import __version__
from sunsim.report.contents import ReportContent
from sunsim.report.prefix import PREFIX_TITLE
from sunsim.report.tables import fmt

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;
max-width:1100px;color:#222;line-height:1.4;padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em}
h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;font-size:.85em;margin:.6em 0}
th,td{border:1px solid #ccc;padding:.25em .55em;text-align:right;vertical-align:top}
th{background:#f3f3f3}td.l,th.l{text-align:left}
figure{margin:1.2em 0;text-align:center}figure img{max-width:100%;border:1px solid #eee}
figcaption{font-size:.85em;color:#555;margin-top:.3em}
.badge{display:inline-block;padding:.1em .5em;border-radius:.4em;font-size:.85em;color:#fff;
background:#b36b00}.badge.measured{background:#2a7d2a}
pre{background:#f7f7f7;padding:.8em;overflow-x:auto;font-size:.8em;text-align:left}
.note{color:#555;font-size:.9em}.tw{overflow-x:auto}
.answer{font-size:1.15em;font-weight:600;margin:.6em 0}
.answer-row{display:flex;flex-wrap:wrap;gap:1.2em;align-items:flex-start}
#answer-table table{font-size:.95em}#context table{font-size:.85em;background:#fafafa}
"""

_e = html.escape


def html_table(df: pd.DataFrame, index: bool = True) -> str:
    """``df`` as an HTML table (cells escaped, numbers through :func:`fmt`)."""
    head = ("<th class='l'></th>" if index else "") + "".join(
        f"<th>{_e(str(c))}</th>" for c in df.columns
    )
    body = []
    for idx, row in df.iterrows():
        cells = (f"<th class='l'>{_e(str(idx))}</th>" if index else "") + "".join(
            f"<td>{_e(fmt(v))}</td>" for v in row.tolist()
        )
        body.append(f"<tr>{cells}</tr>")
    return (
        f"<div class='tw'><table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}"
        "</tbody></table></div>"
    )


def _figure(f: Any) -> str:
    """One figure: the SVG (crisp at any zoom) with the PNG as fallback, and its caption."""
    png = base64.b64encode(f.png).decode("ascii")
    svg = (
        f"<source type='image/svg+xml' srcset=\"data:image/svg+xml;base64,"
        f'{base64.b64encode(f.svg).decode("ascii")}"/>'
        if f.svg
        else ""
    )
    return (
        f"<figure id='fig-{f.name}'><picture>{svg}<img src=\"data:image/png;base64,{png}\" "
        f'alt="{_e(f.name)}"/></picture><figcaption>{_e(f.caption)}</figcaption></figure>'
    )


def _answer(c: ReportContent) -> list[str]:
    """The answer: its sentence, its table and the context beside it."""
    ctx = "".join(
        f"<tr><th class='l'>{_e(k)}</th><td class='l'>{_e(v)}</td></tr>"
        for k, v in c.answer.context
    )
    return [
        "<section id='answer'>",
        f"<p class='answer'>{_e(c.answer.sentence)}</p>",
        "<div class='answer-row'>",
        f"<div id='answer-table'>{html_table(c.answer.table, index=False)}</div>",
        f"<aside id='context'><table>{ctx}</table></aside>",
        "</div></section>",
    ]


def render_html(c: ReportContent) -> str:
    """The HTML page: the answer (sentence, table, context) first, then the figures, the
    details (notes, goodput, sweep, every metric, per model), the provenance, the scenario
    and the report command."""
    badge = "measured" if c.method.startswith("measured") else ""
    bare = re.sub(r"\([^)]*\)", "", c.method)  # the methods without their sources
    short = " + ".join(sorted({m.strip() for m in bare.split(",") if m.strip()})) or c.method
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>{_e(c.title)}: {_e(c.name)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{_e(c.title)}: {_e(c.name)}</h1>",
        f"<p><span class='badge {badge}' title='{_e(c.method)}'>{_e(short)} step times</span> "
        f"<span class='note'>designs: {_e(', '.join(c.modes) or '-')}; "
        f"rendered {c.created} by sunsim {__version__}</span></p>",
        *_answer(c),
    ]
    if "analytic" in c.method:
        parts.append(
            "<p class='note'>Some step times come from the analytic roofline model "
            "(max of FLOPs / achieved FLOP/s and bytes / achieved bandwidth), not from "
            "a measured profile: those latencies are estimates.</p>"
        )
    parts.append("<h2 id='figures'>Figures</h2>")
    parts += [_figure(f) for f in c.figures]
    parts.append("<h2 id='details'>Details</h2>")
    if c.notes:
        parts.append(f"<p>{_e(c.notes)}</p>")
    parts += [_goodput(c), _sweep(c), html_table(c.headline)]
    if len(c.prefix_cache):
        parts += [f"<h3 id='prefix-cache'>{_e(PREFIX_TITLE)}</h3>",
                  html_table(c.prefix_cache, index=False)]  # fmt: skip
    if len(c.per_model):
        parts += ["<h3>Per model</h3>", html_table(c.per_model, index=False)]
    parts.append("<h2 id='provenance'>Provenance</h2><table>")
    for k, v in c.provenance:
        parts.append(f"<tr><th class='l'>{_e(k)}</th><td class='l'>{_e(v)}</td></tr>")
    parts.append("</table>")
    if c.scenario_toml:
        parts.append(f"<h3>scenario.toml</h3><pre>{_e(c.scenario_toml)}</pre>")
    if c.command:
        parts.append(f"<p class='note'>report command: <code>{_e(c.command)}</code></p>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _goodput(c: ReportContent) -> str:
    if not c.goodput:
        return ""
    line, workers = c.goodput
    return (
        "<p><b>Goodput</b> (highest rate scale, x the trace's own rate, meeting the SLO at "
        "the scenario's own "
        f"workers: {_e(workers)}): {_e(line)}</p>"
    )


def _sweep(c: ReportContent) -> str:
    if not c.sweep:
        return ""
    key, table = c.sweep
    return f"<h2>Sweep over {_e(key)}</h2>" + html_table(table, index=False)


def __getattr__(name: str) -> Any:
    """The names this module had before the report was split (for existing callers)."""
    if name == "write_report":
        from sunsim.report.writer import write_report

        return write_report
    if name in ("REPLAY_FIGURES", "PLAN_FIGURES", "build_figures"):
        from sunsim.report import figure_set

        return getattr(figure_set, name)
    if name in ("per_model_frame", "provenance", "headline_table"):
        from sunsim.report import tables

        return getattr(tables, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
