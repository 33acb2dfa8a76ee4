"""The profile format: the one writer and reader of a profile directory.

A profile directory ``<root>/<device-slug>/<model>/<precision>/`` holds

* ``decode.csv``: :data:`DECODE_COLUMNS` (one row per grid point: batch size B, context
  tokens per request c, B x c, and the step time in seconds: median, p10, p90 over
  ``repeats``), optionally any of :data:`EXTRA_COLUMNS`;
* ``prefill.csv`` (BF16 only: QSUN's prefill stays BF16, so W8A16/W4A16 profiles are
  decode-only): :data:`PREFILL_COLUMNS` (B prompts of L tokens each, B x L, times), plus
  optional :data:`EXTRA_COLUMNS`;
* ``meta.json``: a :class:`ProfileMeta` (how, where and on what it was measured).

Times are seconds for the full model (runs of fewer layers already scaled, as ``meta.json``
``scaling`` says). ``meta.json`` ``fit_statistic`` names the column the latency model is fitted
to (:data:`FIT_STATISTICS`). Writers (``sunsim profile``, ``sunsim validate engine``) call
:func:`write_profile_dir`; readers call :func:`read_profile_dir`. Both validate everything
and raise :class:`~sunsim.errors.ProfileError` with one line naming the file, row and column.
The schema (:class:`ProfileMeta`) and the table checks live in
:mod:`sunsim.latency.profile_meta` and :mod:`sunsim.latency.profile_tables`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from sunsim.errors import ProfileError
from sunsim.latency.profile_meta import (
    FIT_STATISTICS,
    META_KEYS,
    SCHEMA_VERSION,
    ProfileMeta,
    model_spec_of,
    time_column,
)
from sunsim.latency.profile_tables import (
    DECODE_COLUMNS,
    ENGINE_EXTRA_COLUMNS,
    EXTRA_COLUMNS,
    MIN_ROWS,
    PREFILL_COLUMNS,
    check_table,
    table_points,
)
from sunsim.specs import get_precision

__all__ = [
    "DECODE_COLUMNS",
    "ENGINE_EXTRA_COLUMNS",
    "EXTRA_COLUMNS",
    "FIT_STATISTICS",
    "META_KEYS",
    "MIN_ROWS",
    "PREFILL_COLUMNS",
    "SCHEMA_VERSION",
    "ProfileMeta",
    "check_table",
    "model_spec_of",
    "profile_subdir",
    "read_csv_table",
    "read_meta",
    "read_profile_dir",
    "table_points",
    "time_column",
    "write_profile_dir",
]

FLOAT_FORMAT = "%.6g"


def profile_subdir(root: str | Path, meta: ProfileMeta | dict[str, Any]) -> Path:
    """``<root>/<device_slug>/<model>/<precision>`` for ``meta``."""
    m = meta if isinstance(meta, ProfileMeta) else ProfileMeta.from_dict(meta)
    return Path(root) / m.device_slug / m.model / m.precision


def write_profile_dir(
    root: str | Path,
    prefill: pd.DataFrame | None,
    decode: pd.DataFrame,
    meta: ProfileMeta | dict[str, Any],
    *,
    force: bool = True,
) -> Path:
    """Validate and write a profile under ``root/<device_slug>/<model>/<precision>/``.

    ``decode``/``prefill``: DataFrames with :data:`DECODE_COLUMNS` / :data:`PREFILL_COLUMNS`
    (plus any of :data:`EXTRA_COLUMNS`), times in seconds; ``prefill`` None for a decode-only
    profile (a stale ``prefill.csv`` there is removed). Floats are written as ``%.6g``.

    Returns the directory. Raises:
        ProfileError: a bad ``meta`` or table (nothing is written), or, with ``force=False``,
            a full (non-quick) profile already there.
    """
    m = meta if isinstance(meta, ProfileMeta) else ProfileMeta.from_dict(meta, source="meta")
    d = profile_subdir(root, m)
    model_spec_of(m, d / "meta.json")
    col = time_column(m)
    dec = check_table(decode, "decode", d / "decode.csv", col)
    pre = check_table(prefill, "prefill", d / "prefill.csv", col) if prefill is not None else None
    meta_path = d / "meta.json"
    if meta_path.exists() and not force and not m.quick:
        raise ProfileError(
            f"{d} already holds a profile; pass --force to replace it, or --out another directory"
        )
    try:
        d.mkdir(parents=True, exist_ok=True)
        dec.to_csv(d / "decode.csv", index=False, float_format=FLOAT_FORMAT)
        if pre is not None:
            pre.to_csv(d / "prefill.csv", index=False, float_format=FLOAT_FORMAT)
        elif (d / "prefill.csv").exists():
            (d / "prefill.csv").unlink()
        meta_path.write_text(json.dumps(m.to_dict(), indent=2) + "\n", encoding="utf-8")
    except OSError as e:
        raise ProfileError(f"{d}: cannot write the profile ({e}); pass another --out") from None
    return d


def read_meta(d: str | Path) -> ProfileMeta:
    """The validated ``meta.json`` of profile directory ``d``.

    Raises ProfileError: missing file, not JSON, not an object, a missing key, a value of the
    wrong type or range (one line naming the key).
    """
    path = Path(d) / "meta.json"
    if not path.is_file():
        raise ProfileError(
            f"{path}: missing; a profile directory needs meta.json, decode.csv "
            "and (bf16) prefill.csv, as `sunsim profile` writes them"
        )
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ProfileError(f"{path}: not valid JSON ({first}); re-run `sunsim profile`") from None
    meta = ProfileMeta.from_dict(raw, source=path)
    model_spec_of(meta, path)  # a model_spec sunsim cannot use is an error here, not later
    return meta


def read_csv_table(path: Path, kind: str, time_col: str) -> pd.DataFrame:
    """``decode.csv`` or ``prefill.csv`` (``kind``), validated (:func:`check_table`)."""
    if not path.is_file():
        raise ProfileError(f"{path}: missing; re-run `sunsim profile` for this model and precision")
    try:
        df = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise ProfileError(f"{path}: empty file; re-run `sunsim profile`") from None
    except Exception as e:  # pandas raises several parser and decoding errors
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ProfileError(f"{path}: cannot read CSV ({first}); re-run `sunsim profile`") from None
    return check_table(df, kind, path, time_col)


def _check_match(meta: ProfileMeta, path: Path, model: str | None, precision: str | None) -> None:
    if model is not None and meta.model != model:
        raise ProfileError(
            f"{path}: profile is for model '{meta.model}', not "
            f"'{model}'; pass a profile of {model} (sunsim profile --model "
            f"{model}) or use --model {meta.model}"
        )
    if precision is not None:
        try:
            want = get_precision(precision).name
        except Exception:
            raise ProfileError(
                f"{path}: unknown precision '{precision}'; use bf16, w8a16 or w4a16"
            ) from None
        if meta.precision != want:
            raise ProfileError(
                f"{path}: profile is for precision '{meta.precision}', "
                f"not '{precision}'; pass the {precision} profile (sunsim profile "
                f"--precision {precision}) or use precision {meta.precision}"
            )


def read_profile_dir(
    path: str | Path, *, model: str | None = None, precision: str | None = None
) -> tuple[ProfileMeta, pd.DataFrame | None, pd.DataFrame]:
    """Read and validate the profile in directory ``path`` (the one holding ``meta.json``).

    Returns ``(meta, prefill, decode)``; ``prefill`` is None for a decode-only profile. With
    ``model``/``precision`` given, a profile of another model or precision is an error.

    Raises:
        ProfileError: a missing or malformed file, a missing or unknown column, fewer than
            :data:`MIN_ROWS` rows, a non-numeric cell, a NaN, zero or negative time, a profile
            of another model/precision (one line: file, row, column and how to fix it).
    """
    d = Path(path)
    if not d.is_dir():
        raise ProfileError(
            f"{d}: no such profile directory; make one with `sunsim profile "
            "--model NAME --device cuda|cpu` or pass a directory under profiles/"
        )
    meta = read_meta(d)
    _check_match(meta, d / "meta.json", model, precision)
    col = time_column(meta)
    decode = read_csv_table(d / "decode.csv", "decode", col)
    prefill = None
    if (d / "prefill.csv").exists():
        prefill = read_csv_table(d / "prefill.csv", "prefill", col)
    elif meta.modules is not None and "prefill" in meta.modules:
        raise ProfileError(
            f"{d / 'prefill.csv'}: missing although meta.json lists a "
            "prefill module; re-run `sunsim profile`"
        )
    return meta, prefill, decode
