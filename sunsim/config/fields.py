"""Field building blocks of the scenario: strict value types, the per-field metadata (help,
unit, TOML section and key, command-line option) and the one-line wording of a bad value.

Every scenario field is declared once with :func:`setting`; the TOML layout
(:mod:`sunsim.config.toml`), the command-line options (:mod:`sunsim.cli.options`) and the
README table are all derived from that declaration (see :func:`field_meta`).
"""

from __future__ import annotations

import os
import types
import typing
from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
from pydantic import BeforeValidator, Field, Strict, ValidationError
from pydantic.fields import FieldInfo

from sunsim.errors import ConfigError


def _plain(v: Any) -> Any:
    """NumPy scalars as Python numbers (the planner passes them); everything else as is."""
    if isinstance(v, np.bool_):
        return bool(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    return v


def _path(v: Any) -> Any:
    """A path as an absolute string (``~`` expanded), so a saved scenario works from anywhere."""
    if isinstance(v, os.PathLike):
        v = os.fspath(v)
    if isinstance(v, str) and v:
        return os.path.abspath(os.path.expanduser(v))
    return v


#: An integer: a string, a float or a boolean is an error (no silent coercion).
Int = Annotated[int, Strict(), BeforeValidator(_plain)]
#: A finite number (an integer is accepted); a string or a boolean is an error.
Float = Annotated[float, Strict(), Field(allow_inf_nan=False), BeforeValidator(_plain)]
#: ``true`` or ``false`` only: ``"no"``, ``0`` and ``1`` are errors.
Bool = Annotated[bool, Strict(), BeforeValidator(_plain)]
#: A string.
Str = Annotated[str, Strict()]
#: A filesystem path, stored absolute.
PathStr = Annotated[str, Strict(), BeforeValidator(_path)]


def setting(
    default: Any,
    *,
    section: str,
    help: str,
    unit: str | None = None,
    key: str | None = None,
    option: str | None = None,
    aliases: tuple[str, ...] = (),
    what: str | None = None,
    reason: str | None = None,
    **constraints: Any,
) -> Any:
    """One scenario field: its default, help text and unit, its TOML ``[section]`` and
    ``key`` (default: the field name), its command-line ``option`` (default: ``--`` + the
    field name with dashes; ``"TRACE"`` for the positional argument), old TOML key
    ``aliases``, ``what`` it is (for "unknown GPU 'x'" messages), the ``reason`` for an upper
    bound, and pydantic
    ``constraints`` (``ge``, ``le``, ``gt``, ``min_length``...)."""
    extra: Any = {"section": section, "key": key, "unit": unit, "option": option}
    extra.update({"aliases": list(aliases), "what": what, "reason": reason})
    return Field(default, description=help, json_schema_extra=extra, **constraints)


@dataclass(frozen=True)
class FieldMeta:
    """What :func:`setting` recorded for one field, with the defaults filled in."""

    name: str
    section: str
    key: str
    help: str
    unit: str | None
    option: str
    aliases: tuple[str, ...]
    what: str
    reason: str
    default: Any
    info: FieldInfo
    choices: tuple[str, ...] = ()


def _literal_choices(ann: Any) -> tuple[str, ...]:
    """The values of a ``Literal`` in ``ann`` (also inside ``| None``, ``Annotated`` and
    ``tuple[...]``); () if there is none."""
    origin = typing.get_origin(ann)
    if origin is typing.Literal:
        return tuple(str(a) for a in typing.get_args(ann))
    if origin in (typing.Union, types.UnionType, typing.Annotated, tuple):
        for a in typing.get_args(ann):
            found = _literal_choices(a)
            if found:
                return found
    return ()


def field_meta(name: str, info: FieldInfo) -> FieldMeta:
    """The :class:`FieldMeta` of field ``name`` (raises KeyError if it was not declared with
    :func:`setting`)."""
    extra = info.json_schema_extra
    assert isinstance(extra, dict), name
    return FieldMeta(
        name=name,
        section=str(extra["section"]),
        key=str(extra["key"] or name),
        help=info.description or "",
        unit=extra["unit"] and str(extra["unit"]),  # type: ignore[arg-type]
        option=str(extra["option"] or "--" + name.replace("_", "-")),
        aliases=tuple(extra["aliases"] or ()),  # type: ignore[arg-type]
        what=str(extra["what"] or name.replace("_", " ")),
        reason=str(extra["reason"] or ""),
        default=info.default,
        info=info,
        choices=_literal_choices(info.annotation),
    )


class ScenarioFieldError(ConfigError):
    """One scenario field has a bad value. ``field`` names it; ``problem`` says what is wrong
    (one line). ``str()`` is ``"<field>: <problem>"``; the TOML reader and the CLI re-word it
    with the file and key or the option."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


def _shown(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple, dict)):
        return repr(v)
    return repr(v) if isinstance(v, str) else str(v)


_EXPECTED = {
    "int_type": "an integer",
    "float_type": "a number",
    "bool_type": "true or false",
    "string_type": "a string",
    "tuple_type": "a list",
    "dict_type": "a table",
    "finite_number": "a finite number",
}
_BOUND = {
    "greater_than": (">", "gt"),
    "greater_than_equal": (">=", "ge"),
    "less_than": ("<", "lt"),
    "less_than_equal": ("<=", "le"),
}


def describe_error(err: Any, meta: FieldMeta | None) -> str:
    """One line for one pydantic error ``err`` of a field (``meta``): what was expected and
    what was given, e.g. ``expected an integer, got '256'`` or ``must be >= 1, got 0``.
    The field's ``reason`` is appended to upper-bound errors (why the bound exists)."""
    kind, got = err["type"], err.get("input")
    ctx = err.get("ctx") or {}
    where = ""
    if len(err.get("loc", ())) > 1 and isinstance(err["loc"][1], int):
        where = f"item {err['loc'][1] + 1}: "
    if kind in _EXPECTED:
        return f"{where}expected {_EXPECTED[kind]}, got {_shown(got)}"
    if kind in _BOUND:
        op, k = _BOUND[kind]
        reason = meta.reason if meta else ""
        tail = f" ({reason})" if reason and op.startswith("<") else ""
        lim = ctx.get(k)
        lim = f"{lim:g}" if isinstance(lim, float) else lim
        return f"{where}must be {op} {lim}, got {_shown(got)}{tail}"
    if kind == "literal_error":
        what = meta.what if meta else "value"
        choices = str(ctx.get("expected", "")).replace("'", "").replace(" or ", ", ")
        return f"unknown {what} {_shown(got)}; choose from {choices}"
    if kind in ("too_short", "too_long"):
        n = ctx.get("actual_length")
        lim = ctx.get("min_length") if kind == "too_short" else ctx.get("max_length")
        word = "at least" if kind == "too_short" else "at most"
        return f"expected {word} {lim} item(s), got {n}"
    return f"{err.get('msg', 'bad value')}, got {_shown(got)}"


def one_line_errors(cls: Any, values: Any, handler: Any) -> Any:
    """Run pydantic's validation ``handler(values)`` of dataclass ``cls``, turning its first
    error into one line naming the field: :class:`ScenarioFieldError`, or
    :class:`~sunsim.errors.ConfigError` for an unknown field (a wrap model validator)."""
    try:
        return handler(values)
    except ValidationError as e:
        err = e.errors()[0]
        name = str(err["loc"][0]) if err.get("loc") else "scenario"
        info = cls.__pydantic_fields__.get(name)
        meta = field_meta(name, info) if info is not None else None
        if err["type"] == "unexpected_keyword_argument":
            raise ConfigError(f"unknown scenario field '{name}'") from None
        if err["type"] == "value_error" and meta is not None:
            what = str(err["ctx"]["error"])
            raise ScenarioFieldError(name, f"{what}, got {err['input']}") from None
        raise ScenarioFieldError(name, describe_error(err, meta)) from None
