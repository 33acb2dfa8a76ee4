"""Package data: the bundled default trace and the bundled measured latency profiles.

Found through :mod:`importlib.resources`, so a plain ``pip install .`` carries them:

* ``traces/synth_burstgpt_3models.csv``: the default trace of ``sunsim replay`` and ``sunsim
  plan`` (canonical CSV; how it was made: ``traces/README.md`` beside it);
* ``profiles/<device-slug>/<model>/<precision>/``: profiles written by ``sunsim profile``
  (``prefill.csv``, ``decode.csv``, ``meta.json``; their commands: ``profiles/README.md``).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

#: File name of the bundled default trace, under ``traces/``.
DEFAULT_TRACE_NAME = "synth_burstgpt_3models.csv"


def data_dir() -> Path:
    """The installed ``sunsim/data`` directory."""
    return Path(str(files("sunsim.data")))


def default_trace() -> Path:
    """Path of the bundled default trace (canonical CSV, 3674 requests over 599 s)."""
    return data_dir() / "traces" / DEFAULT_TRACE_NAME


def profiles_root() -> Path:
    """Root of the bundled measured profiles (``<device-slug>/<model>/<precision>/``)."""
    return data_dir() / "profiles"
