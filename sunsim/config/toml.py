"""The one TOML reader and writer of scenarios (tomllib + tomli_w).

The layout (``[section]`` -> key -> field) is derived from the fields' metadata
(:func:`~sunsim.config.scenario.scenario_fields`), never written by hand:

* ``[trace]`` path, format, keep_failed, window_s, rate_scale, max_requests
* ``[workload]`` max_concurrency, num_prompts, input_len, output_len, range_ratio (closed loop);
  session_arrivals, think_time_s (a trace's sessions as closed loops)
* ``[models]`` base, served, zipf, shares, map
* ``[cluster]`` modes, gpu, workers, engine limits, routers, link
* ``[slo]`` ttft_s, tpot_s, attainment; ``[cost]`` gpu_hour_usd; ``[latency]`` source,
  profile; ``[run]`` seed

Old keys stay readable: ``kv_block_tokens`` (now ``block_size``) and ``max_batch_tokens``
(now ``max_num_batched_tokens``). Relative paths in a file resolve against the file's
directory; paths are written absolute, so a run's ``scenario.toml`` reproduces from anywhere.
Every error is a one-line :class:`~sunsim.errors.ConfigError` naming the file and key.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import tomli_w

from sunsim.config.fields import FieldMeta, ScenarioFieldError
from sunsim.config.scenario import Scenario, scenario_fields
from sunsim.errors import ConfigError

#: Section order of a written scenario file.
SECTIONS = ("trace", "workload", "models", "cluster", "slo", "cost", "latency", "run")
_PATH_FIELDS = ("trace", "profile")


def toml_layout() -> dict[str, dict[str, FieldMeta]]:
    """``{section: {key: FieldMeta}}`` in file order (old alias keys not included)."""
    out: dict[str, dict[str, FieldMeta]] = {s: {} for s in SECTIONS}
    for meta in scenario_fields().values():
        out.setdefault(meta.section, {})[meta.key] = meta
    return out


def _aliases() -> dict[tuple[str, str], FieldMeta]:
    return {(m.section, a): m for m in scenario_fields().values() for a in m.aliases}


#: ``{section: {key: field name}}``, as the hand-written map of old (kept for callers).
SCENARIO_TOML = {s: {k: m.name for k, m in keys.items()} for s, keys in toml_layout().items()}


def scenario_to_toml_dict(s: Scenario) -> dict[str, dict[str, Any]]:
    """The scenario as nested TOML tables (None values left out; every section present)."""
    out: dict[str, dict[str, Any]] = {}
    for section, keys in toml_layout().items():
        table: dict[str, Any] = {}
        for key, meta in keys.items():
            v = getattr(s, meta.name)
            if v is None:
                continue
            if meta.name in ("model_map", "gpu_hour_usd"):
                v = dict(v)
            elif isinstance(v, tuple):
                v = list(v)
            table[key] = v
        out[section] = table
    return out


def _field_of(section: str, key: str, layout: dict, aliases: dict, source: str) -> FieldMeta:
    meta = layout[section].get(key) or aliases.get((section, key))
    if meta is None:
        raise ConfigError(
            f"{source}: unknown key '{key}' in [{section}]; known: {', '.join(layout[section])}"
        )
    return meta


def _changes(d: Mapping[str, Any], source: str, base_dir: Path) -> dict[str, tuple[Any, str]]:
    """Field name -> (value, "[section] key") of the tables in ``d``."""
    layout, aliases = toml_layout(), _aliases()
    changes: dict[str, tuple[Any, str]] = {}
    for section, table in d.items():
        if section not in layout:
            raise ConfigError(f"{source}: unknown section [{section}]; known: {', '.join(layout)}")
        if not isinstance(table, Mapping):
            raise ConfigError(f"{source}: '{section}' must be a table [{section}], not a value")
        for key, v in table.items():
            meta = _field_of(section, key, layout, aliases, source)
            where = f"[{section}] {key}"
            if meta.name in changes:
                raise ConfigError(f"{source}: {where}: {meta.key} is set twice (old and new key)")
            if meta.name in _PATH_FIELDS and isinstance(v, str) and v:
                v = os.path.join(base_dir, os.path.expanduser(v))
            changes[meta.name] = (v, where)
    return changes


def scenario_from_toml_dict(
    d: Mapping[str, Any],
    source: str = "scenario",
    base: Scenario | None = None,
    base_dir: str | os.PathLike[str] | None = None,
) -> Scenario:
    """Build a :class:`Scenario` from nested TOML tables, on top of ``base``.

    ``source`` names the file in messages. Relative ``[trace] path`` and ``[latency]
    profile`` resolve against ``base_dir``; by default the directory of ``source`` when it
    names an existing file, else the current directory.

    Raises:
        ConfigError: one line naming ``source`` and the ``[section] key`` for an unknown
            section or key, a wrong type or a value out of range (e.g. ``scenario.toml:
            [cluster] max_num_seqs: expected an integer, got '256'``), or an impossible
            combination.
    """
    if base_dir is None:
        p = Path(source)
        base_dir = p.parent if p.is_file() else Path.cwd()
    changes = _changes(d, source, Path(base_dir).absolute())
    try:
        return (base or Scenario()).replace(**{k: v for k, (v, _) in changes.items()})
    except ScenarioFieldError as e:
        where = changes[e.field][1] if e.field in changes else e.field
        raise ConfigError(f"{source}: {where}: {e.problem}") from None
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None


def read_toml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The tables of a TOML file. Raises :class:`ConfigError` in one line for a missing or
    unreadable file or a syntax error (with its line and column)."""
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"{p}: a directory; give its scenario.toml")
    if not p.is_file():
        raise ConfigError(f"{p}: no such scenario file")
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{p}: cannot read: {e}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p}: not valid TOML: {str(e).splitlines()[0]}") from None


def write_toml(path: str | os.PathLike[str], data: Mapping[str, Any], header: str = "") -> Path:
    """Write ``data`` as TOML to ``path`` (``header`` lines first, as ``#`` comments)."""
    p = Path(path)
    lines = "".join(f"# {h}\n" for h in header.splitlines())
    p.write_text(lines + tomli_w.dumps(dict(data)))
    return p


def load_scenario(path: str | os.PathLike[str], base: Scenario | None = None) -> Scenario:
    """Read a scenario file (relative paths in it resolve against its directory).

    Raises:
        ConfigError: one line for a missing file, bad TOML, unknown section or key, a bad
            value, or a ``[plan]`` table (a plan scenario: run it with ``sunsim plan``).
    """
    data = read_toml(path)
    if "plan" in data:
        p = Path(path)
        raise ConfigError(
            f"{p}: a plan scenario (it has a [plan] table); rerun it with "
            f"'sunsim plan --scenario {p}', or replay one mode's planned cluster with "
            f"'sunsim replay --scenario {p.parent}/replay_<mode>/scenario.toml'"
        )
    return scenario_from_toml_dict(data, source=str(path), base=base, base_dir=Path(path).parent)
