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
