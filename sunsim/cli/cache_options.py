"""``--cache-dir`` and ``--cache/--no-cache``, shared by ``sunsim plan`` and ``sunsim sweep``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer


def cache_dir_option() -> Any:
    """``--cache-dir DIR``: where the content-addressed result cache lives."""
    return typer.Option(
        None,
        "--cache-dir",
        help="Result cache directory, local or on a shared path (default: $SUNSIM_CACHE_DIR, "
        "else ~/.cache/sunsim).",
    )


def resolve_cache_dir(enabled: bool, cache_dir: Path | None) -> str | None:
    """The cache directory to use (None with ``--no-cache``), created and checked writable.

    Raises :class:`~sunsim.errors.ConfigError` (one line) for a directory that cannot be
    written."""
    from sunsim.cache import ResultCache, default_cache_dir

    if not enabled:
        return None
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    ResultCache(root, "").check_writable("--cache-dir" if cache_dir is not None else "cache")
    return str(root)
