"""The typer application: the error-to-exit-2 group, ``main``, ``--version``.

Bad input raises :class:`sunsim.errors.SunsimError` (or a bad option type, which click
reports as ``BadParameter``); the group prints one line to stderr and exits with code 2,
without a traceback.
"""

from __future__ import annotations

from typing import Any

import typer
from rich.markup import escape
from typer.core import TyperGroup

from sunsim import __version__
from sunsim.cli.format import err_console
from sunsim.errors import SunsimError


def _one_line_error(message: str) -> typer.Exit:
    err_console.print(
        f"[bold red]error:[/] {escape(message)}", markup=True, highlight=False, soft_wrap=True
    )
    return typer.Exit(code=2)


class ErrorsExit2Group(TyperGroup):
    """Turns :class:`SunsimError` raised by any (sub)command, and a bad option value, into
    one line on stderr and exit code 2."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except SunsimError as e:
            raise _one_line_error(str(e)) from None
        except typer.BadParameter as e:
            raise _one_line_error(e.format_message()) from None


def make_typer(**kw: Any) -> typer.Typer:
    """A typer app (or sub-app) with the one-line error group and no completion commands."""
    return typer.Typer(
        cls=ErrorsExit2Group,
        pretty_exceptions_enable=False,
        no_args_is_help=True,
        add_completion=False,
        **kw,
    )


app = make_typer(
    help="Simulate and plan multi-LLM prefill/decode-disaggregated serving: "
    "partitioned vs SUN vs QSUN decode."
)


def _print_version(value: bool) -> None:
    if value:
        from sunsim.build_info import engine_build

        typer.echo(f"sunsim {__version__} (engine: {engine_build()})")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False,
        "--version",
        is_eager=True,
        callback=_print_version,
        help="Print the version and the engine build (pure Python or compiled) and exit.",
    ),
) -> None:
    pass


def main() -> None:
    """Console-script entry point."""
    app()
