"""``sunsim sweep GRID.toml``: replay or plan every point of a grid on Dask, resumable."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import typer

from sunsim.cli.app import app
from sunsim.cli.cache_options import cache_dir_option, resolve_cache_dir
from sunsim.cli.format import command_line, err_console, print_table, progress_bar, say
from sunsim.cli.options import force_option, out_option, progress_option
from sunsim.errors import ConfigError

_MAX_WORKERS = 1024  # local worker processes


def _check_options(workers: int | None, max_requests: int | None) -> None:
    if workers is not None and not 1 <= workers <= _MAX_WORKERS:
        raise ConfigError(f"--workers: expected an integer in 1..{_MAX_WORKERS}, got {workers}")
    if max_requests is not None and max_requests < 1:
        raise ConfigError(f"--max-requests: expected an integer >= 1, got {max_requests}")


def _run(grid: Any, executor: Any, cache: Any, found: Any, progress: bool) -> Any:

    from sunsim.sweep import run_sweep

    with progress_bar(enabled=progress) as bar:
        task = bar.add_task("sweep points", total=len(grid.points))

        def on_event(kind: str, info: dict[str, Any]) -> None:
            if kind == "start":
                bar.update(
                    task,
                    completed=info["cached"],
                    description=f"sweep points ({info['cached']} cached)",
                )
            elif kind == "done":
                bar.advance(task)

        return run_sweep(grid, executor, cache, on_event, found=found)


@app.command()
def sweep(
    grid_file: Path = typer.Argument(
        ..., metavar="GRID.toml", help="Grid file: a scenario plus a \\[sweep] table."
    ),
    workers: int | None = typer.Option(
        None, "--workers", "-w", help="Local Dask worker processes (default: the number of CPUs)"
    ),
    scheduler: str | None = typer.Option(
        None,
        "--scheduler",
        help="Address of an existing Dask scheduler (tcp://HOST:8786) instead of a local "
        "cluster; its workers need sunsim and the trace at the same path.",
    ),
    max_requests: int | None = typer.Option(
        None, "--max-requests", help="Cap every point's trace at this many requests."
    ),
    out: Path | None = out_option("runs/sweep-<time>"),
    force: bool = force_option(),
    cache: bool = typer.Option(
        True,
        "--cache/--no-cache",
        help="Look points up in, and add them to, the result cache (what makes a sweep resumable).",
    ),
    cache_dir: Path | None = cache_dir_option(),
    progress: bool = progress_option(),
) -> None:
    """Replay or plan every point of GRID.toml (the product of its axes plus its explicit
    points) on Dask; write one Parquet table of every point's results and a report. Points
    already in the result cache are not run again."""
    from sunsim.cache import ResultCache
    from sunsim.runs import default_run_dir, prepare_run_dir
    from sunsim.sweep import dask_executor, lookup, read_grid, write_sweep
    from sunsim.sweep.report import counts_line, headline

    _check_options(workers, max_requests)
    base = {"trace": {"max_requests": max_requests}} if max_requests is not None else None
    grid = read_grid(grid_file, base_overrides=base)
    out_dir = prepare_run_dir(out or default_run_dir("sweep"), force)
    root = resolve_cache_dir(cache, cache_dir)
    store = ResultCache(root, "sweep")
    axes = "; ".join(f"{a.name} x{len(a.values)}" for a in grid.axes) or "explicit points"
    say(f"grid {grid_file}: {grid.kind}, {len(grid.points)} points ({axes})", markup=False)
    found = lookup(grid, store)
    say(f"{len(found.cached)} points cached, {len(grid.points) - len(found.cached)} to run")
    where = "nothing to run (every point cached)"
    if found.todo:
        with dask_executor(workers or os.cpu_count() or 1, scheduler) as (executor, where):
            say(f"running on {where}", markup=False)
            r = _run(grid, executor, store, found, progress)
    else:
        r = _run(grid, None, store, found, progress)
    methods = sorted(set(r.table["method"].dropna())) if "method" in r.table else []
    print_table(
        headline(r).set_index("point"),
        f"sunsim sweep ({grid.kind}): headline figures per point and mode; step times: "
        + ("; ".join(map(str, methods)) or "none"),
    )
    say(counts_line(r), markup=False)
    files = write_sweep(r, out_dir, where, root, command_line())
    say(f"wrote {out_dir}/ ({', '.join(p.name for p in files)})", markup=False)
    if r.failed:
        err_console.print(
            f"{len(r.failed)} point(s) failed: see the 'error' column and {files[-1]}",
            highlight=False,
        )
        raise typer.Exit(code=1)
