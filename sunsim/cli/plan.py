"""``sunsim plan``: the fewest workers per design that meet the SLO; sweeps and goodput."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from sunsim.cli.app import app
from sunsim.cli.cache_options import cache_dir_option, resolve_cache_dir
from sunsim.cli.format import command_line, progress_bar, say
from sunsim.cli.json_output import json_mode, json_option, print_json
from sunsim.cli.options import (
    ScenarioInputs,
    build_scenario,
    force_option,
    out_option,
    progress_option,
    scenario_options,
)
from sunsim.cli.plan_tables import print_plan_table, print_sweep
from sunsim.config import MAX_WORKERS
from sunsim.errors import ConfigError

_MAX_JOBS = 1024  # processes; more than any machine's cores, each holds a copy of the trace

_HELP = {
    "prefill_workers": "Goodput only (rate sweeps): prefill workers, one or one per model.",
    "decode_workers": "Goodput only (rate sweeps): total decode workers, or one per model.",
    "slo_attainment": "Attainment target; also the percentile of --slo-kind percentile.",
}


def plan_inputs(inputs: ScenarioInputs, given: dict[str, Any]) -> tuple[Any, Any]:
    """The scenario and :class:`~sunsim.planner.PlanOptions`: the ``--scenario`` file (its
    optional ``[plan]`` table holds the plan options, as ``sunsim plan`` writes it), then
    the options given on the command line (``given``: PlanOptions field -> value)."""
    import dataclasses

    from sunsim.config import Scenario, read_toml, scenario_from_toml_dict
    from sunsim.planner import PlanOptions, plan_options_from_dict

    base, popts = Scenario(), PlanOptions()
    if inputs.file is not None:
        data = read_toml(inputs.file)
        ptable = data.pop("plan", {})
        src = str(inputs.file)
        base = scenario_from_toml_dict(data, source=src, base_dir=Path(inputs.file).parent)
        popts = plan_options_from_dict(ptable, source=src)
    s = build_scenario(inputs, base=base)
    changes = {k: v for k, v in given.items() if v is not None}
    popts = dataclasses.replace(popts, **changes)
    for k, hi, what in (
        ("max_workers", MAX_WORKERS, "workers per pool"),
        ("jobs", _MAX_JOBS, "processes"),
    ):
        v = getattr(popts, k)
        where = f"--{k.replace('_', '-')}" if k in changes else f"{inputs.file}: [plan] {k}"
        if v is not None and (type(v) is not int or not 1 <= v <= hi):
            raise ConfigError(f"{where}: expected an integer in 1..{hi} ({what}), got {v!r}")
    return s, popts


def _run(s: Any, popts: Any, progress: bool, gpus: tuple[str, ...] | None = None) -> Any:

    from sunsim.planner import plan as run_plan

    with progress_bar(enabled=progress) as bar:
        task = bar.add_task("simulations", total=0)
        counts = {"submit": 0, "done": 0}

        def on_event(kind: str, info: dict) -> None:
            if kind in counts:
                counts[kind] += 1
                bar.update(
                    task,
                    total=counts["submit"],
                    completed=counts["done"],
                    description=f"simulations ({info['task']})",
                )

        if gpus is not None:
            from sunsim.planner import plan_gpus

            return plan_gpus(s, gpus, popts, on_event=on_event)
        return run_plan(s, popts, on_event=on_event)


@app.command()
@scenario_options(
    scenario_help="Scenario TOML (a plan directory's scenario.toml repeats that plan); "
    "options given here override it.",
    help_overrides=_HELP,
)
def plan(
    inputs: ScenarioInputs,
    slo_kind: str | None = typer.Option(
        None,
        "--slo-kind",
        metavar="[attainment|percentile]",
        help="attainment: every model's joint SLO attainment >= target; percentile: every "
        "model's p90 TTFT and p90 TPOT within the bounds (default: attainment)",
    ),
    prefill_target: float | None = typer.Option(
        None,
        "--prefill-target",
        help="TTFT-only attainment prefill pools are sized for (default: (1 + target) / 2)",
    ),
    sweep: str | None = typer.Option(
        None,
        "--sweep",
        help="rate=5,10,20 (load in req/s: capacity against load, and goodput), "
        "rate_scale=1,2,4 (a factor on the trace's rate) or zipf=0,0.5,1 (against skew).",
    ),
    gpus: str | None = typer.Option(
        None,
        "--gpus",
        help="Plan every design on each of these GPU types (e.g. h100,h200,a100,b200) and "
        "rank the designs by the $/hour of their cheapest configuration meeting the SLO "
        "(instead of --gpu).",
    ),
    jobs: int | None = typer.Option(
        None, "--jobs", "-j", help="Simulation processes (default: the number of CPUs)"
    ),
    max_workers: int | None = typer.Option(
        None, "--max-workers", help=f"Search cap per pool (default: {MAX_WORKERS})"
    ),
    out: Path | None = out_option("runs/plan-<time>"),
    force: bool = force_option(),
    cache: bool = typer.Option(
        True,
        "--cache/--no-cache",
        help="Reuse and extend the content-addressed result cache (see --cache-dir); "
        "planning again from DIR/scenario.toml into DIR needs no --force.",
    ),
    cache_dir: Path | None = cache_dir_option(),
    replays: bool = typer.Option(
        True,
        "--replays/--no-replays",
        help="Write each mode's final simulation as DIR/replay_<mode>/.",
    ),
    progress: bool = progress_option(),
    as_json: bool = json_option(),
) -> None:
    """Find, for each mode, the fewest decode workers (partitioned: per model; sun/qsun: one
    pool) and prefill workers per model that meet the SLO; print and write the plan."""
    cmd = PlanCommand(
        inputs=inputs, slo_kind=slo_kind, prefill_target=prefill_target, sweep=sweep,
        jobs=jobs, max_workers=max_workers, out=out, force=force, cache=cache,
        cache_dir=cache_dir, progress=progress, replays=replays,
    )  # fmt: skip
    with json_mode(as_json):
        result = _plan_gpus(cmd, gpus) if gpus is not None else _plan(cmd)
    if as_json:
        print_json(result)


@dataclass(frozen=True)
class PlanCommand:
    """What ``sunsim plan`` was given besides ``--gpus`` and ``--json``: the scenario inputs,
    the plan options as typed (None: the ``--scenario`` file's ``[plan]`` table, else the
    default), the output directory and the run switches. See the options' help."""

    inputs: ScenarioInputs
    slo_kind: str | None
    prefill_target: float | None
    sweep: str | None
    jobs: int | None
    max_workers: int | None
    out: Path | None
    force: bool
    cache: bool
    cache_dir: Path | None
    progress: bool
    replays: bool

    def scenario_and_options(self) -> tuple[Any, Any]:
        """The scenario and :class:`~sunsim.planner.PlanOptions` (:func:`plan_inputs`; the
        cache directory is :meth:`with_cache`'s). Raises ConfigError: a bad option, file or
        sweep."""
        from sunsim.planner import parse_sweep

        given = dict(
            slo_kind=self.slo_kind,
            prefill_target=self.prefill_target,
            max_workers=self.max_workers,
            jobs=self.jobs,
            sweep=parse_sweep(self.sweep) if self.sweep else None,
        )
        return plan_inputs(self.inputs, given)

    def with_cache(self, popts: Any) -> Any:
        """``popts`` with the result cache directory ``--cache/--cache-dir`` say."""
        return dataclasses.replace(popts, cache_dir=resolve_cache_dir(self.cache, self.cache_dir))


