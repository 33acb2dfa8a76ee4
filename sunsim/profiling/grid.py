"""What the profiling harness measures and how: the grid (:class:`ProfileGrid`) and the timing
options (:class:`TimingOptions`), with their defaults per device kind. No torch needed."""

from __future__ import annotations

from dataclasses import dataclass

from sunsim.errors import ProfileError


@dataclass(frozen=True)
class ProfileGrid:
    """The measured grid.

    ``decode_batch_sizes`` x ``decode_context_tokens`` (context tokens per request);
    ``prefill_batch_sizes`` x ``prefill_prompt_tokens`` (tokens per prompt), keeping only
    batches of at most ``prefill_max_tokens`` tokens in all.
    """

    decode_batch_sizes: tuple[int, ...]
    decode_context_tokens: tuple[int, ...]
    prefill_batch_sizes: tuple[int, ...]
    prefill_prompt_tokens: tuple[int, ...]
    prefill_max_tokens: int

    def __post_init__(self) -> None:
        for name in (
            "decode_batch_sizes",
            "decode_context_tokens",
            "prefill_batch_sizes",
            "prefill_prompt_tokens",
        ):
            v = getattr(self, name)
            if not v or any(int(x) < 1 for x in v):
                raise ProfileError(f"grid {name} must be positive integers, got {list(v)}")
            object.__setattr__(self, name, tuple(sorted(set(int(x) for x in v))))

    def prefill_points(self) -> list[tuple[int, int]]:
        return [
            (b, l)
            for b in self.prefill_batch_sizes
            for l in self.prefill_prompt_tokens
            if b * l <= self.prefill_max_tokens
        ]

    def decode_points(self) -> list[tuple[int, int]]:
        return [(b, c) for c in self.decode_context_tokens for b in self.decode_batch_sizes]


def _geom(lo: int, hi: int) -> tuple[int, ...]:
    out, x = [], lo
    while x <= hi:
        out.append(x)
        x *= 2
    return tuple(out)


def default_grid(device_kind: str, quick: bool = False) -> ProfileGrid:
    """The default grid for ``cpu`` or ``cuda``; ``quick`` is a tiny grid for tests.

    * quick: decode B in {1, 4, 16} x c in {64, 256}; prefill B in {1, 2} x L in {32, 128}.
    * cpu: decode B 1..64 x c 128..4096; prefill B 1..8 x L 64..2048, at most 4096 tokens.
    * cuda: decode B 1..256 x c 128..8192; prefill B 1..16 x L 64..8192, at most 16384 tokens.
    (ranges are powers of two).
    """
    if quick:
        return ProfileGrid((1, 4, 16), (64, 256), (1, 2), (32, 128), 256)
    if device_kind == "cuda":
        return ProfileGrid(_geom(1, 256), _geom(128, 8192), _geom(1, 16), _geom(64, 8192), 16384)
    return ProfileGrid(_geom(1, 64), _geom(128, 4096), _geom(1, 8), _geom(64, 2048), 4096)


@dataclass(frozen=True)
class TimingOptions:
    """How each grid point is timed.

    ``passes`` sweeps over the whole grid; in each, a point gets between ``min_repeats /
    passes`` and ``max_repeats / passes`` timed repeats (rounded up), as many as fill
    ``time_per_point_s / passes`` seconds, after ``warmup`` calls in the first pass only
    (later passes run callables that already ran). The statistics pool the repeats of
    all passes, so slow phases of load from other processes on a shared machine touch every
    point a little instead of a few points a lot. ``cuda_graphs`` replays decode steps as
    CUDA graphs.

    ``fit_statistic`` names the statistic the latency model is fitted to (``meta.json``
    ``fit_statistic``): ``median`` or ``min`` (the fastest repeat); ``auto`` is ``median`` on
    CUDA and ``min`` on a CPU. On this project's shared 2-vCPU machines, other tenants of the
    host slow a single-threaded BF16 matmul by 1.2-2.8x for seconds at a time (a 60 s probe:
    median 2.2x its fastest run, copies 1.25x), so the median of a grid point depends on how
    many of its repeats fell into slow phases, while the fastest repeat, taken over passes
    spread across the whole run, is the device's own step time.
    """

    warmup: int = 2
    min_repeats: int = 20
    max_repeats: int = 60
    time_per_point_s: float = 3.0
    passes: int = 20
    cuda_graphs: bool = False
    fit_statistic: str = "auto"

    def __post_init__(self) -> None:
        if self.fit_statistic not in ("auto", "median", "min"):
            raise ProfileError(
                f"--statistic must be auto, median or min, got '{self.fit_statistic}'"
            )
        if self.passes < 1 or self.min_repeats < 1 or self.max_repeats < 1 or self.warmup < 0:
            raise ProfileError(
                "timing needs passes >= 1, repeats >= 1 and warmup >= 0 (got "
                f"passes={self.passes}, repeats={self.min_repeats}.."
                f"{self.max_repeats}, warmup={self.warmup})"
            )

    def per_pass(self) -> tuple[int, int, float]:
        """``(min_repeats, max_repeats, seconds)`` of one pass."""
        p = self.passes
        lo = -(-self.min_repeats // p)
        return lo, max(-(-self.max_repeats // p), lo), self.time_per_point_s / p


def default_timing(device_kind: str, quick: bool = False) -> TimingOptions:
    """quick: 1 pass, 3-5 repeats; cuda: 1 pass, 20-200 repeats in 0.5 s (a dedicated GPU);
    cpu: 20 passes, 20-60 repeats in 3 s per point (CPUs are often shared)."""
    if quick:
        return TimingOptions(
            warmup=1, min_repeats=3, max_repeats=5, time_per_point_s=0.02, passes=1
        )
    if device_kind == "cuda":
        return TimingOptions(
            warmup=5, min_repeats=20, max_repeats=200, time_per_point_s=0.5, passes=1
        )
    return TimingOptions()


def fit_statistic_for(timing: TimingOptions, device_kind: str) -> str:
    """The statistic the latency model is fitted to: ``timing.fit_statistic``, with ``auto``
    being ``median`` on CUDA and ``min`` on a CPU (see :class:`TimingOptions`)."""
    if timing.fit_statistic != "auto":
        return timing.fit_statistic
    return "median" if device_kind == "cuda" else "min"
