"""``sunsim validate queueing`` (the engine against queueing theory) and ``sunsim validate
engine`` (against a small real prefill/decode engine)."""

from __future__ import annotations

from typing import Any

import typer

from sunsim.cli.app import app, make_typer
from sunsim.cli.format import console, err_console, progress_bar, split_list

validate_app = make_typer(
    help="Check the simulator: against queueing theory (sunsim validate queueing), a real "
    "engine (sunsim validate engine) and measured serving runs (sunsim validate silicon)."
)
app.add_typer(validate_app, name="validate")


@validate_app.command("queueing")
def validate_queueing_cmd(
    requests: int = typer.Option(
        200_000,
        "--requests",
        "-n",
        help="Requests per run (the mean wait of a loaded queue needs about 200k for 3%).",
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the arrival and service times."),
    servers: str = typer.Option(
        "1,2,4", "--servers", help="Decode workers of the M/M/c runs, comma-separated."
    ),
    rhos: str = typer.Option("0.5,0.8", "--rhos", help="Loads per server, comma-separated."),
) -> None:
    """Run the engine as M/M/c (c = 1, 2, 4 decode workers behind the central FCFS queue) and
    as M/D/1, at loads 0.5 and 0.8; compare the probability of waiting and the mean wait with
    Erlang C and Pollaczek-Khinchine, check Little's law, and compare every request's wait
    with the exact FCFS recursion. Exits 1 if a check fails."""

    from sunsim.validate.queueing import run_queueing_checks

    server_counts, loads = _check_queueing(requests, seed, servers, rhos)
    with progress_bar("{task.completed}/{task.total} runs", width=28) as bar:
        task = bar.add_task("queueing", total=None)
        df = run_queueing_checks(
            num_requests=requests,
            seed=seed,
            servers=server_counts,
            rhos=loads,
            on_progress=lambda done, total, label: bar.update(
                task, completed=done, total=total, description=label
            ),
        )
    _print_queueing(df, requests, seed)


#: Most requests per run: each run holds about ten float arrays of that length and simulates
#: every request (200,000 take about 2.5 s per run on a 2-vCPU machine; 10,000,000 about
#: 2 minutes and 1 GB of arrays, so 16 loads x 17 runs would take 9 hours).
MAX_QUEUEING_REQUESTS = 10_000_000
#: Most decode workers of one M/M/c run: the scenario's bound of decode workers.
MAX_SERVERS = 4096
#: Most values of --servers or --rhos: each value is one more simulation run per load.
MAX_RUN_VALUES = 16


def _check_queueing(
    requests: int, seed: int, servers: str, rhos: str
) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """Check ``validate queueing``'s options (one line naming the option); returns the
    server counts and loads."""
    from sunsim.cli.checks import check_int, check_seed
    from sunsim.errors import ConfigError

    why = "each run simulates every request: 10,000,000 take minutes per run; 200,000 give 3%"
    if requests < 1000:
        raise ConfigError(
            f"--requests: queueing checks need at least 1000 requests per run, got {requests}"
        )
    check_int("--requests", requests, 1000, MAX_QUEUEING_REQUESTS, why)
    check_seed("--seed", seed)
    counts = split_list(servers, "--servers", int) or ()
    loads = split_list(rhos, "--rhos", float) or ()
    for option, values in (("--servers", counts), ("--rhos", loads)):
        if len(values) > MAX_RUN_VALUES:
            raise ConfigError(
                f"{option}: at most {MAX_RUN_VALUES} values (each is one more run), "
                f"got {len(values)}"
            )
    for c in counts:
        check_int("--servers", c, 1, MAX_SERVERS, "the scenario's bound of decode workers")
    for rho in loads:
        if not 0 < rho < 1:  # also NaN
            raise ConfigError(
                f"--rhos: each load per server must be in (0, 1) for a stable queue, got {rho}"
            )
    return counts, loads


def _print_queueing(df: Any, requests: int, seed: int) -> None:
    """The checks' table, the theory line and the verdict; exit 1 if a check failed."""
    from rich import box
    from rich.table import Table

    from sunsim.validate.queueing import PATHWISE_TOL_S

    tol = df.attrs["rel_tol"]
    t = Table(
        title=f"{requests:,} requests per run, seed {seed}, "
        f"mean service {df.attrs['mean_service_s']:g} s",
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
    for c in ("queue", "quantity", "sim", "theory", "error", "99% CI", "ok"):
        t.add_column(c, justify="left" if c in ("queue", "quantity") else "right", no_wrap=True)
    for r in df.itertuples(index=False):
        ci = "" if r.ci99_rel != r.ci99_rel else f"±{r.ci99_rel:.1%}"
        ok = {"tolerance": "[green]ok[/]", "ci99": "[yellow]ok*[/]"}.get(r.ok_by, "[red]FAIL[/]")
        queue = r.queue.replace("M/M/c c=", "M/M/")
        t.add_row(
            queue,
            r.quantity,
            f"{r.simulated:.4g}",
            f"{r.theory:.4g}",
            f"{r.rel_error:+.1%}",
            ci,
            ok,
        )
    console.print(t)
    console.print(
        f"theory: P(wait) = Erlang C(c, a), a = lambda/mu (M/M/c), rho (M/D/1, "
        f"PASTA); mean wait = C(c, a) / (c mu - lambda) (M/M/c), Pollaczek-Khinchine "
        f"rho S / (2 (1 - rho)) (M/D/1); Little's law: time-average L vs lambda W. "
        f"ok: within {tol:.0%}; ok*: outside {tol:.0%} but within the 99% confidence "
        f"interval (regenerative), which is wider: a short run.",
        highlight=False,
        soft_wrap=True,
    )
    dev = df["max_dev_s"].max()
    console.print(
        f"every request's wait vs the exact FCFS recursion (Lindley / Kiefer-Wolfowitz) "
        f"on the same inputs: largest difference {dev:.1e} s (limit "
        f"{PATHWISE_TOL_S:.0e} s)",
        highlight=False,
    )
    wall = df["wall_s"].sum()
    failed = df[~df["ok"]]
    if len(failed):
        _report_failures(failed, tol)
    by_ci = int((df["ok_by"] == "ci99").sum())
    note = (
        f"; {by_ci} within their 99% interval only (run more --requests to tighten)"
        if by_ci
        else ""
    )
    console.print(
        f"all {len(df)} checks passed ({wall:.0f} s of simulation){note}", highlight=False
    )


def _report_failures(failed: Any, tol: float) -> None:
    """Print each failed check to stderr and exit with code 1."""
    from sunsim.validate.queueing import PATHWISE_TOL_S

    exact_bad = failed[failed["max_dev_s"] > PATHWISE_TOL_S]
    for r in failed.itertuples(index=False):
        why = (
            f"differs from the exact FCFS recursion by {r.max_dev_s:.2e} s"
            if r.max_dev_s > PATHWISE_TOL_S
            else f"{r.rel_error:+.2%} from theory, outside {tol:.0%}"
            + ("" if r.ci99_rel != r.ci99_rel else f" and the 99% interval ±{r.ci99_rel:.1%}")
        )
        err_console.print(f"FAILED {r.check}: {why}", highlight=False, soft_wrap=True)
    if not len(exact_bad):
        err_console.print(
            "(the engine matched the exact recursion request by request; a "
            "statistical miss: try more --requests or another --seed)",
            highlight=False,
            soft_wrap=True,
        )
    raise typer.Exit(code=1)


from sunsim.cli import validate_silicon  # noqa: E402, F401  (registers `validate silicon`)
