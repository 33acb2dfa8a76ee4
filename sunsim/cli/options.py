"""The command-line options of the scenario, declared once: generated from the fields of
:class:`~sunsim.config.Scenario` (name, option, type, help, unit, choices, default).

``replay`` and ``plan`` use :func:`scenario_options`, which adds the ``TRACE`` argument,
``--scenario FILE`` and one option per scenario field to the command's own parameters, and
passes the command a :class:`ScenarioInputs`. :func:`build_scenario` reads the file (if
any) and applies the options given on the command line on top of it; a bad value is one
:class:`~sunsim.errors.ConfigError` line naming the option.
"""

from __future__ import annotations

import functools
import inspect
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer

from sunsim.cli.format import split_list
from sunsim.config import MODES, FieldMeta, Scenario, ScenarioFieldError, scenario_fields
from sunsim.errors import ConfigError


@dataclass(frozen=True)
class ScenarioInputs:
    """What the command line said about the scenario: the ``--scenario`` file (None: none)
    and the scenario options given, as typed (field name -> value; not-given options are
    absent)."""

    file: Path | None
    given: dict[str, Any] = field(default_factory=dict)


# --- what kind of option a field is ----------------------------------------------------------


def _strip(ann: Any) -> tuple[Any, bool]:
    """``ann`` without ``| None`` and ``Annotated``; and whether None was allowed."""
    optional = False
    if typing.get_origin(ann) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(ann) if a is not type(None)]
        optional, ann = True, args[0]
    while typing.get_origin(ann) is typing.Annotated:
        ann = typing.get_args(ann)[0]
    return ann, optional


def _kind(meta: FieldMeta) -> tuple[str, Any]:
    """(kind, item type): kind is int, float, bool, str, choice, list, pair or map."""
    ann, _ = _strip(meta.info.annotation)
    if typing.get_origin(ann) is tuple:
        args = typing.get_args(ann)
        item, _ = _strip(args[0])
        if typing.get_origin(item) is tuple:
            value, _ = _strip(typing.get_args(item)[1])
            return "map", (float if value is float else str)
        return ("list" if args[-1] is Ellipsis else "pair"), item
    if typing.get_origin(ann) is typing.Literal:
        return "choice", ann
    return {int: "int", float: "float", bool: "bool"}.get(ann, "str"), ann


def _metavar(meta: FieldMeta) -> str | None:
    kind, item = _kind(meta)
    if kind == "choice":
        return "[" + "|".join(meta.choices) + "]"
    if kind == "map":
        return "GPU=USD,..." if item is float else "SRC=SERVED,..."
    if kind == "pair":
        return "START,END"
    if kind == "list":
        if meta.choices:
            return "[" + "|".join(meta.choices) + "|all],..."
        return {int: "N,...", float: "X,..."}.get(item, "NAME,...")
    return None


def _shown_default(meta: FieldMeta) -> str | bool:
    v = meta.default
    if v is None:
        return False
    if isinstance(v, tuple):
        return "all" if v == MODES else ",".join(map(str, v))
    if isinstance(v, bool):
        return str(v).lower()
    return str(v)


def _help(meta: FieldMeta, text: str | None) -> str:
    help_ = text or meta.help
    bounds = _bounds(meta)
    unit = f"{meta.unit}" if meta.unit else ""
    extra = "; ".join(x for x in (unit, bounds) if x)
    return f"{help_} ({extra})" if extra else help_


def _bounds(meta: FieldMeta) -> str:
    ops = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
    parts = []
    for m in meta.info.metadata:
        for k, op in ops.items():
            v = getattr(m, k, None)
            if v is not None:
                parts.append(f"{op} {v:g}" if isinstance(v, float) else f"{op} {v}")
    return " and ".join(parts)


# --- the typer parameters ----------------------------------------------------------------------


def _parameter(meta: FieldMeta, help_text: str | None) -> inspect.Parameter:
    kind, _ = _kind(meta)
    if meta.option == "TRACE":
        info = typer.Argument(None, help=meta.help, show_default=False, metavar="[TRACE]")
        ann: Any = Path | None
    else:
        names = [meta.option]
        if kind == "bool":
            names = [f"{meta.option}/--no-{meta.option[2:]}"]
        info = typer.Option(
            None,
            *names,
            help=_help(meta, help_text),
            show_default=_shown_default(meta),
            metavar=_metavar(meta),
        )
        ann = {"int": int, "float": float, "bool": bool}.get(kind, str) | None
    return inspect.Parameter(
        meta.name, inspect.Parameter.KEYWORD_ONLY, default=info, annotation=ann
    )


