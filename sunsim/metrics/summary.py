"""The typed run summary: what one simulated run of one serving design reports.

:class:`RunSummary` is built by :func:`sunsim.metrics.summarize`; ``to_dict()`` gives the
per-mode object of ``summary.json`` (``"modes": {mode: ...}``) and of ``plan.json``, key for
key as sunsim 0.1 wrote it, and :meth:`RunSummary.from_dict` reads it back with validation.
Units: every ``*_s`` field is seconds, ``*_tokens`` tokens, ``*_frac`` / ``attainment`` /
``kv_occupancy_mean`` fractions in [0, 1]; NaN stands for "no value" (JSON ``null``).

For the code that still reads the old nested dicts, ``summary["latency_s"]["tpot_s_p50"]``
works too (a read-only :class:`~collections.abc.Mapping` over the top-level keys, each value
a fresh plain dict or value); new code should read attributes
(``summary.latency_s.tpot_s_p50``).
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, get_type_hints

T = TypeVar("T")

#: Field metadata: a key added after sunsim 0.1, left out of ``to_dict()`` at its default so
#: that the summaries of the designs that existed then stay key for key the same.
_OMIT_IF_DEFAULT = {"omit_if_default": True}


class SummaryFormatError(ValueError):
    """A summary dict that does not have the shape of :class:`RunSummary`. The message is one
    line naming the key (dotted path) and what was found."""


@dataclass(frozen=True)
class LatencyModels:
    """``description`` of the latency model of each role (e.g. ``roofline h100 ... bf16``)."""

    prefill: str
    decode: str


@dataclass(frozen=True)
class GpuCounts:
    """GPUs of the simulated cluster: ``prefill`` and ``decode`` GPU totals (workers x their
    tensor parallel size), ``total``, ``decode_per_pool`` (decode *workers* per decode pool;
    partitioned: one pool per model), ``prefill_per_model`` (prefill *workers* per served
    model; one count, the shared pool, for ``prefillshare``),
    ``prefill_tensor_parallel_size`` / ``decode_tensor_parallel_size`` (GPUs per worker; 1 in
    summaries written before tensor parallelism).;
    ``colocated`` and ``colocated_per_pool``: GPUs and workers per pool running both phases
    (co-located designs, where ``prefill`` and ``decode`` are 0; absent from summaries written
    before they existed); ``prefill_gpu`` / ``decode_gpu``: the GPU type of the prefill and
    the decode (and co-located) pools, both set when the scenario gave a pool its own GPU
    (heterogeneous pools; else empty: the scenario's ``gpu``, and absent from the dict)."""

    prefill: int
    decode: int
    total: int
    decode_per_pool: tuple[int, ...]
    prefill_per_model: tuple[int, ...]
    prefill_tensor_parallel_size: int = 1
    decode_tensor_parallel_size: int = 1
    colocated: int = dataclasses.field(default=0, metadata=_OMIT_IF_DEFAULT)
    colocated_per_pool: tuple[int, ...] = dataclasses.field(default=(), metadata=_OMIT_IF_DEFAULT)
    prefill_gpu: str = dataclasses.field(default="", metadata=_OMIT_IF_DEFAULT)
    decode_gpu: str = dataclasses.field(default="", metadata=_OMIT_IF_DEFAULT)

    def by_type(self, gpu: str) -> dict[str, int]:
        """GPU type -> GPUs: prefill GPUs on ``prefill_gpu``, decode and co-located GPUs on
        ``decode_gpu`` (each ``gpu``, the scenario's, when empty); types with none left out."""
        out: dict[str, int] = {}
        for g, n in ((self.prefill_gpu or gpu, self.prefill), (self.decode_gpu or gpu,
                     self.decode + self.colocated)):  # fmt: skip
            if n:
                out[g] = out.get(g, 0) + n
        return out or {gpu: 0}


@dataclass(frozen=True)
class RequestCounts:
    """Request outcomes: ``total`` = ``finished`` + ``rejected``; ``rejected_by_reason``
    (reason -> count, e.g. ``exceeds_kv_capacity``); ``preempted_requests`` (requests
    preempted at least once) and ``preemptions`` (all preemptions)."""

    total: int
    finished: int
    rejected: int
    rejected_by_reason: dict[str, int]
    preempted_requests: int
    preemptions: int


@dataclass(frozen=True)
class LatencyPercentiles:
    """p50/p90/p99 in seconds of TTFT, TPOT, E2E (over finished requests) and ITL (over
    tokens) of all requests of a run."""

    ttft_s_p50: float
    ttft_s_p90: float
    ttft_s_p99: float
    tpot_s_p50: float
    tpot_s_p90: float
    tpot_s_p99: float
    e2e_s_p50: float
    e2e_s_p90: float
    e2e_s_p99: float
    itl_s_p50: float
    itl_s_p90: float
    itl_s_p99: float


@dataclass(frozen=True)
class ModelSummary:
    """One served model: finished requests, TTFT/TPOT/E2E p50/p90/p99 (seconds, NaN when none
    finished), its requests and its SLO attainment."""

    num_finished: int
    ttft_s_p50: float
    ttft_s_p90: float
    ttft_s_p99: float
    tpot_s_p50: float
    tpot_s_p90: float
    tpot_s_p99: float
    e2e_s_p50: float
    e2e_s_p90: float
    e2e_s_p99: float
    num_requests: int
    slo_attainment: float


@dataclass(frozen=True)
class Throughput:
    """Over the measured window (first arrival to last finish, ``window_s`` seconds):
    ``output_tokens`` of finished requests, output tokens/s, per GPU (all GPUs, prefill +
    decode), finished requests/s."""

    window_s: float
    output_tokens: int
    output_tokens_per_s: float
    output_tokens_per_s_per_gpu: float
    requests_per_s: float


@dataclass(frozen=True)
class SloResult:
    """The SLO bounds (seconds), the attainment target, the attainment reached (fraction of
    all requests meeting both bounds) and whether it met the target."""

    ttft_s: float
    tpot_s: float
    target: float
    attainment: float
    met: bool


@dataclass(frozen=True)
class DecodeUtilisation:
    """Decode workers: KV capacity per worker (tokens), mean busy fraction, batch size
    (time-weighted over busy time), mean KV occupancy (fraction), peak batch size."""

    kv_capacity_tokens: int
    busy_frac_mean: float
    batch_size_mean: float
    kv_occupancy_mean: float
    peak_batch: int


@dataclass(frozen=True)
class PrefillUtilisation:
    """Prefill workers: mean busy fraction."""

    busy_frac_mean: float


@dataclass(frozen=True)
class SimStats:
    """The simulator's own figures: SimPy events scheduled, wall-clock seconds, simulated
    seconds at the last event."""

    events: int
    wall_s: float
    sim_end_s: float


@dataclass(frozen=True)
class PrefixCacheSummary:
    """Prefix caching (``enable_prefix_caching`` with ``hash_ids``), summed over the workers
    that cache (:func:`sunsim.engine.prefix_hooks.prefix_stats`): ``query_tokens`` (prompt
    tokens looked up when requests were scheduled, recomputes included), ``hit_tokens`` (found
    cached), ``hit_rate`` (hit / query tokens), ``prefill_tokens_saved`` (prompt tokens not
    computed), ``evicted_blocks`` (KV blocks) and ``evictions`` (hash blocks) evicted,
    ``peak_cached_blocks`` (sum of the workers' peaks), ``cached_kv_bytes_by_model`` (bytes of
    cached blocks each model's requests inserted, still cached at the end of the run),
    ``kv_shared_across_models`` (content-only keys)."""

    query_tokens: int
    hit_tokens: int
    hit_rate: float
    prefill_tokens_saved: int
    evicted_blocks: int
    evictions: int
    peak_cached_blocks: int
    cached_kv_bytes_by_model: dict[str, int]
    kv_shared_across_models: bool


@dataclass(frozen=True, eq=False)
class RunSummary(Mapping[str, Any]):
    """Everything one run of one serving design reports (see the module docstring).

    ``mode``: the design's name; ``method``: ``measured`` or ``analytic`` step times;
    ``latency``: the latency models used; ``per_model``: served model -> :class:`ModelSummary`
    in the configured order. Equality treats NaN as equal to NaN.
    """

    mode: str
    method: str
    latency: LatencyModels
    gpus: GpuCounts
    requests: RequestCounts
    latency_s: LatencyPercentiles
    per_model: dict[str, ModelSummary]
    throughput: Throughput
    slo: SloResult
    decode: DecodeUtilisation
    prefill: PrefillUtilisation
    sim: SimStats
    #: prefix caching's figures; None (and left out of ``to_dict()``) when caching is off
    prefix_cache: PrefixCacheSummary | None = dataclasses.field(
        default=None, metadata=_OMIT_IF_DEFAULT
    )

    def to_dict(self) -> dict[str, Any]:
        """The summary as the plain nested dict of ``summary.json`` (NaN stays NaN; pass it
        through :func:`sunsim.serialize.jsonable` for JSON)."""
        return {
            f.name: _plain(getattr(self, f.name))
            for f in dataclasses.fields(self)
            if not (f.metadata.get("omit_if_default") and getattr(self, f.name) == f.default)
        }

    @classmethod
    def from_dict(cls, data: Any) -> RunSummary:
        """Read a summary dict (``to_dict()`` or its JSON round trip, where NaN is ``null``).

        Every key of :meth:`to_dict` must be present with the right type (counts are integers,
        not booleans; numbers may be ``null``), except keys with a default (added after 0.1,
        e.g. ``gpus.decode_tensor_parallel_size``); extra keys are ignored. Raises
        :class:`SummaryFormatError` naming the first bad key.
        """
        return _build(cls, data, "")

    # -- read-only mapping over today's top-level keys (compatibility) --------------------

    def __getitem__(self, key: str) -> Any:
        if key not in _TOP_KEYS:
            raise KeyError(key)
        return _plain(getattr(self, key))

    def __iter__(self) -> Iterator[str]:
        return iter(_TOP_KEYS)

    def __len__(self) -> int:
        return len(_TOP_KEYS)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, RunSummary):
            return _same(self.to_dict(), other.to_dict())
        if isinstance(other, Mapping):
            return _same(self.to_dict(), dict(other))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]


