"""The ``sunsim`` command line: each command parses, calls library functions, prints.

Owns: the typer app and its one-line, exit-code-2 error handling (:mod:`.app`), the
scenario options shared by ``replay`` and ``plan``, generated once from the fields of
:class:`~sunsim.config.Scenario` (:mod:`.options`), output helpers (:mod:`.format`), the
checks of the other commands' options (:mod:`.checks`, :mod:`.profile_checks`,
:mod:`.validate_engine_checks`) and one module per command: ``trace``, ``replay``,
``profile`` (+ ``profile_import``), ``plan`` (+ ``plan_tables``), ``report``, ``validate``,
``sweep`` (+ ``cache_options``, shared with ``plan``).
``sunsim.cli:main`` is the console-script entry point; ``python -m sunsim`` runs it too.
"""

from sunsim.cli import (  # noqa: F401  (each module registers its commands)
    plan,
    profile,
    profile_import,
    replay,
    report,
    sweep,
    trace,
    validate,
    validate_engine,
)
from sunsim.cli.app import app, main
from sunsim.cli.options import ScenarioInputs, build_scenario

__all__ = ["ScenarioInputs", "app", "build_scenario", "main"]
