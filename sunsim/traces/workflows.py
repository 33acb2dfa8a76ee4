"""Multi-model agent workflows: a seeded session generator, and models assigned to session turns.

An agent session runs ``loops`` rounds of *plan -> act -> check* over one shared, growing
context, each call on the model its role is assigned to (a planner, coders, a critic: the
multi-model agent workloads of PrefillShare, arXiv 2602.12029, and ICaRus, arXiv 2603.13281).
Every call's prompt is the whole context so far:

* the context starts with the system prompt (``system_prompt_tokens``, the same text in every
  session, so its full blocks are shared across sessions) and the user's task
  (``task_tokens``);
* each call appends its output (``output_tokens``);
* each *act* call runs a tool whose output (``tool_output_tokens``) is appended too.

So call ``k + 1``'s prompt is call ``k``'s prompt plus its output (plus the tool output after an
act): ``prompt[k+1] = prompt[k] + output[k] + tool[k]``. The ``hash_ids`` follow from that
structure (:func:`~sunsim.traces.hashes.derive_hash_ids`): each call's blocks repeat the previous
call's full blocks. The ids are content hashes (the same context read by another model has the
same ids); a design whose KV is per model adds the model to its cache key. Sharing a context's
KV across models assumes they share the tokenizer and the base (as SUN, PrefillShare and ICaRus
do).

Time: sessions arrive as a Poisson process (``session_rate`` per second). The gap between the
arrivals of consecutive calls of a session is exponential with mean ``think_time_s``: it stands
for the previous call's response time plus the tool's run and think time. The trace is open loop
(like the published traces): a call arrives at its time even if the simulated previous call has
not finished. ``[workload] session_arrivals = "after_previous"`` (``--session-arrivals``)
replays the sessions as closed loops instead (:mod:`sunsim.engine.session_loop`): a session's
next call arrives when its previous call ends plus think time (``think_time_s``, or these gaps).

Model assignment (:data:`ASSIGN_POLICIES`), over the turns ``t = 0, 1, ...`` of a session with
models ``m[0..N-1]``:

* ``round_robin``: turn ``t`` goes to ``m[t % N]``;
* ``plan_act_check``: turn ``t`` has role ``t % 3`` (plan, act, check) in loop ``t // 3``; plan
  goes to ``m[0]``, check to ``m[N-1]``, act to the middle models in turn,
  ``m[1 + loop % (N-2)]`` (with 2 models act goes to ``m[1]``, with 1 all go to ``m[0]``).

The default lengths are illustrative, not fitted to a published agent trace. With them (2,000
sessions, seed 0) the mean prompt is 4,367 tokens and the mean output 210; Mooncake's
tool-and-agent trace (``FAST25-release/README.md``: 23,608 requests) has mean input 8,596 and
output 182 tokens, so its contexts are longer (more loops or a longer system prompt match it).
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from sunsim.errors import ConfigError, TraceError
from sunsim.traces.hashes import HASH_BLOCK_TOKENS, check_hash_block_tokens, derive_hash_ids
from sunsim.traces.labels import check_served
from sunsim.traces.synth import LognormalLengths

__all__ = [
    "ASSIGN_POLICIES",
    "ROLES",
    "MAX_WORKFLOW_CALLS",
    "Lengths",
    "WorkflowSpec",
    "assign_turns",
    "assign_models",
    "workflow_trace",
    "workflow_command",
]

#: Ways to assign models to the turns of a session (module docstring).
ASSIGN_POLICIES = ("round_robin", "plan_act_check")
#: The calls of one loop, in order.
ROLES = ("plan", "act", "check")
#: Most calls one generated trace may hold (sessions x loops x 3).
MAX_WORKFLOW_CALLS = 10_000_000


@dataclass(frozen=True)
class Lengths:
    """Token lengths: fixed (``p99`` None: every draw is ``median``) or a clipped lognormal
    given by its median and 99th percentile (:class:`~sunsim.traces.synth.LognormalLengths`)."""

    median: int
    p99: int | None = None

    def __post_init__(self) -> None:
        if self.p99 is None:
            if not (isinstance(self.median, int) and self.median >= 0):
                raise ConfigError(f"a fixed length must be a whole number >= 0, got {self.median}")
        else:
            LognormalLengths(self.median, self.p99, 1, 1_000_000)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` int64 lengths (a fixed length draws nothing)."""
        if self.p99 is None:
            return np.full(n, self.median, dtype=np.int64)
        return LognormalLengths(self.median, self.p99, 1, 1_000_000).sample(rng, n)

    def text(self) -> str:
        """As the CLI writes it: ``"600"`` or ``"600,4000"`` (median, p99)."""
        return str(self.median) if self.p99 is None else f"{self.median},{self.p99}"

    @classmethod
    def parse(cls, text: str, option: str) -> Lengths:
        """``"N"`` (fixed) or ``"MEDIAN,P99"`` (lognormal). Raises ConfigError naming ``option``."""
        parts = [t.strip() for t in str(text).split(",")]
        if len(parts) not in (1, 2) or not all(t.isdigit() for t in parts):
            raise ConfigError(
                f"{option}: expected N (fixed tokens) or MEDIAN,P99 (lognormal), whole numbers, "
                f"got '{text}'"
            )
        try:
            return cls(int(parts[0]), int(parts[1]) if len(parts) == 2 else None)
        except ConfigError as e:
            raise ConfigError(f"{option}: {e}") from None


