"""Grid files: a base scenario plus a ``[sweep]`` table, expanded into points.

A grid file is a scenario TOML (the tables of ``sunsim replay/plan --scenario``:
``[trace]``, ``[models]``, ``[cluster]``, ``[slo]``, ``[latency]``, ``[run]``; relative paths
resolve against the grid file's directory), an optional ``[plan]`` table (plan options, for
``kind = "plan"`` only) and::

    [sweep]
    kind = "replay"                      # or "plan"
    [sweep.axes]                         # the product of every axis, in file order
    rate = { key = "trace.rate_scale", values = [1.0, 2.0, 4.0] }
    "models.zipf" = [0.5, 1.5]           # short form: the axis is named by its key
    [[sweep.points]]                     # explicit points, after the product
    rate = 8.0                           # axis names or "section.key" scenario keys
    "cluster.decode_workers" = [6]

An axis key is ``section.key`` (any key of the scenario tables) or a bare key found in exactly
one section (``rate_scale``, ``request_rate`` in req/s, ``zipf``, ``slo.tpot_s``), or
``num_models`` (``models.num_models``): an integer N that serves N models -- the base's
``served`` names first, then ``model4``, ``model5``, ... -- so that a grid crosses load, skew,
SLO tightness and the number of models, e.g.::

    [sweep.axes]
    request_rate = [10.0, 40.0]          # req/s
    "models.zipf" = [0.5, 1.5]
    "slo.tpot_s" = [0.05, 0.1]
    num_models = [2, 4, 8]
 A point sets the keys it names on the base scenario; every other
key keeps the base value. Each point is a full :class:`~sunsim.config.Scenario`, checked when
the grid is read, so a bad value fails before anything runs.

Errors: :class:`~sunsim.errors.ConfigError`, one line naming the grid file and the key.
"""

from __future__ import annotations

import copy
import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sunsim.config import Scenario, read_toml, scenario_from_toml_dict
from sunsim.config.toml import toml_layout
from sunsim.errors import ConfigError

#: What a sweep runs at each point.
KINDS = ("replay", "plan")
#: Keys of the ``[sweep]`` table.
SWEEP_KEYS = ("kind", "axes", "points")
#: The axis key that sets the number of served models (not a scenario field).
NUM_MODELS = ("models", "num_models")
#: Most served models a ``num_models`` value may ask for (the scenario's own limit).
MAX_MODELS = 256


def served_names(base: list[str], n: int) -> list[str]:
    """``n`` served model names: the first ``n`` of ``base``, then ``model<k>`` for the
    k-th model past them (1-based), skipping names ``base`` already uses."""
    names = list(base[:n])
    k = len(names)
    while len(names) < n:
        k += 1
        name = f"model{k}"
        if name not in base:
            names.append(name)
    return names


@dataclass(frozen=True)
class Axis:
    """One named axis: column ``name``, scenario ``section``/``key``, its ``values``."""

    name: str
    section: str
    key: str
    values: tuple[Any, ...]


@dataclass(frozen=True)
class SweepPoint:
    """One point: its ``index`` (product points first, then explicit ones), the values it
    sets (``{column name: value}``, as written in the grid) and its resolved scenario."""

    index: int
    settings: dict[str, Any]
    scenario: Scenario


@dataclass(frozen=True)
class Grid:
    """A parsed grid file: ``path``, ``kind`` (``replay``/``plan``), the ``[plan]`` table
    (``plan``; empty for replays), the ``axes``, the explicit point tables, the columns
    (``{name: (section, key)}``: axes, then keys explicit points set) and the points."""

    path: Path
    kind: str
    plan: dict[str, Any]
    axes: tuple[Axis, ...]
    columns: dict[str, tuple[str, str]]
    points: tuple[SweepPoint, ...]

    def column_values(self, point: SweepPoint) -> dict[str, Any]:
        """Every column's value at ``point``, as the resolved scenario holds it (lists
        comma-joined, tables as JSON), so a column never mixes types."""
        meta = toml_layout()
        out = {}
        for name, (section, key) in self.columns.items():
            if (section, key) == NUM_MODELS:
                out[name] = len(point.scenario.served_models)
                continue
            v = getattr(point.scenario, meta[section][key].name)
            if isinstance(v, tuple | list):
                v = ",".join(map(str, v))
            elif isinstance(v, dict):
                v = json.dumps(v, sort_keys=True)
            out[name] = v
        return out


def _where(path: Path, what: str) -> str:
    return f"{path}: [sweep] {what}"


def resolve_key(name: str, where: str) -> tuple[str, str]:
    """``section.key`` or a bare key of one section -> (section, key); else ConfigError."""
    layout = toml_layout()
    if name in ("num_models", "models.num_models"):
        return NUM_MODELS
    if "." in name:
        section, key = name.split(".", 1)
        if section in layout and key in layout[section]:
            return section, key
    else:
        found = [s for s, keys in layout.items() if name in keys]
        if len(found) == 1:
            return found[0], name
        if len(found) > 1:
            opts = " or ".join(f"{s}.{name}" for s in found)
            raise ConfigError(f"{where}: '{name}' is ambiguous; write {opts}")
    raise ConfigError(
        f"{where}: '{name}' is not a scenario key; write section.key, e.g. trace.rate_scale, "
        "models.zipf, cluster.decode_workers (see the options table in the README)"
    )


