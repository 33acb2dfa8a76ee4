"""Latency SLOs: TTFT and TPOT bounds (seconds) and the attainment target."""

from __future__ import annotations

from dataclasses import dataclass

from sunsim.errors import ConfigError


@dataclass(frozen=True)
class SloSpec:
    """Latency SLOs (seconds) and the attainment target (fraction of requests)."""

    ttft_s: float = 2.0
    tpot_s: float = 0.1
    attainment: float = 0.9

    def __post_init__(self) -> None:
        if not (self.ttft_s > 0 and self.tpot_s > 0):
            raise ConfigError(
                f"SLO bounds must be positive seconds (ttft_s={self.ttft_s}, "
                f"tpot_s={self.tpot_s}); pass e.g. --slo-ttft 2 --slo-tpot 0.1"
            )
        if not (0 < self.attainment <= 1):
            raise ConfigError(f"SLO attainment target must be in (0, 1], got {self.attainment}")
