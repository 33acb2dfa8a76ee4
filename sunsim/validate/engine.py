"""Real-execution check of the simulator: ``sunsim validate engine``.

It runs a small real disaggregated engine (:mod:`sunsim.validate.real_engine`: a prefill worker
process and a decode worker process built from the profiling harness's modules, continuous
batching over a paged KV cache with the simulator's admission and preemption rules, the KV
cache handed from one process to the other), replays a slice of a trace through it, then
simulates the same slice with :func:`sunsim.engine.cluster.simulate` on a cluster that
mirrors the engine, and compares request by request.

Steps (:func:`run_engine_check`):

1. Read the first ``num_requests`` requests of the trace, multiply the request rate by
   ``rate_scale`` (arrival times divided by it, ``read_trace(rate_scale=...)``), and scale the
   lengths to fit the device: ``prompt = clip(round(prompt x prompt_scale), 1, max_prompt)``,
   the same for outputs.
2. Start the two worker processes (same weights, ``threads`` torch threads each); each warms
   up (on a CPU: compiles oneDNN's kernel for every matmul shape the run can meet), then
   **profiles its own kernel** -- the engine's decode step over a grid of batch sizes x context
   tokens, the engine's packed prefill over batch sizes x prompt tokens -- under the conditions
   it meets in the replay: the prefill kernel while the decode process keeps decoding a
   typical batch, each timed prefill after an idle spell as long as the slice's mean time
   between arrivals (at most 0.5 s); the decode kernel back to back while the prefill process
   prefills a typical prompt once per such spell. Pass 1.
3. **Link calibration**: the prefill process hands KV of several sizes to the decode process
   (copy into the shared staging tensor + a notice); ``latency + bytes / bandwidth`` is fitted
   to the measured handoff times (least squares, non-negative) and becomes the
   simulation's :class:`~sunsim.config.LinkSpec`.
4. **Replay**: requests are released at their arrival times; per request the engine records
   arrival, prefill start, first token, KV sent/received, decode start, finish, preemptions; per
   decode iteration: batch size, total context tokens, wall and CPU step time, the time spent
   at the iteration boundary; per prefill batch its lengths, wall and CPU time.
5. Profile pass 2 (same grid), pooled with pass 1 (median, p10, p90 and mean over all repeats,
   and the median thread CPU time) and written in the profile format (``prefill.csv``,
   ``decode.csv``, ``meta.json`` with ``method = "measured"``), loaded with
   :meth:`ProfiledLatency.from_dir`.
6. **Simulate** the slice on a one-model cluster with 1 prefill and 1 decode worker, the same
   ``max_num_seqs``, prefill token budget, KV block size and capacity in blocks (the GPU
   memory accounting is set so that :func:`~sunsim.engine.cluster.kv_capacity_blocks`
   gives exactly the engine's blocks), and the fitted link -- once with the profile's per-point
   means (default primary: TTFT and TPOT are sums of steps, which follow the mean) and once
   with its medians.
7. **Compare**: per request the relative error ``simulated / measured - 1`` of TTFT, TPOT and
   E2E latency (ARCHITECTURE.md definitions); per decode iteration the profile's prediction
   ``decode_step_time(batch, total context)`` against the measured step time, and per prefill
   batch ``prefill_time(lengths)`` against its measured time; both also in thread CPU time
   (a profile fitted to the CPU-time medians), which leaves out the time other processes held
   the core: on a shared machine it separates the step model's error from the load. The CPU
   use of other processes is measured in every phase (profile passes, replay).

Outputs (:func:`write_engine_check`): ``comparison.csv``, ``iterations.csv``,
``prefill_batches.csv``, ``engine_records.csv``, ``sim_records.csv``, ``link.csv``,
``summary.json``, ``measured_vs_simulated.png``, the profile under ``profile/``, and
``engine_raw.json`` (every measurement; :func:`load_engine_raw` + :func:`analyze_engine_check`
re-simulate a measured run).

Goal (issue 5): median |TPOT error| <= 5% and median |TTFT error| <= 10% on a CPU.
Torch is imported only inside the worker processes (and their module's functions).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sunsim.engine.spec import ClusterSpec
from sunsim.errors import ConfigError, ProfileError
from sunsim.latency.base import LatencyModel
from sunsim.serialize import as_dict, jsonable
from sunsim.specs import LinkSpec, ModelSpec, get_gpu, get_model

#: The goal of the check (issue 5): median absolute relative errors.
GOAL_TPOT_MEDIAN = 0.05
GOAL_TTFT_MEDIAN = 0.10

#: Per-point statistics of the profile's repeats the simulation can take its step times from.
#: ``split``: prefill from the medians, decode from the means (see :class:`EngineCheckOptions`).
STATISTICS = {
    "split": "prefill time_s_median, decode time_s_mean",
    "mean": "time_s_mean",
    "median": "time_s_median",
}

#: How long the driver waits for a worker's reply before giving up (seconds).
PHASE_TIMEOUT_S = 3600.0

ProgressFn = Callable[[str], None]


@dataclass(frozen=True)
class EngineCheckOptions:
    """Options of :func:`run_engine_check` (CLI defaults).

    Trace slice: the first ``num_requests`` requests of ``trace``, arrivals divided by
    ``1 / rate_scale``; lengths ``clip(round(x * scale), 1, max)``. Engine: ``device``
    (``cpu``/``cuda``), ``model`` (a built-in name or a :class:`ModelSpec`), ``threads`` per
    worker process, ``max_num_seqs``, ``kv_blocks`` (decode KV capacity in 16-token blocks;
    None: half of what ``max_num_seqs`` requests of the slice's mean context need, at least the
    largest request), ``max_num_batched_tokens`` (prefill budget), ``pin`` (pin prefill/decode to
    CPUs 0/1). ``concurrent``: profile each kernel while the other process works as it does
    during the replay -- the prefill kernel while the decode process keeps decoding a typical
    batch (it is busy most of the replay), the decode kernel while the prefill process
    prefills a typical prompt once every mean time between arrivals (the two share the caches
    and, on a small machine, the cores); False: the other process idle;
    ``prefill_idle_s``: sleep before every timed prefill of the profile (None: the slice's mean
    time between arrivals, at most 0.5 s), as a replayed prefill follows a wait. Profile grid
    (None: derived from the slice): ``decode_batch_sizes``,
    ``decode_contexts``, ``prefill_batch_sizes``, ``prefill_prompt_tokens``; timing per grid
    point and pass: ``warmup``, ``min_repeats``, ``max_repeats``, ``time_per_point_s``;
    ``profile_passes`` (1: before the replay only; 2: before and after, pooled).
    ``statistic``: which per-point statistic of the profile's repeats gives the simulation's
    step times: ``split`` (default) takes the prefill's median and the decode step's mean --
    the check compares medians over requests, and a request's TTFT is one prefill (its typical
    value is the median) while its TPOT averages tens of decode steps (which concentrates at
    their mean); ``mean`` or ``median`` take one statistic for both. The summary reports the
    errors with all three.
    """

    trace: str
    num_requests: int = 200
    rate_scale: float = 0.5
    prompt_scale: float = 0.125
    output_scale: float = 0.25
    max_prompt: int = 512
    max_output: int = 128
    device: str = "cpu"
    model: Any = "tiny-llama"
    threads: int = 1
    max_num_seqs: int = 16
    kv_blocks: int | None = None
    max_num_batched_tokens: int = 1024
    pin: bool = False
    concurrent: bool = True
    prefill_idle_s: float | None = None
    seed: int = 0
    decode_batch_sizes: tuple[int, ...] | None = None
    decode_contexts: tuple[int, ...] | None = None
    prefill_batch_sizes: tuple[int, ...] | None = None
    prefill_prompt_tokens: tuple[int, ...] | None = None
    warmup: int = 2
    min_repeats: int = 5
    max_repeats: int = 40
    time_per_point_s: float = 0.25
    profile_passes: int = 2
    link_tokens: tuple[int, ...] = (16, 64, 256, 1024)
    link_repeats: int = 7
    statistic: str = "split"

    def __post_init__(self) -> None:
        if self.statistic not in STATISTICS:
            raise ConfigError(f"--statistic must be split, mean or median, got '{self.statistic}'")
        if self.num_requests < 1:
            raise ConfigError(f"--requests must be >= 1, got {self.num_requests}")
        if not (self.rate_scale > 0 and self.prompt_scale > 0 and self.output_scale > 0):
            raise ConfigError("--rate-scale, --prompt-scale and --output-scale must be > 0")
        if self.max_prompt < 1 or self.max_output < 1:
            raise ConfigError("--max-prompt and --max-output must be >= 1")
        if self.threads < 1:
            raise ConfigError(f"--threads must be >= 1, got {self.threads}")
        if self.max_num_seqs < 1 or self.max_num_batched_tokens < 1:
            raise ConfigError("--max-num-seqs and --max-batch-tokens must be >= 1")
        if self.kv_blocks is not None and self.kv_blocks < 1:
            raise ConfigError(f"--kv-blocks must be >= 1, got {self.kv_blocks}")
        if self.prefill_idle_s is not None and self.prefill_idle_s < 0:
            raise ConfigError(f"prefill idle time must be >= 0 s, got {self.prefill_idle_s}")
        if self.profile_passes not in (1, 2):
            raise ConfigError(f"profile passes must be 1 or 2, got {self.profile_passes}")
        if self.device not in ("cpu", "cuda") and not str(self.device).startswith("cuda:"):
            raise ConfigError(f"--device must be cpu or cuda, got '{self.device}'")

    @property
    def spec(self) -> ModelSpec:
        return self.model if isinstance(self.model, ModelSpec) else get_model(self.model)


@dataclass
class EngineCheck:
    """What :func:`run_engine_check` measured and simulated.

    Attributes:
        options: the options used; ``config``: the engine configuration (as a dict).
        comparison: one row per request (see :func:`compare_requests`).
        iterations: one row per decode iteration of the engine (see :func:`_iterations_frame`).
        engine_records, sim_records: per-request timestamps (simulator's record columns).
        prefill_batches: one row per engine prefill batch.
        link: calibration samples (``tokens``, ``bytes``, ``handoff_s``, ``copy_s``).
        link_spec: the fitted link; ``summary``: errors, goal check, load, settings (JSON-ready).
        profile_dir: where the profile was written.
    """

    options: EngineCheckOptions
    config: dict
    comparison: pd.DataFrame
    iterations: pd.DataFrame
    engine_records: pd.DataFrame
    sim_records: pd.DataFrame
    prefill_batches: pd.DataFrame
    link: pd.DataFrame
    link_spec: LinkSpec
    summary: dict
    profile_dir: Path
    out_dir: Path
    extra: dict = field(default_factory=dict)


# -- the trace slice ---------------------------------------------------------------------------


def load_slice(opts: EngineCheckOptions) -> pd.DataFrame:
    """The requests to replay: ``arrival_s``, ``prompt_tokens``, ``output_tokens`` (scaled),
    ``trace_prompt_tokens``, ``trace_output_tokens`` (as in the trace), ``model`` (``"m"``).

    Raises TraceError for an unreadable trace.
    """
    from sunsim.traces import read_trace

    tr = read_trace(opts.trace, max_requests=opts.num_requests, rate_scale=opts.rate_scale)
    df = tr.requests
    p = np.clip(np.rint(df["prompt_tokens"].to_numpy() * opts.prompt_scale), 1, opts.max_prompt)
    o = np.clip(np.rint(df["output_tokens"].to_numpy() * opts.output_scale), 1, opts.max_output)
    return pd.DataFrame(
        {
            "arrival_s": df["arrival_s"].to_numpy(dtype=float),
            "model": "m",
            "prompt_tokens": p.astype(np.int64),
            "output_tokens": o.astype(np.int64),
            "trace_prompt_tokens": df["prompt_tokens"].to_numpy(dtype=np.int64),
            "trace_output_tokens": df["output_tokens"].to_numpy(dtype=np.int64),
        }
    )


def _pow2_ladder(lo: int, hi: int) -> tuple[int, ...]:
    out, x = [], lo
    while True:
        out.append(x)
        if x >= hi:
            return tuple(out)
        x *= 2


def default_kv_blocks(req: pd.DataFrame, max_num_seqs: int, block_tokens: int = 16) -> int:
    """Half the blocks ``max_num_seqs`` requests of the slice's mean mid-decode context need
    (``prompt + output / 2`` tokens), and at least the largest request's
    ``ceil((prompt + output - 1) / block_tokens)``: full batches preempt, the usual ones fit."""
    p = req["prompt_tokens"].to_numpy()
    o = req["output_tokens"].to_numpy()
    largest = int(np.max(-(-(p + o - 1) // block_tokens)))
    mid = float(np.mean(np.ceil((p + o / 2) / block_tokens)))
    return max(largest, int(math.ceil(0.5 * max_num_seqs * mid)))


def engine_config(opts: EngineCheckOptions, req: pd.DataFrame) -> Any:
    """The :class:`~sunsim.validate.real_engine.EngineConfig` of ``opts`` for the slice."""
    from sunsim.validate.real_engine import BLOCK_TOKENS, EngineConfig

    spec = opts.spec
    p = req["prompt_tokens"].tolist()
    o = req["output_tokens"].tolist()
    longest_ctx = max(a + b for a, b in zip(p, o))
    longest_prefill = max(a + b - 1 for a, b in zip(p, o))
    bs = opts.decode_batch_sizes or tuple(
        sorted(
            {
                b
                for b in (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256)
                if b <= opts.max_num_seqs
            }
            | {opts.max_num_seqs}
        )
    )
    ctxs = opts.decode_contexts or _pow2_ladder(16, longest_ctx)
    pbs = (
        opts.prefill_batch_sizes
        or tuple(b for b in (1, 2, 4, 8, 16) if b * 16 <= opts.max_num_batched_tokens)
        or (1,)
    )
    pls = opts.prefill_prompt_tokens or _pow2_ladder(16, max(longest_prefill, 16))
    kv_blocks = opts.kv_blocks or default_kv_blocks(req, opts.max_num_seqs, BLOCK_TOKENS)
    pin = (0, 1) if opts.pin and (os.cpu_count() or 1) >= 2 else None
    arr = req["arrival_s"].to_numpy(dtype=float)
    idle = opts.prefill_idle_s
    if idle is None:
        idle = min(float(arr[-1] - arr[0]) / (len(arr) - 1), 0.5) if len(arr) > 1 else 0.0
    return EngineConfig(
        spec=spec,
        device=opts.device,
        threads=opts.threads,
        arrival_s=tuple(float(x) for x in req["arrival_s"]),
        prompt_tokens=tuple(p),
        output_tokens=tuple(o),
        kv_blocks=int(kv_blocks),
        max_num_seqs=opts.max_num_seqs,
        max_num_batched_tokens=opts.max_num_batched_tokens,
        decode_batch_sizes=tuple(bs),
        decode_contexts=tuple(ctxs),
        prefill_batch_sizes=tuple(pbs),
        prefill_prompt_tokens=tuple(pls),
        seed=opts.seed,
        pin_cpus=pin,
        warmup=opts.warmup,
        min_repeats=opts.min_repeats,
        max_repeats=opts.max_repeats,
        time_per_point_s=opts.time_per_point_s,
        link_tokens=tuple(opts.link_tokens),
        link_repeats=opts.link_repeats,
        prefill_idle_s=float(idle),
    )


# -- driving the worker processes ----------------------------------------------------------------


class _Workers:
    """The two spawned worker processes and the driver's ends of their pipes."""

    def __init__(self, cfg: Any) -> None:
        import multiprocessing as mp

        from sunsim.validate.real_engine import worker_main

        ctx = mp.get_context("spawn")
        self.ctrl: dict[str, Any] = {}
        self.res: dict[str, Any] = {}
        self._early: dict[str, tuple] = {}
        kv_r, kv_w = ctx.Pipe(duplex=False)  # prefill -> decode
        back_r, back_w = ctx.Pipe(duplex=False)  # decode -> prefill
        self.procs = {}
        ends = {"prefill": (kv_w, back_r), "decode": (kv_r, back_w)}
        for role in ("prefill", "decode"):
            c_r, c_w = ctx.Pipe(duplex=False)
            r_r, r_w = ctx.Pipe(duplex=False)
            p = ctx.Process(
                target=worker_main,
                name=f"sunsim-engine-{role}",
                args=(role, cfg, c_r, r_w, *ends[role]),
                daemon=True,
            )
            self.procs[role] = p
            self.ctrl[role] = c_w
            self.res[role] = r_r
        for p in self.procs.values():
            p.start()
        for c in (kv_r, kv_w, back_r, back_w):  # the children hold their own copies
            c.close()

    def send(self, role: str, *msg: Any) -> None:
        self.ctrl[role].send(tuple(msg))

    def expect(self, role: str, kind: str, timeout: float = PHASE_TIMEOUT_S) -> Any:
        """Wait for ``(kind, role, payload)`` from ``role``; raise on an error or a dead worker.

        While waiting it also watches the other worker: an error it reports is raised at
        once; any other reply it sends early is kept for the next :meth:`expect` of it.
        """
        msg = self._early.pop(role, None)
        if msg is None:
            msg = self._wait(role, kind, timeout)
        if msg[0] == "error":
            raise RuntimeError(f"the engine's {msg[1]} process failed:\n{msg[2]}")
        if msg[0] != kind:
            raise RuntimeError(f"expected '{kind}' from the {role} process, got '{msg[0]}'")
        return msg[2]

    def _wait(self, role: str, kind: str, timeout: float) -> tuple:
        conn = self.res[role]
        other = "decode" if role == "prefill" else "prefill"
        t_end = time.monotonic() + timeout
        while not conn.poll(0.5):
            if not self.procs[role].is_alive():
                raise RuntimeError(
                    f"the engine's {role} process died (exit code "
                    f"{self.procs[role].exitcode}) before replying '{kind}'"
                )
            if other not in self._early and self.res[other].poll():
                try:
                    m = self.res[other].recv()
                except EOFError:
                    m = (
                        "error",
                        other,
                        f"closed its pipe (exit code {self.procs[other].exitcode})",
                    )
                if m[0] == "error":
                    raise RuntimeError(f"the engine's {m[1]} process failed:\n{m[2]}")
                self._early[other] = m
            if time.monotonic() > t_end:
                raise RuntimeError(
                    f"the engine's {role} process sent no '{kind}' in {timeout:.0f} s"
                )
        try:
            return conn.recv()
        except EOFError:
            raise RuntimeError(
                f"the engine's {role} process closed its pipe (exit code "
                f"{self.procs[role].exitcode}) before replying '{kind}'"
            ) from None

    def close(self) -> None:
        for role, p in self.procs.items():
            if p.is_alive():
                try:
                    self.send(role, "exit")
                except (OSError, BrokenPipeError):
                    pass
        for p in self.procs.values():
            p.join(timeout=10)
            if p.is_alive():  # our own child: stop it
                p.terminate()
                p.join(timeout=5)


def _proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (Linux /proc), NaN elsewhere."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            parts = f.read().rsplit(")", 1)[1].split()
        return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return math.nan


