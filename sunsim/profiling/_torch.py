"""Lazy access to torch: the only way the profiling package reaches it.

``import sunsim.profiling`` works without torch; a function that needs it calls
:func:`require_torch`, which raises :class:`~sunsim.errors.ProfileError` with the install
hint when torch is missing.
"""

from __future__ import annotations

from typing import Any

from sunsim.errors import ProfileError

INSTALL_HINT = "pip install 'sunsim[profile]'"


def require_torch() -> Any:
    """Return the ``torch`` module, or raise :class:`ProfileError` saying how to install it."""
    try:
        import torch
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ProfileError(
            f"profiling needs torch, which is not installed ({e}); install it with: {INSTALL_HINT}"
        ) from None
    return torch


def torch_available() -> bool:
    """True when torch can be imported (without importing the rest of sunsim.profiling)."""
    try:
        import importlib.util

        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):  # pragma: no cover
        return False
