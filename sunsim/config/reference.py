"""The scenario's reference table (Markdown), generated from the fields: for the README and
``docs/``, so the documented options, TOML keys, units and defaults cannot disagree with the
code. Print it with ``python -m sunsim.config.reference``."""

from __future__ import annotations

from typing import Any

from sunsim.config.choices import MODES
from sunsim.config.scenario import scenario_fields


def _default(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, tuple):
        return "all" if v == MODES else ",".join(map(str, v))
    if isinstance(v, bool):
        return str(v).lower()
    return str(v)


def scenario_markdown_table() -> str:
    """One row per scenario field: command-line option, ``[section] key`` of the scenario
    TOML, meaning, unit and default (Markdown, ``|`` escaped)."""
    rows = [
        "| option | scenario TOML | meaning | unit | default |",
        "|---|---|---|---|---|",
    ]
    for m in scenario_fields().values():
        option = "`TRACE` (argument)" if m.option == "TRACE" else f"`{m.option}`"
        cells = [
            option,
            f"`[{m.section}] {m.key}`",
            (m.help + (f" One of: {', '.join(m.choices)}." if m.choices else "")).replace(
                "|", "\\|"
            ),
            m.unit or "",
            _default(m.default) or "-",
        ]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":  # pragma: no cover
    print(scenario_markdown_table(), end="")