def _machine_busy() -> tuple[float, float]:
    """(busy jiffies, total jiffies) of all CPUs from /proc/stat (NaN elsewhere)."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        idle = v[3] + (v[4] if len(v) > 4 else 0)
        return float(sum(v) - idle), float(sum(v))
    except (OSError, ValueError, IndexError):
        return math.nan, math.nan


class _LoadMeter:
    """CPU use of the whole machine and of the engine's processes over one phase (Linux
    ``/proc``): ``machine_busy_cores`` (all processes), ``engine_busy_cores`` (the driver and
    the two workers), ``other_busy_cores`` (the rest: other people's work on a shared
    machine), averaged over the phase's wall time."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids

    def start(self) -> None:
        self.t = time.perf_counter()
        self.busy = _machine_busy()
        self.cpu = sum(_proc_cpu_s(p) for p in self.pids)
        self.load = os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan

    def stop(self, phase: str) -> dict:
        wall = time.perf_counter() - self.t
        busy = _machine_busy()
        cpu = sum(_proc_cpu_s(p) for p in self.pids)
        ncpu = os.cpu_count() or 1
        tot = busy[1] - self.busy[1]
        machine = (busy[0] - self.busy[0]) / tot * ncpu if tot > 0 else math.nan
        mine = (cpu - self.cpu) / wall if wall > 0 else math.nan
        return {
            "phase": phase,
            "wall_s": wall,
            "cpu_count": ncpu,
            "machine_busy_cores": machine,
            "engine_busy_cores": mine,
            "other_busy_cores": machine - mine,
            "loadavg_1m_before": self.load,
            "loadavg_1m_after": os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan,
        }