def _plan(cmd: PlanCommand) -> dict[str, Any]:
    """The plan command (every human line on the console); returns the machine summary."""
    from sunsim.planner import write_plan
    from sunsim.runs import default_run_dir, prepare_run_dir
    from sunsim.runs.results_json import plan_results

    out_dir = cmd.out or default_run_dir("plan")
    s, popts = cmd.scenario_and_options()
    prepare_run_dir(out_dir, cmd.force or _repeats_itself(cmd.inputs.file, out_dir))
    popts = cmd.with_cache(popts)
    r = _run(s, popts, cmd.progress)
    _print_header(r, s)
    print_plan_table(r.table(r.reference), s, popts, r)
    if popts.sweep is not None:
        print_sweep(r)
    files = write_plan(r, out_dir, command=command_line(), replays=cmd.replays)
    say(
        f"{r.num_simulations} simulations ({r.num_cached} cached) in "
        f"{r.wall_s:.1f} s with {r.jobs} processes; wrote {out_dir}/ (plan.json, "
        f"plan.csv, scenario.toml{', sweep.csv' if popts.sweep else ''}"
        f"{', replay_<mode>/' if cmd.replays else ''}; {len(files)} files)",
        markup=False,
    )
    return plan_results(r)


def _repeats_itself(scenario_file: Path | None, out_dir: Path) -> bool:
    """Whether this plan repeats the plan in ``out_dir`` from its own ``scenario.toml``:
    the same plan again (extending its cache), not another run, so no ``--force`` needed."""
    if scenario_file is None:
        return False
    return Path(scenario_file).resolve() == (Path(out_dir) / "scenario.toml").resolve()


def _print_header(r: Any, s: Any, notes: list[str] | None = None) -> None:
    ref = r.points[r.reference]
    info = ref.workload_info
    counts = ", ".join(f"{m} {c}" for m, c in ref.model_counts.items())
    say(
        f"trace [bold]{info.get('path', s.trace)}[/] ({info.get('format')}): "
        f"{info.get('num_requests')} requests, {info.get('mean_rate', 0):.2f} req/s; "
        f"models ({ref.labelling}): {counts}"
    )
    for note in dict.fromkeys(r.latency_notes if notes is None else notes):
        say(f"latency {note}", markup=False)


def _plan_gpus(cmd: PlanCommand, gpus_text: str) -> dict[str, Any]:
    """``sunsim plan --gpus``: every design on every GPU type, the cheapest per design ranked;
    writes DIR/plan.csv (every configuration), DIR/ranking.csv, DIR/plan.json and each
    (GPU, design) plan directory as DIR/<gpu>/<design>/."""
    from sunsim.cli.plan_tables import print_gpu_plans
    from sunsim.planner import parse_gpus
    from sunsim.runs import default_run_dir, prepare_run_dir
    from sunsim.runs.plan_gpus_dir import write_gpu_plans

    gpus = parse_gpus(gpus_text)
    if "gpu" in cmd.inputs.given:
        raise ConfigError("give --gpu (one GPU) or --gpus (several to rank), not both")
    out_dir = cmd.out or default_run_dir("plan")
    s, popts = cmd.scenario_and_options()
    prepare_run_dir(out_dir, cmd.force)
    popts = cmd.with_cache(popts)
    gp = _run(s, popts, cmd.progress, gpus)
    plans = [r for by in gp.plans.values() for r in by.values()]
    _print_header(plans[0], s, [n for r in plans for n in r.latency_notes])
    print_gpu_plans(gp)
    summary = write_gpu_plans(gp, out_dir, command=command_line(), replays=cmd.replays)
    say(
        f"{gp.num_simulations} simulations ({gp.num_cached} cached) in {gp.wall_s:.1f} s; "
        f"wrote {out_dir}/ (plan.json, plan.csv, ranking.csv, <gpu>/<design>/)",
        markup=False,
    )
    return summary
