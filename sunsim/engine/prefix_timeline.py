"""Cached KV by model over time: one worker's prefix cache observed in time bins.

A :class:`KvTimeline` integrates the blocks each model's requests hold in one worker's
:class:`~sunsim.engine.prefix_cache.PrefixCache` (``blocks_by_owner``) over simulated time, in
bins of ``bin_s`` seconds (the decode timeline's bins, :attr:`ClusterSim.timeline_bin_s`), and
:func:`kv_timeline_frame` turns the workers' integrals into the time-bin means of the run,
summed over workers, in bytes. It only observes: the run's records are the same with or
without it. Cost: O(models) per cache change plus O(1) per bin crossed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

__all__ = ["KvTimeline", "kv_timeline_frame"]


class KvTimeline:
    """Block-seconds cached per owner model and time bin on one worker.

    Args:
        bin_s: bin width, seconds (> 0). num_owners: served models (owner indices).
    """

    __slots__ = ("bin_s", "last_t", "state", "acc")

    def __init__(self, bin_s: float, num_owners: int) -> None:
        if not bin_s > 0:
            raise ValueError(f"bin_s must be > 0, got {bin_s}")
        self.bin_s = float(bin_s)
        self.last_t = 0.0
        self.state = [0] * num_owners  # blocks per owner since last_t
        self.acc: list[list[float]] = []  # acc[bin][owner]: block-seconds

    def update(self, now: float, blocks_by_owner: Mapping[int, int]) -> None:
        """The cache holds ``blocks_by_owner`` from ``now`` on (what it held before is
        counted up to ``now``)."""
        self.advance(now)
        st = self.state
        for owner, b in blocks_by_owner.items():
            st[owner] = b

    def advance(self, now: float) -> None:
        """Count the current state up to ``now`` (seconds; earlier times are ignored)."""
        t = self.last_t
        if now <= t:
            return
        st = self.state
        if any(st):
            bin_s = self.bin_s
            acc = self.acc
            n = len(st)
            while t < now:
                b = int(t // bin_s)
                end = min(now, (b + 1) * bin_s)
                if end <= t:  # t sits on a bin edge that floor division put in the bin before
                    b += 1
                    end = min(now, (b + 1) * bin_s)
                while len(acc) <= b:
                    acc.append([0.0] * n)
                row = acc[b]
                dt = end - t
                for o, v in enumerate(st):
                    if v:
                        row[o] += v * dt
                t = end
        self.last_t = now


def kv_timeline_frame(
    timelines: Sequence[KvTimeline], end_s: float, bytes_per_block: int, served: Sequence[str]
) -> pd.DataFrame:
    """Rows ``t_s`` (bin start), ``model``, ``cached_kv_bytes``: the mean bytes of cached KV
    each model's requests inserted, per bin (the last one: over its part before ``end_s``),
    summed over ``timelines`` (counted up to ``end_s``, the end of the run); bins from 0 to
    the last one with cached blocks. Empty (those columns) when nothing was cached."""
    for tl in timelines:
        tl.advance(end_s)
    nbins = max((len(tl.acc) for tl in timelines), default=0)
    if nbins == 0:
        return pd.DataFrame(columns=["t_s", "model", "cached_kv_bytes"])
    bin_s = timelines[0].bin_s
    total = np.zeros((nbins, len(served)))
    for tl in timelines:
        if tl.acc:
            total[: len(tl.acc)] += np.asarray(tl.acc, dtype=float)
    t = np.arange(nbins) * bin_s
    width = np.full(nbins, bin_s)
    width[-1] = min(bin_s, max(end_s - t[-1], 1e-12))  # the last bin ends with the run
    mean_bytes = total / width[:, None] * bytes_per_block
    return pd.DataFrame(
        {
            "t_s": np.repeat(t, len(served)),
            "model": np.tile(np.asarray(served, dtype=object), nbins),
            "cached_kv_bytes": mean_bytes.reshape(-1),
        }
    )
