"""The count search: the fewest workers of one pool that meet a monotone criterion
(:class:`CountSearch`: galloping, then bisection) and a search chain that evaluates its counts
through the driver (:class:`PoolSearch`). Procedure and stopping rules: :mod:`sunsim.planner`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sunsim.engine.cluster import SimResult
from sunsim.errors import ConfigError
from sunsim.planner.driver import Chain, OnEvent
from sunsim.planner.tasks import SimTask

#: Worker count from which three failing doublings without progress stop a search.
STUCK_FROM_WORKERS = 64


class CountSearch:
    """Galloping then bisection for the smallest count meeting a monotone criterion.

    ``propose()`` gives the next count to evaluate (None when done); ``update(n, met,
    progress)`` records its outcome; ``progress`` is a number that grows as the SLO is
    approached (the attainment), used to stop when more workers no longer help. After
    ``propose()`` returns None, ``answer`` holds the count (``n`` met, ``n - 1`` did not or is
    0) or ``failure`` says why there is none.
    """

    def __init__(self, start: int, cap: int, what: str) -> None:
        self.start = max(1, min(int(start), cap))
        self.cap = cap
        self.what = what
        self.lo = 0  # largest count known to fail (0: none)
        self.hi: int | None = None  # smallest count known to pass
        self.seen: dict[int, tuple[bool, float]] = {}
        self.fail_progress: list[tuple[int, float]] = []
        self.failure: str | None = None

    @property
    def answer(self) -> int | None:
        return self.hi if self.failure is None else None

    def propose(self) -> int | None:
        if self.failure is not None:
            return None
        if self.hi is None:
            if not self.seen:
                return self.start
            if self.lo >= self.cap:
                best = max(p for _, p in self.fail_progress)
                self.failure = (
                    f"{self.what}: {self.cap} workers do not meet the SLO (best "
                    f"attainment {best:.1%}); the search stops at --max-workers "
                    f"{self.cap}"
                )
                return None
            if self._stuck():
                n, p = self.fail_progress[-1]
                self.failure = (
                    f"{self.what}: attainment stays at {p:.1%} from "
                    f"{self.fail_progress[-4][0]} to {n} workers; more workers "
                    f"cannot meet the SLO"
                )
                return None
            return min(2 * self.lo, self.cap)
        if self.hi - self.lo <= 1:
            return None
        return (self.lo + self.hi) // 2

    def _stuck(self) -> bool:
        fp = self.fail_progress
        if len(fp) < 4 or fp[-1][0] < STUCK_FROM_WORKERS:
            return False
        last = [p for _, p in fp[-4:]]
        return max(last) - min(last) <= 1e-9

    def update(self, n: int, met: bool, progress: float) -> None:
        self.seen[n] = (met, progress)
        if met:
            self.hi = n if self.hi is None else min(self.hi, n)
        else:
            self.lo = max(self.lo, n)
            self.fail_progress.append((n, progress))


#: (count, final SimResult if kept, evaluation) of the smallest passing count.
SearchResult = tuple[int, SimResult | None, dict[str, Any] | None]


@dataclass
class PoolSearch:
    """One pool's search: ``make_task(n)`` is the simulation at ``n`` workers,
    ``criterion(evaluation)`` whether it meets the goal; ``what`` names the pool in errors and
    progress; ``phase`` (``prefill``, ``decode`` or ``colocated``) and ``pool`` (model or
    ``shared``) label the evaluation rows appended to ``log``; ``keep_passing``: keep the
    SimResult of passing counts (the shared pools, whose last passing run is their final
    simulation)."""

    what: str
    phase: str
    pool: str
    start: int
    make_task: Callable[[int], SimTask]
    criterion: Callable[[dict[str, Any]], bool]
    log: list[dict[str, Any]] = field(default_factory=list)
    keep_passing: bool = False

    def chain(self, cap: int, on_event: OnEvent | None = None) -> Chain:
        """The search as a driver chain; returns (n, SimResult or None, evaluation) of the
        answer. Raises :class:`~sunsim.errors.ConfigError` when no count up to ``cap`` meets
        the goal (the message says what limits)."""
        srch = CountSearch(self.start, cap, self.what)
        best: SearchResult | None = None
        while (n := srch.propose()) is not None:
            task = self.make_task(n)
            if self.keep_passing:
                task = dataclasses.replace(task, keep=True)
            ev, res, cached = yield task
            met = self.criterion(ev)
            progress = ev["ttft_attainment"] if self.phase == "prefill" else ev["attainment"]
            srch.update(n, met, progress)
            self.log.append(self._row(n, met, ev, cached))
            if met and (best is None or n <= best[0]):
                best = (n, res, ev)
        if srch.answer is None:
            raise ConfigError(srch.failure or f"{self.what}: no count meets the SLO")
        assert best is not None and best[0] == srch.answer
        if on_event:
            on_event("phase", {"what": self.what, "workers": srch.answer})
        return best

    def _row(self, n: int, met: bool, ev: dict[str, Any], cached: bool) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "pool": self.pool,
            "workers": n,
            "met": met,
            "attainment": ev["attainment"],
            "ttft_attainment": ev["ttft_attainment"],
            "ttft_q_s": ev["ttft_q_s"],
            "tpot_q_s": ev["tpot_q_s"],
            "wall_s": ev.get("wall_s", 0.0),
            "cached": cached,
        }
