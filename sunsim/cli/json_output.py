"""``--json`` for ``sunsim replay`` and ``sunsim plan``: the machine-readable summary
(:mod:`sunsim.runs.results_json`) on stdout and nothing else there; every human line goes
to stderr meanwhile."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from typing import Any

import typer

from sunsim.cli.format import console


def json_option() -> Any:
    """``--json``."""
    return typer.Option(
        False,
        "--json",
        help="Print the machine-readable summary (vLLM's metric names, schema_version) as "
        "JSON on stdout; the tables go to stderr.",
    )


@contextlib.contextmanager
def json_mode(on: bool) -> Iterator[None]:
    """While ``on``, the console (tables, notes) writes to stderr instead of stdout."""
    if not on:
        yield
        return
    console.file = sys.stderr
    try:
        yield
    finally:
        console.file = None  # type: ignore[assignment]  # back to sys.stdout


def print_json(summary: dict[str, Any]) -> None:
    """``summary`` as indented JSON on stdout (NaN already null)."""
    sys.stdout.write(json.dumps(summary, indent=2, allow_nan=False) + "\n")
    sys.stdout.flush()
