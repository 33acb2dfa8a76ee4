"""The early check of ``--out``: before any simulation, the directory must be creatable and
writable and must not hold another run unless ``--force``."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from sunsim.errors import ConfigError

#: Files that mark a directory as holding a run (replay) or a plan.
RUN_MARKERS = ("summary.json", "plan.json")


def prepare_out_dir(out: Path, force: bool = False) -> Path:
    """Create ``out`` (and its parents) and check that a file can be written in it.

    Raises:
        ConfigError: one line naming ``out`` when it holds another run (a ``summary.json``
            or ``plan.json``) and ``force`` is False, when it is not a directory, or when it
            cannot be created or written.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a directory")
    held = [m for m in RUN_MARKERS if (out / m).exists()]
    if held and not force:
        raise ConfigError(
            f"--out {out}: already holds a run ({held[0]}); choose another directory or "
            "pass --force to write over it"
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as e:
        why = e.strerror or type(e).__name__
        raise ConfigError(f"--out {out}: cannot write there ({why})") from None
    if not os.access(out, os.W_OK):
        raise ConfigError(f"--out {out}: cannot write there (permission denied)")
    return out