def run_engine(
    cfg: Any, progress: ProgressFn | None = None, passes: int = 2, concurrent: bool = True
) -> dict:
    """Start the workers, profile (pass 1), calibrate the link, replay, profile (pass 2).

    Profiling runs one kernel at a time, the other process working as during the replay
    (``concurrent``; else idle): the prefill kernel while the decode process keeps decoding a
    typical batch (it is busy most of the replay), then the decode kernel while the prefill
    process prefills a typical prompt once every mean time between arrivals.

    Returns a dict with ``info`` (per role), ``profile`` (per role: list of passes of rows),
    ``link`` (``prefill``/``decode`` samples), ``replay`` (per role), ``t0``, ``load`` (the
    replay's :class:`_LoadMeter` figures plus ``engine_busy_cores`` per role) and ``phases``
    (the load of every phase: profile passes, replay).
    Raises RuntimeError when a worker fails (with its traceback).
    """
    say = progress or (lambda msg: None)
    say("starting the prefill and decode processes")
    w = _Workers(cfg)
    out: dict[str, Any] = {"profile": {"prefill": [], "decode": []}, "phases": []}
    try:
        out["info"] = {r: w.expect(r, "ready", 600) for r in ("prefill", "decode")}
        pids = {r: out["info"][r]["pid"] for r in ("prefill", "decode")}
        meter = _LoadMeter([os.getpid(), *pids.values()])

        def profile_pass(k: int) -> None:
            for role, other in (("prefill", "decode"), ("decode", "prefill")):
                say(
                    f"profile pass {k + 1}/{passes}: the engine's own {role} kernel"
                    + (f" ({other} process working as in the replay)" if concurrent else "")
                )
                meter.start()
                if concurrent:
                    w.send(other, "busy")
                w.send(role, "profile", k)
                out["profile"][role].append(w.expect(role, "profile"))
                if concurrent:
                    w.send(other, "idle")
                    out.setdefault("background", []).append(
                        {
                            "while": f"profile {k + 1} {role}",
                            "role": other,
                            **w.expect(other, "idle"),
                        }
                    )
                out["phases"].append(meter.stop(f"profile {k + 1} {role}"))

        profile_pass(0)
        say("calibrating the KV handoff (prefill -> decode)")
        for r in ("prefill", "decode"):
            w.send(r, "link")
        out["link"] = {r: w.expect(r, "link") for r in ("prefill", "decode")}
        span = cfg.arrival_s[-1] if cfg.arrival_s else 0.0
        say(f"replaying {len(cfg.arrival_s)} requests over {span:.0f} s of arrivals")
        cpu0 = {r: _proc_cpu_s(pid) for r, pid in pids.items()}
        meter.start()
        t0 = time.perf_counter() + 0.2
        for r in ("prefill", "decode"):
            w.send(r, "go", t0)
        dec = w.expect("decode", "replay")
        w.send("prefill", "stop")
        pre = w.expect("prefill", "replay")
        load = meter.stop("replay")
        wall = load["wall_s"]
        load["engine_busy_cores_by_role"] = {
            r: (_proc_cpu_s(pid) - cpu0[r]) / wall for r, pid in pids.items()
        }
        out["phases"].append(load)
        out["replay"] = {"prefill": pre, "decode": dec}
        out["t0"] = t0
        out["load"] = load
        if passes > 1:
            profile_pass(1)
        return out
    finally:
        w.close()


