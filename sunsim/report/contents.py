"""What one report holds, assembled from a run directory: :class:`ReportContent` is the
single input of the HTML and Markdown renderers."""

from __future__ import annotations

import dataclasses
import datetime as _dt
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from sunsim.metrics import sun_vs_partitioned
from sunsim.report.answer import Answer
from sunsim.report.prefix import prefix_display, prefix_frame
from sunsim.report.tables import (
    goodput_text,
    headline_table,
    models_order,
    per_model_display,
    per_model_frame,
    provenance,
    sweep_table,
)
from sunsim.runs import RunData


@dataclass(frozen=True)
class RenderedFigure:
    """One figure: its name, caption, PNG and SVG bytes, and the PNG file it was written to
    (the SVG lies beside it)."""

    name: str
    caption: str
    png: bytes
    path: Path
    svg: bytes = b""


@dataclass(frozen=True)
class ReportContent:
    """Everything a renderer prints.

    ``answer``: the answer sentence, table and context (:mod:`sunsim.report.answer`);
    ``headline``: the summary table (rows x modes); ``per_model``: rows ``mode``, ``model``,
    counts, attainment, p50/p90 (see :func:`~sunsim.report.tables.per_model_frame`);
    ``notes``: sun-vs-partitioned sentences (replays); ``goodput``: (per-mode line, workers)
    or None; ``sweep``: (swept key, table) or None; ``provenance``: (label, value) rows.
    """

    title: str
    name: str
    kind: str
    method: str
    modes: tuple[str, ...]
    answer: Answer
    headline: pd.DataFrame
    per_model: pd.DataFrame
    notes: str
    goodput: tuple[str, str] | None
    sweep: tuple[str, pd.DataFrame] | None
    figures: tuple[RenderedFigure, ...]
    provenance: list[tuple[str, str]]
    scenario_toml: str
    command: str | None
    created: str
    prefix_cache: pd.DataFrame = dataclasses.field(default_factory=pd.DataFrame)


def assemble(
    run: RunData, answer: Answer, figures: tuple[RenderedFigure, ...], command: str | None
) -> ReportContent:
    """The :class:`ReportContent` of ``run`` with its ``answer`` and rendered ``figures``."""
    pm = per_model_frame(run.summaries, models_order(run))
    if len(pm):
        for c in ("num_requests", "num_finished"):
            pm[c] = pm[c].astype("Int64")
    notes = " ".join(sun_vs_partitioned(run.summaries)) if run.kind == "replay" else ""
    return ReportContent(
        title="sunsim plan report" if run.kind == "plan" else "sunsim replay report",
        name=run.path.name,
        kind=run.kind,
        method=run.method,
        modes=tuple(run.summaries),
        answer=answer,
        headline=headline_table(run),
        per_model=per_model_display(pm),
        notes=notes,
        goodput=goodput_text(run),
        sweep=sweep_table(run),
        figures=figures,
        provenance=provenance(run),
        scenario_toml=run.scenario_toml,
        command=command,
        created=_dt.datetime.now().isoformat(timespec="seconds"),
        prefix_cache=prefix_display(prefix_frame(run)),
    )
