"""Cheap timers on a SimPy environment and the loop that runs them.

The engine's workers only ever need "call this function in ``delay`` seconds". A
:class:`simpy.Timeout` does that through ``Event.__init__`` and ``Environment.schedule``; a
:class:`Timer` is the same queue entry without those calls, and :func:`run` is
:meth:`simpy.Environment.run` (to the end, no ``until``) without a method call per event.

Both keep SimPy's semantics exactly:

* a timer scheduled now with ``delay`` is the queue entry ``(now + delay, NORMAL, eid,
  event)`` that ``env.timeout(delay)`` would push, with the next id of the environment's own
  counter, so timers and ordinary SimPy events (processes, other timeouts) share one queue
  and fire in the same order as before (time, then priority, then scheduling order);
* :func:`run` pops entries in that order, sets ``env.now``, calls each event's callbacks with
  the event, and raises a failed, undefused event's exception like
  :meth:`simpy.Environment.step`.

This is the one engine module that touches SimPy's internals: the environment's event
queue, id counter and clock (``_queue``, ``_eid``, ``_now``; unchanged through SimPy 4.x);
events themselves are read through their public API. :func:`advance_if_next` lets a callback
do the work of the timer it was about to schedule at once, when that timer would be the very
next event. ``tests/test_engine_fastpaths.py`` pins the ordering against ``env.timeout`` and
SimPy's own loop. Cost: O(log n) per timer (one heap push and one pop).
"""

from __future__ import annotations

from collections.abc import Callable
from heapq import heappop, heappush
from typing import Any, cast

import simpy
from simpy.events import NORMAL

__all__ = [
    "Timer",
    "advance_if_next",
    "call_later",
    "cancel",
    "delay_pusher",
    "run",
    "timer_pusher",
]


class Timer:
    """A timer event: ``fn`` is called with the timer when it fires.

    :func:`run` calls ``fn`` directly; for SimPy's own loop (``env.run()``) it also looks like
    a fired :class:`simpy.Timeout`: ``callbacks`` is ``[fn]`` until it fires (then ``None``),
    it is ok (``_ok``) with value ``None``. It cannot be yielded from a SimPy process (use
    ``env.timeout`` there).
    """

    __slots__ = ("fn", "_fired")
    _ok = True
    _value = None
    fn: Callable[[Any], None]

    @property
    def callbacks(self) -> list[Callable[[Any], None]] | None:
        return None if getattr(self, "_fired", False) else [self.fn]

    @callbacks.setter
    def callbacks(self, value: None) -> None:
        self._fired = True


_new = object.__new__
#: A cancelled timer's callback: a built-in that takes the timer and does nothing with it
#: (cheaper than a Python function; its result is dropped).
_NOTHING = cast("Callable[[Any], None]", id)


def cancel(timer: Timer | None) -> None:
    """Make ``timer`` do nothing when it fires (it stays in the queue: O(1), no heap search).
    Cancelling a timer that has fired already changes nothing; None is ignored."""
    if timer is not None:
        timer.fn = _NOTHING


def call_later(env: simpy.Environment, delay: float, callback: Callable[[Any], None]) -> Timer:
    """Schedule ``callback(timer)`` at ``env.now + delay`` (seconds, >= 0); returns the timer.

    Same queue entry and order as ``env.timeout(delay).callbacks.append(callback)``.
    """
    t = _new(Timer)  # no __init__ call: this runs once per event
    t.fn = callback
    queue: list[Any] = env._queue
    heappush(queue, (env._now + delay, NORMAL, next(env._eid), t))
    return t


def advance_if_next(env: simpy.Environment, delay: float) -> bool:
    """If a timer of ``delay`` seconds (>= 0) scheduled now would be the next event of ``env``,
    set ``env.now`` to its time and return True; else change nothing and return False.

    It would be the next event exactly when its time ``now + delay`` is below every queued
    entry's time (an entry at the same time was scheduled earlier, so it goes first). Then
    nothing runs between now and that time, and the caller may do the timer's work in place
    of scheduling it: the same work at the same ``env.now``, with every event it schedules
    in the same order relative to all others (one fewer event, and no id drawn for it: ids
    only order entries of equal time, and later ids stay later). Under
    ``env.run(until=...)`` the stop is itself a queued event, so it is never passed.
    """
    at = env._now + delay  # the time call_later would give the timer
    queue: list[Any] = env._queue
    if queue and queue[0][0] <= at:
        return False
    env._now = at
    return True


def timer_pusher(
    env: simpy.Environment, callback: Callable[[Any], None]
) -> Callable[[float], Timer]:
    """A function ``push(at)`` that schedules ``callback(timer)`` at ``at`` (seconds, >= now)
    and returns the timer: the queue entry of ``call_later(env, at - env.now, callback)``
    (its time ``now + (at - now)``, rounded as that call rounds it), for a caller that sets
    many timers with one callback (a worker's)."""
    queue: list[Any] = env._queue
    eid = env._eid

    def push(at: float) -> Timer:
        t = _new(Timer)
        t.fn = callback
        now = env._now
        heappush(queue, (now + (at - now), NORMAL, next(eid), t))
        return t

    return push


def delay_pusher(
    env: simpy.Environment, callback: Callable[[Any], None]
) -> Callable[[float], Timer]:
    """A function ``push(delay)``: ``call_later(env, delay, callback)`` with the environment
    and the callback bound once."""
    queue: list[Any] = env._queue
    eid = env._eid

    def push(delay: float) -> Timer:
        t = _new(Timer)
        t.fn = callback
        heappush(queue, (env._now + delay, NORMAL, next(eid), t))
        return t

    return push


def run(env: simpy.Environment) -> None:
    """Process every event of ``env`` until its queue is empty (``env.run()``)."""
    queue: list[Any] = env._queue
    pop = heappop
    event: Any
    while queue:
        env._now, _, _, event = pop(queue)
        if event.__class__ is Timer:
            event.fn(event)
            continue
        callbacks = event.callbacks
        event.callbacks = None
        for callback in callbacks:
            callback(event)
        if not event.ok and not event.defused:  # a failed event nobody handled: crash
            err = event.value
            exc = type(err)(*err.args)
            exc.__cause__ = err
            raise exc
