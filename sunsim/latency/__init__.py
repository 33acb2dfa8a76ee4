"""Latency models: step times for prefill batches and decode iterations."""

from sunsim.latency.base import ConstantLatency, LatencyModel

__all__ = ["LatencyModel", "ConstantLatency"]
