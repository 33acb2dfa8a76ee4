"""Derived low-bit GEMM times for a GPU and backend that measured no weight-only kernels.

The rule (written into each derived profile's meta, ``method: "derived"``): a weight-only
GEMM of shape (m, n, k) on the target takes

    t_target(m, n, k) = t_target_BF16(m, n, k) x t_donor_low(m, n, k) / t_donor_BF16(m, n, k)

with ``t_target_BF16`` the target's measured BF16 GEMM and the ratio measured on a *donor*:
a GPU and backend of the same database that timed both its BF16 GEMM and its weight-only
GEMM at that precision. Each of the three is looked up in its own measured grid
(:class:`~sunsim.profiling.aic.interp.GemmTable`), so the ratio is the donor's at the
same (m, n, k), not a single number. It carries the donor's kernel quality (how close its
int8/int4 kernels get to their bandwidth bound) to the target, scaled to the target's
measured BF16 speed; it is an estimate, never a measurement, and never the ideal bandwidth
ratio (bits per weight).

Donors in aiconfigurator-core 0.12.0 (checked over every system's GEMM tables: only two
measured weight-only GEMMs): ``a100_sxm trtllm 1.0.0`` (int8 and int4, TensorRT-LLM's CUTLASS
weight-only plugin ``WeightOnlyQuantMatmul`` against ``torch_flow`` BF16): the donor of both
precisions. ``h100_sxm sglang 0.5.6.post2`` also timed an ``int8_wo`` GEMM, but its layer
GEMMs of Llama-3.1-8B take 1.10-1.65x as long as that table's own BF16 ones at m = 1..256
(per shape 0.89-4.4x: QKV 1.35-2.5x, O 2.2-4.4x, gate/up 0.89-1.05x, down 1.1-1.9x): slower
than BF16 exactly where a weight-only kernel should be faster (small batches, bound by reading
the weights), not a kernel a serving engine would run for W8A16 decode, so it is not used
as a donor (:data:`REJECTED`). :data:`DONORS` lists the donors in the order tried.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from sunsim.errors import ProfileError
from sunsim.profiling.aic import tables
from sunsim.profiling.aic.interp import GemmTable

#: precision -> donors ``(system, backend, version)`` tried in order (a donor on the target
#: system itself is taken first when there is one).
DONORS: dict[str, list[tuple[str, str, str]]] = {
    "w8a16": [("a100_sxm", "trtllm", "1.0.0")],
    "w4a16": [("a100_sxm", "trtllm", "1.0.0")],
}
#: weight-only tables of the database not used as donors, and why (written to the meta).
REJECTED = {
    "h100_sxm sglang 0.5.6.post2 int8_wo": (
        "its Llama-3.1-8B layer GEMMs take 1.10-1.65x its own BF16 time at m = 1..256 "
        "(per shape 0.89-4.4x): not a serving W8A16 kernel"
    )
}

RULE = (
    "t(m, n, k) = target's measured BF16 GEMM(m, n, k) x donor's measured {low}(m, n, k) / "
    "donor's measured BF16 GEMM(m, n, k), each interpolated in its own measured grid; LM "
    "head, attention and the estimated elementwise kernels as in a BF16 profile"
)


class DerivedGemmTable:
    """GEMM times at a low-bit precision derived from a BF16 table and a donor's ratio.

    ``target``: the target's BF16 :class:`GemmTable`; ``donor_low``/``donor_bf16``: the
    donor's tables at the low-bit precision and at BF16. :meth:`ms` has GemmTable's
    signature; :attr:`estimates` counts the three tables' estimates and each derived call.
    """

    def __init__(
        self, target: GemmTable, donor_low: GemmTable, donor_bf16: GemmTable, name: str
    ) -> None:
        self.target, self.donor_low, self.donor_bf16 = target, donor_low, donor_bf16
        self.name = name
        self.calls = 0

    @property
    def estimates(self) -> Counter[str]:
        out = self.target.estimates + self.donor_low.estimates + self.donor_bf16.estimates
        if self.calls:
            out[f"{self.name}: derived GEMM (target BF16 x donor ratio)"] = self.calls
        return out

    def ratio(self, m: int, n: int, k: int) -> float:
        """The donor's low-bit / BF16 time ratio at (m, n, k)."""
        return self.donor_low.ms(m, n, k) / self.donor_bf16.ms(m, n, k)

    def ms(self, m: int, n: int, k: int) -> float:
        """Milliseconds of one derived (m x k) @ (k x n) low-bit GEMM."""
        self.calls += 1
        return self.target.ms(m, n, k) * self.ratio(m, n, k)


def pick_donor(root: Path, system: str, precision: str) -> tuple[str, str, str]:
    """The donor for ``precision`` (the target ``system``'s own first, else the first of
    :data:`DONORS` whose GEMM table has both dtypes). ProfileError when none has."""
    cands = DONORS.get(precision, [])
    cands = [d for d in cands if d[0] == system] + [d for d in cands if d[0] != system]
    want = {"bfloat16", tables.GEMM_DTYPES.get(precision, precision)}
    for sys_, be, ver in cands:
        path = root / sys_ / "gemm" / be / ver / "gemm_perf.parquet"
        if want <= set(tables.gemm_dtypes(path)):
            return sys_, be, ver
    raise ProfileError(
        f"--precision {precision}: no measured weight-only GEMMs to derive it from in {root} "
        "(no GPU and backend timed both BF16 and this precision)"
    )


def donor_tables(
    root: Path, donor: tuple[str, str, str], precision: str
) -> tuple[GemmTable, GemmTable, dict[str, str]]:
    """The donor's low-bit and BF16 GEMM tables and their ``kernel_source``s."""
    sys_, be, ver = donor
    path = root / sys_ / "gemm" / be / ver / "gemm_perf.parquet"
    where = f"{be} {ver} on {sys_}"
    low, lks, _ = tables.gemm_rows_at(path, precision, where)
    bf, bks, _ = tables.gemm_rows_at(path, "bf16", where)
    kernels = {"donor_low_bit_gemm": lks, "donor_bf16_gemm": bks}
    return (
        GemmTable(low, f"{sys_} {be} {ver} {precision} GEMM (donor)"),
        GemmTable(bf, f"{sys_} {be} {ver} BF16 GEMM (donor)"),
        kernels,
    )
