"""Records streamed to Parquet during a run, and the columns a summary needs read back.

For traces too long to hold every record in memory (millions of requests):
:class:`ParquetRecordSink` is a :class:`~sunsim.engine.records.RecordSink` that writes each
frame the engine hands it (consecutive trace rows, in order) as one Parquet row group, and
:func:`read_summary_records` reads back only the columns
:func:`sunsim.metrics.summarize` uses, with the text columns as categoricals, so the
summary of a 10-million-request run fits in a few hundred megabytes.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["SUMMARY_COLUMNS", "ParquetRecordSink", "read_summary_records"]

#: The records columns :func:`sunsim.metrics.summarize` and the vLLM-named outputs
#: (:mod:`sunsim.metrics.benchmark`) read.
SUMMARY_COLUMNS = (
    "model",
    "prompt_tokens",
    "output_tokens",
    "arrived_at",
    "first_token_at",
    "finished_at",
    "num_preemptions",
    "status",
    "reject_reason",
    "ttft_s",
    "tpot_s",
    "e2e_s",
)


class ParquetRecordSink:
    """Writes record frames to ``path`` as Parquet row groups (one per frame).

    Use as a context manager, or call :meth:`close`; the file is complete only after it.
    Frames must have the same columns and types (the engine's records frames do; ``model``
    is stored as a dictionary column with the served models as its categories).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._writer: pq.ParquetWriter | None = None
        self.num_rows = 0
        self.num_row_groups = 0

    def write(self, frame: pd.DataFrame) -> None:
        """Append ``frame`` as one row group."""
        table = pa.Table.from_pandas(frame, preserve_index=False)
        if self._writer is None:
            self._writer = pq.ParquetWriter(self.path, table.schema)
        self._writer.write_table(table, row_group_size=max(len(frame), 1))
        self.num_rows += len(frame)
        self.num_row_groups += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> ParquetRecordSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_summary_records(path: str | Path) -> pd.DataFrame:
    """The :data:`SUMMARY_COLUMNS` of a records Parquet file, one row per request in trace
    order (``model`` and ``status`` categoricals; ``reject_reason`` strings shared between
    rows, as :meth:`RecordTable.to_frame` makes them)."""
    table = pq.read_table(
        path, columns=list(SUMMARY_COLUMNS), read_dictionary=["status", "reject_reason"]
    )
    df = table.to_pandas()
    df["reject_reason"] = df["reject_reason"].astype(object)
    return df
