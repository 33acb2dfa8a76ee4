"""Linear layers at BF16, W8A16 and W4A16 with real packed low-bit kernels.

Weight-only quantisation as used by QSUN's shared decode module (activations stay BF16):

* ``bf16``: ``torch.nn.functional.linear`` (cuBLAS on CUDA, oneDNN/MKL on CPU).
* ``w8a16``: symmetric int8 per output channel, ``w ~= q * scale[n]`` with
  ``scale[n] = max|w[n, :]| / 127``; kernel ``torch.ops.aten._weight_int8pack_mm(x[M, K] bf16,
  q[N, K] int8, scale[N] bf16) -> [M, N] bf16``.
* ``w4a16``: asymmetric uint4 per group of ``group_size`` (128, AWQ-style) input channels,
  tinygemm's convention ``w ~= (q - 8) * scale + zero`` with ``q`` in 0..15, ``scale =
  (max - min) / 15`` and ``zero = min + 8 * scale`` per group, scales and zeros packed as
  ``qScaleAndZeros[K / group, N, 2]`` BF16. Kernels: CPU
  ``aten._convert_weight_to_int4pack_for_cpu(q[N, K] int32, 1) -> [N, K / 2] uint8`` and
  ``aten._weight_int4pack_mm_for_cpu(x, packed, group, qScaleAndZeros)``; CUDA (tinygemm, sm80+)
  ``aten._convert_weight_to_int4pack(q2[N, K / 2] uint8, innerKTiles=8)`` where each byte holds
  ``q[:, 2j] << 4 | q[:, 2j + 1]``, then ``aten._weight_int4pack_mm(x, packed, group,
  qScaleAndZeros)``.

If a kernel is missing or refuses the device/dtype, building the layer raises
:class:`~sunsim.errors.ProfileError`: we never time a BF16 matmul and call it quantised.
Layouts verified by experiment against torch 2.13 (CPU) and read from ``aten/src/ATen/native/
cuda/int4mm.cu`` (CUDA packing order).
"""

from __future__ import annotations

from typing import Any

from sunsim.errors import ProfileError
from sunsim.profiling._torch import require_torch
from sunsim.specs import get_precision

INT4_GROUP_SIZE = 128
INT4_INNER_K_TILES_CUDA = 8

KERNELS = {
    ("bf16", "cpu"): "torch.nn.functional.linear (BF16 GEMM)",
    ("bf16", "cuda"): "torch.nn.functional.linear (cuBLAS BF16 GEMM)",
    ("w8a16", "cpu"): "aten._weight_int8pack_mm",
    ("w8a16", "cuda"): "aten._weight_int8pack_mm",
    ("w4a16", "cpu"): "aten._weight_int4pack_mm_for_cpu",
    ("w4a16", "cuda"): "aten._weight_int4pack_mm (tinygemm)",
}

SCHEMES = {
    "bf16": "none (BF16 weights)",
    "w8a16": "int8 symmetric, per output channel, BF16 scale",
    "w4a16": f"uint4 asymmetric, group {INT4_GROUP_SIZE} along K, BF16 scale and zero "
    "(tinygemm layout)",
}


def quantize_int8(w: Any) -> tuple[Any, Any]:
    """Symmetric per-output-channel int8 of ``w[N, K]``: returns ``(q[N, K] int8,
    scale[N] bf16)`` with ``w ~= q * scale[:, None]``."""
    torch = require_torch()
    wf = w.float()
    scale = (wf.abs().amax(dim=1) / 127.0).clamp(min=1e-8)
    q = torch.round(wf / scale[:, None]).clamp(-128, 127).to(torch.int8)
    return q.contiguous(), scale.to(torch.bfloat16).contiguous()