_TOP_KEYS = tuple(
    f.name for f in dataclasses.fields(RunSummary) if not f.metadata.get("omit_if_default")
)


def _plain(v: Any) -> Any:
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return {
            f.name: _plain(getattr(v, f.name))
            for f in dataclasses.fields(v)
            if not (f.metadata.get("omit_if_default") and getattr(v, f.name) == f.default)
        }
    if isinstance(v, tuple):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    return v


def _same(a: Any, b: Any) -> bool:
    """Deep equality with NaN == NaN and None == NaN (JSON writes NaN as null)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if _nan(a) and _nan(b):
        return True
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return bool(a == b)


def _nan(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def _build(cls: type[T], data: Any, path: str) -> T:
    if not isinstance(data, Mapping):
        raise SummaryFormatError(
            f"{path or 'summary'}: expected an object, got {type(data).__name__}"
        )
    hints = get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        key = f"{path}.{f.name}" if path else f.name
        if f.name not in data and f.default is not dataclasses.MISSING:
            continue  # a key added later: older summaries leave it out
        if f.name not in data:
            if f.default is not dataclasses.MISSING:  # a key added later, with a default
                continue
            raise SummaryFormatError(f"{key}: missing")
        kwargs[f.name] = _value(hints[f.name], data[f.name], key)
    return cls(**kwargs)


def _value(tp: Any, v: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _build(tp, v, key)
    if tp is float:
        if v is None:
            return float("nan")
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise SummaryFormatError(f"{key}: expected a number, got {v!r:.40}")
        return float(v)
    if tp is int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise SummaryFormatError(f"{key}: expected an integer, got {v!r:.40}")
        return v
    if tp is bool:
        if not isinstance(v, bool):
            raise SummaryFormatError(f"{key}: expected true or false, got {v!r:.40}")
        return v
    if tp is str:
        if not isinstance(v, str):
            raise SummaryFormatError(f"{key}: expected a string, got {v!r:.40}")
        return v
    if origin is tuple:
        if not isinstance(v, (list, tuple)):
            raise SummaryFormatError(f"{key}: expected a list, got {v!r:.40}")
        item = typing.get_args(tp)[0]
        return tuple(_value(item, x, f"{key}[{i}]") for i, x in enumerate(v))
    if origin is dict:
        if not isinstance(v, Mapping):
            raise SummaryFormatError(f"{key}: expected an object, got {v!r:.40}")
        item = typing.get_args(tp)[1]
        return {str(k): _value(item, x, f"{key}.{k}") for k, x in v.items()}
    if isinstance(tp, types.UnionType):  # only ``X | None``: None, or an X
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) != 1:  # pragma: no cover - no other unions in the schema
            raise TypeError(f"{key}: unions are not supported")
        return None if v is None else _value(args[0], v, key)
    raise TypeError(f"{key}: unsupported type {tp}")  # pragma: no cover
