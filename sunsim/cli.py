"""The ``sunsim`` command line: each command parses, calls one library function, prints.

Bad input raises :class:`sunsim.errors.SunsimError`; the app prints its one-line message
to stderr and exits with code 2, without a traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from typer.core import TyperGroup

from sunsim.errors import SunsimError

console = Console()
err_console = Console(stderr=True)


class _Group(TyperGroup):
    """Turns :class:`SunsimError` raised by any (sub)command into one line and exit code 2."""

    def invoke(self, ctx):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except SunsimError as e:
            err_console.print(f"[bold red]error:[/] {e}", markup=True, highlight=False,
                              soft_wrap=True)
            raise typer.Exit(code=2) from None


def _typer(**kw) -> typer.Typer:
    return typer.Typer(cls=_Group, pretty_exceptions_enable=False, no_args_is_help=True,
                       add_completion=False, **kw)


app = _typer(help="Simulate and plan multi-LLM prefill/decode-disaggregated serving: "
                  "partitioned vs SUN vs QSUN decode.")
trace_app = _typer(help="Inspect and generate request traces.")
app.add_typer(trace_app, name="trace")


def main() -> None:
    """Console-script entry point."""
    app()


# --- commands are added below, one section per area -------------------------------------

