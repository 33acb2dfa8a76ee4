"""Tensor-parallel communication times from aiconfigurator-core's measured comm tables.

Layout (0.12.0, ``systems/data/<system>/comm/``)::

    <backend>/<version>/custom_allreduce_perf.parquet
        kernel_source (vLLM: vLLM_custom_graph / vLLM_custom_eager; TensorRT-LLM: TRTLLM),
        allreduce_dtype (bfloat16), num_gpus (2, 4, 8), message_size, latency (ms)
    nccl/<nccl version>/nccl_perf.parquet
        op_name (all_reduce, all_gather, ...), nccl_dtype (half, int8), num_gpus,
        message_size, latency (ms)

``message_size`` counts elements, not bytes (checked: the 8-GPU H100 all-reduce of
536870912 elements takes 4.01 ms, an NCCL bus bandwidth of 2 x 7/8 x 2 bytes x 536870912 /
4.01 ms = 469 GB/s, the H100 NVLink range; read as bytes it would be half that), and it is
the whole tensor each rank holds (as the package's own engine queries it: ``tokens x
hidden`` for a layer's all-reduce).

The serving backend's own all-reduce is used: vLLM's ``tensor_model_parallel_all_reduce``
as captured in a CUDA graph (``vLLM_custom_graph``: the custom all-reduce kernel, with vLLM
itself choosing NCCL for large messages) and TensorRT-LLM's all-reduce plugin, from the
backend's own version directory. The LM head's vocab-parallel logits gather is an NCCL
``all_gather`` of ``sampled x vocab`` BF16 elements (vLLM's ``LogitsProcessor``), from the
newest NCCL table of the system. Looked up log-linearly in message size, never
extrapolated (:class:`CommTable`).
"""

from __future__ import annotations

import bisect
import math
from collections import Counter
from pathlib import Path

import pandas as pd

from sunsim.errors import ProfileError
from sunsim.profiling.aic import tables


class CommTable:
    """Measured latencies (ms) of one collective by message size (elements) on
    ``num_gpus`` GPUs; :meth:`ms` interpolates ``log latency`` in ``log size``."""

    def __init__(self, rows: pd.DataFrame, name: str, source: str) -> None:
        g = rows.groupby("message_size", as_index=False)["latency"].median()
        g = g.sort_values("message_size")
        self.sizes = [float(x) for x in g["message_size"]]
        self.lat = [float(x) for x in g["latency"]]
        self.name = name
        #: "<table path> <kernel_source>", for the meta
        self.source = source
        self.estimates: Counter[str] = Counter()
        self.calls = 0

    def ms(self, elements: float) -> float:
        """Milliseconds of one collective over a tensor of ``elements`` elements. Below the
        smallest measured size: the smallest size's time (a collective of fewer elements is
        latency-bound; counted as an estimate). Above the largest: ProfileError."""
        self.calls += 1
        xs = self.sizes
        if elements <= xs[0]:
            if elements < xs[0]:
                self.estimates[f"{self.name}: below the smallest measured size"] += 1
            return self.lat[0]
        if elements > xs[-1]:
            raise ProfileError(
                f"{self.name}: message of {elements:g} elements is above the measured "
                f"{xs[-1]:g}; sunsim does not extrapolate the kernel database"
            )
        j = bisect.bisect_left(xs, elements)
        if xs[j] == elements:
            return self.lat[j]
        i = j - 1
        w = (math.log(elements) - math.log(xs[i])) / (math.log(xs[j]) - math.log(xs[i]))
        return math.exp(math.log(self.lat[i]) + (math.log(self.lat[j]) - math.log(self.lat[i])) * w)


def _rows(path: Path, tp: int, what: str) -> pd.DataFrame:
    df = tables.read_table(path)
    sel = df[df["num_gpus"] == tp]
    if sel.empty:
        have = sorted(int(x) for x in df["num_gpus"].unique())
        raise ProfileError(
            f"--tensor-parallel-size {tp}: {path} has no {what} on {tp} GPUs (measured: "
            f"{', '.join(map(str, have))})"
        )
    return sel


def allreduce_table(root: Path, ts: tables.TableSet, tp: int) -> CommTable:
    """The backend's own all-reduce on ``tp`` GPUs (module docstring). ProfileError when the
    backend version has no all-reduce table or none on ``tp`` GPUs."""
    path = root / ts.system / "comm" / ts.backend / ts.version / "custom_allreduce_perf.parquet"
    if not path.is_file():
        raise ProfileError(
            f"--tensor-parallel-size {tp}: no {ts.backend} {ts.version} all-reduce table "
            f"for {ts.system} ({path} missing)"
        )
    sel = _rows(path, tp, "all-reduce")
    if "allreduce_dtype" in sel.columns:
        sel = sel[sel["allreduce_dtype"] == "bfloat16"]
    graph = sel[sel["kernel_source"].astype(str).str.contains("graph")]
    sel, ks = tables.pick_kernel(graph if not graph.empty else sel, "all-reduce", path)
    rel = str(Path(*path.parts[-5:]))
    return CommTable(sel, f"{ts.backend} {ts.version} all-reduce x{tp}", f"{rel} {ks}")


def gather_table(root: Path, ts: tables.TableSet, tp: int) -> CommTable:
    """NCCL all_gather (half) on ``tp`` GPUs from the system's newest NCCL table."""
    ndir = root / ts.system / "comm" / "nccl"
    versions = tables._versions(ndir)
    if not versions:
        raise ProfileError(f"--tensor-parallel-size {tp}: no NCCL tables for {ts.system}")
    path = ndir / versions[-1] / "nccl_perf.parquet"
    sel = _rows(path, tp, "NCCL collectives")
    sel = sel[(sel["op_name"] == "all_gather") & (sel["nccl_dtype"] == "half")]
    if sel.empty:
        raise ProfileError(f"--tensor-parallel-size {tp}: {path} has no half all_gather rows")
    rel = str(Path(*path.parts[-5:]))
    return CommTable(sel, f"NCCL {versions[-1]} all_gather x{tp}", f"{rel} all_gather")
