"""The engine's fast paths give the same floats and the same event order as the plain ones.

* ``decode_run`` of the roofline and of measured profiles equals the running sum of
  ``decode_step_time`` (the base class's loop), bit for bit, including where ``stop_s`` cuts;
* :func:`sunsim.engine.clock.call_later` timers interleave with ``env.timeout`` events in
  SimPy's order (time, then scheduling order) and :func:`sunsim.engine.clock.run` runs both;
* :func:`sunsim.engine.clock.advance_if_next` runs a timer's work in place only when that
  timer would have been the next event, so the order of everything else is unchanged;
* folding the decode run log early (every few rows) gives the same distributions as one pass;
* routers reading a pool's shared load list choose as ``min`` over the workers does;
* ``benchmarks/ab_records.py --compare`` flags a changed record and ignores the event count.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import simpy
from hypothesis import given, settings
from hypothesis import strategies as st

import sunsim
from sunsim.engine import decode_stats, simulate
from sunsim.engine.clock import advance_if_next, call_later, run
from sunsim.latency.base import LatencyModel
from sunsim.latency.profiled import ProfiledLatency
from sunsim.latency.roofline import RooflineLatency
from sunsim.specs import MODELS, get_gpu

PROFILES = Path(sunsim.__file__).parent / "data" / "profiles"


def _models() -> list[LatencyModel]:
    gpu, spec = get_gpu("h100"), MODELS["llama-3.1-8b"]
    out: list[LatencyModel] = [
        RooflineLatency(gpu, spec, "bf16"),
        RooflineLatency(gpu, spec, "w4a16", step_overhead_s=3e-4),
    ]
    for d in sorted(PROFILES.glob("*-aic-*/llama-3.1-8b/*")):
        if (d / "meta.json").exists():
            out.append(ProfiledLatency.from_dir(d))
    return out


MODELS_UNDER_TEST = _models()


@pytest.mark.parametrize("lat", MODELS_UNDER_TEST, ids=lambda m: m.description[:60])
@settings(max_examples=60, deadline=None)
@given(
    b=st.integers(1, 700),
    per=st.integers(1, 40000),
    iters=st.integers(1, 300),
    stop=st.one_of(st.just(float("inf")), st.floats(0.0, 2.0)),
)
def test_decode_run_equals_step_sum(lat: LatencyModel, b: int, per: int, iters: int, stop: float):
    fast = lat.decode_run(b, b * per, iters, stop)
    slow = LatencyModel.decode_run(lat, b, b * per, iters, stop)
    assert fast == slow  # exact floats, same length


def test_timers_keep_simpy_order():
    env = simpy.Environment()
    seen: list[tuple[str, float]] = []

    def note(name):
        return lambda _ev: seen.append((name, env.now))

    call_later(env, 1.0, note("a"))
    env.timeout(1.0).callbacks.append(note("b"))
    call_later(env, 0.5, note("c"))
    call_later(env, 1.0, note("d"))

    def proc(env):
        yield env.timeout(0.75)
        seen.append(("p", env.now))

    env.process(proc(env))
    run(env)
    assert seen == [("c", 0.5), ("p", 0.75), ("a", 1.0), ("b", 1.0), ("d", 1.0)]


@settings(max_examples=80, deadline=None)
@given(
    others=st.lists(st.integers(0, 6), max_size=6),
    chain=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 6)), min_size=1, max_size=6),
)
def test_advance_if_next_keeps_the_order(others: list[int], chain: list[tuple[int, int]]):
    """A chain of timers (link ``i`` schedules a timer of its own after ``chain[i][1]``
    quarter-seconds and the next link after ``chain[i][0]`` half-seconds; ties included)
    gives the same sequence of (name, time) whether each link is scheduled or, where
    :func:`advance_if_next` allows, run in place."""

    def play(inline: bool) -> list[tuple[str, float]]:
        env = simpy.Environment()
        seen: list[tuple[str, float]] = []
        for k, t in enumerate(others):
            call_later(env, t * 0.5, lambda _ev, k=k: seen.append((f"o{k}", env.now)))

        def link(i: int) -> None:
            while True:
                seen.append((f"c{i}", env.now))
                own = chain[i][1] * 0.25
                call_later(env, own, lambda _ev, i=i: seen.append((f"x{i}", env.now)))
                i += 1
                if i == len(chain):
                    return
                delay = chain[i - 1][0] * 0.5
                if not (inline and advance_if_next(env, delay)):
                    call_later(env, delay, lambda _ev, i=i: link(i))
                    return

        call_later(env, 0.0, lambda _ev: link(0))
        run(env)
        return seen

    assert play(True) == play(False)


def test_advance_if_next_refuses_a_tie():
    env = simpy.Environment()
    call_later(env, 1.0, lambda _ev: None)
    assert not advance_if_next(env, 1.0)  # the queued entry goes first
    assert env.now == 0.0
    assert advance_if_next(env, 0.5)
    assert env.now == 0.5


def test_run_raises_a_failed_event():
    env = simpy.Environment()
    env.event().fail(ValueError("boom"))
    with pytest.raises(ValueError, match="boom"):
        run(env)


def test_early_folding_gives_the_same_distributions(monkeypatch):
    from sunsim.config import Scenario
    from sunsim.traces import synth_trace

    served = ("a", "b", "c")
    df = synth_trace(num_requests=3000, rate=200.0, served=served, rng=np.random.default_rng(3))
    cl = Scenario(served_models=served, decode_workers=(3,), prefill_workers=(2, 1, 1)).cluster(
        "sun", [1.0, 1.0, 1.0]
    )
    lat = RooflineLatency(get_gpu("h100"), MODELS["llama-3.1-8b"], "bf16")
    one = simulate(df, cl, lat, lat, seed=1)
    monkeypatch.setattr(decode_stats, "FOLD_ROWS", 5)
    many = simulate(df, cl, lat, lat, seed=1)
    for name in ("timeline", "kv_time", "batch_time", "decode_workers", "records"):
        a, b = getattr(one, name), getattr(many, name)
        assert a.equals(b), name
    assert np.array_equal(one.itl_hist, many.itl_hist)


def test_timers_also_run_under_simpy_own_loop():
    env = simpy.Environment()
    seen: list[float] = []
    call_later(env, 2.0, lambda _ev: seen.append(env.now))
    env.timeout(1.0).callbacks.append(lambda _ev: seen.append(env.now))
    env.run()
    assert seen == [1.0, 2.0]


class _W:
    def __init__(self, load: int, tokens: int) -> None:
        self.load = load
        self.load_tokens = tokens
        self.max_num_seqs = 4


@given(st.lists(st.integers(0, 5), min_size=1, max_size=30), st.booleans())
@settings(max_examples=60, deadline=None)
def test_shared_load_list_routes_as_the_attributes_do(loads, central):
    """least_loaded and central over a pool's shared load list choose the worker that
    ``min`` over the workers' ``load`` attributes chooses (ties to the lowest index)."""
    from sunsim.engine.router import Central, LeastLoaded

    shared: list[int] = []
    ws = []
    for i, x in enumerate(loads):
        w = _W(x, 0)
        w.loads, w.slot = shared, i  # type: ignore[attr-defined]
        shared.append(x)
        ws.append(w)
    plain = [_W(x, 0) for x in loads]
    cls = Central if central else LeastLoaded
    fast, slow = cls(ws, np.random.default_rng(0)), cls(plain, np.random.default_rng(0))
    assert fast.loads is shared and slow.loads is None
    got, want = fast.choose(), slow.choose()
    assert (got is None) == (want is None)
    if got is not None:
        assert ws.index(got) == plain.index(want)


