"""``sunsim replay``: replay a trace through every design and compare them side by side."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from sunsim.cli.app import app
from sunsim.cli.format import command_line, console, progress_bar, say
from sunsim.cli.json_output import json_mode, json_option, print_json
from sunsim.cli.options import (
    ScenarioInputs,
    build_scenario,
    force_option,
    out_option,
    progress_option,
    scenario_options,
)


def _print_workload(wl: Any, trace: str | None) -> None:
    info = wl.info
    if wl.closed_loop is not None:
        say(wl.closed_loop.describe(), markup=False)
        counts = ", ".join(f"{m} {c}" for m, c in wl.model_counts.items())
        say(f"models ({wl.labelling}): {counts}", markup=False)
        return
    say(
        f"trace [bold]{info.get('path', trace)}[/] ({info.get('format')}): "
        f"{len(wl.requests)} requests over {info.get('span_s', 0):.0f} s, "
        f"{info.get('mean_rate', 0):.2f} req/s, inter-arrival CV "
        f"{info.get('interarrival_cv', 0):.2f}"
    )
    counts = ", ".join(f"{m} {c}" for m, c in wl.model_counts.items())
    say(f"models ({wl.labelling}): {counts}", markup=False)


def _simulate(s: Any, wl: Any, progress: bool, records_dir: Path | None = None) -> Any:

    from sunsim.replay import run_replay

    with progress_bar("{task.percentage:>3.0f}%", enabled=progress, width=12) as bar:
        tasks = {m: bar.add_task(m, total=1.0) for m in s.modes}
        return run_replay(
            s,
            wl,
            on_progress=lambda m, f: bar.update(tasks[m], completed=f),
            records_dir=records_dir,
        )


@app.command()
@scenario_options()
def replay(
    inputs: ScenarioInputs,
    out: Path | None = out_option("runs/replay-<time>"),
    force: bool = force_option(),
    records_format: str = typer.Option(
        "parquet", "--records-format", help="Per-request records as parquet or csv."
    ),
    progress: bool = progress_option(),
    as_json: bool = json_option(),
    stream_records: bool = typer.Option(
        False,
        "--stream-records",
        help="Write each mode's records to the run directory in Parquet row groups as the "
        "run goes, instead of holding them in memory (for traces of millions of requests; "
        "timestamp and session replays, not closed-loop clients).",
    ),
) -> None:
    """Replay a trace (or closed-loop clients: --max-concurrency, no trace) through
    partitioned, SUN and QSUN decode and compare them side by side."""
    with json_mode(as_json):
        result = _replay(inputs, out, force, records_format, progress, stream_records)
    if as_json:
        print_json(result)


def _replay(
    inputs: ScenarioInputs,
    out: Path | None,
    force: bool,
    records_format: str,
    progress: bool,
    stream_records: bool = False,
) -> dict[str, Any]:
    """The replay command (every human line on the console); returns the machine summary."""
    from sunsim.cli.result_tables import (
        as_costs,
        gpu_title,
        print_compact,
        replay_frame,
        step_time_sources,
    )
    from sunsim.errors import ConfigError
    from sunsim.metrics import sun_vs_partitioned
    from sunsim.replay import load_workload
    from sunsim.runs import default_run_dir, prepare_run_dir, write_run

    s = build_scenario(inputs)
    if records_format not in ("parquet", "csv"):
        raise ConfigError(f"--records-format: expected parquet or csv, got '{records_format}'")
    if stream_records and records_format != "parquet":
        raise ConfigError("--stream-records writes Parquet; drop --records-format csv")
    out_dir = prepare_run_dir(out or default_run_dir("replay"), force)
    wl = load_workload(s)
    _print_workload(wl, s.trace)
    r = _simulate(s, wl, progress, out_dir if stream_records else None)
    for note in r.latency_notes:
        say(f"latency {note}", markup=False)
    method = {x.method.split(" (")[0] for x in r.summaries.values()}
    costs = as_costs(r.summaries, s)
    price = next(iter(costs.values()))
    where, per_gpu_hour = gpu_title(s, costs)
    print_compact(
        replay_frame(r.summaries, costs),
        f"sunsim replay on {where} ({', '.join(sorted(method))} step times; "
        f"{per_gpu_hour}, {price.price_source}); "
        f"SLO TTFT <= {s.slo_ttft_s * 1e3:g} ms, TPOT <= {s.slo_tpot_s * 1e3:g} ms",
    )
    say(step_time_sources({m: x.method for m, x in r.summaries.items()}), markup=False)
    for line in sun_vs_partitioned(r.summaries):
        say(line, markup=False)
    write_run(r, out_dir, records_format, command=command_line())
    console.print(
        f"wrote {out_dir}/ (scenario.toml, summary.json, records_<mode>.{records_format}, ...)",
        highlight=False,
    )
    from sunsim.runs.results_json import replay_results

    return replay_results(r)