@dataclass(frozen=True)
class WorkflowSpec:
    """The stated parameters of a generated agent workflow (module docstring).

    Attributes:
        models: the served models, N >= 1, in the order the assignment policy uses.
        num_sessions: sessions to generate.
        session_rate: Poisson arrival rate of sessions, per second.
        loops: plan -> act -> check loops per session (3 calls each).
        system_prompt_tokens: the shared system prompt, tokens (>= 1).
        task_tokens: the user's task that opens a session.
        tool_output_tokens: appended after each act call.
        output_tokens: generated by each call (>= 1).
        think_time_s: mean gap between the arrivals of consecutive calls of a session, seconds.
        assign: how models are assigned to turns (:data:`ASSIGN_POLICIES`).
        hash_block_tokens: tokens per hashed block.
    """

    models: tuple[str, ...] = ("planner", "coder", "critic")
    num_sessions: int = 100
    session_rate: float = 0.5
    loops: int = 3
    system_prompt_tokens: int = 2000
    task_tokens: Lengths = field(default_factory=lambda: Lengths(300, 2000))
    tool_output_tokens: Lengths = field(default_factory=lambda: Lengths(600, 4000))
    output_tokens: Lengths = field(default_factory=lambda: Lengths(150, 1000))
    think_time_s: float = 2.0
    assign: str = "plan_act_check"
    hash_block_tokens: int = HASH_BLOCK_TOKENS

    def check(self) -> None:
        """Raises ConfigError for an impossible parameter (naming it)."""
        check_served(list(self.models))
        _int("num_sessions", self.num_sessions, 1)
        _int("loops", self.loops, 1)
        _int("system_prompt_tokens", self.system_prompt_tokens, 1)
        if self.num_sessions * self.loops * len(ROLES) > MAX_WORKFLOW_CALLS:
            raise ConfigError(
                f"num_sessions x loops x 3 = {self.num_sessions * self.loops * 3:,} calls, more "
                f"than {MAX_WORKFLOW_CALLS:,}; lower the sessions or loops"
            )
        for name, v in (("session_rate", self.session_rate), ("think_time_s", self.think_time_s)):
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise ConfigError(f"{name} must be a finite number >= 0, got {v!r}")
        if self.session_rate <= 0:
            raise ConfigError(f"session_rate must be > 0 sessions/s, got {self.session_rate!r}")
        if self.output_tokens.p99 is None and self.output_tokens.median < 1:
            raise ConfigError("output_tokens must be >= 1 (a call emits at least one token)")
        if self.assign not in ASSIGN_POLICIES:
            raise ConfigError(
                f"unknown model assignment '{self.assign}'; use one of {', '.join(ASSIGN_POLICIES)}"
            )
        check_hash_block_tokens(self.hash_block_tokens)


def _int(name: str, v: object, lo: int) -> None:
    if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < lo:
        raise ConfigError(f"{name} must be an integer >= {lo}, got {v!r}")


def assign_turns(turn: np.ndarray, num_models: int, policy: str) -> np.ndarray:
    """Model index (0..num_models-1) per turn under ``policy`` (module docstring), int64.

    Raises:
        ConfigError: an unknown policy or no models.
    """
    if policy not in ASSIGN_POLICIES:
        raise ConfigError(
            f"unknown model assignment '{policy}'; use one of {', '.join(ASSIGN_POLICIES)}"
        )
    _int("number of models", num_models, 1)
    t = np.asarray(turn, dtype=np.int64)
    if policy == "round_robin" or num_models == 1:
        out: np.ndarray = t % num_models
        return out
    role, loop = t % 3, t // 3
    middle = num_models - 2
    act = 1 + (loop % middle) if middle > 0 else np.ones_like(t)
    return np.where(role == 0, 0, np.where(role == 2, num_models - 1, act)).astype(np.int64)


