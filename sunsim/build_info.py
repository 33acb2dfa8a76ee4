"""Which build of the engine is running: pure Python, or its hot modules compiled with mypyc.

The compiled build is optional and opt-in (``SUNSIM_COMPILE=1 pip install .``, README
"Compiled engine"); it compiles the modules of :data:`COMPILED_MODULES` to C extensions with
mypyc (https://mypyc.readthedocs.io) from the same ``.py`` files, so its records are the
pure build's bit for bit (checked in CI with ``tests/test_golden_records.py`` and
``benchmarks/ab_records.py``). ``setup.py`` reads :data:`COMPILED_MODULES` from this file;
``sunsim --version`` and the benchmarks print :func:`engine_build`, so every figure says
which build produced it. This module imports nothing of the engine.
"""

from __future__ import annotations

import importlib.util
import sys

__all__ = ["COMPILED_MODULES", "compiled_modules", "engine_build"]

#: The modules the compiled build compiles: the per-request and per-event paths of the
#: disaggregated designs (by the py-spy profile in benchmarks/bench_replay.py). Left interpreted,
#: and why: SimPy itself; ``engine.clock`` (its :class:`~sunsim.engine.clock.Timer` is made
#: with ``object.__new__`` and read by SimPy's own loop); the co-located workers (not on
#: the disaggregated designs' path, not tried); the other latency models. The compiled latency
#: models (roofline, paired, the measured profiles' ``profiled``) pickle to the planner's
#: worker processes by their ``__reduce__``. Compiled code calls a class of its own build
#: directly, so patching ``sunsim.engine.cluster.ClusterSim`` has no effect there: tests that
#: need the run's ClusterSim wrap ``cluster.build_result`` instead.
COMPILED_MODULES: tuple[str, ...] = (
    "sunsim.engine.arrivals",
    "sunsim.engine.cluster",
    "sunsim.engine.decode",
    "sunsim.engine.decode_stats",
    "sunsim.engine.kv_cache",
    "sunsim.engine.kv_link",
    "sunsim.engine.prefill",
    "sunsim.engine.records",
    "sunsim.engine.request",
    "sunsim.engine.router",
    "sunsim.engine.scheduler",
    "sunsim.latency.paired",
    "sunsim.latency.profiled",
    "sunsim.latency.roofline",
)

_EXTENSION = (".so", ".pyd")


def _origin(name: str) -> str | None:
    """The file ``name`` was (or would be) imported from, without importing it."""
    mod = sys.modules.get(name)
    if mod is not None:
        return getattr(mod, "__file__", None)
    spec = importlib.util.find_spec(name)
    return spec.origin if spec is not None else None


def compiled_modules() -> list[str]:
    """The modules of :data:`COMPILED_MODULES` that load from a compiled extension."""
    return [m for m in COMPILED_MODULES if (_origin(m) or "").endswith(_EXTENSION)]


def engine_build() -> str:
    """One line: ``"pure Python"`` or ``"compiled (mypyc, 14 of 14 modules)"``."""
    done = compiled_modules()
    if not done:
        return "pure Python"
    return f"compiled (mypyc, {len(done)} of {len(COMPILED_MODULES)} modules)"
