"""`sunsim report`: one self-contained HTML file with every figure embedded as a PNG, a Markdown
summary with the figures beside it, and the provenance; for a replay run and for a plan."""

from __future__ import annotations

import base64
import io
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sunsim.cli import app
from sunsim.replay import DEFAULT_TRACE
from sunsim.report import PLAN_FIGURES, REPLAY_FIGURES

SMALL = [str(DEFAULT_TRACE), "--max-requests", "200", "--latency", "roofline", "--no-progress"]


class _Imgs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.srcs: list[str] = []
        self.alts: list[str] = []
        self.external: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.srcs.append(a.get("src", ""))
            self.alts.append(a.get("alt", ""))
        if tag in ("script", "link") and (a.get("src") or a.get("href")):
            self.external.append(a.get("src") or a.get("href"))


def _check_report(d: Path, expected: tuple) -> str:
    html = (d / "report.html").read_text()
    p = _Imgs()
    p.feed(html)
    assert p.external == []  # self-contained
    assert len(p.srcs) == len(expected)
    assert p.alts == [name for name, _ in expected]
    from PIL import Image

    for src in p.srcs:
        assert src.startswith("data:image/png;base64,")
        data = base64.b64decode(src.split(",", 1)[1])
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
        im = Image.open(io.BytesIO(data))
        im.verify()
        assert im.size[0] >= 400 and im.size[1] >= 150
    # every figure says which step times made it
    assert html.count("(analytic step times).</figcaption>") == len(expected)
    # provenance
    assert "id='provenance'" in html
    for word in (
        "sunsim version",
        "seed",
        "trace",
        "latency source",
        "step times",
        str(DEFAULT_TRACE),
    ):
        assert word in html, word
    md = (d / "report.md").read_text()
    for name, _ in expected:
        assert f"report_figures/{name}.png" in md
        assert (d / "report_figures" / f"{name}.png").stat().st_size > 5000
    assert "## Provenance" in md and "analytic" in md
    return html


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


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


def test_replay_report(replay_report: Path):
    html = _check_report(replay_report, REPLAY_FIGURES)
    assert "sunsim replay report" in html


def test_replay_report_renders_in_chromium(replay_report: Path, tmp_path: Path):
    exe = _chromium()
    if exe is None:
        pytest.skip("chromium is not installed: the headless render check needs it")
    from PIL import Image, ImageStat

    shot = tmp_path / "shot.png"
    try:
        done = subprocess.run(
            [
                exe,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={tmp_path / 'profile'}",
                f"--screenshot={shot}",
                "--window-size=1200,3000",
                (replay_report / "report.html").resolve().as_uri(),
            ],
            capture_output=True,
            timeout=60,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.skip("chromium did not finish rendering in 60 s")
    if done.returncode != 0:
        tail = (done.stderr or b"").decode(errors="replace").strip().splitlines()[-1:]
        pytest.skip(f"chromium could not start here (exit {done.returncode}): {tail}")
    assert shot.exists() and shot.stat().st_size > 0, "chromium wrote no screenshot"
    im = Image.open(shot).convert("L")
    assert max(ImageStat.Stat(im).stddev) > 10  # not a blank page


def test_plan_report_with_rate_sweep(tmp_path: Path):
    runner = CliRunner()
    d = tmp_path / "plan"
    res = runner.invoke(
        app,
        [
            "plan",
            *SMALL,
            "--slo-tpot",
            "0.012",
            "--slo-ttft",
            "0.5",
            "--sweep",
            "rate=10,40",
            "--rate-scale",
            "40",
            "--jobs",
            "1",
            "--out",
            str(d),
        ],
    )
    assert res.exit_code == 0, res.output
    assert (d / "sweep.csv").exists() and (d / "goodput.csv").exists()
    res = runner.invoke(app, ["report", str(d)])
    assert res.exit_code == 0, res.output
    html = _check_report(d, PLAN_FIGURES)
    assert "sunsim plan report" in html and "Goodput" in html
    assert re.search(r"decode workers \(per pool\)", html)


def test_report_on_a_wrong_directory_is_one_line(tmp_path: Path):
    res = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert res.exit_code == 2
    assert "neither a replay run" in res.output and "Traceback" not in res.output
