"""`sunsim report`: the answer first (sentence, table, context), then only the figures the
directory has data for, each as SVG with a PNG fallback; self-contained HTML and Markdown;
for a replay run and for plans (rate sweep, no replays)."""

from __future__ import annotations

import base64
import io
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from sunsim.cli import app
from sunsim.replay import DEFAULT_TRACE
from sunsim.report import FIGURES, PREFIX_FIGURES, REPLAY_FIGURES

SMALL = [str(DEFAULT_TRACE), "--max-requests", "200", "--latency", "roofline", "--no-progress"]
RATE_SWEEP_FIGURES = tuple(
    f for f in FIGURES if f[0] not in ("skew_gpus", "skew") and f not in PREFIX_FIGURES
)
_ANSWER_COLUMNS = (
    "design",
    "GPUs (prefill per model + decode per pool)",
    "$/hour",
    "$/M output tokens",
    "SLO attainment",
    "TTFT p90 (ms)",
    "TPOT p90 (ms)",
    "saving vs partitioned",
)


class _Page(HTMLParser):
    """Images (src, alt), SVG sources, external resources and the answer table's header."""

    def __init__(self) -> None:
        super().__init__()
        self.srcs: list[str] = []
        self.alts: list[str] = []
        self.svgs: list[str] = []
        self.external: list[str] = []
        self.th: list[str] = []
        self._in_answer = self._in_th = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.srcs.append(a.get("src", ""))
            self.alts.append(a.get("alt", ""))
        if tag == "source" and a.get("type") == "image/svg+xml":
            self.svgs.append(a.get("srcset", ""))
        if tag in ("script", "link") and (a.get("src") or a.get("href")):
            self.external.append(a.get("src") or a.get("href"))
        if a.get("id") == "answer-table":
            self._in_answer = True
        self._in_th = tag == "th" and self._in_answer

    def handle_endtag(self, tag):
        if tag == "table":
            self._in_answer = False
        self._in_th = False

    def handle_data(self, data):
        if self._in_th and data.strip():
            self.th.append(data.strip())


def _check_report(d: Path, expected: tuple, trace: Path = DEFAULT_TRACE) -> str:
    html = (d / "report.html").read_text()
    p = _Page()
    p.feed(html)
    assert p.external == []  # self-contained
    assert p.alts == [name for name, _ in expected]
    assert p.th == list(_ANSWER_COLUMNS)
    from PIL import Image

    for src, svg in zip(p.srcs, p.svgs, strict=True):
        assert src.startswith("data:image/png;base64,")
        data = base64.b64decode(src.split(",", 1)[1])
        im = Image.open(io.BytesIO(data))
        im.verify()
        assert im.size[0] >= 400 and im.size[1] >= 150
        assert svg.startswith("data:image/svg+xml;base64,")
        assert b"<svg" in base64.b64decode(svg.split(",", 1)[1])[:2000]
    # the answer comes first; every figure says which step times made it
    assert html.index("id='answer'") < html.index("id='figures'") < html.index("id='details'")
    assert html.count("(analytic step times).</figcaption>") == len(expected)
    assert re.search(r"<td>\d+\.\d%</td>", html)  # attainment as a percentage
    assert "req/s" in html and re.search(r"TTFT &lt;= [\d.]+ ms and TPOT &lt;= [\d.]+ ms", html)
    assert "rate scale (x" not in html and "no rate sweep" not in html  # no placeholders
    for word in ("sunsim version", "seed", "latency source", str(trace), "per H100-hour"):
        assert word in html, word
    md = (d / "report.md").read_text()
    assert md.index("$/M output tokens") < md.index("## Figures")
    for name, _ in expected:
        assert f"report_figures/{name}.svg" in md
        assert (d / "report_figures" / f"{name}.png").stat().st_size > 5000
        assert (d / "report_figures" / f"{name}.svg").stat().st_size > 5000
    assert len(list((d / "report_figures").iterdir())) == 2 * len(expected)
    return html


