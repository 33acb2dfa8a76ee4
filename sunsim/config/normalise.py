"""How raw scenario values (from a TOML file, the command line or Python) become field
values, before pydantic checks their types: :class:`~sunsim.config.scenario.Scenario`'s
``mode="before"`` field validators. Each takes the raw value and returns the normalised one
(or the value unchanged, for pydantic to reject with the field's one-line error)."""

from __future__ import annotations

from typing import Any

from sunsim.config.choices import MODES
from sunsim.errors import ConfigError
from sunsim.specs import GPU_ALIASES, get_model


def model_key(v: Any) -> Any:
    """``base_model``: a built-in or bundled model name (any spelling :func:`~sunsim.specs.
    get_model` knows) becomes its sunsim name; an existing ``config.json`` path stays a path.

    Raises:
        ValueError: an unknown model (pydantic turns it into the field's one-line error).
    """
    if not isinstance(v, str):
        return v
    from pathlib import Path

    try:
        spec = get_model(v)
    except ConfigError as e:
        raise ValueError(str(e)) from None
    return v if Path(v).expanduser().exists() else spec.name


def gpu_key(v: Any) -> Any:
    """``gpu``, ``prefill_gpu``, ``decode_gpu``: lower case, and an alias (``h100-sxm``,
    ...: :data:`~sunsim.specs.GPU_ALIASES`) becomes the registry's name."""
    if isinstance(v, str):
        v = v.lower()
        return GPU_ALIASES.get(v, v)
    return v


def as_tuple(v: Any) -> Any:
    """List-valued keys (``modes``, ``served_models``, ``shares``, worker counts): ``"all"``
    (of ``modes``) is every design, one scalar a 1-tuple, a list a tuple."""
    if isinstance(v, str) and v == "all":
        return MODES
    if isinstance(v, (str, int, float)):
        return (v,)
    return tuple(v) if isinstance(v, list) else v


def map_items(v: Any) -> Any:
    """``model_map`` (trace model -> served model): a TOML table or a list of pairs becomes a
    tuple of (key, value) pairs, so that the scenario stays hashable."""
    if isinstance(v, dict):
        return tuple(v.items())
    return tuple(tuple(x) if isinstance(x, list) else x for x in v) if v else v
