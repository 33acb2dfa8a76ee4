"""The scenario: what a replay or a plan simulates, as a user writes it.

Owns:

* :class:`Scenario` (:mod:`sunsim.config.scenario`): a frozen, validated pydantic dataclass
  whose fields each carry help text, unit, TOML section/key and command-line option; the
  choices (designs, routers, GPUs, models, trace formats, latency sources, qsun precisions)
  come from their registries. ``dataclasses.replace(s, ...)`` and ``s.replace(...)`` both
  return a validated copy.
* the field building blocks and the one-line wording of bad values
  (:mod:`sunsim.config.fields`);
* the one TOML reader and writer of scenarios (:mod:`sunsim.config.toml`):
  :func:`load_scenario`, :func:`scenario_from_toml_dict`, :func:`scenario_to_toml_dict`,
  :func:`read_toml`, :func:`write_toml`, with the layout derived from the fields;
* the reference table of the settings for the README and docs
  (:func:`~sunsim.config.reference.scenario_markdown_table`).

It does not own model/GPU/link/SLO specs (:mod:`sunsim.specs`), the cluster spec
(:mod:`sunsim.engine.spec`), plan options (:mod:`sunsim.planner`) or CLI parsing
(:mod:`sunsim.cli`), which derives its options from :func:`scenario_fields`.
"""

from sunsim.config.choices import DEFAULT_MODES, MAX_WORKERS, MODES
from sunsim.config.fields import FieldMeta, ScenarioFieldError
from sunsim.config.scenario import Scenario, scenario_fields
from sunsim.config.toml import (
    SCENARIO_TOML,
    SECTIONS,
    load_scenario,
    read_toml,
    scenario_from_toml_dict,
    scenario_to_toml_dict,
    toml_layout,
    write_toml,
)

__all__ = [
    "DEFAULT_MODES",
    "MAX_WORKERS",
    "MODES",
    "SCENARIO_TOML",
    "SECTIONS",
    "FieldMeta",
    "Scenario",
    "ScenarioFieldError",
    "load_scenario",
    "read_toml",
    "scenario_fields",
    "scenario_from_toml_dict",
    "scenario_to_toml_dict",
    "toml_layout",
    "write_toml",
]
