"""Output helpers of the CLI: the consoles, tables, one-line prints and list parsing.

Only the CLI prints; library functions return values.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from rich.console import Console

from sunsim.errors import ConfigError

console = Console()
err_console = Console(stderr=True)


def say(text: str, *, markup: bool = True) -> None:
    """Print one line (no syntax highlighting; long lines wrap softly)."""
    console.print(text, highlight=False, soft_wrap=True, markup=markup)


def command_line() -> str:
    """The command as typed (for provenance in written files)."""
    return "sunsim " + " ".join(sys.argv[1:])


def print_table(df: Any, title: str) -> None:
    """Print a DataFrame as a rich table: the index as the first column, values as text."""
    from rich.table import Table

    t = Table(title=title, title_justify="left")
    t.add_column("")
    for c in df.columns:
        t.add_column(str(c), justify="right")
    for idx, row in df.iterrows():
        t.add_row(str(idx), *[str(v) for v in row.tolist()])
    console.print(t)


def split_list(value: str | None, option: str, conv: Callable[[str], Any] = str) -> tuple | None:
    """Parse ``a,b,c`` given to ``option`` (None = not given).

    Raises:
        ConfigError: one line naming ``option`` for an empty list or an item ``conv``
            cannot read.
    """
    if value is None:
        return None
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise ConfigError(f"{option}: empty list")
    names = {int: "integers", float: "numbers"}
    try:
        return tuple(conv(v) for v in items)
    except ValueError:
        what = names.get(conv, f"{getattr(conv, '__name__', 'value')} values")  # type: ignore[call-overload]
        raise ConfigError(f"{option}: expected {what} separated by commas, got '{value}'") from None


def progress_bar(count: str | None = None, *, enabled: bool = True, width: int = 0) -> Any:
    """The commands' progress bar on stderr (a :class:`rich.progress.Progress`, cleared when
    done): description (right-aligned in ``width`` characters when given), bar, ``count``
    (a rich format such as ``"{task.completed}/{task.total} rows"``; default ``N/M``) and
    elapsed time. ``enabled`` False shows nothing."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    desc = TextColumn(f"{{task.description:>{width}}}" if width else "{task.description}")
    counter = MofNCompleteColumn() if count is None else TextColumn(count)
    return Progress(
        desc,
        BarColumn(),
        counter,
        TimeElapsedColumn(),
        console=err_console,
        disable=not enabled,
        transient=True,
    )
