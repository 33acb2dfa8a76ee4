"""Sweeps: many replays or plans, one per point of a grid, run as tasks on Dask.

``sunsim sweep GRID.toml`` reads a grid file (:mod:`~sunsim.sweep.grid`: a base scenario plus
``[sweep]`` with ``kind``, named axes whose product gives the points, and explicit points),
looks every point up in the content-addressed result cache (:mod:`sunsim.cache`), runs the
missing ones on a Dask cluster (:mod:`~sunsim.sweep.cluster`: a ``LocalCluster`` by default,
or ``--scheduler``), each point through :func:`~sunsim.sweep.work.run_point` (a replay of every
mode, or a plan run serially in its worker), stores each result as it arrives
(:mod:`~sunsim.sweep.run`), and writes one tidy Parquet table, ``sweep.json`` and a markdown
report (:mod:`~sunsim.sweep.report`). An interrupted sweep, run again, runs only the points
that had not finished.

Rooms: ``grid`` (reading and expanding grids), ``work`` (one point, where it runs), ``run``
(the cache and the executor), ``cluster`` (the only module importing dask), ``report``.
"""

from sunsim.sweep.cluster import dask_executor
from sunsim.sweep.grid import Axis, Grid, SweepPoint, read_grid
from sunsim.sweep.report import write_sweep
from sunsim.sweep.run import Lookup, SweepResult, lookup, point_key, run_sweep
from sunsim.sweep.work import run_point, summary_row

__all__ = [
    "Axis",
    "Grid",
    "Lookup",
    "SweepPoint",
    "SweepResult",
    "dask_executor",
    "lookup",
    "point_key",
    "read_grid",
    "run_point",
    "run_sweep",
    "summary_row",
    "write_sweep",
]
