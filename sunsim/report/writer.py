"""``write_report``: read a run or plan directory through :mod:`sunsim.runs`, work out the
answer, draw its figures, and write ``report.html``, ``report.md`` and
``report_figures/*.svg`` + ``*.png`` into it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sunsim.report import figures as F
from sunsim.report.answer import build_answer
from sunsim.report.contents import RenderedFigure, assemble
from sunsim.report.figure_set import build_figures
from sunsim.report.html import render_html
from sunsim.report.markdown import render_markdown
from sunsim.runs import RunDirError, read_run


def write_report(d: Path, command: str | None = None) -> dict[str, Any]:
    """Write ``report.html``, ``report.md`` and ``report_figures/<name>.svg`` and ``.png``
    into ``d`` (old figure files there are removed first).

    Returns ``{"html": Path, "markdown": Path, "figures": [Path, ...], "kind": str,
    "method": str}``. Raises :class:`~sunsim.runs.RunDirError` (a
    :class:`~sunsim.errors.SunsimError`) when ``d`` is not a run or plan directory, one of its
    files is damaged, or the report cannot be written there.
    """
    d = Path(d)
    run = read_run(d)
    answer = build_answer(run)
    figs = build_figures(run, answer)
    fig_dir = d / "report_figures"
    try:
        fig_dir.mkdir(exist_ok=True)
        for old in [*fig_dir.glob("*.png"), *fig_dir.glob("*.svg")]:
            old.unlink()
        rendered = []
        for name, caption, fig in figs:
            png, svg = F.to_png(fig), F.to_svg(fig)
            p = fig_dir / f"{name}.png"
            p.write_bytes(png)
            (fig_dir / f"{name}.svg").write_bytes(svg)
            rendered.append(RenderedFigure(name, caption, png, p, svg))
        F.close(f for _, _, f in figs)
        content = assemble(run, answer, tuple(rendered), command)
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