@given(st.lists(st.integers(0, 9), min_size=2, max_size=2))
def test_two_worker_prefill_choice_is_min(tokens):
    from sunsim.engine.router import LeastLoaded

    ws = [_W(0, t) for t in tokens]
    assert LeastLoaded(ws, np.random.default_rng(0), prefill=True).choose() is min(
        ws, key=lambda w: w.load_tokens
    )


def test_ab_records_compare_flags_a_difference(tmp_path, capsys):
    import importlib.util
    import json

    path = Path(__file__).parents[1] / "benchmarks" / "ab_records.py"
    spec = importlib.util.spec_from_file_location("ab_records", path)
    ab = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ab)
    fp = {"s": {"sun": {"records.finished_at": "x", "_num_events": 5}}}
    (tmp_path / "a.json").write_text(json.dumps(fp))
    fp["s"]["sun"]["_num_events"] = 3  # fewer events is not a difference
    (tmp_path / "b.json").write_text(json.dumps(fp))
    assert ab.compare(str(tmp_path / "a.json"), str(tmp_path / "b.json")) == 0
    fp["s"]["sun"]["records.finished_at"] = "y"
    (tmp_path / "c.json").write_text(json.dumps(fp))
    assert ab.compare(str(tmp_path / "a.json"), str(tmp_path / "c.json")) == 1
    assert "DIFF s sun: ['records.finished_at']" in capsys.readouterr().out
