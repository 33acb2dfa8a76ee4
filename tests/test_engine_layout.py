"""The engine's house rules, checked on its source: no private SimPy fields, small modules,
no imports of the CLI, metrics, report or torch."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import sunsim.engine

ENGINE = Path(sunsim.engine.__file__).parent
SOURCES = sorted(ENGINE.glob("*.py"))
FORBIDDEN = ("sunsim.cli", "sunsim.metrics", "sunsim.report", "torch")


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_module_rules(path):
    text = path.read_text()
    assert len(text.splitlines()) <= 400, "split the module"
    tree = ast.parse(text)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            # SimPy's events keep their state in _value/_ok/_defused; read only public API
            assert node.attr not in ("_value", "_ok", "_defused"), f"line {node.lineno}"
        if isinstance(node, ast.ImportFrom | ast.Import):
            names = (
                [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else [a.name for a in node.names]
            )
            for name in names:
                assert not name.startswith(FORBIDDEN), f"{name} imported at line {node.lineno}"
        if isinstance(node, ast.FunctionDef):
            assert node.end_lineno is not None
            assert node.end_lineno - node.lineno < 80, f"{node.name} is over 80 lines"


def test_package_reexports():
    from sunsim.engine import DESIGNS, ClusterSpec, SimResult, simulate
    from sunsim.engine.cluster import SimResult as SimResult2
    from sunsim.engine.cluster import itl_bin_edges, kv_capacity_blocks
    from sunsim.engine.cluster import simulate as simulate2
    from sunsim.engine.decode import ITL_NUM_BINS, MAX_MACRO_ITERATIONS, itl_bin

    assert simulate is simulate2 and SimResult is SimResult2
    assert set(DESIGNS) >= {"partitioned", "sun", "qsun"} and ClusterSpec.__name__
    assert len(itl_bin_edges()) == ITL_NUM_BINS + 1 and itl_bin(1.0) > 0
    assert MAX_MACRO_ITERATIONS >= 1 and callable(kv_capacity_blocks)
