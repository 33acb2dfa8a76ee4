"""Two runs of the SUN claims experiment side by side (e.g. roofline vs measured step times).

    .venv/bin/python experiments/sun_claims/compare.py A_DIR B_DIR

reads ``results.csv``, ``goodput.csv`` and ``qsun_step_speedup.csv`` of both result
directories (written by ``run.py``) and writes ``B_DIR/comparison.md``: planned GPUs,
throughput per GPU relative to partitioned, TPOT, goodput and the QSUN step speedup, each as
"A -> B", with the step-time sources of both runs. ``run.py`` calls it after a run.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd


def _sources(df: pd.DataFrame) -> str:
    cols = [c for c in ("prefill_step_times", "decode_step_times") if c in df]
    if not cols:  # a run written before the source columns existed: its `method` column
        return "; ".join(sorted(set(df["method"])))
    parts = []
    for mode, g in df.groupby("mode", sort=False):
        pre, dec = g[cols[0]].iloc[0], g[cols[1]].iloc[0]
        parts.append(f"{mode}: prefill {pre}, decode {dec}")
    return "; ".join(parts)


def _pair(a: object, b: object, fmt: str = "{}") -> str:
    fa = "" if pd.isna(a) else fmt.format(a)
    fb = "" if pd.isna(b) else fmt.format(b)
    return fa if fa == fb else f"{fa} -> {fb}"


def _table(rows: list[list[str]], head: list[str]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def zipf_rows(a: pd.DataFrame, b: pd.DataFrame) -> list[list[str]]:
    """One row per trace x Zipf x mode of the Zipf sweeps."""
    key = ["trace", "sweep_value", "mode"]
    m = a[a.sweep_key == "zipf"].merge(b, on=key, suffixes=("_a", "_b"))
    rows = []
    for _, r in m.iterrows():
        rows.append(
            [
                r.trace,
                f"{r.sweep_value:g}",
                r["mode"],
                _pair(r.decode_workers_a, r.decode_workers_b),
                _pair(r.prefill_workers_a, r.prefill_workers_b),
                _pair(r.num_gpus_a, r.num_gpus_b),
                _pair(
                    r.throughput_per_gpu_vs_partitioned_a,
                    r.throughput_per_gpu_vs_partitioned_b,
                    "{:.2f}",
                ),
                _pair(1e3 * r.tpot_s_p50_a, 1e3 * r.tpot_s_p50_b, "{:.1f}"),
                _pair(r.tpot_p50_vs_partitioned_pct_a, r.tpot_p50_vs_partitioned_pct_b, "{:+.0f}%"),
                _pair(
                    r.eq_gpu_tpot_p50_vs_partitioned_pct_a,
                    r.eq_gpu_tpot_p50_vs_partitioned_pct_b,
                    "{:+.0f}%",
                ),
            ]
        )
    return rows


def rate_rows(a: pd.DataFrame, b: pd.DataFrame) -> list[list[str]]:
    """One row per rate scale x mode of the rate sweep."""
    key = ["sweep_value", "mode"]
    m = a[a.sweep_key == "rate_scale"].merge(
        b[b.sweep_key == "rate_scale"], on=key, suffixes=("_a", "_b")
    )
    return [
        [
            f"{r.sweep_value:g}x",
            r["mode"],
            _pair(r.decode_workers_a, r.decode_workers_b),
            _pair(r.num_gpus_a, r.num_gpus_b),
            _pair(
                r.throughput_per_gpu_vs_partitioned_a,
                r.throughput_per_gpu_vs_partitioned_b,
                "{:.2f}",
            ),
            _pair(1e3 * r.tpot_s_p50_a, 1e3 * r.tpot_s_p50_b, "{:.1f}"),
        ]
        for _, r in m.iterrows()
    ]


def write_comparison(a_dir: Path, b_dir: Path) -> Path:
    """Write ``b_dir/comparison.md`` (module docstring) and return its path."""
    a = pd.read_csv(a_dir / "results.csv")
    b = pd.read_csv(b_dir / "results.csv")
    lines = [
        f"# SUN claims: `{a_dir.name}` -> `{b_dir.name}`",
        "",
        "Each cell is `A -> B` where the two runs differ, one value where they agree.",
        "",
        f"- A (`{a_dir.name}`) step times: {_sources(a)}",
        f"- B (`{b_dir.name}`) step times: {_sources(b)}",
        "",
        "## Planned size per mode (Zipf sweeps)",
        "",
    ]
    lines += _table(
        zipf_rows(a, b),
        ["trace", "zipf", "mode", "decode workers", "prefill workers", "GPUs",
         "tok/s/GPU x part.", "TPOT p50 ms", "TPOT p50 vs part. (planned)",
         "TPOT p50 vs part. (equal GPUs)"],
    )  # fmt: skip
    lines += ["", "## Capacity against load (Azure conv, Zipf 1.0)", ""]
    lines += _table(
        rate_rows(a, b),
        ["rate", "mode", "decode workers", "GPUs", "tok/s/GPU x part.", "TPOT p50 ms"],
    )
    ga, gb = a_dir / "goodput.csv", b_dir / "goodput.csv"
    if ga.is_file() and gb.is_file():
        g = pd.read_csv(ga).merge(pd.read_csv(gb), on=["trace", "mode"], suffixes=("_a", "_b"))
        lines += ["", "## Goodput at fixed hardware (highest rate scale meeting the SLO)", ""]
        lines += _table(
            [
                [r.trace, r["mode"], _pair(r.goodput_rate_scale_a, r.goodput_rate_scale_b, "{:g}x")]
                for _, r in g.iterrows()
            ],
            ["trace", "mode", "rate scale"],
        )
    sa, sb = a_dir / "qsun_step_speedup.csv", b_dir / "qsun_step_speedup.csv"
    if sa.is_file() and sb.is_file():
        s = pd.read_csv(sa).merge(
            pd.read_csv(sb), on=["context_tokens", "batch"], suffixes=("_a", "_b")
        )
        src = (
            f" (B: bf16 {s.bf16_source_b.iloc[0]}; w4a16 {s.w4a16_source_b.iloc[0]})"
            if "bf16_source_b" in s
            else ""
        )
        lines += ["", f"## QSUN decode step: W4A16 over BF16{src}", ""]
        lines += _table(
            [
                [
                    str(int(r.context_tokens)),
                    str(int(r.batch)),
                    _pair(r.bf16_ms_a, r.bf16_ms_b, "{:.2f}"),
                    _pair(r.w4a16_ms_a, r.w4a16_ms_b, "{:.2f}"),
                    _pair(r.speedup_pct_a, r.speedup_pct_b, "{:+.0f}%"),
                ]
                for _, r in s.iterrows()
            ],
            ["context tokens", "batch", "BF16 step ms", "W4A16 step ms", "speedup"],
        )
    out = b_dir / "comparison.md"
    out.write_text("\n".join(lines) + "\n")
    return out


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: compare.py A_DIR B_DIR (two results directories written by run.py)")
    print(write_comparison(Path(sys.argv[1]), Path(sys.argv[2])))
