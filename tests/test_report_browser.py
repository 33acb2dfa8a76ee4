"""The report rendered by a real browser: headless Chromium loads ``report.html`` and a probe
script measures, after layout, that the answer sentence and table and every figure are
present and visible (laid out with a size, not hidden, the image decoded, the SVG chosen over
the PNG fallback). Skips only when Chromium is not installed; ``.ci/run`` installs it."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sunsim.cli import app
from sunsim.replay import DEFAULT_TRACE

SMALL = [str(DEFAULT_TRACE), "--max-requests", "200", "--latency", "roofline", "--no-progress"]

#: Runs in the page after load; writes what it measured into <pre id="probe">.
_PROBE = """<script>
window.addEventListener('load', () => {
  const shown = (el, minH = 20) => {
    if (!el) return false;
    const r = el.getBoundingClientRect(), cs = getComputedStyle(el);
    return r.width > 40 && r.height > minH && cs.display !== 'none' &&
      cs.visibility !== 'hidden' && parseFloat(cs.opacity) > 0 && el.offsetParent !== null;
  };
  const table = document.querySelector('#answer-table table');
  const out = {
    sentence: (document.querySelector('p.answer') || {}).innerText || '',
    sentence_shown: shown(document.querySelector('p.answer')),
    table_shown: shown(table),
    table_rows: table ? table.tBodies[0].rows.length : 0,
    table_text: table ? table.innerText : '',
    context_shown: shown(document.querySelector('#context')),
    answer_top: table ? table.getBoundingClientRect().top : -1,
    prefix_table_shown: shown(document.querySelector('#prefix-cache + .tw table')),
    figures: [...document.querySelectorAll('figure')].map(f => {
      const img = f.querySelector('img'), r = img.getBoundingClientRect();
      return {id: f.id, shown: shown(img), natural: img.naturalWidth, complete: img.complete,
              src: (img.currentSrc || '').slice(0, 26), top: r.top,
              caption: shown(f.querySelector('figcaption'), 8)};
    }),
  };
  const pre = document.createElement('pre');
  pre.id = 'probe';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


def chromium() -> str | None:
    """The Chromium executable, or None."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _flags(tmp: Path) -> list[str]:
    return [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={tmp / 'profile'}",
        "--window-size=1200,1600",
    ]


def probe(report: Path, tmp: Path) -> dict:
    """Load a copy of ``report`` with the probe in headless Chromium; what it measured."""
    exe = chromium()
    if exe is None:
        pytest.skip("chromium is not installed (apt-get install chromium; .ci/run does)")
    page = tmp / "probed.html"
    page.write_text(report.read_text().replace("</body>", _PROBE + "</body>"))
    done = subprocess.run(
        [exe, *_flags(tmp), "--virtual-time-budget=10000", "--dump-dom", page.as_uri()],
        capture_output=True,
        timeout=120,
        check=False,
    )
    dom = done.stdout.decode(errors="replace")
    m = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
    tail = done.stderr.decode(errors="replace").strip().splitlines()[-3:]
    assert m, f"chromium (exit {done.returncode}) printed no probe result: {tail}"
    return json.loads(html.unescape(m.group(1)))


def _check(result: dict, figures: list[str]) -> None:
    assert result["sentence_shown"] and result["sentence"].startswith(
        ("Cheapest", "No design", "With ")
    )
    assert result["table_shown"] and result["context_shown"]
    assert result["table_rows"] == 3 and "partitioned" in result["table_text"]
    got = [f["id"] for f in result["figures"]]
    assert got == [f"fig-{n}" for n in figures]
    for f in result["figures"]:
        assert f["shown"] and f["caption"] and f["complete"], f
        assert f["natural"] > 300, f  # decoded, not a broken image
        assert f["src"].startswith("data:image/svg+xml"), f  # the SVG, PNG only as fallback
        assert f["top"] > result["answer_top"], f  # the answer comes first


def _report(tmp: Path, *args: str) -> Path:
    runner = CliRunner()
    res = runner.invoke(app, [*args, "--out", str(tmp / "d")])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["report", str(tmp / "d")])
    assert res.exit_code == 0, res.output
    return tmp / "d"


def test_replay_report_is_visible_in_chromium(tmp_path: Path):
    if chromium() is None:
        pytest.skip("chromium is not installed (apt-get install chromium; .ci/run does)")
    d = _report(tmp_path, "replay", *SMALL)
    names = [p.stem for p in sorted((d / "report_figures").glob("*.svg"))]
    result = probe(d / "report.html", tmp_path)
    assert sorted(f["id"][4:] for f in result["figures"]) == names
    _check(result, [f["id"][4:] for f in result["figures"]])
    assert len(names) >= 6


def test_plan_report_is_visible_in_chromium(tmp_path: Path):
    if chromium() is None:
        pytest.skip("chromium is not installed (apt-get install chromium; .ci/run does)")
    d = _report(
        tmp_path, "plan", *SMALL, "--sweep", "rate_scale=1,4", "--jobs", "1", "--slo-tpot", "0.05"
    )
    names = {p.stem for p in (d / "report_figures").glob("*.svg")}
    assert {"gpus_cost", "latency_load", "capacity", "goodput", "pareto"} <= names
    result = probe(d / "report.html", tmp_path)
    _check(result, [f["id"][4:] for f in result["figures"]])
    assert {f["id"][4:] for f in result["figures"]} == names


def test_prefix_cache_report_is_visible_in_chromium(tmp_path: Path, prefix_run_dir: Path):
    """A run with prefix caching: its two prefix figures are laid out and decoded like every
    other figure, and the prefix table is rendered."""
    if chromium() is None:
        pytest.skip("chromium is not installed (apt-get install chromium; .ci/run does)")
    res = CliRunner().invoke(app, ["report", str(prefix_run_dir)])
    assert res.exit_code == 0, res.output
    result = probe(prefix_run_dir / "report.html", tmp_path)
    ids = [f["id"][4:] for f in result["figures"]]
    assert {"prefix_hits", "prefix_kv"} <= set(ids)
    _check(result, ids)
    assert result["prefix_table_shown"]
