"""Records streamed to Parquet during a run, and read back one column at a time.

For traces too long to hold every record in memory (millions of requests):
:class:`ParquetRecordSink` is a :class:`~sunsim.engine.records.RecordSink` that writes each
frame the engine hands it (consecutive trace rows, in order) as one Parquet row group, and
:class:`ParquetColumns` gives :func:`sunsim.metrics.summarize` and
:func:`sunsim.metrics.benchmark.design_metrics` the file's columns one at a time (row group
by row group into one array; text columns as dictionary-encoded categoricals), so the
summary of a 10-million-request run needs a few hundred megabytes on top of the run.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

if TYPE_CHECKING:
    from sunsim.engine.cluster import SimResult
    from sunsim.metrics.columns import RecordColumns, RecordStats

from sunsim.runs.layout import RunDirError

__all__ = ["ParquetColumns", "ParquetRecordSink", "result_records"]

_RERUN = "re-run `sunsim replay` (with --stream-records) to write it again"


class ParquetRecordSink:
    """Writes record frames to ``path`` as Parquet row groups (one per frame).

    Use as a context manager, or call :meth:`close`; the file is complete only after it.
    Frames must have the same columns and types (the engine's records frames do; ``model``
    is stored as a dictionary column with the served models as its categories).
    ``prepare``, when given, is applied to each frame before it is written (e.g.
    :func:`sunsim.traces.sessions.add_session_columns`, which only needs ``request_id``).
    """

    def __init__(
        self, path: str | Path, prepare: Callable[[pd.DataFrame], pd.DataFrame] | None = None
    ) -> None:
        self.path = Path(path)
        self.prepare = prepare
        self._writer: pq.ParquetWriter | None = None
        self.num_rows = 0
        self.num_row_groups = 0

    def write(self, frame: pd.DataFrame) -> None:
        """Append ``frame`` as one row group."""
        if self.prepare is not None:
            frame = self.prepare(frame)
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


class ParquetColumns:
    """The records in a Parquet file (:class:`ParquetRecordSink`'s, or any records file
    with the columns of :meth:`~sunsim.engine.records.RecordTable.to_frame`) as a
    :class:`~sunsim.metrics.columns.RecordColumns`: each call reads one column, row group by
    row group, into one NumPy array (numeric) or a categorical Series (text).

    Raises :class:`~sunsim.runs.layout.RunDirError` (one line: the file, what is wrong, how
    to fix it) when the file is not a readable Parquet file (missing, truncated, damaged) or
    a column asked for is not in it.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            with pq.ParquetFile(self.path) as f:
                self.num_rows = f.metadata.num_rows
                self.schema = f.schema_arrow
        except Exception as e:  # noqa: BLE001 - OSError, ArrowInvalid...: one line for each
            raise self._damaged(e) from None
        #: :func:`~sunsim.metrics.columns.record_stats` of this file, by SLO bounds (computed
        #: once: summarize and design_metrics of a run share them)
        self.stats_memo: dict[tuple[float, float], RecordStats] = {}

    def __len__(self) -> int:
        return int(self.num_rows)

    def _field(self, name: str) -> pa.Field:
        if self.schema.get_field_index(name) < 0:
            raise RunDirError(
                f"{self.path}: no column '{name}', so not a records file sunsim wrote "
                f"(every one has it); {_RERUN}"
            )
        return self.schema.field(name)

    def _damaged(self, e: BaseException) -> RunDirError:
        """The one-line error for a file pyarrow cannot read (``e``: what it raised)."""
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:120]
        return RunDirError(
            f"{self.path}: cannot read the records, the file is missing, truncated or "
            f"damaged ({first}); {_RERUN}"
        )

    def values(self, name: str, rows: np.ndarray | None = None) -> np.ndarray:
        t = self._field(name).type
        # integers as stored; everything else as float, NaN where the file has nulls
        dtype = np.dtype(t.to_pandas_dtype()) if pa.types.is_integer(t) else np.dtype(float)
        out = np.empty(len(self) if rows is None else int(np.count_nonzero(rows)), dtype=dtype)
        at = lo = 0
        try:
            with pq.ParquetFile(self.path) as f:
                for i in range(f.num_row_groups):
                    col = f.read_row_group(i, columns=[name]).column(0)
                    v = col.to_numpy()
                    if rows is not None:
                        v = v[rows[lo : lo + len(v)]]
                    lo += len(col)
                    out[at : at + len(v)] = v
                    at += len(v)
        except (OSError, pa.ArrowException) as e:
            raise self._damaged(e) from None
        return out

    def labels(self, name: str) -> pd.Series:
        self._field(name)
        try:
            table = pq.read_table(self.path, columns=[name], read_dictionary=[name])
        except (OSError, pa.ArrowException) as e:
            raise self._damaged(e) from None
        return table.column(0).to_pandas()


def result_records(result: SimResult) -> pd.DataFrame | RecordColumns:
    """A run's records for summaries: its :class:`ParquetColumns` when they were streamed
    (``result.extra["records_path"]``, set by :func:`sunsim.replay.run_replay`), else its
    ``records`` frame. The same :class:`ParquetColumns` each call (kept in
    ``result.extra["records_columns"]``), so the figures computed from it are computed once."""
    path = result.extra.get("records_path")
    if path is None:
        return result.records
    cols = result.extra.get("records_columns")
    if not isinstance(cols, ParquetColumns) or cols.path != Path(path):
        cols = result.extra["records_columns"] = ParquetColumns(path)
    return cols
