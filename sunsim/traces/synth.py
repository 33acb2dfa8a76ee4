"""The synthetic workload generator: BurstGPT-style traces, and the canonical CSV writer.

Gamma renewal arrivals, clipped lognormal lengths, Zipf model popularity; a seed reproduces a
trace exactly, and :func:`synth_command` gives the command line that does.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from sunsim.errors import ConfigError, TraceError, where
from sunsim.traces.hashes import format_hash_ids
from sunsim.traces.labels import check_served, zipf_shares

__all__ = [
    "CANONICAL_COLUMNS",
    "MAX_SYNTH_REQUESTS",
    "LognormalLengths",
    "DEFAULT_PROMPT_LENGTHS",
    "DEFAULT_OUTPUT_LENGTHS",
    "synth_trace",
    "synth_command",
    "write_canonical",
]

#: Columns of the canonical CSV and of :func:`synth_trace`'s frame, in order.
CANONICAL_COLUMNS = ("arrival_s", "model", "prompt_tokens", "output_tokens")
#: Most requests :func:`synth_trace` draws (about 1.6 GB of frame); more is almost surely a typo.
MAX_SYNTH_REQUESTS = 50_000_000


@dataclass(frozen=True)
class LognormalLengths:
    """A clipped lognormal token-length distribution, given by its median and 99th percentile.

    ``sigma = ln(p99 / median) / z_0.99`` with ``z_0.99 = 2.3263``; ``mu = ln(median)``; samples are
    rounded to whole tokens and clipped to ``[low, high]``.
    """

    median: float
    p99: float
    low: int = 1
    high: int = 32768

    def __post_init__(self) -> None:
        if not (
            math.isfinite(self.median) and math.isfinite(self.p99) and 0 < self.median < self.p99
        ):
            raise ConfigError(
                f"length distribution needs 0 < median < p99, got median={self.median}, "
                f"p99={self.p99}"
            )
        if not (1 <= self.low <= self.high):
            raise ConfigError(
                f"length clip range needs 1 <= low <= high, got [{self.low}, {self.high}]"
            )

    @property
    def sigma(self) -> float:
        """Log-space standard deviation."""
        return math.log(self.p99 / self.median) / 2.3263478740408408

    @property
    def mean(self) -> float:
        """Mean before clipping and rounding: ``median * exp(sigma**2 / 2)``."""
        return self.median * math.exp(self.sigma**2 / 2)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` int64 lengths."""
        x = rng.lognormal(mean=math.log(self.median), sigma=self.sigma, size=n)
        return np.clip(np.rint(x), self.low, self.high).astype(np.int64)


#: Prompt lengths matched to the Azure LLM inference trace 2023, conversation service (p50 1020,
#: p99 4142 tokens; measured in ../shared/traces/README.md); mean before clipping ~1223
#: (trace: 1155).
DEFAULT_PROMPT_LENGTHS = LognormalLengths(median=1020, p99=4142, low=1, high=32768)
#: Output lengths matched to the same trace (p50 129, p99 601 tokens); mean ~161 (trace: 211).
DEFAULT_OUTPUT_LENGTHS = LognormalLengths(median=129, p99=601, low=1, high=4096)


def synth_trace(
    *,
    num_requests: int | None = None,
    duration_s: float | None = None,
    rate: float = 6.0,
    burstiness: float = 2.0,
    served: Sequence[str] = ("math", "code", "tool"),
    zipf_alpha: float = 1.2,
    rng: np.random.Generator,
    prompt: LognormalLengths = DEFAULT_PROMPT_LENGTHS,
    output: LognormalLengths = DEFAULT_OUTPUT_LENGTHS,
) -> pd.DataFrame:
    """A BurstGPT-style synthetic trace.

    * Arrivals: a renewal process with Gamma-distributed inter-arrival times, as BurstGPT
      (Wang et al. 2024, arXiv 2401.17644) fits request arrivals: mean ``1 / rate`` seconds,
      coefficient of variation ``burstiness`` (shape ``k = 1 / burstiness**2``, scale
      ``1 / (rate * k)``); ``burstiness = 1`` is Poisson, ``0`` evenly spaced. First arrival at 0.
    * Lengths: clipped lognormals (:data:`DEFAULT_PROMPT_LENGTHS`, :data:`DEFAULT_OUTPUT_LENGTHS`,
      matched to the Azure 2023 conversation trace), drawn independently.
    * Models: i.i.d. Zipf popularity over ``served`` (:func:`zipf_shares`).

    Exactly one of ``num_requests`` (count, at most :data:`MAX_SYNTH_REQUESTS`) and
    ``duration_s`` (keep arrivals in ``[0, duration_s)``) must be given. Draw order (gaps, models,
    prompts, outputs) is fixed, so a seed reproduces the trace.

    Returns:
        A frame with the canonical columns :data:`CANONICAL_COLUMNS`: ``arrival_s`` float64 (s),
        ``model`` Categorical over ``served``, ``prompt_tokens`` and ``output_tokens`` int64.

    Raises:
        ConfigError: both or neither of num_requests/duration_s, a count < 1, a non-positive
            duration or rate, a negative burstiness, bad served names or alpha.
    """
    names = check_served(served)
    if (num_requests is None) == (duration_s is None):
        raise ConfigError("give exactly one of the number of requests and the duration")
    if not (isinstance(rate, (int, float)) and math.isfinite(rate) and rate > 0):
        raise ConfigError(f"rate must be a finite number of requests/s > 0, got {rate!r}")
    if not (isinstance(burstiness, (int, float)) and math.isfinite(burstiness) and burstiness >= 0):
        raise ConfigError(
            f"burstiness (inter-arrival CV) must be a finite number >= 0, got {burstiness!r}"
        )
    p_model = zipf_shares(len(names), zipf_alpha)
    gaps = _Gaps(rng, float(rate), float(burstiness))
    if num_requests is not None:
        if (
            not isinstance(num_requests, (int, np.integer))
            or isinstance(num_requests, bool)
            or not 1 <= num_requests <= MAX_SYNTH_REQUESTS
        ):
            raise ConfigError(
                f"number of requests must be an integer from 1 to {MAX_SYNTH_REQUESTS:,}, "
                f"got {num_requests!r}"
            )
        n = int(num_requests)
        arrival = np.concatenate([[0.0], np.cumsum(gaps(n - 1))])
    else:
        arrival = _arrivals_for(gaps, duration_s)
        n = len(arrival)

    model = rng.choice(len(names), size=n, p=p_model)
    return pd.DataFrame(
        {
            "arrival_s": arrival.astype(np.float64),
            "model": pd.Categorical.from_codes(model.astype(np.int64), categories=names),
            "prompt_tokens": prompt.sample(rng, n),
            "output_tokens": output.sample(rng, n),
        }
    )


