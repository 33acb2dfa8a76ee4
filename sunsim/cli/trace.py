"""``sunsim trace info``, ``synth``, ``workflow`` and ``assign``: inspect, generate and relabel
request traces."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from sunsim.cli.app import app, make_typer
from sunsim.cli.format import console

trace_app = make_typer(help="Inspect and generate request traces.")
app.add_typer(trace_app, name="trace")


@trace_app.command("info")
def trace_info_cmd(
    trace: str = typer.Argument(
        ..., help="Trace file: BurstGPT/Azure/canonical CSV or Mooncake JSONL."
    ),
    fmt: str = typer.Option(
        "auto", "--format", "-f", help="auto, burstgpt, azure, mooncake or canonical."
    ),
    keep_failed: bool = typer.Option(
        False, "--keep-failed", help="Keep BurstGPT failed rows (Response tokens == 0)."
    ),
    sort_arrivals: bool = typer.Option(
        False, "--sort-arrivals", help="Re-sort rows whose timestamps go back by more than 1 s."
    ),
) -> None:
    """Read and validate a trace; print its size, rate, burstiness and token percentiles."""
    from rich.table import Table

    from sunsim.cli.checks import check_choice
    from sunsim.traces import FORMATS, read_trace, trace_info

    fmt = check_choice("--format", fmt, ["auto", *FORMATS], "trace format")
    info = trace_info(read_trace(trace, fmt, keep_failed=keep_failed, sort_arrivals=sort_arrivals))
    table = Table(title=f"{info['path']} ({info['format']})", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    failed = (
        f", {info['num_failed']} failed ({info['num_failed_excluded']} excluded)"
        if info["format"] == "burstgpt"
        else ""
    )
    table.add_row("rows", f"{info['num_rows']:,}{failed}")
    table.add_row("requests kept", f"{info['num_requests']:,}")
    if info.get("num_reordered"):
        table.add_row("re-sorted rows", f"{info['num_reordered']:,} (out of time order)")
    if info["num_zero_output"]:
        table.add_row("zero-output rows", f"{info['num_zero_output']:,} (kept with 1 output token)")
    table.add_row("span", f"{info['span_s']:,.1f} s ({info['span_s'] / 60:,.1f} min)")
    table.add_row("mean rate", f"{info['mean_rate']:.3f} req/s")
    table.add_row("inter-arrival CV", f"{info['interarrival_cv']:.2f}")
    for key in ("prompt_tokens", "output_tokens"):
        s = info[key]
        table.add_row(
            key.replace("_", " "),
            f"mean {s['mean']:.0f}, p50 {s['p50']:.0f}, p90 {s['p90']:.0f}, "
            f"p99 {s['p99']:.0f}, max {s['max']:.0f}",
        )
    models = (
        ", ".join(f"{k} {v:,}" for k, v in info["source_models"].items()) or "none in the trace"
    )
    table.add_row("source models", models)
    if info.get("num_sessions"):
        resets = info["num_context_resets"]
        table.add_row(
            "sessions",
            f"{info['num_sessions']:,}"
            + (f" ({resets:,} turns shorter than the context before them)" if resets else ""),
        )
    if info.get("hash_ids_source"):
        table.add_row(
            "prefix blocks",
            f"hash_ids from the {info['hash_ids_source']}, {info['hash_block_tokens']} tokens "
            f"each; {100 * info['prefix_reuse']:.1f}% of prompt tokens repeat an earlier "
            f"prefix (hit rate of an unbounded content-keyed cache: an upper bound)",
        )
    console.print(table)


@trace_app.command("synth")
def trace_synth_cmd(
    out: str = typer.Argument(..., help="Output canonical CSV."),
    requests: int | None = typer.Option(None, "--requests", "-n", help="Number of requests."),
    duration: float | None = typer.Option(
        None,
        "--duration",
        "-d",
        help="Duration in seconds (default 600 if --requests is not given).",
    ),
    rate: float = typer.Option(6.0, "--rate", help="Mean request rate, requests/s."),
    burstiness: float = typer.Option(
        2.0, "--burstiness", help="Inter-arrival coefficient of variation (Gamma; 1 = Poisson)."
    ),
    models: str = typer.Option(
        "math,code,tool", "--models", help="Served models, most popular first."
    ),
    zipf: float = typer.Option(
        1.2, "--zipf", help="Zipf exponent of model popularity (0 = uniform)."
    ),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
) -> None:
    """Write a BurstGPT-style synthetic trace (Gamma arrivals, lognormal lengths, Zipf models)."""
    import numpy as np

    from sunsim.traces import model_counts, synth_command, synth_trace, write_canonical

    if requests is None and duration is None:
        duration = 600.0
    served = _check_synth(out, requests, duration, rate, burstiness, models, zipf, seed)
    df = synth_trace(
        num_requests=requests,
        duration_s=duration,
        rate=rate,
        burstiness=burstiness,
        served=served,
        zipf_alpha=zipf,
        rng=np.random.default_rng(seed),
    )
    path = write_canonical(df, out)
    span = float(df["arrival_s"].iloc[-1])
    counts = ", ".join(f"{k} {v:,}" for k, v in model_counts(df).items())
    console.print(
        f"wrote {len(df):,} requests over {span:,.1f} s to {path} ({counts})",
        highlight=False,
        soft_wrap=True,
    )
    cmd = synth_command(
        out,
        num_requests=requests,
        duration_s=duration,
        rate=rate,
        burstiness=burstiness,
        served=served,
        zipf_alpha=zipf,
        seed=seed,
    )
    console.print(
        f"regenerate with (seed {seed}): {cmd}", highlight=False, soft_wrap=True, markup=False
    )


def _check_synth(
    out: str,
    requests: int | None,
    duration: float | None,
    rate: float,
    burstiness: float,
    models: str,
    zipf: float,
    seed: int,
) -> list[str]:
    """Check ``trace synth``'s options (one line naming the option) before drawing anything;
    returns the served model names. Bounds: at most ``MAX_SYNTH_REQUESTS`` requests, also as
    ``--rate`` x ``--duration`` (the frame alone takes about 1.6 GB at the bound)."""
    from sunsim.cli.checks import check_int, check_number, check_out_file, check_seed
    from sunsim.errors import ConfigError
    from sunsim.traces import MAX_SYNTH_REQUESTS

    if requests is not None and duration is not None:
        raise ConfigError("--requests, --duration: give exactly one of them")
    why = "about 1.6 GB of requests in memory"
    check_int("--requests", requests, 1, MAX_SYNTH_REQUESTS, why)
    check_number("--duration", duration, 0.0, lo_open=True, unit="s")
    check_number("--rate", rate, 0.0, lo_open=True, unit="requests/s")
    check_number("--burstiness", burstiness, 0.0)
    check_number("--zipf (Zipf exponent)", zipf, 0.0)
    check_seed("--seed", seed)
    if duration is not None and rate * duration > MAX_SYNTH_REQUESTS:
        raise ConfigError(
            f"--rate x --duration: asks for about {rate * duration:,.0f} requests, more than "
            f"{MAX_SYNTH_REQUESTS:,} ({why}); lower --rate or --duration"
        )
    served = [m.strip() for m in models.split(",")]
    if not all(served) or len(set(served)) != len(served):
        raise ConfigError(
            f"--models: expected distinct non-empty names separated by commas, got '{models}'"
        )
    check_out_file("OUT", Path(out))
    return served


@trace_app.command(
    "workflow",
    epilog="The timestamps are open loop: replayed as they are, a call arrives even if the "
    "previous call of its session has not finished. To send each session's next call only when "
    "its previous call ends, plus think time (a closed loop per session): sunsim replay OUT "
    "--session-arrivals after_previous --think-time-s S (S: mean think time, s; without it the "
    "gaps between the trace's timestamps count as think time, and here they also hold the "
    "previous call's response time).",
)
def trace_workflow_cmd(
    out: str = typer.Argument(..., help="Output canonical CSV (with session_id, turn, hash_ids)."),
    models: str = typer.Option(
        "planner,coder,critic", "--models", help="Served models, in assignment order."
    ),
    sessions: int = typer.Option(100, "--sessions", "-n", help="Number of agent sessions."),
    session_rate: float = typer.Option(
        0.5, "--session-rate", help="Poisson arrival rate of sessions, sessions/s."
    ),
    loops: int = typer.Option(3, "--loops", help="plan -> act -> check loops per session."),
    system_prompt_tokens: int = typer.Option(
        2000, "--system-prompt-tokens", help="System prompt shared by every session, tokens."
    ),
    task_tokens: str = typer.Option(
        "300,2000", "--task-tokens", help="User task opening a session: N or MEDIAN,P99 tokens."
    ),
    tool_output_tokens: str = typer.Option(
        "600,4000", "--tool-output-tokens", help="Tool output after each act call: N or MEDIAN,P99."
    ),
    output_tokens: str = typer.Option(
        "150,1000", "--output-tokens", help="Output of each call: N or MEDIAN,P99 tokens."
    ),
    think_time: float = typer.Option(
        2.0, "--think-time", help="Mean gap between a session's calls, s (exponential)."
    ),
    assign: str = typer.Option(
        "plan_act_check", "--assign-models", help="round_robin or plan_act_check."
    ),
    hash_block_tokens: int = typer.Option(
        512, "--hash-block-tokens", help="Prompt tokens per hashed block (Mooncake: 512)."
    ),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
) -> None:
    """Write a multi-model agent workflow trace: sessions of plan -> act -> check calls over one
    shared, growing context (see sunsim/traces/workflows.py)."""
    import numpy as np

    from sunsim.cli.checks import check_choice, check_int, check_number, check_out_file, check_seed
    from sunsim.traces import write_canonical
    from sunsim.traces.workflows import (
        ASSIGN_POLICIES,
        Lengths,
        WorkflowSpec,
        workflow_command,
        workflow_trace,
    )

    check_seed("--seed", seed)
    check_int("--sessions", sessions, 1)
    check_int("--loops", loops, 1)
    check_int("--system-prompt-tokens", system_prompt_tokens, 1)
    check_int("--hash-block-tokens", hash_block_tokens, 1, 2**20)
    check_number("--session-rate", session_rate, 0.0, lo_open=True, unit="sessions/s")
    check_number("--think-time", think_time, 0.0, unit="s")
    assign = check_choice("--assign-models", assign, ASSIGN_POLICIES, "model assignment")
    spec = WorkflowSpec(
        models=tuple(m.strip() for m in models.split(",")),
        num_sessions=sessions,
        session_rate=session_rate,
        loops=loops,
        system_prompt_tokens=system_prompt_tokens,
        task_tokens=Lengths.parse(task_tokens, "--task-tokens"),
        tool_output_tokens=Lengths.parse(tool_output_tokens, "--tool-output-tokens"),
        output_tokens=Lengths.parse(output_tokens, "--output-tokens"),
        think_time_s=think_time,
        assign=assign,
        hash_block_tokens=hash_block_tokens,
    )
    check_out_file("OUT", Path(out))
    df = workflow_trace(spec, np.random.default_rng(seed))
    path = write_canonical(df, out)
    _print_workflow(df, path, spec, seed, workflow_command(out, spec, seed))


def _print_workflow(df: Any, path: Path, spec: Any, seed: int, command: str) -> None:
    """What ``trace workflow`` wrote (calls, sessions, lengths) and how to regenerate it."""
    counts = ", ".join(f"{k} {v:,}" for k, v in df["model"].value_counts(sort=False).items())
    console.print(
        f"wrote {len(df):,} calls of {spec.num_sessions:,} sessions over "
        f"{float(df['arrival_s'].iloc[-1]):,.1f} s to {path} ({counts}); prompt tokens mean "
        f"{df['prompt_tokens'].mean():,.0f}, max {df['prompt_tokens'].max():,}; output tokens "
        f"mean {df['output_tokens'].mean():,.0f}; hash_ids in blocks of "
        f"{spec.hash_block_tokens} tokens",
        highlight=False,
        soft_wrap=True,
    )
    console.print(
        f"regenerate with (seed {seed}): {command}",
        highlight=False,
        soft_wrap=True,
        markup=False,
    )


@trace_app.command("assign")
def trace_assign_cmd(
    trace: str = typer.Argument(..., help="A trace with sessions (canonical CSV with session_id)."),
    out: str = typer.Argument(..., help="Output canonical CSV with the assigned models."),
    models: str = typer.Option(..., "--models", help="Served models, in assignment order."),
    assign: str = typer.Option(
        "plan_act_check", "--assign-models", help="round_robin or plan_act_check."
    ),
    fmt: str = typer.Option("auto", "--format", "-f", help="auto, mooncake or canonical."),
    hash_block_tokens: int = typer.Option(
        512, "--hash-block-tokens", help="Prompt tokens per hashed block of the trace."
    ),
    min_shared_blocks: int = typer.Option(
        2,
        "--min-shared-blocks",
        help="Trace without sessions but with hash_ids (Mooncake): a request continues the "
        "session of the latest request sharing its longest prefix of at least this many blocks.",
    ),
) -> None:
    """Assign models to the turns of each session of a trace (the calls of an agent workflow)
    and write it as canonical CSV; session_id, turn and hash_ids are kept (derived if absent).
    A trace with hash_ids but no sessions (Mooncake) gets sessions inferred from shared
    prefixes."""
    from sunsim.cli.checks import check_choice, check_int, check_out_file
    from sunsim.traces import FORMATS, read_trace, write_canonical
    from sunsim.traces.sessions import with_inferred_sessions
    from sunsim.traces.workflows import ASSIGN_POLICIES, assign_models

    fmt = check_choice("--format", fmt, ["auto", *FORMATS], "trace format")
    assign = check_choice("--assign-models", assign, ASSIGN_POLICIES, "model assignment")
    names = [m.strip() for m in models.split(",")]
    check_out_file("OUT", Path(out))
    check_int("--hash-block-tokens", hash_block_tokens, 1, 2**20)
    check_int("--min-shared-blocks", min_shared_blocks, 1)
    tr = read_trace(trace, fmt, hash_block_tokens=hash_block_tokens)
    df, sessions = tr.requests, "the trace's sessions"
    if "session_id" not in df.columns and "hash_ids" in df.columns:
        df = with_inferred_sessions(df, min_shared_blocks)
        sessions = f"sessions inferred from shared prefixes of >= {min_shared_blocks} blocks"
    df = assign_models(df, names, assign)
    path = write_canonical(df, out)
    counts = ", ".join(f"{k} {v:,}" for k, v in df["model"].value_counts(sort=False).items())
    console.print(
        f"wrote {len(df):,} requests of {df['session_id'].nunique():,} sessions to {path} "
        f"({counts}; models by {assign} over {sessions}; hash_ids from the "
        f"{tr.sessions.hash_ids_source})",
        highlight=False,
        soft_wrap=True,
    )
