"""The Dask side of ``sunsim sweep``: a client on a :class:`distributed.LocalCluster` of
``workers`` single-threaded worker processes on this machine, or on an existing cluster
(``--scheduler tcp://HOST:8786``, started with ``dask scheduler`` and ``dask worker`` as Dask
documents: https://docs.dask.org/en/stable/deploying-cli.html), handed to the sweep as a
:class:`concurrent.futures.Executor` (``Client.get_executor``). The only module of sunsim
that imports dask; the workers need sunsim installed and the trace at the same path."""

from __future__ import annotations

import concurrent.futures as cf
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from sunsim.errors import ConfigError

#: Seconds to wait for an existing scheduler to answer.
CONNECT_TIMEOUT_S = 20


@contextmanager
def dask_executor(workers: int, scheduler: str | None = None) -> Iterator[tuple[cf.Executor, str]]:
    """(executor, one line describing where tasks run) for the life of the ``with`` block.

    ``scheduler``: the address of an existing scheduler (its workers are used as they are;
    ``workers`` is ignored); None: a LocalCluster of ``workers`` processes, one thread each
    (a simulation holds the GIL), no dashboard, closed on exit.

    Raises :class:`~sunsim.errors.ConfigError` (one line) when the scheduler cannot be
    reached.
    """
    from distributed import Client, LocalCluster

    if scheduler is not None:
        try:
            client = Client(scheduler, timeout=CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError) as e:
            raise ConfigError(
                f"--scheduler {scheduler}: cannot connect ({str(e).splitlines()[0]}); start one "
                "with 'dask scheduler' and 'dask worker ADDRESS', or omit --scheduler"
            ) from None
        try:
            n = len(client.scheduler_info().get("workers", {}))
            yield client.get_executor(pure=False), f"Dask scheduler {scheduler} ({n} workers)"
        finally:
            client.close()
        return
    cluster = LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        silence_logs=logging.ERROR,
    )
    try:
        client = Client(cluster)
        try:
            yield client.get_executor(pure=False), f"Dask LocalCluster ({workers} workers)"
        finally:
            client.close()
    finally:
        cluster.close()
