"""``write_report``: read a run or plan directory through :mod:`sunsim.runs`, draw its
figures, and write ``report.html``, ``report.md`` and ``report_figures/*.png`` into it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sunsim.report import figures as F
from sunsim.report.contents import RenderedFigure, assemble
from sunsim.report.figure_set import build_figures
from sunsim.report.html import render_html
from sunsim.report.markdown import render_markdown
from sunsim.runs import RunDirError, read_run


def write_report(d: Path, command: str | None = None) -> dict[str, Any]:
    """Write ``report.html``, ``report.md`` and ``report_figures/*.png`` into ``d``.

    Returns ``{"html": Path, "markdown": Path, "figures": [Path, ...], "kind": str,
    "method": str}``. Raises :class:`~sunsim.runs.RunDirError` (a
    :class:`~sunsim.errors.SunsimError`) when ``d`` is not a run or plan directory, one of its
    files is damaged, or the report cannot be written there.
    """
    d = Path(d)
    run = read_run(d)
    figs = build_figures(run)
    fig_dir = d / "report_figures"
    try:
        fig_dir.mkdir(exist_ok=True)
        rendered = []
        for name, caption, fig in figs:
            data = F.to_png(fig)
            p = fig_dir / f"{name}.png"
            p.write_bytes(data)
            rendered.append(RenderedFigure(name, caption, data, p))
        F.close(f for _, _, f in figs)
        content = assemble(run, tuple(rendered), command)
        html_path = d / "report.html"
        html_path.write_text(render_html(content), encoding="utf-8")
        md_path = d / "report.md"
        md_path.write_text(render_markdown(content), encoding="utf-8")
    except OSError as e:
        raise RunDirError(
            f"{getattr(e, 'filename', None) or d}: cannot write the report "
            f"({e.strerror or e}); make the directory writable or copy the run elsewhere"
        ) from None
    return {
        "html": html_path,
        "markdown": md_path,
        "figures": [f.path for f in rendered],
        "kind": run.kind,
        "method": content.method,
    }
