"""Timers, device identification and the roofline probe (copy bandwidth, matmul rate).

* CPU: ``time.perf_counter`` around each call (torch's CPU ops are synchronous); the thread
  count (``torch.get_num_threads()``) is recorded with every profile.
* CUDA: a pair of ``torch.cuda.Event(enable_timing=True)`` around each call on the current
  stream, one synchronisation after all repeats; optionally the call is a replayed CUDA graph.

Repeats are interleaved when several callables are timed together (repeat i runs every
callable once), so the scaled k-layer estimate pairs measurements taken under the same
conditions. Statistics: median, 10th and 90th percentile of the repeats.

On a shared CPU (this project's 2-core machines run other people's tests), profile with one
thread: then torch computes in the calling thread, and the timer reads that thread's CPU
time (``time.thread_time``), which is the call's wall time minus the time other processes
held the core. Rounds whose wall time exceeded the CPU time (preempted) are counted.
"""

from __future__ import annotations

import os
import platform
import re
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from typing import Any

from sunsim.errors import ProfileError
from sunsim.profiling._torch import require_torch

#: A CPU round counts as preempted when wall > PREEMPTION_SLACK x CPU time + PREEMPTION_ABS_S.
PREEMPTION_SLACK = 1.05
PREEMPTION_ABS_S = 50e-6


