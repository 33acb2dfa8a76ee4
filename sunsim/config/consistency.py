"""Checks across a scenario's fields (:func:`check_consistent`), run by
:class:`~sunsim.config.scenario.Scenario` after each field is validated: impossible
combinations raise :class:`~sunsim.errors.ConfigError` in one line naming the keys."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sunsim.engine.designs import DESIGNS, PoolScope, get_design
from sunsim.engine.spec import split_workers
from sunsim.errors import ConfigError
from sunsim.specs import get_model
from sunsim.specs.parallel import check_heads_divisible

if TYPE_CHECKING:
    from sunsim.config.scenario import Scenario


def check_consistent(s: Scenario) -> None:
    """Raise :class:`ConfigError` for combinations no run can have: a profile source without
    a path, repeated model names, worker counts that are neither one nor one per model,
    shares that do not fit, a bad window, a closed loop with trace options, the load given
    twice, an empty pool (:func:`check_pool_counts`), fewer decode workers than
    partitioned's pools, a tensor parallel size that does not
    divide the model's heads."""
    if s.latency == "profile" and not s.profile:
        raise ConfigError("latency = 'profile' needs a profile path (--profile DIR)")
    n = len(s.served_models)
    if len(set(s.served_models)) != n:
        raise ConfigError(f"served model names must differ: {', '.join(s.served_models)}")
    for what, counts in (
        ("prefill", s.prefill_workers),
        ("decode", s.decode_workers),
        ("co-located", s.colocated_workers),
    ):
        if len(counts) not in (1, n):
            total = " (the total)" if what == "decode" else ""
            raise ConfigError(
                f"give one {what} worker count{total} or {n} (one per served model), "
                f"got {len(counts)}"
            )
    check_pool_counts(s)
    if s.shares is not None:
        if len(s.shares) != n:
            raise ConfigError(f"{len(s.shares)} shares for {n} served models")
        if sum(s.shares) <= 0:
            raise ConfigError(f"shares must have a positive sum, got {s.shares}")
    if s.window_s is not None and not 0 <= s.window_s[0] < s.window_s[1]:
        raise ConfigError(f"window must be START,END with 0 <= START < END, got {s.window_s}")
    check_closed_loop(s)
    check_session_arrivals(s)
    if s.request_rate is not None and s.rate_scale != 1.0:
        raise ConfigError(
            f"give the load once: request_rate {s.request_rate:g} req/s or rate_scale "
            f"{s.rate_scale:g}, not both"
        )
    if "partitioned" in s.modes and len(s.decode_workers) == 1:
        if s.decode_workers[0] < n:
            split_workers(s.decode_workers[0], [1.0] * n)  # raises: fewer than pools
    check_tensor_parallel(s)
    check_precisions_run(s)


def check_pool_counts(s: Scenario) -> None:
    """Every pool of every design in ``modes`` gets at least 1 worker. A count may be 0 only
    as one model's part of a shared pool (``prefill_workers = [1, 0, 0]`` with
    ``prefillshare``: one shared prefill pool of 1); a per-model pool's 0, or a shared pool
    whose parts sum to 0 (a one-count total of 0), raises a
    :class:`~sunsim.config.fields.ScenarioFieldError` naming the key, the design and, for a
    per-model pool, the model. Keys no design in ``modes`` uses are not checked."""
    from sunsim.config.fields import ScenarioFieldError

    for mode in s.modes:
        d = get_design(mode)
        keys = (
            (("colocated_workers", d.decode.scope, False),)
            if d.colocated
            else (
                ("prefill_workers", d.prefill.scope, False),
                ("decode_workers", d.decode.scope, True),
            )
        )
        for key, scope, one_is_total in keys:
            counts = getattr(s, key)
            if scope is PoolScope.SHARED or (one_is_total and len(counts) == 1):
                if sum(counts) == 0:  # one pool: the shared one, or partitioned's total
                    shown = counts[0] if len(counts) == 1 else list(counts)
                    raise ScenarioFieldError(
                        key, f"must be >= 1 in all for design '{mode}', got {shown}"
                    )
                continue
            per_model = counts * len(s.served_models) if len(counts) == 1 else counts
            for model, c in zip(s.served_models, per_model, strict=True):
                if c == 0:
                    raise ScenarioFieldError(key, _empty_pool(model, mode, key))


def _empty_pool(model: str, mode: str, key: str) -> str:
    """Why a 0 in a per-model pool is refused, naming the designs whose pool it could share."""
    role = "prefill" if key == "prefill_workers" else "decode"
    shared = [
        n for n, d in DESIGNS.items()
        if (d.colocated == (key == "colocated_workers"))
        and getattr(d, role).scope is PoolScope.SHARED
    ]  # fmt: skip
    return (
        f"0 workers for model '{model}' in design '{mode}': each model's pool needs at least "
        f"1 worker (a 0 is only a model's part of a shared pool: {', '.join(shared)})"
    )


def check_tensor_parallel(s: Scenario) -> None:
    """Each pool's tensor parallel size is a power of two dividing the model's heads."""
    model = get_model(s.base_model)
    for role in ("prefill", "decode"):
        own = getattr(s, f"{role}_tensor_parallel_size")
        name = "tensor_parallel_size" if own is None else f"{role}_tensor_parallel_size"
        check_heads_divisible(model, s.pool_tensor_parallel_size(role), name)


def check_closed_loop(s: Scenario) -> None:
    """A closed-loop workload (``max_concurrency`` set) replaces the trace: the trace's
    options and trace-based labelling are errors with it."""
    if s.max_concurrency is None:
        return
    if s.trace is not None:
        raise ConfigError(
            "max_concurrency makes a closed-loop workload that replaces the trace; "
            "drop the trace or --max-concurrency"
        )
    if s.model_map is not None or s.zipf is not None:
        raise ConfigError(
            "closed-loop requests go to the served models round-robin or by --shares; "
            "drop --zipf / --model-map"
        )
    if s.request_rate is not None:
        raise ConfigError(
            "closed-loop clients (max_concurrency) set their own rate; drop --request-rate"
        )


def check_precisions_run(s: Scenario) -> None:
    """Every pool's weight precision can run on that pool's GPU
    (:func:`sunsim.latency.resolve.precision_refused`): ``precision`` on the prefill and
    decode GPUs, ``qsun_precision`` on the decode GPU when qsun runs. Refused before the
    trace is read, as a :class:`~sunsim.config.fields.ScenarioFieldError` naming the key."""
    from sunsim.config.fields import ScenarioFieldError
    from sunsim.latency.resolve import precision_refused

    checks = [("precision", s.precision, role) for role in ("prefill", "decode")]
    if "qsun" in s.modes:
        checks.append(("qsun_precision", s.qsun_precision, "decode"))
    for name, precision, role in checks:
        gpu = s.pool_gpu(role)
        why = precision_refused(precision, gpu)
        if why:
            raise ScenarioFieldError(name, f"{precision} (W8A8) on {gpu} ({role} pools): {why}")


def check_session_arrivals(s: Scenario) -> None:
    """``session_arrivals = after_previous`` replays a trace's sessions; ``think_time_s``
    belongs to it, and a closed loop (``max_concurrency``) has no sessions."""
    if s.session_arrivals == "timestamp":
        if s.think_time_s is not None:
            raise ConfigError(
                "think_time_s applies only with session_arrivals = after_previous; "
                "add --session-arrivals after_previous or drop --think-time-s"
            )
        return
    if s.max_concurrency is not None:
        raise ConfigError(
            "session_arrivals = after_previous replays a trace's sessions; a closed loop "
            "(max_concurrency) has none: drop one of them"
        )