# -- turning measurements into frames -----------------------------------------------------------


def _stats(xs: list[float]) -> tuple[float, float, float, float]:
    a = np.asarray(xs, dtype=float)
    return (
        float(np.median(a)),
        float(np.percentile(a, 10)),
        float(np.percentile(a, 90)),
        float(np.mean(a)),
    )


def build_profile(
    cfg: Any, raw: dict, opts: EngineCheckOptions, command: str | None
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """``(decode, prefill, meta)`` in the profile format (:mod:`sunsim.profiling.harness`),
    pooling the repeats of every pass. Extra columns: ``time_s_mean``, ``cpu_s_median``
    (thread CPU time), ``passes``."""
    from sunsim import __version__
    from sunsim.profiling.timing import device_slug

    def pool(rows_per_pass: list[list[dict]], keys: tuple[str, str]) -> list[dict]:
        acc: dict[tuple, dict] = {}
        for rows in rows_per_pass:
            for r in rows:
                k = (r[keys[0]], r[keys[1]])
                a = acc.setdefault(k, {"wall": [], "cpu": [], "passes": 0})
                a["wall"] += r["wall"]
                a["cpu"] += r["cpu"]
                a["passes"] += 1
        out = []
        for (b, t), a in acc.items():
            med, p10, p90, mean = _stats(a["wall"])
            out.append(
                {
                    "batch_size": b,
                    keys[1]: t,
                    "total": b * t,
                    "time_s_median": med,
                    "time_s_p10": p10,
                    "time_s_p90": p90,
                    "repeats": len(a["wall"]),
                    "time_s_mean": mean,
                    "cpu_s_median": float(np.median(a["cpu"])),
                    "passes": a["passes"],
                }
            )
        return out

    dec = pd.DataFrame(pool(raw["profile"]["decode"], ("batch_size", "context_tokens")))
    dec = dec.rename(columns={"total": "total_context_tokens"})
    dec = dec[
        [
            "batch_size",
            "context_tokens",
            "total_context_tokens",
            "time_s_median",
            "time_s_p10",
            "time_s_p90",
            "repeats",
            "time_s_mean",
            "cpu_s_median",
            "passes",
        ]
    ]
    pre = pd.DataFrame(pool(raw["profile"]["prefill"], ("batch_size", "prompt_tokens")))
    pre = pre.rename(columns={"total": "total_tokens"})
    pre = pre[
        [
            "batch_size",
            "prompt_tokens",
            "total_tokens",
            "time_s_median",
            "time_s_p10",
            "time_s_p90",
            "repeats",
            "time_s_mean",
            "cpu_s_median",
            "passes",
        ]
    ]
    info = raw["info"]["decode"]
    spec = cfg.spec
    kind = info["device_kind"]
    slug = (
        device_slug(kind, info["device_name"], cfg.threads)
        if kind == "cpu"
        else info["device_slug"]
    )
    meta = {
        "schema_version": 1,
        "method": "measured",
        "quick": False,
        "model": spec.name,
        "precision": "bf16",
        "model_spec": as_dict(spec),
        "modules": ["prefill", "decode"],
        **{
            k: info.get(k)
            for k in (
                "device_kind",
                "device_name",
                "gpu_key",
                "device_memory_bytes",
                "torch_version",
                "cuda_version",
                "driver_version",
                "cpu_count",
                "cpu_name",
            )
        },
        "device_slug": f"{slug}-engine",
        "threads": cfg.threads,
        "dtype": "bfloat16",
        "weight_quantisation": {"precision": "bf16", "scheme": "none (BF16 weights)"},
        "kernels": {
            "decode": "sunsim.validate.real_engine.decode_step: batched linear layers, each "
            "request's new K/V written into its 16-token block of the paged cache, "
            "blocks gathered (index_select) and SDPA per request over its own "
            "context, LM head, greedy argmax",
            "prefill": "sunsim.validate.real_engine.prefill_packed: linear layers over all "
            "tokens of the batch, causal SDPA per request, LM head on each "
            "request's last token, greedy argmax",
        },
        "decode_context_definition": "context_tokens = tokens attended per request in the "
        "iteration (prompt + generated), as the simulator counts",
        "layers_run": spec.num_layers,
        "layers_total": spec.num_layers,
        "scaling": {"scaled": False, "formula": "none (all layers run)"},
        "grid": {
            "decode_batch_sizes": list(cfg.decode_batch_sizes),
            "decode_context_tokens": list(cfg.decode_contexts),
            "prefill_batch_sizes": list(cfg.prefill_batch_sizes),
            "prefill_prompt_tokens": list(cfg.prefill_prompt_tokens),
            "prefill_max_tokens": cfg.max_num_batched_tokens,
            "skipped": [],
        },
        "timing": {
            "warmup": cfg.warmup,
            "min_repeats": cfg.min_repeats,
            "max_repeats": cfg.max_repeats,
            "time_per_point_s": cfg.time_per_point_s,
            "passes": opts.profile_passes,
            "passes_note": "pass 1 before the replay, pass 2 after it (if 2), in the "
            "engine's own worker processes, one kernel at a time; repeats "
            "pooled",
            "conditions": (
                "prefill profiled while the decode process kept decoding a "
                "typical batch; decode profiled while the prefill process "
                "prefilled a typical prompt once every mean time between "
                "arrivals (as during the replay)"
                if opts.concurrent
                else "each kernel profiled with the other process idle"
            ),
            "prefill_idle_s": cfg.prefill_idle_s,
            "prefill_idle_note": "every timed prefill follows this much sleep, as a "
            "replayed prefill follows the wait for its request",
            "clock": "wall",
            "timer": "time.perf_counter (wall time, as the engine's "
            "TTFT/TPOT); cpu_s_median: time.thread_time",
            "statistic": "median, p10, p90 over repeats (seconds); time_s_mean too",
        },
        "measured_by": "sunsim validate engine",
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "sunsim_version": __version__,
        "command": command,
    }
    return dec, pre, meta


def write_profile_dir(root: Path, dec: pd.DataFrame, pre: pd.DataFrame, meta: dict) -> Path:
    """Write the profile under ``root/<device_slug>/<model>/bf16/``; returns that directory."""
    d = Path(root) / meta["device_slug"] / meta["model"] / meta["precision"]
    d.mkdir(parents=True, exist_ok=True)
    dec.to_csv(d / "decode.csv", index=False, float_format="%.6g")
    pre.to_csv(d / "prefill.csv", index=False, float_format="%.6g")
    (d / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return d


def fit_link(raw: dict, kv_bytes_per_token: int) -> tuple[LinkSpec, pd.DataFrame, dict]:
    """Fit ``handoff_s = latency_s + bytes / bandwidth`` (non-negative least squares on the
    median handoff of each size) to the calibration samples.

    Handoff = from the start of the prefill process's copy into the staging tensor to the
    decode process reading the notice. Returns ``(LinkSpec, samples frame, fit info)``.
    """
    from scipy.optimize import nnls

    pre, dec = raw["link"]["prefill"], raw["link"]["decode"]
    dec = dec[-len(pre) :] if len(dec) >= len(pre) else dec  # drop the warm-up round
    rows = [
        {
            "tokens": a["tokens"],
            "bytes": a["tokens"] * kv_bytes_per_token,
            "handoff_s": b["received"] - a["copy_start"],
            "copy_s": a["copy_end"] - a["copy_start"],
        }
        for a, b in zip(pre, dec)
    ]
    df = pd.DataFrame(rows)
    med = df.groupby("bytes")["handoff_s"].median()
    x = np.column_stack([np.ones(len(med)), med.index.to_numpy(dtype=float)])
    t = med.to_numpy(dtype=float)
    w = 1.0 / t  # relative error
    scale = np.abs(x * w[:, None]).max(axis=0)
    scale[scale == 0] = 1.0
    coef, _ = nnls(x * w[:, None] / scale, np.ones_like(t))
    lat, inv_bw = coef / scale
    bw = 1.0 / inv_bw if inv_bw > 0 else 1e15
    spec = LinkSpec(bandwidth=float(bw), latency_s=float(max(lat, 0.0)))
    pred = np.array([spec.transfer_time(b) for b in med.index])
    info = {
        "latency_s": spec.latency_s,
        "bandwidth_bytes_per_s": spec.bandwidth,
        "fit_mape_pct": float(100 * np.mean(np.abs(pred - t) / t)),
        "median_handoff_s_by_bytes": {str(int(k)): float(v) for k, v in med.items()},
        "median_copy_s_by_bytes": {
            str(int(k)): float(v) for k, v in df.groupby("bytes")["copy_s"].median().items()
        },
        "default_link": {
            "latency_s": LinkSpec().latency_s,
            "bandwidth_bytes_per_s": LinkSpec().bandwidth,
        },
    }
    return spec, df, info


def engine_records(cfg: Any, raw: dict, req: pd.DataFrame) -> pd.DataFrame:
    """Per-request engine timestamps (seconds from the replay's start), in the simulator's
    record columns, plus ``kv_received_at`` (the decode process read the notice)."""
    from sunsim.validate.real_engine import rejection

    t0 = raw["t0"]
    pre = raw["replay"]["prefill"]["requests"]
    dec = raw["replay"]["decode"]["requests"]
    rows = []
    for i in range(len(req)):
        p = pre.get(i, {})
        d = dec.get(i, {})
        why = p.get("rejected", "")
        fin = d.get("finished_at", p.get("finished_at", math.nan))
        tr = p.get("transfers") or []
        rows.append(
            {
                "request_id": i,
                "prompt_tokens": int(req["prompt_tokens"].iat[i]),
                "output_tokens": int(req["output_tokens"].iat[i]),
                "arrived_at": float(req["arrival_s"].iat[i]),
                "prefill_started_at": p.get("prefill_started_at", math.nan) - t0,
                "first_token_at": p.get("first_token_at", math.nan) - t0,
                "kv_ready_at": (tr[0][2] - t0) if tr else math.nan,
                "kv_received_at": d.get("kv_received_at", math.nan) - t0,
                "decode_started_at": d.get("decode_started_at", math.nan) - t0,
                "finished_at": fin - t0,
                "num_preemptions": int(d.get("num_preemptions", 0)),
                "status": "rejected" if why else ("finished" if fin == fin else "unfinished"),
                "reject_reason": why or rejection(cfg, i),
            }
        )
    from sunsim.engine.records import add_latency_columns

    return add_latency_columns(pd.DataFrame(rows))


def mirror_cluster(cfg: Any, latency: Any, link: LinkSpec) -> ClusterSpec:
    """A one-model cluster mirroring the engine: 1 prefill and 1 decode worker, the engine's
    ``max_num_seqs``, prefill token budget, KV block size and **exactly** its KV capacity in
    blocks: memory utilisation 1.0 and ``reserve_bytes = GPU memory - decode weight bytes -
    blocks x block bytes - half a block`` (so :func:`kv_capacity_blocks` rounds down to the
    engine's blocks)."""
    from sunsim.engine.cluster import kv_capacity_blocks

    gpu = get_gpu("h100")
    per_block = latency.kv_bytes_per_token * cfg.block_tokens
    reserve = int(
        gpu.memory_bytes - latency.weight_bytes - cfg.kv_blocks * per_block - per_block // 2
    )
    if reserve < 0:
        raise ConfigError(
            f"{cfg.kv_blocks} KV blocks of {cfg.spec.name} do not fit the "
            "memory accounting of the mirrored cluster; use fewer --kv-blocks"
        )
    cl = ClusterSpec(
        design="sun",
        served_models=("m",),
        prefill_workers=(1,),
        decode_workers=(1,),
        gpu="h100",
        max_num_seqs=cfg.max_num_seqs,
        max_num_batched_tokens=cfg.max_num_batched_tokens,
        block_size=cfg.block_tokens,
        gpu_memory_utilization=1.0,
        reserve_bytes=reserve,
        link=link,
    )
    got = kv_capacity_blocks(cl, latency)
    if got != cfg.kv_blocks:  # pragma: no cover - arithmetic guard
        raise RuntimeError(f"mirrored KV capacity {got} blocks != engine's {cfg.kv_blocks}")
    return cl


COMPARED = (
    "prefill_started_at",
    "first_token_at",
    "kv_ready_at",
    "decode_started_at",
    "finished_at",
    "num_preemptions",
    "ttft_s",
    "tpot_s",
    "e2e_s",
)


def compare_requests(eng: pd.DataFrame, sim: pd.DataFrame) -> pd.DataFrame:
    """One row per request: ``request_id``, ``prompt_tokens``, ``output_tokens``,
    ``arrived_at``, ``status_measured``, ``status_simulated``, for each of
    :data:`COMPARED` ``<name>_measured`` and ``<name>_simulated``, and for TTFT, TPOT, E2E
    ``<metric>_rel_error`` = simulated / measured - 1 (NaN where undefined). (The check adds
    ``ttft_s_level_matched`` and ``tpot_s_level_matched``: see :class:`LevelScaledLatency`.)"""
    out = pd.DataFrame(
        {
            "request_id": eng["request_id"].to_numpy(),
            "prompt_tokens": eng["prompt_tokens"].to_numpy(),
            "output_tokens": eng["output_tokens"].to_numpy(),
            "arrived_at": eng["arrived_at"].to_numpy(),
            "status_measured": eng["status"].to_numpy(),
            "status_simulated": sim["status"].astype(str).to_numpy(),
        }
    )
    for c in COMPARED:
        out[f"{c}_measured"] = eng[c].to_numpy(dtype=float)
        out[f"{c}_simulated"] = sim[c].to_numpy(dtype=float)
    for m in ("ttft", "tpot", "e2e"):
        meas = out[f"{m}_s_measured"]
        with np.errstate(invalid="ignore", divide="ignore"):
            out[f"{m}_rel_error"] = out[f"{m}_s_simulated"] / meas - 1.0
    return out


class LevelScaledLatency(LatencyModel):
    """``base`` with its prefill and decode times multiplied by constant factors.

    The check's diagnostic: with the factors set to (sum of the replay's measured times) /
    (sum of the profile's predictions for them), the profile keeps its shape (how time grows
    with batch size and tokens) but takes the speed level the machine had during the replay.
    Simulating with it separates the error that comes from the machine's speed drifting
    between profiling and replay (other people's load on a shared machine) from the error of
    the step model's shape and of the simulated dynamics. Calibrated on the measurement it is
    compared with: a diagnostic, never a prediction.
    """

    def __init__(self, base: LatencyModel, prefill_scale: float, decode_scale: float) -> None:
        self.base = base
        self.prefill_scale = float(prefill_scale)
        self.decode_scale = float(decode_scale)
        self.method = base.method
        self.weight_bytes = base.weight_bytes
        self.kv_bytes_per_token = base.kv_bytes_per_token
        self.max_model_len = base.max_model_len
        self.description = (
            f"{base.description}, prefill x{self.prefill_scale:.3f}, decode "
            f"x{self.decode_scale:.3f} (level matched to the replay)"
        )

    def prefill_time(self, prompt_lens):
        return self.prefill_scale * self.base.prefill_time(prompt_lens)

    def decode_step_time(self, batch_size: int, total_context_tokens: int) -> float:
        return self.decode_scale * self.base.decode_step_time(batch_size, total_context_tokens)


class SplitLatency(LatencyModel):
    """Prefill times from one latency model, decode step times from another (both of the same
    model and device): the check's ``split`` statistic (prefill medians, decode means)."""

    def __init__(self, prefill: Any, decode: Any) -> None:
        self.prefill, self.decode = prefill, decode
        self.method = decode.method
        self.weight_bytes = decode.weight_bytes
        self.kv_bytes_per_token = decode.kv_bytes_per_token
        self.max_model_len = decode.max_model_len
        self.description = (
            f"{decode.description}; prefill from the per-point medians, "
            "decode from the per-point means"
        )
        self.decode_fit = getattr(decode, "decode_fit", None)
        self.prefill_fit = getattr(prefill, "prefill_fit", None)

    def prefill_time(self, prompt_lens):
        return self.prefill.prefill_time(prompt_lens)

    def decode_step_time(self, batch_size: int, total_context_tokens: int) -> float:
        return self.decode.decode_step_time(batch_size, total_context_tokens)


def _iterations_frame(raw: dict, latency: Any, cpu_latency: Any = None) -> pd.DataFrame:
    """One row per engine decode iteration: ``iteration``, ``started_at`` (s from the replay's
    start), ``batch_size``, ``total_context_tokens``, ``step_s`` (measured wall),
    ``step_cpu_s`` (thread CPU time), ``predicted_s`` (the profile's
    ``decode_step_time(batch, total context)``), ``rel_error`` (predicted / measured - 1),
    ``boundary_s`` (wall time between the previous step's end and this step's start while the
    worker stayed busy: taking KV notices, preempting, admitting, block bookkeeping; NaN after
    an idle spell; ``boundary_cpu_s`` the thread CPU time of it), ``admitted``, ``preempted``,
    ``finished``, ``blocks_used`` (blocks held during the step); with
    ``cpu_latency`` also ``predicted_cpu_s`` and ``cpu_rel_error`` (the CPU-time view, see
    :func:`statistic_latency`)."""
    it = raw["replay"]["decode"]["iterations"]
    cols = [
        "started_at",
        "step_s",
        "step_cpu_s",
        "batch_size",
        "total_context_tokens",
        "boundary_s",
        "boundary_cpu_s",
        "admitted",
        "preempted",
        "finished",
        "blocks_used",
    ]
    df = pd.DataFrame(it, columns=cols)
    df["started_at"] -= raw["t0"]
    df.insert(0, "iteration", np.arange(len(df)))
    step = latency.decode_step_time
    df["predicted_s"] = [
        step(int(b), int(c)) for b, c in zip(df["batch_size"], df["total_context_tokens"])
    ]
    df["rel_error"] = df["predicted_s"] / df["step_s"] - 1.0
    if cpu_latency is not None:
        cstep = cpu_latency.decode_step_time
        df["predicted_cpu_s"] = [
            cstep(int(b), int(c)) for b, c in zip(df["batch_size"], df["total_context_tokens"])
        ]
        df["cpu_rel_error"] = df["predicted_cpu_s"] / df["step_cpu_s"] - 1.0
    return df


def _batches_frame(raw: dict, latency: Any, cpu_latency: Any = None) -> pd.DataFrame:
    """One row per engine prefill batch: ``batch``, ``start``, ``end``, ``transfers_end``
    (s from the replay's start), ``prefill_s`` (measured wall), ``cpu_s`` (thread CPU time),
    ``batch_size``, ``tokens``, ``lens`` (tokens per request, ``;``-separated), ``recomputes``,
    ``predicted_s`` (the profile's ``prefill_time(lens)``), ``rel_error``; with ``cpu_latency``
    also ``predicted_cpu_s`` and ``cpu_rel_error``."""
    b = pd.DataFrame(
        raw["replay"]["prefill"]["batches"],
        columns=[
            "start",
            "end",
            "transfers_end",
            "cpu_s",
            "batch_size",
            "tokens",
            "lens",
            "recomputes",
        ],
    )
    for c in ("start", "end", "transfers_end"):
        b[c] -= raw["t0"]
    b.insert(0, "batch", np.arange(len(b)))
    b.insert(4, "prefill_s", b["end"] - b["start"])
    lens = b.pop("lens")
    b["lens"] = [";".join(str(int(x)) for x in ls) for ls in lens]
    b["predicted_s"] = [latency.prefill_time([int(x) for x in ls]) for ls in lens]
    b["rel_error"] = b["predicted_s"] / b["prefill_s"] - 1.0
    if cpu_latency is not None:
        b["predicted_cpu_s"] = [cpu_latency.prefill_time([int(x) for x in ls]) for ls in lens]
        b["cpu_rel_error"] = b["predicted_cpu_s"] / b["cpu_s"] - 1.0
    return b


def _err_stats(x: pd.Series) -> dict:
    x = x.dropna()
    if x.empty:
        return {
            "n": 0,
            "median_abs": math.nan,
            "p90_abs": math.nan,
            "median": math.nan,
            "mean": math.nan,
        }
    a = x.abs()
    return {
        "n": int(len(x)),
        "median_abs": float(a.median()),
        "p90_abs": float(np.percentile(a, 90)),
        "median": float(x.median()),
        "mean": float(x.mean()),
    }


def summarize_check(
    comp: pd.DataFrame,
    iters: pd.DataFrame,
    eng: pd.DataFrame,
    sim_res: Any,
    pre_batches: pd.DataFrame,
) -> dict:
    """Errors (median / p90 of |relative error|, signed median and mean) of TTFT, TPOT, E2E
    and decode step time, the goal check and side-by-side counts."""
    both = comp[(comp["status_measured"] == "finished") & (comp["status_simulated"] == "finished")]
    ttft = _err_stats(both["ttft_rel_error"])
    tpot = _err_stats(both["tpot_rel_error"])
    e2e = _err_stats(both["e2e_rel_error"])
    step = _err_stats(iters["rel_error"])
    step_cpu = _err_stats(iters["cpu_rel_error"]) if "cpu_rel_error" in iters else None
    pre = _err_stats(pre_batches["rel_error"]) if len(pre_batches) else _err_stats(pd.Series([]))
    pre_cpu = _err_stats(pre_batches["cpu_rel_error"]) if "cpu_rel_error" in pre_batches else None
    busy = iters[iters["boundary_s"].notna()]
    dw = sim_res.decode_workers.iloc[0]
    meas_mean_batch = (
        float((iters["batch_size"] * iters["step_s"]).sum() / iters["step_s"].sum())
        if len(iters)
        else math.nan
    )
    summary = {
        "errors": {
            "ttft": ttft,
            "tpot": tpot,
            "e2e": e2e,
            "decode_step": step,
            "decode_step_cpu_time": step_cpu,
            "prefill_batch": pre,
            "prefill_batch_cpu_time": pre_cpu,
        },
        "goal": {
            "tpot_median_abs_max": GOAL_TPOT_MEDIAN,
            "ttft_median_abs_max": GOAL_TTFT_MEDIAN,
            "tpot_met": bool(tpot["median_abs"] <= GOAL_TPOT_MEDIAN),
            "ttft_met": bool(ttft["median_abs"] <= GOAL_TTFT_MEDIAN),
        },
        "requests": {
            "total": int(len(comp)),
            "finished_measured": int((comp["status_measured"] == "finished").sum()),
            "finished_simulated": int((comp["status_simulated"] == "finished").sum()),
            "rejected_measured": int((comp["status_measured"] == "rejected").sum()),
            "rejected_simulated": int((comp["status_simulated"] == "rejected").sum()),
            "compared": int(len(both)),
        },
        "medians": {
            "ttft_s_measured": float(both["ttft_s_measured"].median()),
            "ttft_s_simulated": float(both["ttft_s_simulated"].median()),
            "tpot_s_measured": float(both["tpot_s_measured"].median()),
            "tpot_s_simulated": float(both["tpot_s_simulated"].median()),
            "e2e_s_measured": float(both["e2e_s_measured"].median()),
            "e2e_s_simulated": float(both["e2e_s_simulated"].median()),
        },
        "decode": {
            "iterations_measured": int(len(iters)),
            "iterations_simulated": int(dw["num_iterations"]),
            "mean_batch_measured": meas_mean_batch,
            "mean_batch_simulated": float(dw["mean_batch"]),
            "peak_batch_measured": int(iters["batch_size"].max()) if len(iters) else 0,
            "peak_batch_simulated": int(dw["peak_batch"]),
            "preemptions_measured": int(eng["num_preemptions"].sum()),
            "preemptions_simulated": int(dw["num_preemptions"]),
            "step_s_mean_measured": float(iters["step_s"].mean()) if len(iters) else math.nan,
            "step_s_mean_predicted": float(iters["predicted_s"].mean()) if len(iters) else math.nan,
            "step_cpu_over_wall": float(iters["step_cpu_s"].sum() / iters["step_s"].sum())
            if len(iters)
            else math.nan,
            "boundary_s_median": float(busy["boundary_s"].median()) if len(busy) else math.nan,
            "boundary_over_step": float(busy["boundary_s"].sum() / busy["step_s"].sum())
            if len(busy)
            else math.nan,
        },
        "prefill": {
            "batches_measured": int(len(pre_batches)),
            "batches_simulated": int(sim_res.prefill_workers["num_batches"].iloc[0]),
            "transfer_s_median": float((pre_batches["transfers_end"] - pre_batches["end"]).median())
            if len(pre_batches)
            else math.nan,
            "prefill_s_mean_measured": float(pre_batches["prefill_s"].mean())
            if len(pre_batches)
            else math.nan,
            "prefill_s_mean_predicted": float(pre_batches["predicted_s"].mean())
            if len(pre_batches)
            else math.nan,
            "cpu_over_wall": float(pre_batches["cpu_s"].sum() / pre_batches["prefill_s"].sum())
            if len(pre_batches)
            else math.nan,
        },
    }
    return summary


def run_engine_check(
    opts: EngineCheckOptions,
    out: str | Path,
    *,
    progress: ProgressFn | None = None,
    command: str | None = None,
) -> EngineCheck:
    """Run the whole check (see the module docstring) and write its files under ``out``
    (also ``engine_raw.json``: every measurement, for :func:`analyze_engine_check`).

    Raises:
        TraceError: unreadable trace. ConfigError: bad options. ProfileError: torch missing.
        RuntimeError: a worker process failed (its traceback in the message).
    """
    from sunsim.profiling._torch import torch_available

    if not torch_available():
        raise ProfileError(
            "the real-engine check needs torch, which is not installed; "
            "install it with: pip install 'sunsim[profile]'"
        )
    say = progress or (lambda msg: None)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    req = load_slice(opts)
    cfg = engine_config(opts, req)
    t_start = time.perf_counter()
    raw = run_engine(cfg, say, passes=opts.profile_passes, concurrent=opts.concurrent)
    raw["wall_s"] = time.perf_counter() - t_start
    raw["config"] = asdict(cfg)
    (out / "engine_raw.json").write_text(json.dumps(jsonable(raw)) + "\n", encoding="utf-8")
    say("writing the profile and simulating the same slice")
    return analyze_engine_check(raw, cfg, req, opts, out, command=command)


def load_engine_raw(path: str | Path) -> tuple[dict, Any, pd.DataFrame]:
    """Read ``engine_raw.json`` (written by :func:`run_engine_check`) back: ``(raw, cfg,
    requests)``, ready for :func:`analyze_engine_check` (to re-simulate a measured run)."""
    from sunsim.validate.real_engine import EngineConfig

    p = Path(path)
    if p.is_dir():
        p = p / "engine_raw.json"
    raw = json.loads(p.read_text(encoding="utf-8"))
    for role in ("prefill", "decode"):
        r = raw["replay"][role]
        r["requests"] = {int(k): v for k, v in r["requests"].items()}
    d = dict(raw["config"])
    d["spec"] = ModelSpec(**d["spec"])
    for k, v in d.items():
        if isinstance(v, list):
            d[k] = tuple(v)
    cfg = EngineConfig(**d)
    req = pd.DataFrame(
        {
            "arrival_s": cfg.arrival_s,
            "model": "m",
            "prompt_tokens": cfg.prompt_tokens,
            "output_tokens": cfg.output_tokens,
        }
    )
    return raw, cfg, req


def _points(df: pd.DataFrame, per: str, column: str) -> list[tuple[float, ...]]:
    return [
        (float(b), float(c), float(b * c), float(b * c * c), float(t))
        for b, c, t in zip(df["batch_size"], df[per], df[column])
    ]


def statistic_latency(
    dec: pd.DataFrame, pre: pd.DataFrame, meta: dict, path: Path, column: str
) -> Any:
    """A :class:`ProfiledLatency` fitted to another column of the profile than
    ``time_s_median``, built in memory (the written profile keeps the median there):
    ``time_s_mean`` (the expected step time, which a sum of many steps such as a TPOT
    follows) or ``cpu_s_median`` (thread CPU time: a diagnostic that leaves out the time other
    processes held the core, exact with one torch thread)."""
    from sunsim.latency.profiled import ProfiledLatency

    return ProfiledLatency(
        meta,
        _points(dec, "context_tokens", column),
        _points(pre, "prompt_tokens", column),
        path=path,
        prefill_path=path,
    )


def analyze_engine_check(
    raw: dict,
    cfg: Any,
    req: pd.DataFrame,
    opts: EngineCheckOptions,
    out: str | Path,
    *,
    command: str | None = None,
) -> EngineCheck:
    """Build the profile from the engine's measurements ``raw`` (:func:`run_engine`), fit
    the link, simulate the slice with the profile's step times (``split``, ``mean`` and
    ``median`` statistics), compare and write everything under ``out``. The statistic
    ``opts.statistic`` is the primary one (``comparison.csv``, the figure, ``errors``); the
    others' errors are in the summary too (``errors_<statistic>_profile``)."""
    from sunsim.engine.cluster import simulate
    from sunsim.latency.profiled import ProfiledLatency

    out = Path(out)
    dec, pre, meta = build_profile(cfg, raw, opts, command)
    pdir = write_profile_dir(out / "profile", dec, pre, meta)
    lat_median = ProfiledLatency.from_dir(pdir, model=cfg.spec.name, precision="bf16")
    lat_mean = statistic_latency(dec, pre, meta, pdir, "time_s_mean")
    lats = {"split": SplitLatency(lat_median, lat_mean), "mean": lat_mean, "median": lat_median}
    link, link_df, link_info = fit_link(raw, lat_median.kv_bytes_per_token)
    cluster = mirror_cluster(cfg, lat_median, link)
    eng = engine_records(cfg, raw, req)
    cpu_lat = statistic_latency(dec, pre, meta, pdir, "cpu_s_median")
    runs = {}
    for name, lat in lats.items():
        sim_res = simulate(
            req[["arrival_s", "model", "prompt_tokens", "output_tokens"]],
            cluster,
            lat,
            lat,
            seed=opts.seed,
        )
        comp = compare_requests(eng, sim_res.records)
        iters = _iterations_frame(raw, lat, cpu_lat)
        batches = _batches_frame(raw, lat, cpu_lat)
        runs[name] = (
            sim_res,
            comp,
            iters,
            batches,
            summarize_check(comp, iters, eng, sim_res, batches),
        )
    primary = opts.statistic
    others = [k for k in lats if k != primary]
    sim_res, comp, iters, batches, summary = runs[primary]
    # diagnostic: the primary profile at the speed level the machine had during the replay
    d_scale = float(iters["step_s"].sum() / iters["predicted_s"].sum()) if len(iters) else 1.0
    p_scale = (
        float(batches["prefill_s"].sum() / batches["predicted_s"].sum()) if len(batches) else 1.0
    )
    lvl = LevelScaledLatency(lats[primary], p_scale, d_scale)
    lvl_res = simulate(
        req[["arrival_s", "model", "prompt_tokens", "output_tokens"]],
        cluster,
        lvl,
        lvl,
        seed=opts.seed,
    )
    lvl_comp = compare_requests(eng, lvl_res.records)
    lvl_sum = summarize_check(
        lvl_comp, _iterations_frame(raw, lvl), eng, lvl_res, _batches_frame(raw, lvl)
    )
    summary["errors_level_matched"] = {
        "note": "diagnostic, not a prediction: the profile's times scaled so that their sum "
        "over the replay's own decode iterations and prefill batches equals the "
        "measured sum (the machine's speed level during the replay); separates the "
        "drift of the machine's speed between profiling and replay from the error of "
        "the profile's shape and of the simulated dynamics",
        "decode_scale": d_scale,
        "prefill_scale": p_scale,
        **{
            k: lvl_sum["errors"][k] for k in ("ttft", "tpot", "e2e", "decode_step", "prefill_batch")
        },
        "goal": lvl_sum["goal"],
        "decode": {
            k: lvl_sum["decode"][k] for k in ("mean_batch_simulated", "preemptions_simulated")
        },
    }
    comp = comp.assign(
        ttft_s_level_matched=lvl_comp["ttft_s_simulated"].to_numpy(),
        tpot_s_level_matched=lvl_comp["tpot_s_simulated"].to_numpy(),
    )
    lat = lats[primary]
    summary["statistic"] = {
        "primary": primary,
        "columns": STATISTICS[primary],
        "note": "the simulation's step times come from the profile's per-point statistic "
        f"'{primary}' over repeats; the errors with the others are under "
        + ", ".join(f"errors_{o}_profile" for o in others),
    }
    for other in others:
        o = runs[other][4]
        summary[f"errors_{other}_profile"] = {
            **o["errors"],
            "goal": o["goal"],
            "decode": {
                k: o["decode"][k]
                for k in ("mean_batch_simulated", "preemptions_simulated", "step_s_mean_predicted")
            },
        }
    summary["link"] = link_info
    summary["load"] = raw["load"]
    prof = [ph for ph in raw.get("phases", []) if ph["phase"].startswith("profile")]
    summary["load_phases"] = raw.get("phases", [])
    summary["load_other_cores_profile_mean"] = (
        float(np.mean([ph["other_busy_cores"] for ph in prof])) if prof else math.nan
    )
    summary["load_other_cores_replay"] = raw["load"]["other_busy_cores"]
    summary["profile"] = {
        "dir": str(pdir),
        "description": lat.description,
        "decode_fit": lat.decode_fit,
        "prefill_fit": lat.prefill_fit,
        "cpu_time_decode_fit": cpu_lat.decode_fit,
    }
    summary["settings"] = {
        "trace": str(opts.trace),
        "num_requests": len(req),
        "rate_scale": opts.rate_scale,
        "arrival_span_s": float(req["arrival_s"].iloc[-1]),
        "prompt_scale": opts.prompt_scale,
        "output_scale": opts.output_scale,
        "max_prompt": opts.max_prompt,
        "max_output": opts.max_output,
        "prompt_tokens_mean": float(req["prompt_tokens"].mean()),
        "output_tokens_mean": float(req["output_tokens"].mean()),
        "device": opts.device,
        "device_name": raw["info"]["decode"].get("device_name"),
        "model": cfg.spec.name,
        "threads_per_process": cfg.threads,
        "pinned_cpus": list(cfg.pin_cpus) if cfg.pin_cpus else None,
        "concurrent_profiling": opts.concurrent,
        "prefill_idle_s": cfg.prefill_idle_s,
        "autogroup": raw["info"]["decode"].get("autogroup"),
        "max_num_seqs": cfg.max_num_seqs,
        "kv_blocks": cfg.kv_blocks,
        "block_size": cfg.block_tokens,
        "max_num_batched_tokens": cfg.max_num_batched_tokens,
        "prefill_pad_tokens": cfg.prefill_pad,
        "profile_passes": opts.profile_passes,
        "seed": opts.seed,
        "torch_version": raw["info"]["decode"].get("torch_version"),
    }
    summary["command"] = command
    summary["wall_s"] = raw.get("wall_s")
    res = EngineCheck(
        options=opts,
        config=_cfg_dict(cfg),
        comparison=comp,
        iterations=iters,
        engine_records=eng,
        sim_records=sim_res.records,
        prefill_batches=batches,
        link=link_df,
        link_spec=link,
        summary=summary,
        profile_dir=pdir,
        out_dir=out,
    )
    write_engine_check(res)
    return res


def _cfg_dict(cfg: Any) -> dict:
    d = asdict(replace(cfg, arrival_s=(), prompt_tokens=(), output_tokens=()))
    d["num_requests"] = len(cfg.arrival_s)
    return d


def write_engine_check(res: EngineCheck) -> list[Path]:
    """Write the check's files under ``res.out_dir``; returns their paths."""
    out = res.out_dir
    files = []

    def csv(df: pd.DataFrame, name: str) -> None:
        p = out / name
        df.to_csv(p, index=False, float_format="%.6g")
        files.append(p)

    csv(res.comparison, "comparison.csv")
    csv(res.iterations, "iterations.csv")
    csv(res.engine_records, "engine_records.csv")
    csv(res.sim_records, "sim_records.csv")
    csv(res.prefill_batches, "prefill_batches.csv")
    csv(res.link, "link.csv")
    p = out / "summary.json"
    p.write_text(
        json.dumps(jsonable({**res.summary, "engine_config": res.config}), indent=2) + "\n",
        encoding="utf-8",
    )
    files.append(p)
    p = out / "measured_vs_simulated.png"
    fig = figure(res)
    fig.savefig(p, dpi=120, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    files.append(p)
    return files


def figure(res: EngineCheck) -> Any:
    """Scatter of simulated against measured TTFT and TPOT per request, and of the profile's
    predicted against the measured decode step time per iteration (y = x dashed)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    comp = res.comparison
    ok = comp[(comp["status_measured"] == "finished") & (comp["status_simulated"] == "finished")]
    it = res.iterations
    e = res.summary["errors"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    panels = [
        (
            axes[0],
            ok["ttft_s_measured"] * 1e3,
            ok["ttft_s_simulated"] * 1e3,
            "TTFT (ms)",
            e["ttft"],
            "requests",
        ),
        (
            axes[1],
            ok["tpot_s_measured"] * 1e3,
            ok["tpot_s_simulated"] * 1e3,
            "TPOT (ms)",
            e["tpot"],
            "requests",
        ),
        (
            axes[2],
            it["step_s"] * 1e3,
            it["predicted_s"] * 1e3,
            "decode step (ms)",
            e["decode_step"],
            "iterations",
        ),
    ]
    for ax, x, y, name, st, what in panels:
        m = x.notna() & y.notna()
        x, y = x[m], y[m]
        ax.scatter(x, y, s=8 if what == "requests" else 3, alpha=0.6)
        if len(x):
            lo = float(min(x.min(), y.min()))
            hi = float(max(x.max(), y.max()))
            ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="y = x")
            if lo > 0 and hi / lo > 20:
                from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

                ax.set_xscale("log")
                ax.set_yscale("log")
                for axis in (ax.xaxis, ax.yaxis):
                    axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
                    axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
                    axis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(f"measured {name}")
        ax.set_ylabel(f"simulated {name}" if what == "requests" else f"profile-predicted {name}")
        ax.set_title(
            f"{name}: |err| median {100 * (st['median_abs'] or math.nan):.1f}%, "
            f"p90 {100 * (st['p90_abs'] or math.nan):.1f}% ({st['n']} {what})",
            fontsize=10,
        )
        ax.legend(loc="upper left", fontsize=8)
    s = res.summary["settings"]
    fig.suptitle(
        f"sunsim validate engine: {s['model']} on {s['device_name']} "
        f"({s['threads_per_process']} thread(s) per process), {s['num_requests']} "
        f"requests of {Path(s['trace']).name}",
        fontsize=11,
    )
    fig.tight_layout()
    return fig
