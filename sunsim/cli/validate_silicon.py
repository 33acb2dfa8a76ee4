"""``sunsim validate silicon``: sunsim against measured end-to-end serving runs
(aiconfigurator-core's ``systems/silicon_sample.csv``)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import typer

from sunsim.cli.format import console, progress_bar
from sunsim.cli.validate import validate_app

#: Most processes of --jobs (each runs whole simulations).
MAX_JOBS = 256
#: Width the tables are printed at, at least (they hold long row ids and model names).
WIDTH = 165


def _pct(x: Any) -> str:
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:+.1%}"


def _abs_pct(x: Any) -> str:
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.1%}"


def _falls(measured: float, sim: float, steps: float) -> str:
    if not steps > 0:
        return ""
    return f"{measured:.0%}/{sim:.0%} of {int(steps)}"


def _ms(x: Any) -> str:
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.1f}"


@validate_app.command("silicon")
def validate_silicon_cmd(
    csv: Path | None = typer.Option(
        None, "--csv", help="A silicon_sample.csv [the installed aiconfigurator-core's]"
    ),
    max_rows: int | None = typer.Option(
        None, "--max-rows", help="Simulate at most N expressible rows (file order) [all]."
    ),
    jobs: int = typer.Option(1, "--jobs", "-j", help="Processes that simulate rows."),
    overhead: bool = typer.Option(
        True,
        "--engine-overhead/--no-engine-overhead",
        help="Add each backend's fitted per-step engine overhead where there is one.",
    ),
    prompts_per_client: int = typer.Option(
        10, "--prompts-per-client", help="Requests each simulated client sends."
    ),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="CSV of every row [silicon_validation.csv]"
    ),
    worst: int = typer.Option(10, "--worst", help="Worst rows to print."),
    client_start: str = typer.Option(
        "together",
        "--client-start",
        help="together: every client's first request at time 0 (chosen on the fit set); "
        "staggered: spread over the shortest request latency (clients out of step).",
    ),
    client_delay: str = typer.Option(
        "fitted",
        "--client-delay",
        help="Mean client-side delay per request in seconds (exponential; clients drift out "
        "of step), or 'fitted': the value chosen on the fit set "
        "(sunsim/data/client/client_delay.json).",
    ),
    fit_set: bool = typer.Option(
        False,
        "--fit-set",
        help="Simulate the engine-overhead fit set instead of the reported rows (to choose "
        "modelling options on rows never reported).",
    ),
    corrections: bool = typer.Option(
        True,
        "--corrections/--no-corrections",
        help="Apply the per-(backend, GPU) corrections fitted on the fit set (decode step "
        "scale, request latency outside the engine; sunsim/data/overhead/"
        "silicon_corrections.json).",
    ),
    figure: bool = typer.Option(
        True,
        "--figure/--no-figure",
        help="Also write simulated vs measured TTFT and TPOT per row as a PNG beside --out "
        "(same name, .png).",
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bar."),
) -> None:
    """Reproduce every row of silicon_sample.csv that sunsim can express (dense model, GPU,
    backend profile, precision, aggregated -> colocated or disaggregated -> partitioned, TP),
    as a closed loop at the row's concurrency, and compare the mean TTFT and TPOT with the
    measured ones: median and p90 error per GPU, backend and model, the worst rows, and the
    rows skipped by reason. The engine overhead's fit rows are never reported."""

    from sunsim.cli.checks import check_int
    from sunsim.errors import ConfigError
    from sunsim.validate.silicon.mapping import CLIENT_STARTS
    from sunsim.validate.silicon.rows import default_csv
    from sunsim.validate.silicon.run import validate_silicon

    if max_rows is not None:
        check_int("--max-rows", max_rows, 1, 10**6, "more than the file holds")
    check_int("--jobs", jobs, 1, MAX_JOBS, "each process runs whole simulations")
    check_int("--prompts-per-client", prompts_per_client, 1, 1000, "each is a request")
    check_int("--worst", worst, 0, 1000, "a table, not a dump: see the CSV")
    if client_start not in CLIENT_STARTS:
        raise ConfigError(f"--client-start {client_start}: choose {' or '.join(CLIENT_STARTS)}")
    delay, delay_note = _client_delay(client_delay)
    fixes = _corrections(corrections)
    path = csv if csv is not None else default_csv()
    dest = out or Path("silicon_validation.csv")
    with progress_bar("{task.completed}/{task.total} rows", enabled=progress, width=10) as bar:
        task = bar.add_task("silicon", total=None)
        res = validate_silicon(
            path,
            max_rows=max_rows,
            jobs=jobs,
            overhead=overhead,
            prompts_per_client=prompts_per_client,
            client_start=client_start,
            fit_set=fit_set,
            client_delay_mean_s=delay,
            corrections=fixes,
            on_progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    res.to_csv(dest, index=False)
    _print(res, path, worst)
    console.print(f"client delay: mean {delay:g} s ({delay_note})", highlight=False)
    _print_corrections(fixes)
    console.print(f"wrote {dest} (one row per CSV row)", highlight=False)
    if figure:
        _figure(res, dest.with_suffix(".png"), path, fit_set)


def _figure(res: Any, dest: Path, path: Path, fit_set: bool) -> None:
    """The scatter of :mod:`sunsim.validate.silicon.figure` at ``dest``; a line saying why
    not when no row was simulated."""
    from sunsim.validate.silicon.figure import steps_label, write_figure

    used = int((res["status"] == "ok").sum())
    if not used:
        console.print("no figure: no row was simulated", highlight=False)
        return
    rows = "fit-set" if fit_set else "reported"
    write_figure(res, dest, f"{path.name} ({used} {rows} rows simulated)", steps_label(res))
    console.print(f"wrote {dest} (simulated vs measured TTFT and TPOT)", highlight=False)


def _corrections(use: bool) -> dict[Any, Any]:
    """The bundled fitted corrections, or none (``--no-corrections``)."""
    from sunsim.validate.silicon.correction_fit import load_corrections

    return load_corrections() if use else {}


def _print_corrections(fixes: dict[Any, Any]) -> None:
    if not fixes:
        console.print("corrections: none (--no-corrections)", highlight=False)
        return
    parts = [
        f"{b} {s} decode x{c.decode_scale:.3f} + {c.request_latency_s * 1e3:.0f} ms/request"
        for (b, s), c in sorted(fixes.items())
    ]
    console.print(
        "corrections (fitted on the fit set, not measured): " + "; ".join(parts),
        highlight=False,
        soft_wrap=True,
    )


def _client_delay(value: str) -> tuple[float, str]:
    """(mean seconds, where it came from) of ``--client-delay``; ConfigError when it is
    neither ``fitted`` nor a number in [0, 60]."""
    from sunsim.errors import ConfigError
    from sunsim.validate.silicon.client_fit import load_client_delay

    if value == "fitted":
        mean, note = load_client_delay()
        return mean, f"fitted on {note}"
    try:
        mean = float(value)
    except ValueError:
        mean = float("nan")
    if not 0.0 <= mean <= 60.0:
        raise ConfigError(f"--client-delay {value}: give 'fitted' or seconds in [0, 60]")
    return mean, "given"


def _print(res: Any, path: Path, worst: int) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    from sunsim.validate.silicon.summary import FALL, error_table, skip_counts, worst_rows

    wide = Console(width=max(console.width, WIDTH))  # long row ids and model names
    used = int((res["status"] == "ok").sum())
    console.print(
        f"{path}: {len(res)} rows; simulated {used}, not simulated {len(res) - used}. "
        "Errors: (sim - measured) / measured of the mean TTFT and mean TPOT.",
        highlight=False,
        soft_wrap=True,
    )
    et = error_table(res)
    if len(et):
        t = Table(title="error by GPU, backend and model", title_justify="left", box=box.SIMPLE)
        for c in ("GPU", "backend", "model", "rows", "TTFT |err| p50", "p90", "bias"):
            left = c in ("GPU", "backend", "model")
            t.add_column(c, justify="left" if left else "right", no_wrap=left)
        for c in ("TPOT |err| p50", "p90", "bias", "TTFT falls meas/sim"):
            t.add_column(c, justify="right")
        for r in et.itertuples(index=False):
            t.add_row(
                r.system, r.backend, str(r.model_path).rsplit("/", 1)[-1], f"{int(r.rows)}",
                _abs_pct(r.ttft_median_abs), _abs_pct(r.ttft_p90_abs), _pct(r.ttft_median_signed),
                _abs_pct(r.tpot_median_abs), _abs_pct(r.tpot_p90_abs), _pct(r.tpot_median_signed),
                _falls(r.measured_ttft_falls, r.sim_ttft_falls, r.ttft_steps),
            )  # fmt: skip
        wide.print(t)
        console.print(
            "TTFT falls: share of steps to the next concurrency (same shape) where the mean "
            f"TTFT falls by more than {FALL:.0%}, measured/simulated; more clients queue at "
            "least as much, so measured falls are run-to-run variation.",
            highlight=False,
            soft_wrap=True,
        )
        wr = worst_rows(res, worst)
        if worst and len(wr):
            w = Table(title="worst rows", title_justify="left", box=box.SIMPLE)
            for c in ("id", "TTFT ms", "sim", "err", "TPOT ms", "sim", "err"):
                w.add_column(c, justify="left" if c == "id" else "right")
            for r in wr.itertuples(index=False):
                w.add_row(
                    str(r.id), _ms(r.silicon_ttft_ms), _ms(r.sim_ttft_ms), _pct(r.ttft_rel_error),
                    _ms(r.silicon_tpot_ms), _ms(r.sim_tpot_ms), _pct(r.tpot_rel_error),
                )  # fmt: skip
            wide.print(w)
    sk = skip_counts(res)
    s = Table(title="rows not simulated, by reason", title_justify="left", box=box.SIMPLE)
    for c in ("reason", "rows", "example"):
        s.add_column(c, justify="right" if c == "rows" else "left", overflow="fold")
    for r in sk.itertuples(index=False):
        s.add_row(str(r.reason), str(r.rows), str(r.example)[:100])
    wide.print(s)
