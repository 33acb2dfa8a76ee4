"""How far below measured all-reduces the roofline's tensor-parallel term is.

The roofline at tensor parallel size N (:mod:`sunsim.latency.roofline`) charges each all-reduce
its ring bandwidth time only: 2(N-1)/N x bytes / NVLink bandwidth per direction
(:func:`sunsim.specs.parallel.allreduce_seconds_per_token`). This script puts that bound next to
the all-reduce latencies measured under CUDA graphs (vLLM's custom all-reduce, BF16) that
aiconfigurator-core 0.12.0 ships (``systems/data/<gpu>/comm/vllm/<ver>/custom_allreduce_perf
.parquet``), for message sizes a decode or prefill step of a 4096-wide model sends.

Run: ``python experiments/tp_allreduce/run.py`` (needs the optional ``aiconfigurator-core``).
Prints one row per GPU, backend version, N and message size.
"""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

import pandas as pd

from sunsim.specs.hardware import NVLINK_BW

SYSTEMS = {"h100": "h100_sxm", "h200": "h200_sxm", "a100": "a100_sxm", "b200": "b200_sxm"}
HIDDEN = 4096
TOKENS = (1, 8, 64, 512, 2048)  # message = tokens x hidden BF16 values


def main() -> None:
    spec = find_spec("aiconfigurator_core")
    if spec is None or spec.origin is None:
        raise SystemExit("needs aiconfigurator-core 0.12.0 (pip install 'sunsim[aic]')")
    data = Path(spec.origin).parent / "systems" / "data"
    rows = []
    for gpu, system in SYSTEMS.items():
        for f in sorted((data / system / "comm" / "vllm").glob("*/custom_allreduce_perf.parquet")):
            df = pd.read_parquet(f)
            df = df[(df["backend"] == "vllm_graph") & (df["allreduce_dtype"] == "bfloat16")]
            for (n, size), g in df.groupby(["num_gpus", "message_size"]):
                if size % HIDDEN or size // HIDDEN not in TOKENS:
                    continue
                measured = float(g["latency"].median()) * 1e-3  # the table is in milliseconds
                bound = size * 2 * 2.0 * (n - 1) / n / NVLINK_BW[gpu]
                rows.append(
                    {
                        "gpu": gpu,
                        "vllm": f.parent.name,
                        "tp": int(n),
                        "tokens": size // HIDDEN,
                        "measured_us": round(measured * 1e6, 2),
                        "roofline_us": round(bound * 1e6, 3),
                        "measured/roofline": round(measured / bound, 1),
                    }
                )
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