def percentile(xs: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile ``q`` in [0, 100] of ``xs`` (numpy's default method)."""
    s = sorted(xs)
    if not s:
        raise ValueError("no samples")
    pos = (len(s) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def summarize(xs: Sequence[float]) -> tuple[float, float, float]:
    """``(median, p10, p90)`` of samples (seconds)."""
    return statistics.median(xs), percentile(xs, 10), percentile(xs, 90)


class Timer:
    """Times callables on one device. ``kind`` is ``"cpu"`` or ``"cuda"``.

    Clocks (``clock``): ``"cuda-events"`` on CUDA; on a CPU with torch single-threaded,
    ``"thread-cpu"``: the calling thread's CPU time (``time.thread_time``), which with one
    thread is the wall time the call takes when it has its core to itself (it leaves out the
    time another process held the core; memory stalls count); otherwise ``"wall"``
    (``time.perf_counter``). On a CPU every round also records whether it was preempted
    (wall > 1.05 x CPU time + 50 us), reported as a count.
    """

    def __init__(self, device: str) -> None:
        torch = require_torch()
        self.torch = torch
        self.device = torch.device(device)
        self.kind = self.device.type
        if self.kind == "cuda":
            self.clock = "cuda-events"
            self.name = "torch.cuda.Event pairs (elapsed_time), one sync after the repeats"
        elif torch.get_num_threads() == 1:
            self.clock = "thread-cpu"
            self.name = (
                "time.thread_time (CPU time of the single torch thread; wall time "
                "without preemption)"
            )
        else:
            self.clock = "wall"
            self.name = "time.perf_counter (wall time)"

    def sync(self) -> None:
        if self.kind == "cuda":
            self.torch.cuda.synchronize(self.device)

    def run(self, fns: Sequence[Callable[[], Any]], repeats: int) -> list[list[float]]:
        """Time ``repeats`` interleaved rounds of ``fns``; returns ``times[f][r]`` seconds."""
        return self._run(fns, repeats)[0]

    def _run(self, fns: Sequence[Callable[[], Any]], repeats: int) -> tuple[list[list[float]], int]:
        """Times ``times[f][r]`` and the number of preempted rounds (CPU only)."""
        out: list[list[float]] = [[] for _ in fns]
        if self.kind == "cuda":
            torch = self.torch
            ev = [
                [
                    (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
                    for _ in range(repeats)
                ]
                for _ in fns
            ]
            self.sync()
            for r in range(repeats):
                for i, fn in enumerate(fns):
                    a, b = ev[i][r]
                    a.record()
                    fn()
                    b.record()
            self.sync()
            for i in range(len(fns)):
                out[i] = [a.elapsed_time(b) / 1e3 for a, b in ev[i]]
            return out, 0
        wall, cpu = time.perf_counter, time.thread_time
        use_cpu = self.clock == "thread-cpu"
        preempted = 0
        for _ in range(repeats):
            hit = False
            for i, fn in enumerate(fns):
                c0 = cpu()
                t0 = wall()
                fn()
                dt = wall() - t0
                dc = cpu() - c0
                out[i].append(dc if use_cpu else dt)
                hit = hit or dt > PREEMPTION_SLACK * dc + PREEMPTION_ABS_S
            preempted += hit
        return out, preempted

    def measure(
        self,
        fns: Sequence[Callable[[], Any]],
        *,
        warmup: int,
        min_repeats: int,
        max_repeats: int,
        time_budget_s: float,
        round_s: float | None = None,
    ) -> tuple[list[list[float]], int]:
        """Warm up, then time ``n`` rounds, n = budget / (time of one round) clamped to
        [min_repeats, max_repeats]. The round time is ``round_s`` when given (callables that
        ran before), else the last warm-up call's (at least one warm-up call then).
        Returns ``(times[f][r] seconds, preempted rounds)``."""
        est = round_s or 0.0
        for _ in range(warmup if round_s else max(warmup, 1)):
            est = sum(t[0] for t in self.run(fns, 1))
        n = int(time_budget_s / est) if est > 0 else max_repeats
        n = max(min_repeats, min(max_repeats, n))
        return self._run(fns, n)


def cuda_graph(fn: Callable[[], Any], device: Any) -> Callable[[], Any]:
    """Capture ``fn`` (static inputs, no host sync inside) into a CUDA graph and return its
    replay. Warm-up runs on a side stream first, as torch's CUDA-graph notes require."""
    torch = require_torch()
    s = torch.cuda.Stream(device=device)
    s.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(s):
        for _ in range(2):
            fn()
    torch.cuda.current_stream(device).wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        fn()
    return g.replay


# -- device identification -----------------------------------------------------------------


def _slugify(text: str) -> str:
    s = text.lower()
    s = re.sub(r"\((r|tm|c)\)", "", s)
    s = re.sub(r"@.*$", "", s)
    s = re.sub(r"\b(cpu|processor|core\(tm\))\b", "", s)
    s = re.sub(r"[^a-z0-9]+", "-", s)
    return re.sub(r"-+", "-", s).strip("-")


def cpu_model_name() -> str:
    """The CPU's model name from /proc/cpuinfo (or ``platform.processor()``)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown-cpu"


def gpu_key_for(name: str | None) -> str | None:
    """``h100``/``h200``/``a100`` when ``name`` (e.g. ``NVIDIA H100 80GB HBM3``) names one of
    sunsim's built-in GPUs, else None."""
    if not name:
        return None
    low = name.lower()
    for key in ("h200", "h100", "a100"):
        if key in low:
            return key
    return None


def device_slug(kind: str, name: str, threads: int | None = None) -> str:
    """Directory name of a device: ``cpu-<model-short>-<N>t`` or the slugged GPU name
    (``NVIDIA H100 80GB HBM3`` -> ``nvidia-h100-80gb-hbm3``)."""
    if kind == "cpu":
        return f"cpu-{_slugify(name) or 'unknown'}-{threads}t"
    return _slugify(name)


def _driver_version() -> str | None:
    try:
        r = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        return r.stdout.strip().splitlines()[0] if r.returncode == 0 and r.stdout else None
    except (OSError, subprocess.SubprocessError, IndexError):
        return None


def device_info(device: str) -> dict[str, Any]:
    """Facts about the device a profile is measured on (JSON-ready).

    Keys: ``device_kind``, ``device_name``, ``device_slug``, ``gpu_key``, ``device_memory_bytes``,
    ``threads``, ``cpu_count``, ``cpu_name``, ``torch_version``, ``cuda_version``,
    ``driver_version`` (and ``compute_capability`` on CUDA).
    Raises ProfileError for a device torch cannot use.
    """
    torch = require_torch()
    dev = torch.device(device)
    threads = torch.get_num_threads()
    info: dict[str, Any] = {
        "torch_version": torch.__version__,
        "threads": threads,
        "cpu_count": os.cpu_count(),
        "cpu_name": cpu_model_name(),
        "cuda_version": None,
        "driver_version": None,
    }
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ProfileError(
                "--device cuda, but torch sees no CUDA device "
                f"(torch {torch.__version__}); use --device cpu or a CUDA build "
                "of torch on a GPU machine"
            )
        idx = dev.index if dev.index is not None else torch.cuda.current_device()
        props = torch.cuda.get_device_properties(idx)
        name = torch.cuda.get_device_name(idx)
        info.update(
            device_kind="cuda",
            device_name=name,
            device_slug=device_slug("cuda", name),
            gpu_key=gpu_key_for(name),
            device_memory_bytes=int(props.total_memory),
            cuda_version=torch.version.cuda,
            driver_version=_driver_version(),
            compute_capability=f"{props.major}.{props.minor}",
        )
    elif dev.type == "cpu":
        name = cpu_model_name()
        mem = None
        try:
            mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError, AttributeError):
            pass
        info.update(
            device_kind="cpu",
            device_name=name,
            device_slug=device_slug("cpu", name, threads),
            gpu_key=None,
            device_memory_bytes=mem,
        )
    else:
        raise ProfileError(f"unsupported device '{device}'; use cpu or cuda")
    return info


def available_memory_bytes(device: str) -> int:
    """Bytes free for tensors now: ``torch.cuda.mem_get_info`` on CUDA, MemAvailable on CPU."""
    torch = require_torch()
    dev = torch.device(device)
    if dev.type == "cuda":
        free, _total = torch.cuda.mem_get_info(dev)
        return int(free)
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 8 * 1024**3


# -- roofline probe --------------------------------------------------------------------------


def measure_copy_bandwidth(
    device: str, nbytes: int | None = None, repeats: int = 20
) -> dict[str, float]:
    """Device copy bandwidth: ``dst.copy_(src)`` of a large BF16 tensor, counting bytes read
    plus bytes written (2 x size) per copy. Default size: 1 GiB on CUDA, 256 MiB on CPU
    (well above the caches). The ceiling is the best of ``repeats`` copies (on a shared
    machine the median carries other processes' load). Returns
    ``{"copy_bandwidth_bytes_per_s": best, "copy_bandwidth_median_bytes_per_s": median,
    "copy_bytes": bytes moved per copy}``."""
    torch = require_torch()
    dev = torch.device(device)
    if nbytes is None:
        nbytes = 1024**3 if dev.type == "cuda" else 256 * 1024**2
    n = nbytes // 2
    src = torch.empty(n, dtype=torch.bfloat16, device=dev).normal_()
    dst = torch.empty_like(src)
    timer = Timer(device)
    times = timer.measure(
        [lambda: dst.copy_(src)],
        warmup=2,
        min_repeats=repeats,
        max_repeats=repeats,
        time_budget_s=0.0,
    )[0][0]
    med = statistics.median(times)  # src and dst are freed on return
    return {
        "copy_bandwidth_bytes_per_s": 2 * n * 2 / min(times),
        "copy_bandwidth_median_bytes_per_s": 2 * n * 2 / med,
        "copy_bytes": 2 * n * 2,
    }


def measure_matmul_rate(device: str, n: int | None = None, repeats: int = 20) -> dict[str, float]:
    """Dense BF16 matmul rate: ``a[n, n] @ b[n, n]`` of random values, 2 n^3 FLOPs per call.
    Default n: 8192 on CUDA (as the ARCHITECTURE.md measurements), 2048 on CPU. The ceiling
    is the best of ``repeats`` calls. Returns ``{"matmul_flops_per_s": best,
    "matmul_median_flops_per_s": median, "matmul_n": n}``."""
    torch = require_torch()
    dev = torch.device(device)
    if n is None:
        n = 8192 if dev.type == "cuda" else 2048
    a = torch.empty(n, n, dtype=torch.bfloat16, device=dev).normal_()
    b = torch.empty(n, n, dtype=torch.bfloat16, device=dev).normal_()
    timer = Timer(device)
    times = timer.measure(
        [lambda: a @ b], warmup=2, min_repeats=repeats, max_repeats=repeats, time_budget_s=0.0
    )[0][0]
    flops = 2.0 * n**3
    return {
        "matmul_flops_per_s": flops / min(times),
        "matmul_median_flops_per_s": flops / statistics.median(times),
        "matmul_n": n,
    }
