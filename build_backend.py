"""The PEP 517 build backend: setuptools' own, plus the opt-in compiled engine.

With ``SUNSIM_COMPILE=1`` in the environment a wheel build also needs mypy (its mypyc
compiles the engine's hot modules, see ``setup.py``): this backend adds the dev extra's
pinned mypy (and pydantic, for the type checks) to the build requirements, so
``SUNSIM_COMPILE=1 pip install .`` works in a fresh virtual environment. An editable install
refuses the flag: the compiled extension modules would load instead of the ``.py`` files
being edited, which would then silently not run. Without the flag everything is setuptools'
(``setuptools.build_meta``).
"""

from __future__ import annotations

import os
import tomllib
from typing import Any

from setuptools import build_meta as _setuptools
from setuptools.build_meta import *  # noqa: F403 - every hook not redefined below


def _compile() -> bool:
    return os.environ.get("SUNSIM_COMPILE", "") == "1"


def _compile_requires() -> list[str]:
    """The dev extra's mypy requirement (one pin for the type checks and the compiler), and
    the project's pydantic requirement: mypyc type-checks the compiled modules' imports, and
    ``latency.profiled`` reads profile meta through pydantic models (without pydantic in the
    build environment its ``BaseModel`` is ``Any`` and the strict check fails)."""
    with open("pyproject.toml", "rb") as f:
        project = tomllib.load(f)["project"]
    dev = project["optional-dependencies"]["dev"]
    mypy = next(r for r in dev if r.startswith("mypy"))
    pydantic = next(r for r in project["dependencies"] if r.startswith("pydantic"))
    return [mypy, pydantic]


def get_requires_for_build_wheel(config_settings: Any = None) -> list[str]:
    if not _compile():
        return list(_setuptools.get_requires_for_build_wheel(config_settings))
    # setup.py lists nothing more (setuptools' hook would run it)
    return ["wheel", *_compile_requires()]


def _refuse_editable() -> None:
    if _compile():
        raise RuntimeError(
            "SUNSIM_COMPILE=1 builds the compiled engine for a non-editable install only "
            "(its compiled modules would run instead of the .py files you edit): "
            "use `SUNSIM_COMPILE=1 pip install .`, or drop SUNSIM_COMPILE for `pip install -e .`"
        )


def get_requires_for_build_editable(config_settings: Any = None) -> list[str]:
    _refuse_editable()
    return list(_setuptools.get_requires_for_build_editable(config_settings))


def build_editable(
    wheel_directory: str, config_settings: Any = None, metadata_directory: str | None = None
) -> str:
    _refuse_editable()
    return str(_setuptools.build_editable(wheel_directory, config_settings, metadata_directory))
