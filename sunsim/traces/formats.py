"""Trace formats as data, and format detection from a file's first line.

Each format is a :class:`TraceFormat` record: which columns hold the arrival time, the prompt
and output lengths and (optionally) the model, how the time is written, and whether zero-output
rows are *failed* requests. Detection looks at column *names*, never positions.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from sunsim.errors import TraceError, where

__all__ = ["TraceFormat", "TRACE_FORMATS", "FORMATS", "detect_format", "header_names"]


@dataclass(frozen=True)
class TraceFormat:
    """One trace file format.

    Attributes:
        key: the format key (``--format``).
        name: a human name for messages.
        file_kind: ``"csv"`` or ``"jsonl"``; each kind has one reader.
        time_col: the arrival-time column (or JSON key).
        prompt_col: the prompt (input) length column, tokens.
        output_col: the output length column, tokens.
        model_col: the source-model column, or None when the format has none.
        time_kind: ``"seconds"``, ``"milliseconds"`` (numbers) or ``"datetime"`` (ISO 8601 text).
        failed_rows: rows with 0 output tokens are failed requests (BurstGPT), excluded unless
            ``keep_failed``; otherwise such rows are kept with 1 output token and counted.
        signature: header names that identify the format (any of them counts towards a match).
        optional: the optional session columns (or JSON keys) the format may carry, from
            ``session_id``, ``turn``, ``hash_ids`` (:mod:`sunsim.traces.sessions`); a column
            that is present must be filled in every row.
    """

    key: str
    name: str
    file_kind: str
    time_col: str
    prompt_col: str
    output_col: str
    model_col: str | None
    time_kind: str
    failed_rows: bool
    signature: frozenset[str]
    optional: tuple[str, ...] = ()

    @property
    def required(self) -> tuple[str, str, str]:
        """The columns every row needs: time, prompt, output."""
        return (self.time_col, self.prompt_col, self.output_col)


#: The formats, in detection order.
TRACE_FORMATS: dict[str, TraceFormat] = {
    f.key: f
    for f in (
        TraceFormat(
            "burstgpt",
            "BurstGPT CSV",
            "csv",
            "Timestamp",
            "Request tokens",
            "Response tokens",
            "Model",
            "seconds",
            True,
            frozenset(
                {"Timestamp", "Request tokens", "Response tokens", "Total tokens", "Log Type"}
            ),
        ),
        TraceFormat(
            "azure",
            "Azure LLM inference CSV",
            "csv",
            "TIMESTAMP",
            "ContextTokens",
            "GeneratedTokens",
            None,
            "datetime",
            False,
            frozenset({"TIMESTAMP", "ContextTokens", "GeneratedTokens"}),
        ),
        TraceFormat(
            "mooncake",
            "Mooncake JSONL",
            "jsonl",
            "timestamp",
            "input_length",
            "output_length",
            None,
            "milliseconds",
            False,
            frozenset(),
            ("hash_ids",),
        ),
        TraceFormat(
            "canonical",
            "sunsim canonical CSV",
            "csv",
            "arrival_s",
            "prompt_tokens",
            "output_tokens",
            "model",
            "seconds",
            False,
            frozenset({"arrival_s", "prompt_tokens", "output_tokens"}),
            ("session_id", "turn", "hash_ids"),
        ),
    )
}

#: Format key -> human name, in detection order.
FORMATS: dict[str, str] = {k: f.name for k, f in TRACE_FORMATS.items()}


def header_names(first: str) -> list[str]:
    """The column names of a CSV header line, stripped of surrounding spaces."""
    try:
        return [c.strip() for c in next(csv.reader([first]))]
    except (csv.Error, StopIteration):
        return [first]


def detect_format(p: Path, first: str) -> TraceFormat:
    """The format of a file whose first non-blank line is ``first``.

    A line that starts with ``{`` is Mooncake JSONL; otherwise the CSV format whose signature
    shares the most names with the header wins.

    Raises:
        TraceError: no format matches, or two match equally well.
    """
    if first.startswith("{"):
        return TRACE_FORMATS["mooncake"]
    names = set(header_names(first))
    hits = {k: len(names & f.signature) for k, f in TRACE_FORMATS.items() if f.signature}
    best = max(hits.values())
    winners = [k for k, n in hits.items() if n == best]
    if best == 0 and "," not in first:
        for sep, name in ((";", "semicolons"), ("\t", "tabs"), ("|", "bars")):
            if sep in first:
                raise TraceError(
                    f"{where(p)}the header is separated by {name}, not commas; save the "
                    f"trace as a comma-separated CSV"
                )
    if best == 0 or len(winners) > 1:
        shown = ", ".join(repr(c[:40]) for c in header_names(first)[:8])
        raise TraceError(
            f"{where(p)}unknown trace format (header columns: {shown}); known formats: "
            + "; ".join(f"{k} ({v})" for k, v in FORMATS.items())
            + "; rename the columns or pass --format"
        )
    return TRACE_FORMATS[winners[0]]
