"""Driving the real engine's two worker processes through the check's phases:
start, profile pass 1, link calibration, replay, profile pass 2 (:func:`run_engine`)."""

from __future__ import annotations

import os
import time
from typing import Any

from sunsim.validate.engine.load import LoadMeter, proc_cpu_s
from sunsim.validate.engine.options import ProgressFn

#: How long the driver waits for a worker's reply before giving up (seconds).
PHASE_TIMEOUT_S = 3600.0


class Workers:
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


def _profile_pass(
    w: Workers, meter: LoadMeter, out: dict, k: int, passes: int, concurrent: bool, say: ProgressFn
) -> None:
    """Profile pass ``k``: one kernel at a time, the other process working as during the
    replay (``concurrent``) or idle; rows and the phases' load appended to ``out``."""
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
                {"while": f"profile {k + 1} {role}", "role": other, **w.expect(other, "idle")}
            )
        out["phases"].append(meter.stop(f"profile {k + 1} {role}"))


def _replay(w: Workers, meter: LoadMeter, out: dict, pids: dict[str, int]) -> None:
    """Release the slice (``go`` at ``t0``), wait for the decode process to finish every
    request, stop the prefill process; records, ``t0`` and the replay's load into ``out``."""
    cpu0 = {r: proc_cpu_s(pid) for r, pid in pids.items()}
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
        r: (proc_cpu_s(pid) - cpu0[r]) / wall for r, pid in pids.items()
    }
    out["phases"].append(load)
    out["replay"] = {"prefill": pre, "decode": dec}
    out["t0"] = t0
    out["load"] = load


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
    replay's :class:`~sunsim.validate.engine.load.LoadMeter` figures plus
    ``engine_busy_cores_by_role``) and ``phases`` (the load of every phase: profile passes,
    replay).
    Raises RuntimeError when a worker fails (with its traceback).
    """
    say = progress or (lambda msg: None)
    say("starting the prefill and decode processes")
    w = Workers(cfg)
    out: dict[str, Any] = {"profile": {"prefill": [], "decode": []}, "phases": []}
    try:
        out["info"] = {r: w.expect(r, "ready", 600) for r in ("prefill", "decode")}
        pids = {r: out["info"][r]["pid"] for r in ("prefill", "decode")}
        meter = LoadMeter([os.getpid(), *pids.values()])
        _profile_pass(w, meter, out, 0, passes, concurrent, say)
        say("calibrating the KV handoff (prefill -> decode)")
        for r in ("prefill", "decode"):
            w.send(r, "link")
        out["link"] = {r: w.expect(r, "link") for r in ("prefill", "decode")}
        span = cfg.arrival_s[-1] if cfg.arrival_s else 0.0
        say(f"replaying {len(cfg.arrival_s)} requests over {span:.0f} s of arrivals")
        _replay(w, meter, out, pids)
        if passes > 1:
            _profile_pass(w, meter, out, 1, passes, concurrent, say)
        return out
    finally:
        w.close()
