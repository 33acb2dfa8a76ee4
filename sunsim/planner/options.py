"""How the planner searches: :class:`PlanOptions`, ``--sweep`` text, the ``[plan]`` TOML table,
and the one place the planner copies a :class:`~sunsim.config.Scenario` or a
:class:`~sunsim.engine.spec.ClusterSpec` with changes (:func:`scenario_with`,
:func:`cluster_with`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from sunsim.config import Scenario
from sunsim.engine.spec import ClusterSpec
from sunsim.errors import ConfigError
from sunsim.specs import SloSpec

#: The criteria a plan can hold pools to (:mod:`sunsim.planner.criteria`).
SLO_KINDS = ("attainment", "percentile")
#: The scenario fields a sweep can vary (``request_rate`` in req/s, ``rate_scale`` a factor).
SWEEP_KEYS = ("rate_scale", "zipf", "request_rate")
#: The sweeps over load: one labelled frame, arrival times scaled per point; goodput.
RATE_KEYS = ("rate_scale", "request_rate")
#: Largest worker count a search tries per pool (prefill or decode) before it gives up.
MAX_WORKERS = 4096
#: The keys of a ``[plan]`` table (:func:`plan_options_from_dict`).
PLAN_TABLE_KEYS = frozenset(
    {"slo_kind", "prefill_target", "max_workers", "goodput_steps", "sweep", "jobs"}
)


def scenario_with(s: Scenario, **changes: Any) -> Scenario:
    """A copy of ``s`` with ``changes`` (field name -> value). Every scenario copy the planner
    and its plan directories make goes through here."""
    return dataclasses.replace(s, **changes)


def cluster_with(c: ClusterSpec, **changes: Any) -> ClusterSpec:
    """A copy of the cluster ``c`` with ``changes`` (field name -> value)."""
    return dataclasses.replace(c, **changes)


@dataclass(frozen=True)
class PlanOptions:
    """How :func:`~sunsim.planner.plan` searches.

    ``slo_kind``: ``attainment`` or ``percentile`` (:mod:`sunsim.planner`). ``prefill_target``:
    TTFT-only attainment the prefill pools must reach (None: ``(1 + t) / 2``).
    ``max_workers``: search cap per pool. ``jobs``: worker processes when no executor is
    handed to :func:`~sunsim.planner.plan` (None: ``os.cpu_count()``; 1: simulate in this
    process). ``sweep``: ``("request_rate" | "rate_scale" | "zipf", values)`` (request
    rates in req/s). ``goodput_steps``: bisection
    steps refining each mode's goodput between grid rates. ``cache_dir``: directory of the
    content-addressed result cache (:mod:`sunsim.cache`) to read and extend (None: memory
    only).

    Raises :class:`~sunsim.errors.ConfigError` (one line, naming the option) for bad values.
    """

    slo_kind: str = "attainment"
    prefill_target: float | None = None
    max_workers: int = MAX_WORKERS
    jobs: int | None = None
    sweep: tuple[str, tuple[float, ...]] | None = None
    goodput_steps: int = 3
    cache_dir: str | None = None

    def __post_init__(self) -> None:
        if self.slo_kind not in SLO_KINDS:
            raise ConfigError(f"--slo-kind must be attainment or percentile, got '{self.slo_kind}'")
        if self.prefill_target is not None and not (0 < self.prefill_target <= 1):
            raise ConfigError(f"--prefill-target must be in (0, 1], got {self.prefill_target}")
        if self.max_workers < 1:
            raise ConfigError(f"--max-workers must be >= 1, got {self.max_workers}")
        if self.jobs is not None and self.jobs < 1:
            raise ConfigError(f"--jobs must be >= 1, got {self.jobs}")
        if self.sweep is not None:
            _check_sweep(*self.sweep)
        if self.goodput_steps < 0:
            raise ConfigError("goodput_steps must be >= 0")

    @property
    def sweep_key(self) -> str | None:
        """``request_rate``, ``rate_scale``, ``zipf``, or None without a sweep."""
        return self.sweep[0] if self.sweep is not None else None

    @property
    def rate_sweep(self) -> bool:
        """Whether the sweep is over load (``request_rate`` or ``rate_scale``)."""
        return self.sweep_key in RATE_KEYS

    def prefill_goal(self, slo: SloSpec) -> float:
        """The TTFT-only attainment each prefill pool is sized for (a fraction)."""
        return self.prefill_target if self.prefill_target is not None else (1 + slo.attainment) / 2

    def to_dict(self) -> dict[str, Any]:
        """The ``[plan]`` table (and ``plan.json``'s ``options``): what repeats the plan."""
        d: dict[str, Any] = {
            "slo_kind": self.slo_kind,
            "max_workers": self.max_workers,
            "goodput_steps": self.goodput_steps,
        }
        if self.prefill_target is not None:
            d["prefill_target"] = self.prefill_target
        if self.sweep is not None:
            d["sweep"] = {"key": self.sweep[0], "values": list(self.sweep[1])}
        return d


def _check_sweep(key: str, values: tuple[float, ...]) -> None:
    if key not in SWEEP_KEYS:
        raise ConfigError(
            f"--sweep: unknown key '{key}'; sweep rate=... (req/s), rate_scale=... or zipf=..."
        )
    if not values:
        raise ConfigError("--sweep: no values")
    if key == "rate_scale" and min(values) <= 0:
        raise ConfigError("--sweep rate_scale=...: rate scales must be > 0")
    if key == "request_rate" and min(values) <= 0:
        raise ConfigError(f"--sweep rate=...: request rates must be > 0 req/s, got {min(values):g}")
    if key == "zipf" and min(values) < 0:
        raise ConfigError("--sweep zipf=...: Zipf alphas must be >= 0")


def parse_sweep(text: str) -> tuple[str, tuple[float, ...]]:
    """``rate=5,10,20`` (req/s; also ``request_rate=``) / ``rate_scale=1,2,4`` (a factor on
    the trace's own rate) / ``zipf=0,0.5,1`` -> (key, values).

    Raises :class:`~sunsim.errors.ConfigError` for anything else.
    """
    if "=" not in text:
        raise ConfigError(
            f"--sweep: '{text}' is not KEY=V1,V2,... (e.g. rate=5,10,20 in req/s or zipf=0,1,2)"
        )
    name, vals = text.split("=", 1)
    names = {"rate": "request_rate", "request_rate": "request_rate", "rate_scale": "rate_scale"}
    key = {**names, "zipf": "zipf"}.get(name.strip())
    if key is None:
        raise ConfigError(
            f"--sweep: unknown key in '{text}'; sweep rate=... (req/s), rate_scale=... or zipf=..."
        )
    try:
        values = tuple(float(v) for v in vals.split(",") if v.strip())
    except ValueError:
        raise ConfigError(f"--sweep: cannot read the values of '{text}' as numbers") from None
    if not values:
        raise ConfigError(f"--sweep: no values in '{text}'")
    return key, values


def plan_options_from_dict(
    d: dict[str, Any], source: str = "plan", base: PlanOptions | None = None
) -> PlanOptions:
    """Build :class:`PlanOptions` from a ``[plan]`` table (keys :data:`PLAN_TABLE_KEYS`) over
    ``base``; raises :class:`~sunsim.errors.ConfigError` for unknown keys or bad values, the
    message prefixed by ``source`` (the file)."""
    changes: dict[str, Any] = {}
    for k, v in d.items():
        if k not in PLAN_TABLE_KEYS:
            known = ", ".join(sorted(PLAN_TABLE_KEYS))
            raise ConfigError(f"{source}: unknown key '{k}' in [plan]; known: {known}")
        if k == "sweep":
            if not isinstance(v, dict) or "key" not in v or "values" not in v:
                raise ConfigError(f"{source}: [plan] sweep must be {{key = ..., values = [...]}}")
            try:
                v = (str(v["key"]), tuple(float(x) for x in v["values"]))
            except (TypeError, ValueError):
                raise ConfigError(
                    f"{source}: [plan] sweep values must be a list of numbers, got {v['values']!r}"
                ) from None
        changes[k] = v
    try:
        return dataclasses.replace(base or PlanOptions(), **changes)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{source}: bad [plan] value: {e}") from None
