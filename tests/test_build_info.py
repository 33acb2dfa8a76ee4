"""The optional compiled engine's plumbing: which build runs, and the build backend's opt-in.

Whether compiled and pure records are equal is checked by CI on a real compiled install
(``.ci/run``: the golden records and ``benchmarks/ab_records.py``), not here.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from sunsim.build_info import COMPILED_MODULES, compiled_modules, engine_build

REPO = Path(__file__).resolve().parents[1]


def _backend():  # noqa: ANN202 - the repository-root module, not an installed package
    spec = importlib.util.spec_from_file_location("build_backend", REPO / "build_backend.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_every_compiled_module_exists_and_the_line_says_which_build() -> None:
    for name in COMPILED_MODULES:
        assert importlib.util.find_spec(name) is not None, name
    done = compiled_modules()
    assert set(done) <= set(COMPILED_MODULES)
    line = engine_build()
    if done:
        assert line == f"compiled (mypyc, {len(done)} of {len(COMPILED_MODULES)} modules)"
    else:
        assert line == "pure Python"
    # a module loaded from a .py is not counted as compiled
    mod = sys.modules.get("sunsim.engine.decode") or importlib.import_module("sunsim.engine.decode")
    assert ("sunsim.engine.decode" in done) == (not mod.__file__.endswith(".py"))


def test_backend_adds_the_pinned_mypy_only_when_asked(monkeypatch) -> None:
    monkeypatch.chdir(REPO)
    backend = _backend()
    monkeypatch.setenv("SUNSIM_COMPILE", "1")
    reqs = backend.get_requires_for_build_wheel()
    assert any(r.startswith("mypy==") for r in reqs)
    pin = next(r for r in reqs if r.startswith("mypy=="))
    assert pin in (REPO / "pyproject.toml").read_text()  # the dev extra's pin, not a copy
    monkeypatch.delenv("SUNSIM_COMPILE")
    assert not any(r.startswith("mypy") for r in backend.get_requires_for_build_wheel())


def test_backend_refuses_a_compiled_editable_install(monkeypatch) -> None:
    monkeypatch.chdir(REPO)
    backend = _backend()
    monkeypatch.setenv("SUNSIM_COMPILE", "1")
    with pytest.raises(RuntimeError, match="non-editable install only"):
        backend.get_requires_for_build_editable()
    with pytest.raises(RuntimeError, match="non-editable install only"):
        backend.build_editable("unused")