def _scenario_file_parameter(help_text: str) -> inspect.Parameter:
    info = typer.Option(None, "--scenario", help=help_text, show_default=False)
    return inspect.Parameter(
        "scenario", inspect.Parameter.KEYWORD_ONLY, default=info, annotation=Path | None
    )


def scenario_options(
    scenario_help: str = "Scenario TOML; options given on the command line override it.",
    help_overrides: Mapping[str, str] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a command whose first parameter is ``inputs: ScenarioInputs``: the command
    gets the ``TRACE`` argument, ``--scenario`` and one option per :class:`Scenario` field
    (``help_overrides``: field -> help text for this command), then its own parameters."""
    fields = scenario_fields()
    overrides = dict(help_overrides or {})

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        own = [p for p in inspect.signature(fn, eval_str=True).parameters.values()]
        own = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own if p.name != "inputs"]
        params = [_parameter(fields["trace"], None), _scenario_file_parameter(scenario_help)]
        params += [_parameter(m, overrides.get(n)) for n, m in fields.items() if n != "trace"]
        params += own

        @functools.wraps(fn)
        def command(**kw: Any) -> Any:
            file = kw.pop("scenario")
            given = {n: v for n in fields if (v := kw.pop(n)) is not None}
            return fn(inputs=ScenarioInputs(file, given), **kw)

        del command.__wrapped__
        command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params}
        return command

    return decorate


# --- from the command line to a Scenario -----------------------------------------------------


def _model_map(value: str, option: str) -> tuple[tuple[str, str], ...]:
    pairs = []
    for item in value.split(","):
        if "=" not in item:
            raise ConfigError(f"{option}: '{item}' is not SOURCE=SERVED (e.g. ChatGPT=math)")
        a, b = item.split("=", 1)
        pairs.append((a.strip(), b.strip()))
    return tuple(pairs)


def _prices(pairs: tuple[tuple[str, str], ...], option: str) -> tuple[tuple[str, float], ...]:
    try:
        return tuple((k, float(v)) for k, v in pairs)
    except ValueError:
        got = ",".join(f"{k}={v}" for k, v in pairs)
        raise ConfigError(f"{option}: expected GPU=DOLLARS (e.g. h100=2.5), got '{got}'") from None


def parse_option(meta: FieldMeta, value: Any) -> Any:
    """The field value of an option as typed: comma lists split and their items read;
    ``--mode all`` is every design; paths as strings. Raises a one-line ConfigError."""
    kind, item = _kind(meta)
    if isinstance(value, Path):
        return str(value)
    if kind == "map":
        pairs = _model_map(value, meta.option)
        return _prices(pairs, meta.option) if item is float else pairs
    if kind in ("list", "pair"):
        if kind == "list" and meta.name == "modes" and value.strip() == "all":
            return MODES
        conv = item if item in (int, float) else str
        items = split_list(value, meta.option, conv)
        if kind == "pair" and len(items or ()) != 2:
            raise ConfigError(f"{meta.option}: takes START,END in seconds, got '{value}'")
        return items
    return value


def build_scenario(inputs: ScenarioInputs, base: Scenario | None = None) -> Scenario:
    """The scenario of the ``--scenario`` file (or ``base``, or the defaults) with the
    options given on the command line applied on top.

    Raises:
        ConfigError: one line naming the file and key, or the option, that is wrong.
    """
    from sunsim.config import load_scenario

    if base is None:
        base = load_scenario(inputs.file) if inputs.file is not None else Scenario()
    fields = scenario_fields()
    changes = {n: parse_option(fields[n], v) for n, v in inputs.given.items()}
    try:
        return base.replace(**changes)
    except ScenarioFieldError as e:
        meta = fields.get(e.field)
        if meta is None or e.field not in changes:
            raise
        name = "TRACE" if meta.option == "TRACE" else meta.option
        raise ConfigError(f"{name}: {e.problem}") from None


# --- options shared by commands that are not scenario fields -----------------------------------


def out_option(default: str) -> Any:
    """``--out DIR`` (the run or plan directory)."""
    return typer.Option(None, "--out", "-o", help=f"Output directory (default: {default})")


def force_option() -> Any:
    """``--force``: write into an ``--out`` that already holds a run."""
    return typer.Option(
        False, "--force", help="Write into an --out directory that already holds a run."
    )


def progress_option() -> Any:
    """``--progress/--no-progress``."""
    return typer.Option(True, "--progress/--no-progress", help="Show a progress bar on stderr.")