@dataclass(frozen=True)
class _Gaps:
    """Gamma inter-arrival gaps, seconds: mean ``1 / rate``, CV ``burstiness`` (0: even)."""

    rng: np.random.Generator
    rate: float
    burstiness: float

    def __call__(self, m: int) -> np.ndarray:
        if self.burstiness == 0:
            return np.full(m, 1.0 / self.rate)
        k = 1.0 / self.burstiness**2
        return self.rng.gamma(shape=k, scale=1.0 / (self.rate * k), size=m)


def _arrivals_for(gaps: _Gaps, duration_s: float | None) -> np.ndarray:
    """Arrival times in ``[0, duration_s)``, first at 0, drawn in blocks of gaps."""
    if not (
        isinstance(duration_s, (int, float))
        and not isinstance(duration_s, bool)
        and math.isfinite(duration_s)
        and duration_s > 0
    ):
        raise ConfigError(f"duration must be a finite number of seconds > 0, got {duration_s!r}")
    expected = gaps.rate * duration_s
    if expected > MAX_SYNTH_REQUESTS:
        raise ConfigError(
            f"rate x duration asks for about {expected:,.0f} requests, more than "
            f"{MAX_SYNTH_REQUESTS:,}; lower the rate or the duration"
        )
    parts = [np.zeros(1)]
    total = 0.0
    while total < duration_s:
        m = int(expected + 6 * math.sqrt(expected) * max(gaps.burstiness, 1.0)) + 16
        c = total + np.cumsum(gaps(m))
        parts.append(c)
        total = float(c[-1])
    arrival = np.concatenate(parts)
    return arrival[arrival < duration_s]


def synth_command(
    out: str | Path,
    *,
    num_requests: int | None = None,
    duration_s: float | None = None,
    rate: float = 6.0,
    burstiness: float = 2.0,
    served: Sequence[str] = ("math", "code", "tool"),
    zipf_alpha: float = 1.2,
    seed: int = 0,
) -> str:
    """The ``sunsim trace synth`` command line that regenerates a synthetic trace exactly."""
    parts = ["sunsim", "trace", "synth", shlex.quote(str(out))]
    if num_requests is not None:
        parts += ["--requests", str(num_requests)]
    else:
        parts += ["--duration", f"{duration_s:g}"]
    parts += [
        "--rate",
        f"{rate:g}",
        "--burstiness",
        f"{burstiness:g}",
        "--models",
        shlex.quote(",".join(served)),
        "--zipf",
        f"{zipf_alpha:g}",
        "--seed",
        str(seed),
    ]
    return " ".join(parts)


def write_canonical(df: pd.DataFrame, path: str | Path) -> Path:
    """Write requests as a sunsim canonical CSV: ``arrival_s, model, prompt_tokens, output_tokens``
    and, when ``df`` has them, ``session_id``, ``turn`` and ``hash_ids``.

    ``arrival_s`` is written with 6 decimals (microseconds). ``model`` comes from the ``model``
    column, else ``source_model``, else is left empty; missing names are written empty.
    ``hash_ids`` is written as ids separated by spaces (``0 14 15``); its block size is not
    written (read it back with the same ``hash_block_tokens``, 512 by default).
    Returns the path written.

    Raises:
        TraceError: ``df`` lacks ``arrival_s``, ``prompt_tokens`` or ``output_tokens``, or the file
            cannot be written.
    """
    for c in ("arrival_s", "prompt_tokens", "output_tokens"):
        if c not in df.columns:
            raise TraceError(
                f"cannot write a canonical trace without column '{c}'; "
                f"columns are: {', '.join(map(str, df.columns))}"
            )
    if "model" in df.columns:
        model = df["model"]
    elif "source_model" in df.columns:
        model = df["source_model"]
    else:
        model = pd.Series(pd.NA, index=df.index)
    out = pd.DataFrame(
        {
            "arrival_s": df["arrival_s"].to_numpy(dtype=np.float64),
            "model": model.astype("string").to_numpy(dtype=object, na_value=""),
            "prompt_tokens": df["prompt_tokens"].to_numpy(dtype=np.int64),
            "output_tokens": df["output_tokens"].to_numpy(dtype=np.int64),
        }
    )
    for c in ("session_id", "turn"):
        if c in df.columns:
            out[c] = df[c].to_numpy(dtype=np.int64)
    if "hash_ids" in df.columns:
        out["hash_ids"] = [format_hash_ids(ids) for ids in df["hash_ids"]]
    p = Path(path)
    try:
        out.to_csv(p, index=False, float_format="%.6f", lineterminator="\n")
    except OSError as e:
        raise TraceError(
            f"{where(p)}cannot write the trace ({e.strerror}); check the directory"
        ) from None
    return p