def _axis(path: Path, name: str, spec: Any) -> Axis:
    where = _where(path, f"axes.{name}")
    if isinstance(spec, dict):
        unknown = set(spec) - {"key", "values"}
        if unknown or "values" not in spec:
            raise ConfigError(f'{where}: expected {{ key = "section.key", values = [...] }}')
        key_text, values = spec.get("key", name), spec["values"]
        if not isinstance(key_text, str):
            raise ConfigError(f'{where}: key must be a string like "trace.rate_scale"')
    else:
        key_text, values = name, spec
    if not isinstance(values, list) or not values:
        raise ConfigError(f"{where}: values must be a non-empty list, got {values!r}")
    section, key = resolve_key(key_text, where)
    return Axis(name, section, key, tuple(values))


def _point_tables(path: Path, raw: Any) -> list[dict[str, Any]]:
    if not isinstance(raw, list) or not all(isinstance(p, dict) and p for p in raw):
        raise ConfigError(
            _where(path, "points: expected [[sweep.points]] tables of key = value, each non-empty")
        )
    return raw


def _columns(
    path: Path, axes: list[Axis], tables: list[dict[str, Any]]
) -> dict[str, tuple[str, str]]:
    columns = {a.name: (a.section, a.key) for a in axes}
    by_key = {(a.section, a.key): a.name for a in axes}
    if len(by_key) < len(axes):
        raise ConfigError(_where(path, "axes: two axes set the same scenario key"))
    for j, t in enumerate(tables):
        for name in t:
            if name in columns:
                continue
            sk = resolve_key(name, _where(path, f"points[{j}].{name}"))
            if sk in by_key:
                raise ConfigError(
                    _where(path, f"points[{j}].{name}: set it by its axis name '{by_key[sk]}'")
                )
            columns[name] = sk
            by_key[sk] = name
    return columns


def _scenario(
    path: Path,
    base: dict[str, Any],
    settings: dict[str, Any],
    cols: dict[str, tuple[str, str]],
    what: str,
) -> Scenario:
    d = copy.deepcopy(base)
    for name, v in settings.items():
        section, key = cols[name]
        if (section, key) == NUM_MODELS:
            d.setdefault("models", {})["served"] = _num_models(path, name, v, d)
            continue
        d.setdefault(section, {})[key] = v
    return scenario_from_toml_dict(d, source=f"{path}: {what}", base_dir=path.parent)


def _num_models(path: Path, name: str, v: Any, d: dict[str, Any]) -> list[str]:
    """The served names of a ``num_models`` value ``v`` over the base tables ``d``."""
    if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= MAX_MODELS:
        raise ConfigError(
            _where(
                path,
                f"{name}: the number of models must be an integer in 1..{MAX_MODELS}, got {v!r}",
            )
        )
    base = d.get("models", {}).get("served")
    if base is None:
        base = list(Scenario().served_models)
    base = [base] if isinstance(base, str) else list(base)
    return served_names(base, v)


def read_grid(path: str | Path, base_overrides: dict[str, dict[str, Any]] | None = None) -> Grid:
    """Read and expand the grid file ``path`` (module docstring). ``base_overrides``
    (``{section: {key: value}}``, e.g. ``--max-requests``) are set on the base scenario
    before the axes (an axis over the same key still wins).

    Raises :class:`~sunsim.errors.ConfigError` (one line naming the file and key) for a
    missing or unreadable file, bad TOML, no or unknown ``[sweep]`` keys, a bad ``kind``,
    an axis that is not a non-empty list over a scenario key, an unknown key in a point, a
    ``[plan]`` table in a replay sweep, no points, or a value the scenario refuses.
    """
    p = Path(path)
    data = read_toml(p)
    sweep = data.pop("sweep", None)
    if not isinstance(sweep, dict):
        raise ConfigError(f"{p}: no [sweep] table; add [sweep] with kind and [sweep.axes]")
    unknown = sorted(set(sweep) - set(SWEEP_KEYS))
    if unknown:
        raise ConfigError(_where(p, f"{unknown[0]}: unknown key; known: {', '.join(SWEEP_KEYS)}"))
    kind = sweep.get("kind", "replay")
    if kind not in KINDS:
        raise ConfigError(_where(p, f'kind: expected "replay" or "plan", got {kind!r}'))
    for section, keys in (base_overrides or {}).items():
        if not isinstance(data.setdefault(section, {}), dict):
            raise ConfigError(f"{p}: '{section}' must be a table [{section}], not a value")
        data[section].update(keys)
    ptable = data.pop("plan", {})
    if ptable and kind != "plan":
        raise ConfigError(f'{p}: [plan]: plan options need [sweep] kind = "plan"')
    if not isinstance(ptable, dict):
        raise ConfigError(f"{p}: [plan] must be a table")
    raw_axes = sweep.get("axes", {})
    if not isinstance(raw_axes, dict):
        raise ConfigError(_where(p, "axes: expected a table [sweep.axes] of name = values"))
    axes = [_axis(p, n, spec) for n, spec in raw_axes.items()]
    tables = _point_tables(p, sweep.get("points", []))
    if not axes and not tables:
        raise ConfigError(_where(p, "axes: no points; add [sweep.axes] or [[sweep.points]]"))
    cols = _columns(p, axes, tables)
    scenario_from_toml_dict(data, source=str(p), base_dir=p.parent)  # the base alone first
    names = [a.name for a in axes]
    product = itertools.product(*(a.values for a in axes)) if axes else iter(())
    settings = [dict(zip(names, combo)) for combo in product]
    points = []
    for i, st in enumerate(settings + tables):
        what = ", ".join(f"{k} = {v!r}" for k, v in st.items())
        points.append(SweepPoint(i, st, _scenario(p, data, st, cols, f"[sweep] point {what}")))
    if kind == "plan":
        from sunsim.planner import plan_options_from_dict

        plan_options_from_dict(ptable, source=str(p))
    return Grid(p, kind, ptable, tuple(axes), cols, tuple(points))
