"""The report: a replay run or a plan directory as one self-contained HTML file and a Markdown
summary with its figures (``sunsim report DIR``).

Owns presentation only; it reads directories through :mod:`sunsim.runs` (never its own file
code) and summaries as :class:`sunsim.metrics.RunSummary`. Rooms:

* :mod:`~sunsim.report.writer`: :func:`write_report` (read, answer, draw, render, write);
* :mod:`~sunsim.report.answer`: the answer first -- one sentence, one table (GPUs by pool,
  $/h, $/M output tokens, attainment, TTFT/TPOT p90, saving) and its context;
* :mod:`~sunsim.report.figure_set`: which figures a report holds (:data:`FIGURES`, only those
  with data, no placeholders); :mod:`~sunsim.report.figures` and
  :mod:`~sunsim.report.planner_figures` draw them (DataFrame in, Figure out; SVG and PNG);
* :mod:`~sunsim.report.tables`: headline, per-model, sweep and provenance tables;
* :mod:`~sunsim.report.prefix` and :mod:`~sunsim.report.prefix_figures`: the prefix-cache
  table and figures (hit rate, prefill tokens saved, evictions, cached KV by model, p95
  latencies), only for runs with prefix caching on;
* :mod:`~sunsim.report.contents`: :class:`ReportContent`, the renderers' one input;
* :mod:`~sunsim.report.html`, :mod:`~sunsim.report.markdown`: the two renderers.

Every figure's caption says whether the step times were ``measured`` or ``analytic``.
"""

from sunsim.report.figure_set import FIGURES, PLAN_FIGURES, PREFIX_FIGURES, REPLAY_FIGURES
from sunsim.report.writer import write_report

__all__ = ["FIGURES", "PLAN_FIGURES", "PREFIX_FIGURES", "REPLAY_FIGURES", "write_report"]
