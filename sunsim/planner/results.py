"""What a plan returns: :class:`ModePlan` (one mode at one sweep point), :class:`PointPlan`
(every mode at one sweep point) and :class:`PlanResult` (every point, goodput, statistics) with
its table (:meth:`PlanResult.table`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from sunsim.config import Scenario
from sunsim.engine.cluster import SimResult
from sunsim.metrics import RunSummary
from sunsim.planner.options import PlanOptions


@dataclass
class ModePlan:
    """One mode's plan at one sweep point.

    ``prefill_workers``: per served model; ``decode_workers``: per pool (partitioned: per
    model; sun/qsun: one), in workers of the summary's tensor parallel size (GPU counts:
    :attr:`num_gpus`); ``summary``: :func:`sunsim.metrics.summarize` of the full simulation
    at these counts; ``evaluations``: rows ``phase`` (prefill/decode/final), ``pool``,
    ``workers``, ``met``, ``attainment``, ``ttft_q_s``, ``tpot_q_s``, ``wall_s``, ``cached``;
    ``result``: the final :class:`~sunsim.engine.cluster.SimResult` (kept for the reference
    point only); ``colocated_workers``: per pool, for a co-located mode (whose prefill and
    decode counts are empty).
    """

    mode: str
    prefill_workers: tuple[int, ...]
    decode_workers: tuple[int, ...]
    summary: RunSummary
    evaluations: list[dict[str, Any]] = field(default_factory=list)
    result: SimResult | None = None
    colocated_workers: tuple[int, ...] = ()

    @property
    def prefill_tensor_parallel_size(self) -> int:
        """GPUs per prefill worker (from the summary's cluster)."""
        return self.summary.gpus.prefill_tensor_parallel_size

    @property
    def decode_tensor_parallel_size(self) -> int:
        """GPUs per decode worker (from the summary's cluster)."""
        return self.summary.gpus.decode_tensor_parallel_size

    @property
    def num_prefill_gpus(self) -> int:
        """Prefill workers x their tensor parallel size."""
        return sum(self.prefill_workers) * self.prefill_tensor_parallel_size

    @property
    def num_decode_gpus(self) -> int:
        """Decode workers x their tensor parallel size."""
        return sum(self.decode_workers) * self.decode_tensor_parallel_size

    @property
    def num_gpus(self) -> int:
        """Prefill, decode and co-located GPUs (workers x tensor parallel size; co-located
        workers run at the decode size)."""
        return self.num_prefill_gpus + self.num_decode_gpus + self.num_colocated_gpus

    @property
    def num_colocated_gpus(self) -> int:
        """Co-located workers x the decode tensor parallel size."""
        return sum(self.colocated_workers) * self.decode_tensor_parallel_size


@dataclass
class PointPlan:
    """The plan at one sweep value (or the only plan): its scenario, workload facts (trace
    info, requests per served model, labelling), one :class:`ModePlan` per mode and, in a
    sweep over load, the factor on the trace's own rate (``rate_scale``; None otherwise)."""

    scenario: Scenario
    sweep_value: float | None
    workload_info: dict[str, Any]
    model_counts: dict[str, int]
    labelling: str
    modes: dict[str, ModePlan]
    rate_scale: float | None = None

    def load_tok_s(self) -> float:
        """The trace's output tokens over its arrival span (tokens/s; NaN without a span)."""
        info = self.workload_info
        span = float(info.get("span_s") or 0.0)
        tokens = float(info.get("output_tokens", {}).get("mean", float("nan"))) * float(
            info.get("num_requests") or 0
        )
        return tokens / span if span > 0 else float("nan")


@dataclass
class PlanResult:
    """What :func:`~sunsim.planner.plan` returns.

    ``points``: one :class:`PointPlan` per sweep value (one without a sweep); ``reference``:
    index of the point whose final simulations are kept (the scenario's own value if swept,
    else the last); ``goodput``: rate sweeps only, frame ``mode``, ``rate_scale``,
    ``attainment``, ``min_model_attainment``, ``met`` (every rate evaluated at the scenario's
    worker counts) with ``attrs['goodput']`` = {mode: highest rate scale met} and
    ``attrs['workers']`` = {mode: {"prefill": [...], "decode": [...]}}; ``latency_notes``: one
    line per latency source used; ``wall_s``: seconds the plan took; ``num_simulations``,
    ``num_cached``: simulations run and answered from the cache; ``sim_wall_s``: seconds of
    simulation summed over processes; ``jobs``: processes; ``native_rate``: the trace's
    mean rate at rate scale 1 (req/s; rate sweeps only, else NaN).
    """

    scenario: Scenario
    options: PlanOptions
    points: list[PointPlan]
    reference: int
    goodput: pd.DataFrame | None
    latency_notes: list[str]
    wall_s: float
    num_simulations: int
    num_cached: int
    sim_wall_s: float
    jobs: int
    native_rate: float = float("nan")

    def table(self, point: int | None = None) -> pd.DataFrame:
        """One row per (sweep point, mode); ``point``: only that point's rows.

        Columns: ``sweep_key``/``sweep_value`` (sweeps only), ``mode``, ``decode_workers``
        (per pool, comma-joined), ``num_decode_gpus``, ``prefill_workers`` (per model),
        ``num_prefill_gpus``, ``colocated_workers`` (per pool), ``num_colocated_gpus``,
        ``num_gpus`` (GPU counts are workers x tensor parallel size),
        ``prefill_tensor_parallel_size``, ``decode_tensor_parallel_size`` (GPUs per worker),
        ``slo_attainment``, ``ttft_s_p90``, ``tpot_s_p50``,
        ``tpot_s_p90`` (seconds), ``throughput_tok_s``, ``throughput_per_gpu``,
        ``throughput_per_decode_gpu`` (NaN without decode workers) (output tokens/s over the
        measured window, first arrival to last finish, as :func:`sunsim.metrics.summarize`),
        ``load_tok_s_per_gpu`` (the
        trace's output tokens over its arrival span, per GPU: the load each GPU carries at the
        planned size; identical offered load in every mode, so its ratio between modes is the
        inverse ratio of their GPUs), ``gpus_saved_vs_partitioned``,
        ``saving_pct_vs_partitioned``, ``throughput_per_gpu_vs_partitioned`` (ratio),
        ``tpot_p50_vs_partitioned_pct`` (TPOT p50 change, percent), ``preemptions``,
        ``rejected``, ``method``.
        """
        pts = self.points if point is None else [self.points[point]]
        rows = []
        for pp in pts:
            base = pp.modes.get("partitioned")
            for mp in pp.modes.values():
                row: dict[str, Any] = {}
                if self.options.sweep is not None:
                    row["sweep_key"] = self.options.sweep[0]
                    row["sweep_value"] = pp.sweep_value
                row.update(_mode_row(pp, mp, base))
                rows.append(row)
        return pd.DataFrame(rows)


def _mode_row(pp: PointPlan, mp: ModePlan, base: ModePlan | None) -> dict[str, Any]:
    """The table columns of one mode (after the sweep columns)."""
    s = mp.summary
    tput = s.throughput.output_tokens_per_s
    row: dict[str, Any] = {
        "mode": mp.mode,
        "decode_workers": ",".join(map(str, mp.decode_workers)),
        "num_decode_gpus": mp.num_decode_gpus,
        "prefill_workers": ",".join(map(str, mp.prefill_workers)),
        "num_prefill_gpus": mp.num_prefill_gpus,
        "colocated_workers": ",".join(map(str, mp.colocated_workers)),
        "num_colocated_gpus": mp.num_colocated_gpus,
        "num_gpus": mp.num_gpus,
        "prefill_tensor_parallel_size": mp.prefill_tensor_parallel_size,
        "decode_tensor_parallel_size": mp.decode_tensor_parallel_size,
        "slo_attainment": s.slo.attainment,
        "ttft_s_p90": s.latency_s.ttft_s_p90,
        "tpot_s_p50": s.latency_s.tpot_s_p50,
        "tpot_s_p90": s.latency_s.tpot_s_p90,
        "throughput_tok_s": tput,
        "throughput_per_gpu": tput / mp.num_gpus,
        "throughput_per_decode_gpu": tput / mp.num_decode_gpus
        if mp.decode_workers
        else float("nan"),
        "load_tok_s_per_gpu": pp.load_tok_s() / mp.num_gpus,
    }
    if base is not None:
        bs = base.summary
        btp = bs.throughput.output_tokens_per_s / base.num_gpus
        row["gpus_saved_vs_partitioned"] = base.num_gpus - mp.num_gpus
        row["saving_pct_vs_partitioned"] = 100.0 * (base.num_gpus - mp.num_gpus) / base.num_gpus
        row["throughput_per_gpu_vs_partitioned"] = row["throughput_per_gpu"] / btp
        row["tpot_p50_vs_partitioned_pct"] = 100.0 * (
            s.latency_s.tpot_s_p50 / bs.latency_s.tpot_s_p50 - 1
        )
    row["preemptions"] = s.requests.preemptions
    row["rejected"] = s.requests.rejected
    row["method"] = s.method
    return row
