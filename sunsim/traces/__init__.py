"""Request traces: read, validate, label with served models, summarise, synthesise.

This package owns everything between a trace file and the requests frame the workload step
uses: the format records and detection (:mod:`.formats`), one reader per file kind, CSV and
JSONL (:mod:`.readers`), the row validation (:mod:`.rows`), the read options (:mod:`.options`),
``read_trace`` and :class:`Trace` (:mod:`.read`), model labelling (:mod:`.labels`), trace info
(:mod:`.info`), the synthetic workload generator with the canonical CSV writer
(:mod:`.synth`), the optional session columns (:mod:`.sessions`) and their block hashes
(:mod:`.hashes`), and the multi-model agent workflow generator (:mod:`.workflows`). It imports
nothing from the engine, metrics or CLI.

The canonical requests frame (``Trace.requests``), index ``0..n-1``, sorted by arrival:

=================  ==========  ===================================================================
column             dtype       meaning
=================  ==========  ===================================================================
``arrival_s``      float64     arrival time, seconds from the first kept request (first 0.0)
``prompt_tokens``  int64       prompt (input, context) length, tokens, 1 to ``MAX_TOKENS``
``output_tokens``  int64       tokens to generate, 1 to ``MAX_TOKENS`` (see failed/zero-output
                               rows below)
``source_model``   string      the model named in the trace (BurstGPT ``Model``, canonical
                               ``model``); ``<NA>`` when the trace has none
``row``            int64       1-based data row in the file (the header is not counted; for JSONL
                               the line number), for error messages and provenance
=================  ==========  ===================================================================

Optional, when the trace has them (:mod:`.sessions`; without them nothing changes):
``session_id`` (int64), ``turn`` (int64) and ``hash_ids`` (object: a tuple of ints per request,
the content hash of each block of ``requests.attrs["hash_block_tokens"]`` prompt tokens, the last
block possibly partial; from the trace, or derived from ``session_id``/``turn``).

:func:`label_models` adds ``model`` (Categorical over the served names). The canonical CSV
(:func:`write_canonical`, :func:`synth_trace`) has the columns ``arrival_s`` (seconds, 6
decimals), ``model``, ``prompt_tokens``, ``output_tokens`` (tokens), then ``session_id``,
``turn`` and ``hash_ids`` (ids separated by spaces) when the frame has them.

Formats (detected from the header by column *names*, never positions; ``fmt`` forces one):

* ``burstgpt``: BurstGPT CSV (Wang et al. 2024, arXiv 2401.17644; github.com/HPMLL/BurstGPT):
  ``Timestamp`` (seconds from trace start), ``Model``, ``Request tokens``, ``Response tokens``,
  ``Total tokens``, ``Log Type``; release v2.0 inserts ``Session ID, Elapsed time`` after
  ``Timestamp``. Rows with ``Response tokens`` == 0 are *failed* requests: left out by default and
  counted (``num_failed``, ``num_failed_excluded``); with ``keep_failed`` they are kept with
  ``output_tokens = 1`` (a failed request still consumed a prefill, which emits the first token)
  and ``prompt_tokens = max(1, Request tokens)``. These are the only rows ever left out.
* ``azure``: Azure LLM inference trace 2023 CSV (Azure/AzurePublicDataset; the Splitwise paper's
  trace): ``TIMESTAMP`` (ISO 8601 datetime text, up to 9 fractional digits), ``ContextTokens``,
  ``GeneratedTokens``. Timestamps with a UTC offset (``+00:00``, ``+02:00``, ``Z``) are
  converted to UTC, so mixed offsets are fine; mixing timestamps with and without an offset is
  an error.
* ``mooncake``: Mooncake JSONL (kvcache-ai/Mooncake, FAST'25 traces): one JSON object per line with
  ``timestamp`` (milliseconds), ``input_length``, ``output_length``, and ``hash_ids`` (one id per
  block of 512 tokens; kept when every line has it); other keys are ignored.
* ``canonical``: sunsim's own CSV, ``arrival_s, model, prompt_tokens, output_tokens`` (``model``
  optional and may be empty) and the optional ``session_id``, ``turn``, ``hash_ids`` (ids
  separated by spaces or semicolons), as written by :func:`write_canonical`.

Nothing is silently dropped: every data row becomes a request or is counted (failed BurstGPT
rows). In the non-BurstGPT formats a row with 0 output tokens is kept with ``output_tokens = 1``
(the prefill's token) and counted in ``Trace.num_zero_output``. Blank lines are not data rows
(they are skipped, but row numbers still count them so that they match the file).

Time order: rows must be in arrival order. A row earlier than one above it by at most
:data:`REORDER_TOLERANCE_S` (1 s) is jitter: re-sorted (stable) and counted in
``Trace.num_reordered``. A row earlier by more is a :class:`~sunsim.errors.TraceError` naming it
and the row above, unless ``read_trace(..., sort_arrivals=True)``.

Bad input of any kind raises :class:`~sunsim.errors.TraceError` (the file) or
:class:`~sunsim.errors.ConfigError` (an option), with one line: ``file: row N, column 'X':
<what is wrong>; <how to fix>``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported on first use, so that the configuration can name the formats
    # without loading pandas
    from sunsim.traces.formats import FORMATS, TRACE_FORMATS, TraceFormat, detect_format
    from sunsim.traces.hashes import HASH_BLOCK_TOKENS, derive_hash_ids
    from sunsim.traces.info import trace_info
    from sunsim.traces.labels import label_models, model_counts, zipf_shares
    from sunsim.traces.read import REQUEST_COLUMNS, Trace, read_trace
    from sunsim.traces.rows import MAX_TIME_S, MAX_TOKENS, REORDER_TOLERANCE_S
    from sunsim.traces.sessions import SESSION_COLUMNS
    from sunsim.traces.synth import (
        CANONICAL_COLUMNS,
        DEFAULT_OUTPUT_LENGTHS,
        DEFAULT_PROMPT_LENGTHS,
        MAX_SYNTH_REQUESTS,
        LognormalLengths,
        synth_command,
        synth_trace,
        write_canonical,
    )
    from sunsim.traces.workflows import WorkflowSpec, assign_models, workflow_trace

_HOME = {
    "FORMATS": "sunsim.traces.formats",
    "TRACE_FORMATS": "sunsim.traces.formats",
    "TraceFormat": "sunsim.traces.formats",
    "detect_format": "sunsim.traces.formats",
    "trace_info": "sunsim.traces.info",
    "label_models": "sunsim.traces.labels",
    "model_counts": "sunsim.traces.labels",
    "zipf_shares": "sunsim.traces.labels",
    "REQUEST_COLUMNS": "sunsim.traces.read",
    "Trace": "sunsim.traces.read",
    "read_trace": "sunsim.traces.read",
    "MAX_TIME_S": "sunsim.traces.rows",
    "MAX_TOKENS": "sunsim.traces.rows",
    "REORDER_TOLERANCE_S": "sunsim.traces.rows",
    "CANONICAL_COLUMNS": "sunsim.traces.synth",
    "DEFAULT_OUTPUT_LENGTHS": "sunsim.traces.synth",
    "DEFAULT_PROMPT_LENGTHS": "sunsim.traces.synth",
    "MAX_SYNTH_REQUESTS": "sunsim.traces.synth",
    "LognormalLengths": "sunsim.traces.synth",
    "synth_command": "sunsim.traces.synth",
    "synth_trace": "sunsim.traces.synth",
    "write_canonical": "sunsim.traces.synth",
    "HASH_BLOCK_TOKENS": "sunsim.traces.hashes",
    "derive_hash_ids": "sunsim.traces.hashes",
    "SESSION_COLUMNS": "sunsim.traces.sessions",
    "WorkflowSpec": "sunsim.traces.workflows",
    "assign_models": "sunsim.traces.workflows",
    "workflow_trace": "sunsim.traces.workflows",
}

__all__ = [
    "FORMATS",
    "TRACE_FORMATS",
    "TraceFormat",
    "detect_format",
    "CANONICAL_COLUMNS",
    "REQUEST_COLUMNS",
    "REORDER_TOLERANCE_S",
    "MAX_TOKENS",
    "MAX_TIME_S",
    "MAX_SYNTH_REQUESTS",
    "Trace",
    "LognormalLengths",
    "DEFAULT_PROMPT_LENGTHS",
    "DEFAULT_OUTPUT_LENGTHS",
    "read_trace",
    "label_models",
    "model_counts",
    "zipf_shares",
    "trace_info",
    "synth_trace",
    "synth_command",
    "write_canonical",
    "HASH_BLOCK_TOKENS",
    "SESSION_COLUMNS",
    "derive_hash_ids",
    "WorkflowSpec",
    "workflow_trace",
    "assign_models",
]


def __getattr__(name: str) -> Any:
    """Import a re-exported name from its module on first use (PEP 562)."""
    if name in _HOME:
        return getattr(importlib.import_module(_HOME[name]), name)
    raise AttributeError(f"module 'sunsim.traces' has no attribute {name!r}")
