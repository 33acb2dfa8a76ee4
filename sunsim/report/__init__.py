"""The report: a replay run or a plan directory as one self-contained HTML file and a Markdown
summary with its figures (``sunsim report DIR``).

Owns presentation only; it reads directories through :mod:`sunsim.runs` (never its own file
code) and summaries as :class:`sunsim.metrics.RunSummary`. Rooms:

* :mod:`~sunsim.report.writer`: :func:`write_report` (read, draw, render, write);
* :mod:`~sunsim.report.figure_set`: which figures a report holds (:data:`REPLAY_FIGURES`,
  :data:`PLAN_FIGURES`); :mod:`~sunsim.report.figures` draws them (DataFrame in, Figure out);
* :mod:`~sunsim.report.tables`: headline, per-model, sweep and provenance tables;
* :mod:`~sunsim.report.contents`: :class:`ReportContent`, the renderers' one input;
* :mod:`~sunsim.report.html`, :mod:`~sunsim.report.markdown`: the two renderers.

Every figure's caption says whether the step times were ``measured`` or ``analytic``.
"""

from sunsim.report.figure_set import FIGURES, PLAN_FIGURES, REPLAY_FIGURES
from sunsim.report.writer import write_report

__all__ = ["FIGURES", "PLAN_FIGURES", "REPLAY_FIGURES", "write_report"]
