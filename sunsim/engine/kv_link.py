"""KV-cache links: FIFO transfers of a prefill worker's KV cache to a decode worker.

Each prefill worker owns one link (its NIC). Transfers on one link go one at a time in the
order they were issued: a transfer starts when the link is free and takes
``latency_s + bytes / bandwidth`` (:meth:`sunsim.config.LinkSpec.transfer_time`).
Computing the finish time directly keeps this O(1) per transfer with no extra event.
"""

from __future__ import annotations

from sunsim.specs import LinkSpec


class KvLink:
    """One FIFO link. ``busy_s`` and ``bytes_sent`` accumulate for utilisation reports."""

    __slots__ = ("spec", "free_at", "busy_s", "bytes_sent", "num_transfers", "_lat", "_inv_bw")

    def __init__(self, spec: LinkSpec) -> None:
        self.spec = spec
        self._lat = spec.latency_s
        self._inv_bw = 1.0 / spec.bandwidth
        self.free_at = 0.0
        self.busy_s = 0.0
        self.bytes_sent = 0
        self.num_transfers = 0

    def transfer(self, now: float, num_bytes: int) -> float:
        """Queue a transfer of ``num_bytes`` issued at ``now``; return its arrival time (s)."""
        start = self.free_at if self.free_at > now else now
        dt = self._lat + num_bytes * self._inv_bw  # LinkSpec.transfer_time, inlined
        self.free_at = start + dt
        self.busy_s += dt
        self.bytes_sent += num_bytes
        self.num_transfers += 1
        return self.free_at
