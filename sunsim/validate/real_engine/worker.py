"""The entry point of a real-engine worker process: torch set-up, the model, the command
loop. The processes themselves: :mod:`.prefill_proc`, :mod:`.decode_proc`."""

from __future__ import annotations

import os
import traceback
from typing import Any

from sunsim.validate.real_engine.config import ONEDNN_CACHE_CAPACITY, EngineConfig


def _setup_torch(cfg: EngineConfig, role: str) -> Any:
    for var in ("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "DNNL_PRIMITIVE_CACHE_CAPACITY"):
        os.environ.setdefault(var, ONEDNN_CACHE_CAPACITY)  # before torch is imported
    import torch
    import torch.multiprocessing  # noqa: F401  (registers the tensor-sharing reductions)

    torch.set_num_threads(cfg.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # pragma: no cover - already set
        pass
    if cfg.pin_cpus is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cfg.pin_cpus[0] if role == "prefill" else cfg.pin_cpus[1]})
    return torch


def _process_info(device: str) -> dict:
    """The device (:func:`sunsim.profiling.timing.device_info`) and this process's pid, CPU
    affinity, nice value and scheduler autogroup (None where the OS has none)."""
    from sunsim.profiling.timing import device_info

    info = device_info(device)
    info["pid"] = os.getpid()
    info["affinity"] = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    info["nice"] = os.getpriority(os.PRIO_PROCESS, 0) if hasattr(os, "getpriority") else None
    autogroup = "/proc/self/autogroup"
    info["autogroup"] = (
        open(autogroup, encoding="ascii").read().strip() if os.path.exists(autogroup) else None
    )
    return info


def _serve(w: Any, role: str, ctrl: Any, res: Any) -> None:
    """Answer the driver's commands until ``("exit",)``."""
    while True:
        msg = ctrl.recv()
        cmd = msg[0]
        if cmd == "exit":
            break
        if cmd == "profile":
            res.send(("profile", role, w.profile()))
        elif cmd == "link":
            res.send(("link", role, w.link()))
        elif cmd == "busy":  # work as during the replay until ("idle",)
            res.send(("idle", role, w.busy()))
        elif cmd == "go":
            res.send(("replay", role, w.replay(msg[1])))
        elif cmd == "stop":  # a stop that arrived outside the replay: nothing to do
            continue
        else:  # pragma: no cover - driver bug
            raise RuntimeError(f"unknown command {msg!r}")


def worker_main(
    role: str, cfg: EngineConfig, ctrl: Any, res: Any, kv_conn: Any, back_conn: Any
) -> None:
    """Entry point of a worker process (``role`` = ``prefill`` or ``decode``).

    Pipes: ``ctrl`` (driver -> this worker: commands), ``res`` (this worker -> driver: replies),
    ``kv_conn`` (prefill -> decode: staging tensor, KV notices, calibration), ``back_conn``
    (decode -> prefill: recompute requests, calibration acks). Commands: ``("profile", pass)``,
    ``("link",)``, ``("go", t0)``, ``("stop",)`` (prefill: end once idle), ``("busy",)``
    (work as during the replay until ``("idle",)``: decode a typical batch over and over, or
    prefill a typical prompt after every mean time between arrivals), ``("exit",)``.
    Any exception is sent to the driver as ``("error", role, traceback)``.
    """
    try:
        import faulthandler
        import signal

        if hasattr(signal, "SIGUSR1"):  # `kill -USR1 <pid>` prints the worker's stacks
            faulthandler.register(signal.SIGUSR1, all_threads=True)
        torch = _setup_torch(cfg, role)
        from sunsim.profiling.modules import DecoderModule
        from sunsim.validate.real_engine.decode_proc import DecodeProc
        from sunsim.validate.real_engine.prefill_proc import PrefillProc

        with torch.inference_mode():
            mod = DecoderModule(
                cfg.spec,
                precision="bf16",
                device=cfg.device,
                max_positions=cfg.max_positions,
                seed=cfg.seed,
            )
            proc = PrefillProc if role == "prefill" else DecodeProc
            w = proc(cfg, mod, kv_conn, back_conn, ctrl)
            res.send(("ready", role, _process_info(cfg.device)))
            _serve(w, role, ctrl, res)
    except BaseException:  # noqa: BLE001 - report everything to the driver
        try:
            res.send(("error", role, traceback.format_exc()))
        except Exception:  # pragma: no cover
            pass