def quantize_int4(w: Any, group_size: int = INT4_GROUP_SIZE) -> tuple[Any, Any]:
    """Asymmetric groupwise uint4 of ``w[N, K]`` (groups of ``group_size`` along K).

    Returns ``(q[N, K] int32 in 0..15, scale_and_zero[K / group_size, N, 2] bf16)`` with
    ``w ~= (q - 8) * scale + zero`` (tinygemm's convention). Raises ProfileError when K is
    not a multiple of ``group_size``.
    """
    torch = require_torch()
    n, k = w.shape
    if k % group_size:
        raise ProfileError(
            f"W4A16 needs in-features divisible by the group size {group_size}, "
            f"got {k}; use a model whose hidden/intermediate sizes are multiples "
            f"of {group_size}"
        )
    wg = w.float().reshape(n, k // group_size, group_size)
    lo = wg.amin(dim=-1)
    hi = wg.amax(dim=-1)
    scale = ((hi - lo) / 15.0).clamp(min=1e-8)
    # Round scale/zero to BF16 first so the integer codes match what the kernel dequantises.
    scale_b = scale.to(torch.bfloat16).float()
    zero_b = (lo + 8.0 * scale).to(torch.bfloat16).float()
    base = zero_b - 8.0 * scale_b
    q = torch.round((wg - base[..., None]) / scale_b[..., None]).clamp(0, 15)
    q = q.to(torch.int32).reshape(n, k)
    sz = torch.stack([scale_b, zero_b], dim=-1).transpose(0, 1).contiguous()
    return q.contiguous(), sz.to(torch.bfloat16).contiguous()


class Linear:
    """``y[M, N] = x[M, K] @ W^T`` at one precision, with the real kernel for it.

    Attributes: ``precision``, ``kernel`` (the op used), ``in_features`` (K),
    ``out_features`` (N), ``nbytes`` (bytes of the stored weight, scales included).
    """

    def __init__(self, weight: Any, precision: str = "bf16") -> None:
        torch = require_torch()
        p = get_precision(precision).name
        self.precision = p
        self.out_features, self.in_features = (int(s) for s in weight.shape)
        dev = weight.device.type
        if dev not in ("cpu", "cuda"):
            raise ProfileError(f"unsupported device type '{dev}' for profiling; use cpu or cuda")
        self.device_type = dev
        if (p, dev) not in KERNELS:
            raise ProfileError(
                f"--precision {p}: `sunsim profile` has no {dev} kernel for it; use bf16, "
                "w8a16 or w4a16 (fp8 profiles come from `sunsim profile import`)"
            )
        self.kernel = KERNELS[(p, dev)]
        self._w = self._q = self._s = None
        if p == "bf16":
            self._w = weight.to(torch.bfloat16).contiguous()
            self.nbytes = self._w.numel() * 2
            self._fn = self._mm_bf16
        elif p == "w8a16":
            if not hasattr(torch.ops.aten, "_weight_int8pack_mm"):
                raise ProfileError(
                    f"this torch ({torch.__version__}) has no "
                    "aten._weight_int8pack_mm kernel, so W8A16 cannot be profiled; "
                    "upgrade torch (pip install 'sunsim[profile]')"
                )
            self._q, self._s = quantize_int8(weight)
            self.nbytes = self._q.numel() + self._s.numel() * 2
            self._fn = self._mm_int8
        else:  # w4a16
            q, self._s = quantize_int4(weight, INT4_GROUP_SIZE)
            if dev == "cpu":
                if not hasattr(torch.ops.aten, "_convert_weight_to_int4pack_for_cpu"):
                    raise ProfileError(
                        f"this torch ({torch.__version__}) has no CPU int4 packed "
                        "kernel (aten._weight_int4pack_mm_for_cpu); upgrade torch"
                    )
                self._q = torch.ops.aten._convert_weight_to_int4pack_for_cpu(q, 1)
                self._fn = self._mm_int4_cpu
            else:
                if self.out_features % 8:
                    raise ProfileError(
                        f"W4A16 on CUDA (tinygemm) needs out-features divisible "
                        f"by 8, got {self.out_features}"
                    )
                if self.in_features % (INT4_INNER_K_TILES_CUDA * 16):
                    raise ProfileError(
                        "W4A16 on CUDA (tinygemm) needs in-features divisible by "
                        f"{INT4_INNER_K_TILES_CUDA * 16}, got {self.in_features}"
                    )
                q2 = ((q[:, ::2] << 4) | q[:, 1::2]).to(torch.uint8).contiguous()
                self._q = torch.ops.aten._convert_weight_to_int4pack(q2, INT4_INNER_K_TILES_CUDA)
                self._fn = self._mm_int4_cuda
            self.nbytes = self.out_features * self.in_features // 2 + self._s.numel() * 2
        self._probe(weight)

    # -- kernels -----------------------------------------------------------------------------
    def _mm_bf16(self, x: Any) -> Any:
        import torch.nn.functional as F

        return F.linear(x, self._w)

    def _mm_int8(self, x: Any) -> Any:
        import torch

        return torch.ops.aten._weight_int8pack_mm(x, self._q, self._s)

    def _mm_int4_cpu(self, x: Any) -> Any:
        import torch

        return torch.ops.aten._weight_int4pack_mm_for_cpu(x, self._q, INT4_GROUP_SIZE, self._s)

    def _mm_int4_cuda(self, x: Any) -> Any:
        import torch

        return torch.ops.aten._weight_int4pack_mm(x, self._q, INT4_GROUP_SIZE, self._s)

    def __call__(self, x: Any) -> Any:
        """``x[M, K]`` contiguous BF16 -> ``[M, N]`` BF16."""
        return self._fn(x)

    def _probe(self, weight: Any) -> None:
        """Run the kernel once on a tiny input so an unsupported device/dtype fails here,
        with a one-line ProfileError, instead of in the middle of a grid."""
        torch = require_torch()
        x = torch.ones(1, self.in_features, dtype=torch.bfloat16, device=weight.device)
        try:
            y = self._fn(x)
        except (RuntimeError, NotImplementedError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ProfileError(
                f"the {self.precision} kernel {self.kernel} does not run on "
                f"{weight.device} ({first}); no real low-bit kernel is available "
                "here, and sunsim will not time a BF16 matmul in its place"
            ) from None
        if tuple(y.shape) != (1, self.out_features):
            raise ProfileError(
                f"{self.kernel} returned shape {tuple(y.shape)}, expected "
                f"(1, {self.out_features}); this torch's kernel layout differs"
            )

    def __repr__(self) -> str:
        return f"Linear({self.in_features} -> {self.out_features}, {self.precision}, {self.kernel})"


def dequantize_int8(q: Any, scale: Any) -> Any:
    """Reference dequantisation of :func:`quantize_int8`: ``q * scale[:, None]`` in float32."""
    return q.float() * scale.float()[:, None]


def dequantize_int4(q: Any, scale_and_zero: Any, group_size: int = INT4_GROUP_SIZE) -> Any:
    """Reference dequantisation of :func:`quantize_int4`: ``(q - 8) * scale + zero`` per group,
    float32 ``[N, K]``."""
    n, k = q.shape
    sz = scale_and_zero.float().transpose(0, 1)  # [N, G, 2]
    qg = q.float().reshape(n, k // group_size, group_size)
    return ((qg - 8.0) * sz[..., 0:1] + sz[..., 1:2]).reshape(n, k)
