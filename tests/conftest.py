"""Shared test fixtures.

Real public traces are read where they lie, never copied into the project: from the directory in
the environment variable ``SUNSIM_TRACES``, by default ``<repo>/../shared/traces``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TRACES_DIR = Path(os.environ.get("SUNSIM_TRACES", REPO.parent / "shared" / "traces"))


@pytest.fixture(scope="session")
def traces_dir() -> Path:
    """The directory holding the real traces (``$SUNSIM_TRACES`` or ``<repo>/../shared/traces``)."""
    return TRACES_DIR


def require_trace(name: str) -> Path:
    """The path of real trace ``name``; skips the test with a clear reason when it is absent."""
    p = TRACES_DIR / name
    if not p.is_file():
        pytest.skip(
            f"real trace {name} not found in {TRACES_DIR} "
            f"(set SUNSIM_TRACES to the directory holding it)"
        )
    return p


@pytest.fixture(autouse=True)
def _private_result_cache(tmp_path_factory, monkeypatch) -> None:
    """Each test gets its own result cache directory (``SUNSIM_CACHE_DIR``), so that no test
    reads results another test or an earlier run left in ``~/.cache/sunsim``."""
    monkeypatch.setenv("SUNSIM_CACHE_DIR", str(tmp_path_factory.mktemp("sunsim-cache")))


#: A small replay with prefix caching on and a KV cache small enough to evict: a generated
#: 3-model workflow (20 sessions), partitioned / prefillshare / icarus, roofline step times.
PREFIX_REPLAY = (
    "--models", "a,b,c", "--mode", "partitioned,prefillshare,icarus",
    "--enable-prefix-caching", "--latency", "roofline", "--gpu-memory-utilization", "0.24",
    "--no-progress",
)  # fmt: skip


@pytest.fixture(scope="session")
def prefix_run_dir(tmp_path_factory) -> Path:
    """A replay run directory with prefix caching on (see :data:`PREFIX_REPLAY`)."""
    from typer.testing import CliRunner

    from sunsim.cli import app

    d = tmp_path_factory.mktemp("prefix_run")
    trace = d / "workflow.csv"
    runner = CliRunner()
    args = ["trace", "workflow", str(trace), "--models", "a,b,c", "-n", "20", "--session-rate"]
    res = runner.invoke(app, [*args, "4"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["replay", str(trace), *PREFIX_REPLAY, "--out", str(d / "run")])
    assert res.exit_code == 0, res.output
    return d / "run"
