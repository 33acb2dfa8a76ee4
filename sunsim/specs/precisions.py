"""Precisions of a module's linear weights (BF16, W8A16, AWQ-style W4A16)."""

from __future__ import annotations

from dataclasses import dataclass

from sunsim.errors import ConfigError


@dataclass(frozen=True)
class Precision:
    """How a module's linear weights are stored.

    ``weight_bits`` per weight of the linear layers, plus a BF16 scale and a BF16 zero point
    per ``group_size`` weights for grouped quantisation (AWQ-style W4A16 uses group 128;
    W8A16 per output channel, so its overhead is negligible). Embedding and LM head stay
    BF16, as AWQ and GPTQ checkpoints keep them.
    """

    name: str
    weight_bits: int
    group_size: int = 0  # 0: no groups (per-channel or none)

    @property
    def linear_bytes_per_weight(self) -> float:
        b = self.weight_bits / 8
        if self.group_size:
            b += 4 / self.group_size  # BF16 scale + BF16 zero per group
        return b


PRECISIONS: dict[str, Precision] = {
    "bf16": Precision("bf16", 16),
    "w8a16": Precision("w8a16", 8),
    "w4a16": Precision("w4a16", 4, group_size=128),
}


def get_precision(name: str) -> Precision:
    key = name.lower()
    if key not in PRECISIONS:
        raise ConfigError(f"unknown precision '{name}'; known: {', '.join(PRECISIONS)}")
    return PRECISIONS[key]
