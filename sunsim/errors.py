"""Errors for bad user input.

Every error a user can cause by what they pass in (a trace, a scenario, a profile, a CLI
option) is a :class:`SunsimError`. Its message is one line that says what is wrong, where
(file, row, column where they apply) and how to fix it. The CLI prints it and exits with
code 2, without a traceback.
"""

from __future__ import annotations


class SunsimError(Exception):
    """Bad input that the user can fix. The message is one line."""


class TraceError(SunsimError):
    """A trace file that cannot be read: missing column, bad value, unknown format, empty file."""


class ConfigError(SunsimError):
    """An impossible or unknown setting: unknown model or GPU, bad worker counts, bad SLO."""


class ProfileError(SunsimError):
    """A latency profile that is missing, malformed, or for another model/precision/device."""


def where(path: object = None, row: int | None = None, column: str | None = None) -> str:
    """Format a location prefix such as ``trace.csv: row 12, column 'ContextTokens': ``.

    ``row`` is the 1-based data row (the header is not counted), as a user sees it
    in a spreadsheet below the header.
    """
    parts = []
    if path is not None:
        parts.append(str(path))
    loc = []
    if row is not None:
        loc.append(f"row {row}")
    if column is not None:
        loc.append(f"column '{column}'")
    if loc:
        parts.append(", ".join(loc))
    return ": ".join(parts) + (": " if parts else "")