@pytest.fixture(scope="module")
def replay_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small replay run (3 decode workers) with its report."""
    runner = CliRunner()
    d = tmp_path_factory.mktemp("report") / "run"
    res = runner.invoke(app, ["replay", *SMALL, "--decode-workers", "3", "--out", str(d)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["report", str(d)])
    assert res.exit_code == 0, res.output
    return d


@pytest.fixture(scope="module")
def plan_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small plan with a rate sweep, and its report."""
    runner = CliRunner()
    d = tmp_path_factory.mktemp("report") / "plan"
    res = runner.invoke(
        app,
        ["plan", *SMALL, "--slo-tpot", "0.012", "--slo-ttft", "0.5", "--sweep", "rate_scale=10,40",
         "--rate-scale", "40", "--jobs", "1", "--out", str(d)],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert (d / "sweep.csv").exists() and (d / "goodput.csv").exists()
    res = runner.invoke(app, ["report", str(d)])
    assert res.exit_code == 0, res.output
    return d


def test_replay_report(replay_report: Path):
    html = _check_report(replay_report, REPLAY_FIGURES)
    assert "sunsim replay report" in html
    assert "GPUs per design" in html and "`sunsim plan` sizes each one" in html


def test_plan_report_with_rate_sweep(plan_report: Path):
    html = _check_report(plan_report, RATE_SWEEP_FIGURES)
    assert "sunsim plan report" in html and "Goodput" in html
    assert "Cheapest design meeting the SLO" in html or "No design meets the SLO" in html
    assert re.search(r"decode workers \(per pool\)", html)
    assert "TPOT p90 (ms)" in html and "SLO attainment (%)" in html


def test_plan_report_without_replays_leaves_record_figures_out(tmp_path: Path):
    runner = CliRunner()
    d = tmp_path / "plan"
    res = runner.invoke(app, ["plan", *SMALL, "--jobs", "1", "--no-replays", "--out", str(d)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["report", str(d)])
    assert res.exit_code == 0, res.output
    names = ("gpus_cost", "pareto", "per_model")
    _check_report(d, tuple(f for f in FIGURES if f[0] in names))


def test_report_on_a_wrong_directory_is_one_line(tmp_path: Path):
    res = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert res.exit_code == 2
    assert "neither a replay run" in res.output and "Traceback" not in res.output


def test_plan_report_with_zipf_sweep(tmp_path: Path):
    runner = CliRunner()
    d = tmp_path / "plan"
    args = ["plan", *SMALL, "--jobs", "1", "--sweep", "zipf=0,2", "--out", str(d)]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["report", str(d)])
    assert res.exit_code == 0, res.output
    rate_only = ("latency_load", "capacity", "goodput")
    _check_report(d, tuple(f for f in FIGURES if f[0] not in rate_only and f not in PREFIX_FIGURES))


def test_prefix_cache_report(prefix_run_dir: Path):
    """A run with prefix caching: the two prefix figures after the others of a replay, and
    the prefix table with each design's figures from summary.json."""
    res = CliRunner().invoke(app, ["report", str(prefix_run_dir)])
    assert res.exit_code == 0, res.output
    expected = tuple(f for f in FIGURES if f in REPLAY_FIGURES or f in PREFIX_FIGURES)
    html = _check_report(prefix_run_dir, expected, prefix_run_dir.parent / "workflow.csv")
    assert "Prefix cache (hit rate" in html
    md = (prefix_run_dir / "report.md").read_text()
    summ = json.loads((prefix_run_dir / "summary.json").read_text())["modes"]
    section = md.split("## Prefix cache", 1)[1].split("\n## ", 1)[0]
    rows = [ln for ln in section.splitlines() if ln.startswith("| ") and "---" not in ln][1:]
    assert [r.split("|")[1].strip() for r in rows] == ["partitioned", "prefillshare", "icarus"]
    for r in rows:
        cells = [c.strip() for c in r.split("|")[1:-1]]
        pc = summ[cells[0]]["prefix_cache"]
        assert cells[1] == ("content only" if pc["kv_shared_across_models"] else "per model")
        assert cells[2] == f"{pc['hit_rate'] * 100:.4g}"
        assert cells[4] == f"{pc['prefill_tokens_saved']:,}"
        assert cells[5] == f"{pc['evictions']:,}"
    assert sum(s["prefix_cache"]["evictions"] for s in summ.values()) > 0  # a tiny cache evicts


def test_replay_report_without_caching_has_no_prefix_section(replay_report: Path):
    html = (replay_report / "report.html").read_text()
    assert "Prefix cache" not in html and "fig-prefix" not in html
    assert not list(replay_report.glob("prefix_kv_*.csv"))


def test_prefix_kv_timeline_file(prefix_run_dir: Path):
    """``prefix_kv_<mode>.csv``: every served model in every bin, non-negative, and KV still
    cached at the end of the run (the cache keeps blocks after their requests finish)."""
    summ = json.loads((prefix_run_dir / "summary.json").read_text())["modes"]
    for mode in summ:
        tl = pd.read_csv(prefix_run_dir / f"prefix_kv_{mode}.csv")
        assert list(tl.columns) == ["t_s", "model", "cached_kv_bytes"]
        assert (tl.groupby("t_s")["model"].apply(lambda m: sorted(m) == ["a", "b", "c"])).all()
        per_bin = tl.groupby("t_s")["cached_kv_bytes"].sum()
        assert (per_bin >= 0).all() and per_bin.iloc[-1] > 0
