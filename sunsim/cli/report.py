"""``sunsim report DIR``: HTML + Markdown for a replay run or a plan."""

from __future__ import annotations

from pathlib import Path

import typer

from sunsim.cli.app import app
from sunsim.cli.format import command_line, console


@app.command()
def report(
    path: Path = typer.Argument(
        ..., help="A `sunsim replay` run directory or a `sunsim plan` directory."
    ),
) -> None:
    """Render DIR/report.html (self-contained: the answer first, then the figures as SVG with
    a PNG fallback) and DIR/report.md (with DIR/report_figures/*.svg and *.png) for a replay
    run or a plan."""
    from sunsim.report import write_report

    out = write_report(path, command=command_line())
    console.print(
        f"{out['kind']} report ({out['method']} step times): wrote {out['html']} and "
        f"{out['markdown']} ({len(out['figures'])} figures in "
        f"{out['figures'][0].parent if out['figures'] else path})",
        highlight=False,
        soft_wrap=True,
    )