def assign_models(requests: pd.DataFrame, models: Sequence[str], policy: str) -> pd.DataFrame:
    """A copy of a session trace's requests with ``model`` assigned by turn under ``policy``
    (a Categorical over ``models``); the other columns (and ``attrs``) are kept.

    Raises:
        TraceError: the requests have no ``session_id`` (and so no turns).
        ConfigError: bad model names or policy.
    """
    names = check_served(list(models))
    if "session_id" not in requests.columns or "turn" not in requests.columns:
        raise TraceError(
            "assigning models to turns needs a trace with sessions (a 'session_id' column, "
            "and optionally 'turn'); this trace has none"
        )
    out = requests.copy()
    idx = assign_turns(out["turn"].to_numpy(), len(names), policy)
    out["model"] = pd.Categorical.from_codes(idx, categories=names)
    return out


def _exp(rng: np.random.Generator, mean: float, size: int | tuple[int, int]) -> np.ndarray:
    if mean == 0:
        return np.zeros(size)
    out: np.ndarray = rng.exponential(mean, size=size)
    return out


def workflow_trace(spec: WorkflowSpec, rng: np.random.Generator) -> pd.DataFrame:
    """Generate the calls of ``spec.num_sessions`` agent sessions (module docstring).

    Draw order (fixed, so a seed reproduces the trace): session gaps, task lengths, output
    lengths (sessions x calls), tool output lengths (sessions x loops), call gaps.

    Returns:
        The canonical requests frame sorted by arrival (stable): ``arrival_s`` (s, first 0.0),
        ``model`` (Categorical over ``spec.models``), ``prompt_tokens``, ``output_tokens``,
        ``session_id``, ``turn`` (int64), ``hash_ids`` (tuples; the role of turn ``t`` is
        ``ROLES[t % 3]``); ``attrs["hash_block_tokens"]`` and ``attrs["hash_ids_source"]``.

    Raises:
        ConfigError: an impossible parameter (:meth:`WorkflowSpec.check`).
    """
    spec.check()
    n, calls = spec.num_sessions, spec.loops * len(ROLES)
    start = np.concatenate([[0.0], np.cumsum(_exp(rng, 1.0 / spec.session_rate, n - 1))])
    task = spec.task_tokens.sample(rng, n)
    output = np.maximum(spec.output_tokens.sample(rng, n * calls).reshape(n, calls), 1)
    tool = np.zeros((n, calls), dtype=np.int64)
    tool[:, 1::3] = spec.tool_output_tokens.sample(rng, n * spec.loops).reshape(n, spec.loops)
    gaps = np.zeros((n, calls))
    gaps[:, 1:] = _exp(rng, spec.think_time_s, (n, calls - 1))
    grow = output + tool
    prompt = spec.system_prompt_tokens + task[:, None] + np.cumsum(grow, axis=1) - grow
    arrival = start[:, None] + np.cumsum(gaps, axis=1)
    session = np.repeat(np.arange(n, dtype=np.int64), calls)
    turn = np.tile(np.arange(calls, dtype=np.int64), n)
    model = assign_turns(turn, len(spec.models), spec.assign)
    df = pd.DataFrame(
        {
            "arrival_s": arrival.ravel(),
            "model": pd.Categorical.from_codes(model, categories=list(spec.models)),
            "prompt_tokens": prompt.ravel().astype(np.int64),
            "output_tokens": output.ravel().astype(np.int64),
            "session_id": session,
            "turn": turn,
        }
    )
    ids, _ = derive_hash_ids(
        session,
        turn,
        df["prompt_tokens"].to_numpy(),
        df["output_tokens"].to_numpy(),
        spec.hash_block_tokens,
        spec.system_prompt_tokens,
    )
    df["hash_ids"] = pd.Series(ids, dtype=object)
    df = df.sort_values("arrival_s", kind="stable", ignore_index=True)
    df["arrival_s"] = df["arrival_s"] - df["arrival_s"].iloc[0]
    df.attrs["hash_block_tokens"] = spec.hash_block_tokens
    df.attrs["hash_ids_source"] = "session structure"
    return df


def workflow_command(out: str, spec: WorkflowSpec, seed: int) -> str:
    """The ``sunsim trace workflow`` command line that regenerates a trace exactly."""
    parts = ["sunsim", "trace", "workflow", shlex.quote(str(out))]
    parts += ["--models", shlex.quote(",".join(spec.models))]
    parts += ["--sessions", str(spec.num_sessions), "--session-rate", f"{spec.session_rate:g}"]
    parts += ["--loops", str(spec.loops), "--system-prompt-tokens", str(spec.system_prompt_tokens)]
    parts += ["--task-tokens", spec.task_tokens.text()]
    parts += ["--tool-output-tokens", spec.tool_output_tokens.text()]
    parts += ["--output-tokens", spec.output_tokens.text()]
    parts += ["--think-time", f"{spec.think_time_s:g}", "--assign-models", spec.assign]
    parts += ["--hash-block-tokens", str(spec.hash_block_tokens), "--seed", str(seed)]
    return " ".join(parts)
