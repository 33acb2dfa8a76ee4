"""Checks of command-line values that are not scenario fields, run before any work starts.

Each check raises :class:`~sunsim.errors.ConfigError` with one line that names the option,
says what is wrong and how to fix it; the CLI prints it and exits with code 2. Nothing here
writes a file or creates a directory, and torch is imported only to ask whether CUDA exists
(:func:`check_device`, only for a CUDA device).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sunsim.errors import ConfigError

#: Largest seed: a 32-bit seed, as the scenario's ``[run] seed`` (numpy and torch take it).
MAX_SEED = 2**32 - 1
#: Most torch threads: torch starts one OS thread each; no machine sunsim runs on has more
#: than 1,024 hardware threads to give them.
MAX_THREADS = 1024


def _fail(option: str, problem: str) -> ConfigError:
    return ConfigError(f"{option}: {problem}")


def check_int(
    option: str, value: int | None, lo: int = 1, hi: int | None = None, why: str = ""
) -> None:
    """``value`` (None: not given, accepted) is an integer in ``[lo, hi]``; ``why`` says why
    ``hi`` is the bound."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(option, f"expected an integer, got {value!r}")
    if value < lo:
        raise _fail(option, f"must be >= {lo:,}, got {value:,}")
    if hi is not None and value > hi:
        raise _fail(option, f"must be <= {hi:,}{f' ({why})' if why else ''}, got {value:,}")


def check_seed(option: str, value: int | None) -> None:
    """A seed in ``[0, MAX_SEED]``."""
    check_int(option, value, 0, MAX_SEED, "a 32-bit seed")


def check_threads(option: str, value: int | None) -> None:
    """Torch threads in ``[1, MAX_THREADS]``."""
    check_int(option, value, 1, MAX_THREADS, "torch starts one OS thread each")


def check_number(
    option: str,
    value: float | None,
    lo: float = 0.0,
    hi: float | None = None,
    *,
    lo_open: bool = False,
    unit: str = "",
    why: str = "",
) -> None:
    """``value`` (None: accepted) is a finite number ``>= lo`` (``> lo`` when ``lo_open``) and
    ``<= hi``; ``unit`` is shown after the bounds (e.g. ``s``)."""
    if value is None:
        return
    u = f" {unit}" if unit else ""
    if not math.isfinite(value):
        raise _fail(option, f"expected a finite number{f' ({unit})' if unit else ''}, got {value}")
    if value < lo or (lo_open and value == lo):
        raise _fail(option, f"must be {'>' if lo_open else '>='} {lo:g}{u}, got {value:g}")
    if hi is not None and value > hi:
        raise _fail(option, f"must be <= {hi:g}{u}{f' ({why})' if why else ''}, got {value:g}")


def check_ints(
    option: str, values: Iterable[int] | None, lo: int, hi: int, why: str, most: int
) -> None:
    """Every item of a comma list in ``[lo, hi]``, and at most ``most`` items."""
    if values is None:
        return
    items = list(values)
    if len(items) > most:
        raise _fail(option, f"at most {most} values (each is a grid point), got {len(items)}")
    for v in items:
        check_int(option, v, lo, hi, why)


def check_choice(option: str, value: str, choices: Iterable[str], what: str = "value") -> str:
    """``value`` is one of ``choices`` (case-insensitive); returns it lower-cased. ``what``
    names the kind of value in the message (``unknown model 'x'``)."""
    known = list(choices)
    if value.lower() not in known:
        raise _fail(option, f"unknown {what} '{value}'; use one of: {', '.join(known)}")
    return value.lower()


def check_model(option: str, name: str) -> Any:
    """The built-in :class:`~sunsim.specs.ModelSpec` called ``name``."""
    from sunsim.specs import MODELS

    return MODELS[check_choice(option, name, MODELS, "model")]


def check_precision(option: str, name: str) -> str:
    """A weight precision name (``bf16``, ``w8a16``, ``w4a16``)."""
    from sunsim.specs import PRECISIONS

    return check_choice(option, name, PRECISIONS, "precision")


_DEVICE = re.compile(r"^(cpu|cuda|cuda:\d+)$")


def check_device(option: str, device: str, allow_auto: bool = False) -> str:
    """``cpu``, ``cuda``, ``cuda:N`` (or ``auto``); a CUDA device must exist: torch is
    imported, lazily, only to ask. Returns the device in lower case."""
    d = device.strip().lower()
    if allow_auto and d == "auto":
        return d
    if not _DEVICE.match(d):
        allowed = "cpu, cuda, cuda:N" + (" or auto" if allow_auto else "")
        raise _fail(option, f"unknown device '{device}'; use {allowed}")
    if d.startswith("cuda"):
        from sunsim.profiling._torch import require_torch

        torch = require_torch()
        if not torch.cuda.is_available():
            raise _fail(
                option,
                f"'{device}' but torch {torch.__version__} sees no CUDA device on this "
                "machine; use --device cpu, or run on a GPU machine with a CUDA build of torch",
            )
        n = torch.cuda.device_count()
        if ":" in d and int(d.split(":")[1]) >= n:
            raise _fail(option, f"'{device}' but this machine has {n} CUDA device(s) (0..{n - 1})")
    return d


def check_out_dir(option: str, out: Path) -> None:
    """``out`` can become a directory we write to: it is a writable directory, or does not
    exist and its nearest existing parent is a writable directory. Creates nothing."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise _fail(option, f"{out} exists and is not a directory; choose another {option}")
    _check_writable(option, out)


def check_out_file(option: str, out: Path) -> None:
    """``out`` can be written as a file: it is not a directory, and its parent directory
    exists and is writable (or it is a writable file). Creates nothing."""
    out = Path(out)
    if out.is_dir():
        raise _fail(option, f"{out} is a directory; give a file name such as {out / 'trace.csv'}")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise _fail(option, f"{parent} is not an existing directory; create it or choose another")
    if out.exists() and not os.access(out, os.W_OK):
        raise _fail(option, f"cannot write {out} (permission denied); choose another file")
    _check_writable(option, parent)


def _check_writable(option: str, d: Path) -> None:
    """The nearest existing ancestor of ``d`` (or ``d``) is a directory we may write in."""
    p = d.absolute()
    while not p.exists():
        p = p.parent
    if not p.is_dir():
        raise _fail(option, f"cannot create {d}: {p} is a file; choose another {option}")
    if not os.access(p, os.W_OK | os.X_OK):
        raise _fail(option, f"cannot write in {p} (permission denied); choose another {option}")


def memory_bytes() -> int | None:
    """Physical memory of this machine in bytes (None if the OS does not say)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None
