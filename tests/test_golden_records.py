"""The same seed gives the same per-request records as sunsim 0.1.0 did, before the redesign.

``tests/golden/records_v0.1.0.json`` was made with ``python tests/golden/make_golden.py
tests/golden/records_v0.1.0.json`` on sunsim 0.1.0 (commit 020993b): the README's replay
examples (Azure 2023 conv and code traces, Zipf 1.2, 20x rate, 3 prefill workers per model, 3
decode workers, roofline step times, seed 0) for every decode router and every design. Each
records column must hash to the same bytes (exact floats).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
from conftest import require_trace

GOLDEN = Path(__file__).parent / "golden"
_spec = importlib.util.spec_from_file_location("make_golden", GOLDEN / "make_golden.py")
make_golden = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_golden)

EXPECTED = json.loads((GOLDEN / "records_v0.1.0.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("trace", make_golden.TRACES)
@pytest.mark.parametrize("router", make_golden.ROUTERS)
def test_records_equal_v0_1_0(trace: str, router: str, tmp_path: Path) -> None:
    path = require_trace(trace)
    sunsim = [sys.executable, "-c", "from sunsim.cli import main; main()"]
    recs = make_golden.run_case(path, router, tmp_path / "run", sunsim)
    for design, df in recs.items():
        want = EXPECTED["cases"][f"{trace}|{router}|{design}"]
        assert len(df) == want["rows"]
        got = make_golden.fingerprint(df)
        diffs = [
            f"{c}: sum {got[c]['sum']} vs {w['sum']}"
            for c, w in want["columns"].items()
            if got.get(c, {}).get("sha256") != w["sha256"]
        ]
        assert not diffs, f"{trace} {router} {design}: records differ from v0.1.0: {diffs}"
