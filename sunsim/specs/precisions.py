"""Precisions of a module's linear weights (BF16, FP8 W8A8, W8A16, AWQ-style W4A16).

The KV cache stays BF16 at every precision (``ModelSpec.kv_bytes_per_token`` default): FP8
checkpoints such as nvidia/Llama-3.1-70B-Instruct-FP8 quantise the linear layers, and vLLM
keeps the cache in the model dtype unless ``--kv-cache-dtype fp8`` is given separately.
"""

from __future__ import annotations

from dataclasses import dataclass

from sunsim.errors import ConfigError


@dataclass(frozen=True)
class Precision:
    """How a module's linear weights are stored.

    ``weight_bits`` per weight of the linear layers, plus a BF16 scale and a BF16 zero point
    per ``group_size`` weights for grouped quantisation (AWQ-style W4A16 uses group 128;
    W8A16 per output channel, so its overhead is negligible). Embedding and LM head stay
    BF16, as AWQ and GPTQ checkpoints keep them (and FP8 checkpoints too).
    """

    name: str
    weight_bits: int
    group_size: int = 0  # 0: no groups (per-channel or none)
    #: bits of the activations the linear layers multiply (16: BF16; 8: FP8, W8A8).
    activation_bits: int = 16

    @property
    def linear_bytes_per_weight(self) -> float:
        b = self.weight_bits / 8
        if self.group_size:
            b += 4 / self.group_size  # BF16 scale + BF16 zero per group
        return b


PRECISIONS: dict[str, Precision] = {
    "bf16": Precision("bf16", 16),
    # FP8 (E4M3) W8A8 with per-tensor scales (vLLM's CutlassFP8ScaledMMLinearKernel): one
    # byte per weight; the per-tensor scales are negligible.
    "fp8": Precision("fp8", 8, activation_bits=8),
    "w8a16": Precision("w8a16", 8),
    "w4a16": Precision("w4a16", 4, group_size=128),
}


def get_precision(name: str) -> Precision:
    """The precision called ``name`` (``bf16``, ``fp8``, ``w8a16``, ``w4a16``); raises
    :class:`ConfigError` naming the known ones."""
    key = name.lower()
    if key not in PRECISIONS:
        raise ConfigError(f"unknown precision '{name}'; known: {', '.join(PRECISIONS)}")
    return PRECISIONS[key]
