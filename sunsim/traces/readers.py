"""One reader per file kind: open checks, CSV and JSONL into a raw frame.

The readers only split the file into rows and columns; the values are checked in
:mod:`sunsim.traces.rows`. Raw frames are indexed by the 0-based data row (CSV: blank lines
included, so that row numbers match the file; JSONL: the 0-based line number).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from sunsim.errors import TraceError, where
from sunsim.traces.formats import TraceFormat, header_names

__all__ = ["check_file", "first_line", "read_raw"]

_SNIFF_BYTES = 65536
# Leading bytes of files that are not text traces, with how to fix.
_MAGIC = (
    (b"\x1f\x8b", "a gzip-compressed file; decompress it first (gunzip)"),
    (b"PK\x03\x04", "a zip archive; extract the trace first (unzip)"),
    (b"\xff\xfe", "UTF-16 text; save it as UTF-8 (e.g. iconv -f utf-16 -t utf-8)"),
    (b"\xfe\xff", "UTF-16 text; save it as UTF-8 (e.g. iconv -f utf-16 -t utf-8)"),
    (b"PAR1", "a Parquet file; export it as CSV first"),
)


def check_file(p: Path) -> None:
    """Check that ``p`` is a readable text file.

    Raises:
        TraceError: missing, a directory or other non-file, unreadable, compressed, UTF-16 or
            binary (NUL bytes in its first 64 KiB).
    """
    if not p.exists():
        raise TraceError(
            f"{where(p)}file not found; check the path (the full public traces "
            f"must be downloaded first, see sunsim/data/traces/README.md)"
        )
    if p.is_dir():
        raise TraceError(f"{where(p)}is a directory; pass a trace file (CSV or JSONL) inside it")
    if not p.is_file():
        raise TraceError(f"{where(p)}is not a regular file; pass a trace file (CSV or JSONL)")
    try:
        with p.open("rb") as f:
            head = f.read(_SNIFF_BYTES)
    except OSError as e:
        raise _unreadable(p, e) from None
    for magic, what in _MAGIC:
        if head.startswith(magic):
            raise TraceError(f"{where(p)}is {what}")
    if b"\x00" in head:
        raise TraceError(
            f"{where(p)}is a binary file (NUL bytes; or UTF-16 text without a byte-order "
            f"mark), not a CSV or JSONL text trace; pass the trace itself, as UTF-8"
        )


def first_line(p: Path) -> str | None:
    """The first non-blank line of the file (stripped), or None when it has none.

    Raises:
        TraceError: the line holds control characters (a binary file).
    """
    try:
        with p.open("r", encoding="utf-8-sig", errors="replace") as f:
            for line in f:
                if line.strip():
                    return _text_line(p, line.strip())
    except OSError as e:
        raise _unreadable(p, e) from None
    return None


def _unreadable(p: Path, e: OSError) -> TraceError:
    """The one-line error for a trace file the OS will not let us read."""
    return TraceError(f"{where(p)}cannot read the file ({e.strerror}); check its permissions")


def _text_line(p: Path, line: str) -> str:
    odd = sum(1 for c in line[:4096] if (ord(c) < 32 and c not in "\t\r\n") or c == "\ufffd")
    if odd:
        raise TraceError(
            f"{where(p)}the first line holds {odd} control or undecodable characters: this is "
            f"a binary file or not UTF-8 text, not a CSV or JSONL trace; pass the trace itself"
        )
    return line


def read_raw(p: Path, fmt: TraceFormat, first: str) -> pd.DataFrame:
    """The raw frame of a trace file of format ``fmt`` (all values as read, not yet checked).

    Raises:
        TraceError: a malformed CSV or JSON line, text that is not UTF-8, a repeated column or
            key, a missing column or key (each naming the file and row or line).
    """
    if fmt.file_kind == "jsonl":
        raw = _read_jsonl(p, fmt)
    else:
        _check_header(p, first)
        raw = _read_csv(p, _leading_blank_lines(p))
    for c in fmt.required:
        if c not in raw.columns:
            found = ", ".join(repr(str(x)[:40]) for x in list(raw.columns)[:8])
            raise TraceError(
                f"{where(p, column=c)}missing column '{c}' for the {fmt.name} format "
                f"(columns found: {found}); fix the header or pass the right --format"
            )
    return raw


def _check_header(p: Path, first: str) -> None:
    """Refuse a header that names a column twice (pandas would rename the second silently)."""
    seen: set[str] = set()
    for name in header_names(first):
        if name in seen and name:
            raise TraceError(
                f"{where(p, column=name)}column '{name}' appears twice in the header; "
                f"remove or rename one of them"
            )
        seen.add(name)


def _not_utf8(p: Path, header: bool) -> TraceError:
    """The error for a file that is not UTF-8, naming the first bad row (CSV, ``header``) or
    line (JSONL)."""
    with p.open("rb") as f:
        for i, line in enumerate(f):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as e:
                byte = line[e.start : e.start + 1].hex()
                return TraceError(
                    f"{where(p, (i or None) if header else i + 1)}not UTF-8 text (byte 0x{byte} at "
                    f"column {e.start + 1} of line {i + 1}); save the file as UTF-8 "
                    f"(e.g. iconv -f latin1 -t utf-8)"
                )
    return TraceError(f"{where(p)}not UTF-8 text; save the file as UTF-8")


def _leading_blank_lines(p: Path) -> int:
    """How many blank lines come before the header."""
    n = 0
    with p.open("r", encoding="utf-8-sig", errors="replace") as f:
        for line in f:
            if line.strip():
                return n
            n += 1
    return n


def _read_csv(p: Path, skip: int = 0) -> pd.DataFrame:
    """All columns as read by pandas; index = 0-based data row (blank lines included; the
    ``skip`` blank lines before the header are not rows)."""
    try:
        df = pd.read_csv(
            p,
            skip_blank_lines=False,
            encoding="utf-8-sig",
            low_memory=False,
            skiprows=skip or None,
            dtype={"hash_ids": str},  # ids are text, e.g. "0 14 15" (never one number)
        )
    except pd.errors.EmptyDataError:
        raise TraceError(
            f"{where(p)}the file is empty; pass a trace with a header and data rows"
        ) from None
    except pd.errors.ParserError as e:
        msg = " ".join(str(e).split())
        raise TraceError(
            f"{where(p)}not a well-formed CSV ({msg}; lines count the header); "
            f"fix that line or pass the right file"
        ) from None
    except UnicodeDecodeError:
        raise _not_utf8(p, header=True) from None
    df.columns = [str(c).strip() for c in df.columns]
    return df


def _no_repeats(pairs: list[tuple[str, object]]) -> dict[str, object]:
    obj: dict[str, object] = {}
    for k, v in pairs:
        if k in obj:
            raise _RepeatedKey(k)
        obj[k] = v
    return obj


class _RepeatedKey(Exception):
    pass


def _read_jsonl(p: Path, fmt: TraceFormat) -> pd.DataFrame:
    """JSONL as a frame of the needed keys and the optional ones the first line has; index =
    0-based line number. An optional key must be on every line or on none."""
    keys = fmt.required
    optional: tuple[str, ...] | None = None
    first = 0
    cols: dict[str, list[object]] = {k: [] for k in (*keys, *fmt.optional)}
    lines: list[int] = []
    try:
        with p.open("r", encoding="utf-8-sig") as f:
            for i, line in enumerate(f):
                s = line.strip()
                if not s:
                    continue
                obj = _json_object(p, i + 1, s, False)
                # A repeated key leaves fewer keys than the text names: parse again, strictly
                # (rarely: one count per line keeps the common case fast).
                if s.count('":') != len(obj):
                    obj = _json_object(p, i + 1, s, True)
                for key in keys:
                    if key not in obj:
                        raise TraceError(
                            f"{where(p, i + 1, key)}missing key '{key}' for the {fmt.name} "
                            f"format (needs {', '.join(keys)}); fix the file or pass the "
                            f"right --format"
                        )
                if optional is None:
                    optional = tuple(k for k in fmt.optional if k in obj)
                    first = i + 1
                _check_optional(p, i + 1, obj, fmt.optional, optional, first)
                for key in (*keys, *optional):
                    cols[key].append(obj[key])
                lines.append(i)
    except UnicodeDecodeError:
        raise _not_utf8(p, header=False) from None
    index = pd.Index(lines, dtype=np.int64)
    return pd.DataFrame(
        {
            key: pd.Series(col, index=index, dtype=object)
            for key, col in cols.items()
            if col or key in keys
        },
        index=index,
    )


def _check_optional(
    p: Path,
    line: int,
    obj: dict[str, object],
    known: tuple[str, ...],
    present: tuple[str, ...],
    first: int,
) -> None:
    """An optional key is on every line or on none (the first data line decides)."""
    for key in known:
        if (key in obj) != (key in present):
            has = "has" if key in obj else "lacks"
            other = "lacks" if key in obj else "has"
            raise TraceError(
                f"{where(p, line, key)}this line {has} key '{key}' but line {first} {other} "
                f"it; give '{key}' on every line or on none"
            )


def _json_object(p: Path, line: int, s: str, strict: bool) -> dict[str, object]:
    """One JSONL line as an object; ``strict`` refuses repeated keys."""
    try:
        obj = json.loads(s, object_pairs_hook=_no_repeats) if strict else json.loads(s)
    except json.JSONDecodeError as e:
        raise TraceError(
            f"{where(p, line)}malformed JSON ({e.msg} at column {e.colno}); "
            f"each line must be one JSON object; fix or remove that line"
        ) from None
    except _RepeatedKey as e:
        raise TraceError(
            f"{where(p, line, str(e.args[0]))}key '{e.args[0]}' appears twice in the object; "
            f"keep one of them"
        ) from None
    except RecursionError:
        raise TraceError(
            f"{where(p, line)}JSON nested too deeply; each line must be one flat JSON object"
        ) from None
    if not isinstance(obj, dict):
        raise TraceError(
            f"{where(p, line)}expected a JSON object, got {type(obj).__name__}; "
            f"each line must be one JSON object"
        )
    return obj
