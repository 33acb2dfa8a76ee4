"""``sunsim validate silicon``: the split, the classification of rows (registries looked up
at run time), the row -> scenario mapping, a run on a small hand-made CSV, and bad input."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from sunsim.cli import app
from sunsim.engine.designs import DESIGNS
from sunsim.validate.silicon.mapping import row_scenario
from sunsim.validate.silicon.rows import (
    FIT_PERCENT,
    REQUIRED_COLUMNS,
    Case,
    Skip,
    classify,
    concurrency_of,
    in_fit_set,
    read_silicon,
    sunsim_model,
    tensor_parallel_supported,
)
from sunsim.validate.silicon.run import FIT_SET, validate_silicon

IDS = [f"row{i}" for i in range(200)]
REPORTED = [i for i in IDS if not in_fit_set(i)]
FITTED = [i for i in IDS if in_fit_set(i)]

BASE = {
    "backend": "vllm", "backend_version": "0.12.0", "system": "h100_sxm",
    "model_path": "meta-llama/Llama-3.1-8B-Instruct", "precision": "", "gemm_quant_mode": "",
    "isl": 1024, "osl": 128, "silicon_ttft_ms": 100.0, "silicon_tpot_ms": 10.0,
}  # fmt: skip
DISAGG = BASE | {
    "mode": "disagg", "prefill_num_workers": 1, "prefill_tp_size": 1, "decode_num_workers": 1,
    "decode_tp_size": 1, "decode_batch_size": 8, "prefill_batch_size": 1,
    "silicon_data_source": "x; silicon_concurrency=8; y",
}  # fmt: skip
AGG = BASE | {"mode": "agg", "batch_size": 8, "tp_size": 1, "pp_size": 1, "attention_dp_size": 1}


def _row(**kw: object) -> dict[str, object]:
    r = dict(kw)
    r.setdefault("id", REPORTED[0])
    r["concurrency"] = concurrency_of(r)
    return r


def _write(tmp_path: Path, rows: list[dict[str, object]]) -> Path:
    cols = [*REQUIRED_COLUMNS, "silicon_data_source", "backend_version", "prefill_batch_size"]
    p = tmp_path / "silicon.csv"
    pd.DataFrame(rows).reindex(columns=cols).to_csv(p, index=False)
    return p


def test_split_is_deterministic_and_about_30_percent() -> None:
    ids = [f"id-{i}" for i in range(4000)]
    share = sum(map(in_fit_set, ids)) / len(ids)
    assert abs(share - FIT_PERCENT / 100) < 0.03
    assert [in_fit_set(i) for i in ids[:50]] == [in_fit_set(i) for i in ids[:50]]


def test_concurrency_from_source_or_batch() -> None:
    assert concurrency_of(DISAGG) == 8
    assert concurrency_of(AGG | {"attention_dp_size": 2}) == 16  # per-rank batch x DP
    d = DISAGG | {"silicon_data_source": "", "decode_batch_size": 6, "decode_num_workers": 3}
    assert concurrency_of(d) == 18


def test_model_names() -> None:
    assert sunsim_model("meta-llama/Llama-3.1-8B-Instruct") == "llama-3.1-8b"
    assert sunsim_model("nvidia/Llama-3.1-8B-Instruct-FP8") == "llama-3.1-8b"


@pytest.mark.parametrize(
    "row, reason",
    [
        (AGG | {"pp_size": 2}, "pipeline parallelism"),
        (AGG | {"attention_dp_size": 4}, "attention data parallelism"),
        (AGG | {"model_path": "deepseek-ai/DeepSeek-R1"}, "model not in sunsim"),
        (AGG | {"system": "l4"}, "GPU not in sunsim"),
        (AGG | {"gemm_quant_mode": "int2_wo"}, "precision not in sunsim"),
        (AGG | {"silicon_tpot_ms": float("nan")}, "missing measurement"),
        (DISAGG | {"prefill_num_workers": float("nan")}, "without worker counts"),
    ],
)
def test_classify_skips_with_a_reason(row: dict[str, object], reason: str) -> None:
    got = classify(_row(**row))
    assert isinstance(got, Skip) and reason in got.reason


def test_classify_follows_the_registries() -> None:
    agg = classify(_row(**AGG))
    if "colocated" in DESIGNS:
        assert isinstance(agg, Case) and agg.mode == "agg" and agg.max_num_seqs == 8
    else:
        assert isinstance(agg, Skip) and agg.reason == "co-located design not in this build"
    tp2 = classify(_row(**DISAGG | {"decode_tp_size": 2}))
    if tensor_parallel_supported():
        assert isinstance(tp2, Case) and tp2.decode_tensor_parallel_size == 2
    else:
        assert isinstance(tp2, Skip) and tp2.reason == "tensor parallelism not simulated"
    fit = classify(_row(**AGG), for_fit=True)  # the fit needs no design
    assert isinstance(fit, Case) and fit.precision == "bf16"


def test_row_scenario_disaggregated() -> None:
    case = classify(_row(**DISAGG | {"prefill_num_workers": 2, "decode_num_workers": 3}))
    assert isinstance(case, Case)
    s = row_scenario(case, Path("/p"), "none")
    assert s.modes == ("partitioned",) and s.closed_loop
    assert (s.max_concurrency, s.num_prompts, s.input_len, s.output_len) == (8, 80, 1024, 128)
    assert s.prefill_workers == (2,) and s.decode_workers == (3,)
    assert s.max_num_seqs == 8 and s.max_num_batched_tokens == 1024
    assert s.latency == "profile" and s.profile == "/p" and s.gpu == "h100"


def test_run_on_a_small_csv(tmp_path: Path) -> None:
    rows = [
        DISAGG | {"id": REPORTED[0]},
        AGG | {"id": REPORTED[1]},
        AGG | {"id": REPORTED[2], "model_path": "zhipuai/GLM-5"},
        DISAGG | {"id": FITTED[0]},
    ]
    res = validate_silicon(_write(tmp_path, rows), overhead=False).set_index("id")
    ok = res.loc[REPORTED[0]]
    assert ok["status"] == "ok" and ok["profile"].startswith("h100-sxm-aic-vllm")
    assert ok["num_rejected"] == 0 and ok["num_requests"] == 80
    assert ok["ttft_rel_error"] == pytest.approx(ok["sim_ttft_ms"] / 100.0 - 1)
    assert ok["tpot_rel_error"] == pytest.approx(ok["sim_tpot_ms"] / 10.0 - 1)
    assert 0 < ok["sim_tpot_ms"] < 100 and 0 < ok["sim_ttft_ms"] < 10_000
    assert res.loc[FITTED[0], "reason"] == FIT_SET  # fit rows never run, never reported
    assert res.loc[REPORTED[2], "status"] == "skipped"
    assert len(res) == 4


def test_process_pool_gives_the_same_results(tmp_path: Path) -> None:
    rows = [DISAGG | {"id": i, "isl": 256 * (k + 1)} for k, i in enumerate(REPORTED[:3])]
    csv = _write(tmp_path, rows)
    one = validate_silicon(csv, overhead=False)
    two = validate_silicon(csv, overhead=False, jobs=2)
    cols = ["id", "status", "sim_ttft_ms", "sim_tpot_ms"]
    pd.testing.assert_frame_equal(one[cols], two[cols])
    assert (validate_silicon(csv, overhead=False, max_rows=1)["status"] == "ok").sum() == 1


def test_cli_prints_tables_and_writes_every_row(tmp_path: Path) -> None:
    csv = _write(tmp_path, [DISAGG | {"id": REPORTED[0]}, AGG | {"id": FITTED[0]}])
    out = tmp_path / "v.csv"
    r = CliRunner().invoke(
        app, ["validate", "silicon", "--csv", str(csv), "--out", str(out), "--no-progress"]
    )
    assert r.exit_code == 0, r.output
    assert "error by GPU, backend and model" in r.output and "Llama-3.1-8B-Instruct" in r.output
    assert "rows not simulated, by reason" in r.output and "fit set" in r.output
    assert len(pd.read_csv(out)) == 2
    png = out.with_suffix(".png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"wrote {png}" in r.output
    png.unlink()
    r = CliRunner().invoke(
        app, ["validate", "silicon", "--csv", str(csv), "--out", str(out), "--no-progress",
              "--no-figure"],
    )  # fmt: skip
    assert r.exit_code == 0 and not png.exists()


def test_figure_names_its_step_times_and_needs_a_simulated_row() -> None:
    from sunsim.validate.silicon.figure import figure, steps_label

    def row(method: str, lat: float) -> dict[str, object]:
        return {"system": "h100_sxm", "backend": "vllm", "model_path": "m", "status": "ok",
                "method": method, "request_latency_ms": lat, "silicon_ttft_ms": 100.0,
                "sim_ttft_ms": 110.0, "silicon_tpot_ms": 10.0, "sim_tpot_ms": 9.0,
                "ttft_rel_error": 0.1, "tpot_rel_error": -0.1}  # fmt: skip

    vllm = "measured (aiconfigurator-core 0.12.0, vllm 0.24.0, h100_sxm, tp 2)"
    trt = "measured (aiconfigurator-core 0.12.0, trtllm 1.3.0rc20, h200_sxm) + decode x0.7 (fitted)"
    res = pd.DataFrame([row(vllm, 0.0), row(trt, 12.0), row("analytic (roofline)", 0.0)])
    label = steps_label(res)
    assert label.startswith("measured (aiconfigurator-core 0.12.0: trtllm 1.3.0rc20, vllm 0.24.0")
    assert "analytic (roofline)" in label and "+ decode scale, request latency fitted" in label
    assert steps_label(res.iloc[:1]) == (
        "measured (aiconfigurator-core 0.12.0: vllm 0.24.0 kernels)"
    )  # nothing fitted: nothing claimed
    fig = figure(res, "x.csv", label)
    assert "TTFT: |err| median 10.0%" in fig.axes[0].get_title()
    with pytest.raises(ValueError, match="no simulated row"):
        figure(res.assign(status="skipped"), "x.csv", label)


@pytest.mark.parametrize(
    "content, msg",
    [
        (None, "no such silicon CSV"),
        ("a,b\n1,2\n", "missing column(s)"),
        ("BAD_ISL", "row 2, column isl: expected a number"),
    ],
)
def test_cli_bad_csv_is_one_line(tmp_path: Path, content: str | None, msg: str) -> None:
    p = tmp_path / "bad.csv"
    if content == "BAD_ISL":
        _write(tmp_path, [DISAGG | {"id": "x", "isl": "many"}]).rename(p)
    elif content is not None:
        p.write_text(content)
    r = CliRunner().invoke(app, ["validate", "silicon", "--csv", str(p), "--no-progress"])
    assert r.exit_code == 2, r.output
    assert msg in r.output and "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) == 1


def test_cli_bad_jobs() -> None:
    r = CliRunner().invoke(app, ["validate", "silicon", "--jobs", "0"])
    assert r.exit_code == 2 and "--jobs" in r.output


def test_installed_csv_every_row_accounted(tmp_path: Path) -> None:
    from sunsim.validate.silicon.rows import default_csv

    try:
        csv = default_csv()
    except Exception:
        pytest.skip("aiconfigurator-core not installed")
    df = read_silicon(csv)
    res = validate_silicon(csv, max_rows=1)
    assert len(res) == len(df) and set(res["status"]) <= {"ok", "skipped", "error"}
    assert (res["reason"] == FIT_SET).sum() == sum(map(in_fit_set, df["id"]))
    assert dataclasses.is_dataclass(Case)


def test_skip_reason_is_the_most_basic_one() -> None:
    """A MoE model's disaggregated row without worker counts (DeepSeek's wide-EP rows) is
    counted as a model sunsim lacks, not as a missing worker count."""
    row = DISAGG | {"model_path": "deepseek-ai/DeepSeek-R1", "prefill_num_workers": float("nan")}
    got = classify(_row(**row))
    assert isinstance(got, Skip) and got.reason.startswith("model not in sunsim")
    got = classify(_row(**AGG | {"model_path": "deepseek-ai/DeepSeek-R1", "pp_size": 2}))
    assert isinstance(got, Skip) and got.reason.startswith("model not in sunsim")


def test_agg_rows_map_to_one_colocated_worker_at_the_rows_tp() -> None:
    case = classify(_row(**AGG | {"tp_size": 4, "batch_size": 32}))
    assert isinstance(case, Case)
    s = row_scenario(case, Path("/p"), "none")
    assert s.modes == ("colocated",) and s.colocated_workers == (1,)
    assert s.pool_tensor_parallel_size("decode") == 4 and s.max_concurrency == 32
    assert s.max_num_seqs == 32 and s.max_num_batched_tokens == 8192


def test_staggered_clients_start_spread_over_the_shortest_request() -> None:
    from sunsim.latency.base import ConstantLatency
    from sunsim.validate.silicon.mapping import first_arrivals

    case = classify(_row(**AGG | {"batch_size": 4}))
    assert isinstance(case, Case)
    lat = ConstantLatency(prefill_s=0.1, decode_s=0.01)
    starts = first_arrivals(case, lat, lat, 4)
    lo = lat.prefill_time([1024]) + 127 * 0.01
    assert starts == pytest.approx([0.0, lo / 4, lo / 2, 3 * lo / 4])


def test_client_start_changes_the_run_and_fit_set_runs_only_fit_rows(tmp_path: Path) -> None:
    rows = [AGG | {"id": REPORTED[0], "batch_size": 16}, AGG | {"id": FITTED[0]}]
    csv = _write(tmp_path, rows)
    tog = validate_silicon(csv, overhead=False, max_rows=1).set_index("id").loc[REPORTED[0]]
    stag = validate_silicon(csv, overhead=False, client_start="staggered").set_index("id")
    assert stag.loc[REPORTED[0], "status"] == "ok" and tog["status"] == "ok"
    # 16 prompts at once queue behind each other; out of step each prefill runs nearly alone
    assert stag.loc[REPORTED[0], "sim_ttft_ms"] < tog["sim_ttft_ms"]
    fit = validate_silicon(csv, overhead=False, fit_set=True).set_index("id")
    assert fit.loc[FITTED[0], "status"] == "ok" and fit.loc[REPORTED[0], "status"] == "skipped"
    r = CliRunner().invoke(app, ["validate", "silicon", "--csv", str(csv), "--client-start", "x"])
    assert r.exit_code == 2 and "--client-start x" in r.output


def test_closed_loop_first_arrivals_are_checked() -> None:
    from sunsim.engine.closed_loop import ClosedLoopWorkload, simulate_closed_loop
    from sunsim.engine.spec import ClusterSpec
    from sunsim.errors import ConfigError
    from sunsim.latency.base import ConstantLatency

    wl = ClosedLoopWorkload(max_concurrency=3, num_prompts=6, input_len=10, output_len=5)
    cl = ClusterSpec(
        design="partitioned", served_models=("model",), prefill_workers=(1,), decode_workers=(1,)
    )
    lat = ConstantLatency(prefill_s=0.01, decode_s=0.001)
    with pytest.raises(ConfigError, match="non-decreasing"):
        simulate_closed_loop(wl, cl, lat, lat, first_arrivals_s=[0.0, 0.2, 0.1])
    res = simulate_closed_loop(wl, cl, lat, lat, first_arrivals_s=[0.0, 0.5, 1.0])
    arr = res.records.sort_values("request_id")["arrived_at"].to_numpy()
    assert arr[:3].tolist() == [0.0, 0.5, 1.0] and (arr[3:] >= 1.0).all()


def test_client_delays_are_exponential_and_drift_clients_apart() -> None:
    import numpy as np

    from sunsim.engine.closed_loop import ClosedLoopWorkload, simulate_closed_loop
    from sunsim.engine.spec import ClusterSpec
    from sunsim.latency.base import ConstantLatency
    from sunsim.validate.silicon.mapping import client_delays

    assert client_delays(0.0) is None
    draw = client_delays(0.5)
    assert draw is not None
    xs = np.array([draw() for _ in range(4000)])
    assert (xs >= 0).all() and xs.mean() == pytest.approx(0.5, rel=0.08)
    wl = ClosedLoopWorkload(max_concurrency=4, num_prompts=40, input_len=10, output_len=5)
    cl = ClusterSpec(
        design="partitioned", served_models=("model",), prefill_workers=(1,), decode_workers=(1,)
    )
    lat = ConstantLatency(prefill_s=0.01, decode_s=0.001)
    res = simulate_closed_loop(wl, cl, lat, lat, client_delay_s=client_delays(0.2))
    rec = res.records.sort_values("request_id")
    arr = rec["arrived_at"].to_numpy()
    assert len(rec) == 40 and (rec["status"] == "finished").all()
    assert (np.diff(arr) >= 0).all() and arr[:4].tolist() == [0.0] * 4
    # every later request is sent a delay after some request's end: never before the first end
    first_end = rec["finished_at"].min()
    assert (arr[4:] > first_end).all() and len(np.unique(arr[4:])) == 36
    # no more requests in flight than clients at any send time
    ends = np.sort(rec["finished_at"].to_numpy())
    for i, t in enumerate(arr):
        assert i + 1 - np.searchsorted(ends, t, side="right") <= 4


def test_client_delay_fit_is_bundled_and_bad_values_are_one_line(tmp_path: Path) -> None:
    from sunsim.errors import ConfigError
    from sunsim.validate.silicon.client_fit import load_client_delay

    mean, note = load_client_delay()
    assert mean >= 0 and "fit-set rows" in note
    bad = tmp_path / "d.json"
    bad.write_text('{"client_delay_mean_s": -1, "fitted_on": "x"}')
    with pytest.raises(ConfigError, match="must be >= 0"):
        load_client_delay(bad)
    with pytest.raises(ConfigError, match="no usable client-delay fit"):
        load_client_delay(tmp_path / "missing.json")
    csv = _write(tmp_path, [AGG | {"id": REPORTED[0]}])
    r = CliRunner().invoke(app, ["validate", "silicon", "--csv", str(csv), "--client-delay", "x"])
    assert r.exit_code == 2 and "--client-delay x" in r.output


def test_client_delay_changes_a_lock_step_run(tmp_path: Path) -> None:
    csv = _write(tmp_path, [AGG | {"id": REPORTED[0], "batch_size": 16}])
    runs = [
        validate_silicon(csv, overhead=False, client_delay_mean_s=d).set_index("id")
        for d in (0.0, 0.5)
    ]
    assert all(r.loc[REPORTED[0], "status"] == "ok" for r in runs)
    assert runs[1].loc[REPORTED[0], "client_delay_mean_s"] == 0.5
    # 16 clients in step queue their prefills; drifting apart they queue less
    assert runs[1].loc[REPORTED[0], "sim_ttft_ms"] < runs[0].loc[REPORTED[0], "sim_ttft_ms"]


def test_client_delay_fit_runs_only_fit_rows_and_keeps_the_best(tmp_path: Path) -> None:
    from sunsim.validate.silicon.client_fit import fit, load_client_delay, main

    rows = [AGG | {"id": FITTED[0], "batch_size": 16}, AGG | {"id": REPORTED[0]}]
    csv = _write(tmp_path, rows)
    doc = fit(csv, (0.0, 0.5), jobs=1)
    assert set(doc["grid"]) == {"0", "0.5"} and doc["grid"]["0"]["rows"] == 1.0
    best = min((0.0, 0.5), key=lambda g: doc["grid"][f"{g:g}"]["ttft_median_abs"])
    assert doc["client_delay_mean_s"] == best and "1 fit-set rows" in doc["fitted_on"]
    out = tmp_path / "d.json"
    main(["--csv", str(csv), "--grid", "0.5", "--jobs", "1", "--out", str(out)])
    assert load_client_delay(out)[0] == 0.5


GAP = "source_file=/x/aic-auto-gap-analysis/data/h100_sxm/vllm/0.12.0/q.csv; silicon_concurrency=8"


def test_gap_analysis_rows_get_the_generators_token_budget() -> None:
    from sunsim.validate.silicon.mapping import token_budget
    from sunsim.validate.silicon.rows import token_budget_of

    gap = AGG | {"silicon_data_source": GAP, "isl": 4096, "batch_size": 8}
    assert token_budget_of(gap) == 8 + 4096 + 1500  # max_batch_size + ISL + 1500
    assert token_budget_of(gap | {"backend": "trtllm"}) is None  # the fit set said no
    assert token_budget_of(gap | {"backend": "sglang"}) is None
    assert token_budget_of(AGG) is None  # other collections: the backend's default
    assert token_budget_of(DISAGG | {"silicon_data_source": GAP}) is None
    case = classify(_row(**gap))
    assert isinstance(case, Case) and case.max_num_batched_tokens == 5604
    assert token_budget(case) == 5604
    assert row_scenario(case, Path("/p"), "none").max_num_batched_tokens == 5604
    other = classify(_row(**AGG | {"batch_size": 9000}))
    assert isinstance(other, Case) and token_budget(other) == 9000  # max(8192, max_num_seqs)


def test_decode_scaled_latency_scales_decode_work_only() -> None:
    from sunsim.latency.base import ConstantLatency
    from sunsim.latency.overhead import DecodeScaledLatency

    inner = ConstantLatency(prefill_per_token_s=1e-4, decode_s=0.01)
    lat = DecodeScaledLatency(inner, 0.5, "3 rows")
    assert lat.decode_step_time(4, 100) == pytest.approx(0.005)
    assert lat.prefill_time([100]) == pytest.approx(inner.prefill_time([100]))
    assert lat.decode_run(4, 100, 3) == pytest.approx([0.005, 0.010, 0.015])
    assert lat.decode_run(4, 100, 10, stop_s=0.012) == pytest.approx([0.005, 0.010, 0.015])
    mixed = inner.mixed_step_time(4, 400, [(100, 0)])
    assert lat.mixed_step_time(4, 400, [(100, 0)]) == pytest.approx(mixed - 0.5 * 0.01)
    assert lat.mixed_step_time(0, 0, [(100, 0)]) == pytest.approx(
        inner.mixed_step_time(0, 0, [(100, 0)])
    )
    assert "decode x0.5 (fitted)" in lat.method and "fitted on 3 rows" in lat.description
    with pytest.raises(ValueError, match="positive"):
        DecodeScaledLatency(inner, 0.0, "x")


def _fit_result() -> pd.DataFrame:
    rows = []
    for k in range(5):  # vllm h100: measured TPOT 1.2x the simulated, TTFT 30 ms above
        rows.append({"backend": "vllm", "system": "h100_sxm", "status": "ok",
                     "silicon_tpot_ms": 12.0 * (k + 1), "sim_tpot_ms": 10.0 * (k + 1),
                     "silicon_ttft_ms": 100.0 + 30 + k, "sim_ttft_ms": 100.0 + k})  # fmt: skip
    for _ in range(5):  # trtllm b200: simulated TTFT too long -> no negative latency
        rows.append({"backend": "trtllm", "system": "b200_sxm", "status": "ok",
                     "silicon_tpot_ms": 8.0, "sim_tpot_ms": 10.0,
                     "silicon_ttft_ms": 50.0, "sim_ttft_ms": 80.0})  # fmt: skip
    rows.append({"backend": "sglang", "system": "h100_sxm", "status": "ok", "silicon_tpot_ms": 1.0,
                 "sim_tpot_ms": 2.0, "silicon_ttft_ms": 1.0, "sim_ttft_ms": 1.0})  # fmt: skip
    rows.append({"backend": "vllm", "system": "h100_sxm", "status": "skipped"})
    return pd.DataFrame(rows)


def test_corrections_fit_on_a_hand_made_case() -> None:
    from sunsim.validate.silicon.correction_fit import fit_decode_scales, fit_request_latencies

    res = _fit_result()
    scales = fit_decode_scales(res)
    assert scales == {("vllm", "h100_sxm"): pytest.approx(1.2), ("trtllm", "b200_sxm"): 0.8}
    lat = fit_request_latencies(res)
    assert lat[("vllm", "h100_sxm")] == pytest.approx(0.030)
    assert lat[("trtllm", "b200_sxm")] == 0.0  # never below 0
    assert ("sglang", "h100_sxm") not in scales  # one row: fewer than MIN_ROWS


def test_corrections_are_bundled_labelled_and_bad_files_are_one_line(tmp_path: Path) -> None:
    from sunsim.errors import ConfigError
    from sunsim.validate.silicon.correction_fit import load_corrections

    fixes = load_corrections()
    assert fixes and all(c.decode_scale > 0 and c.request_latency_s >= 0 for c in fixes.values())
    assert all("fit-set rows" in c.fitted_on for c in fixes.values())
    bad = tmp_path / "c.json"
    bad.write_text(
        '{"corrections": [{"backend": "vllm", "system": "h100_sxm", '
        '"decode_scale": 0, "request_latency_s": 0, "num_rows": 1, "fitted_on": "x"}]}'
    )
    with pytest.raises(ConfigError, match="no usable silicon corrections.*refit"):
        load_corrections(bad)
    with pytest.raises(ConfigError, match="no usable silicon corrections"):
        load_corrections(tmp_path / "missing.json")


def test_corrections_change_the_run_and_are_labelled(tmp_path: Path) -> None:
    from sunsim.validate.silicon.correction_fit import Correction

    csv = _write(tmp_path, [AGG | {"id": REPORTED[0]}])

    def run(scale: float, latency_s: float) -> pd.Series:
        fix = {("vllm", "h100_sxm"): Correction("vllm", "h100_sxm", scale, latency_s, 9, "9 rows")}
        res = validate_silicon(csv, overhead=False, corrections=fix)
        return res.set_index("id").loc[REPORTED[0]]

    plain = validate_silicon(csv, overhead=False).set_index("id").loc[REPORTED[0]]
    scaled, fixed = run(2.0, 0.0), run(2.0, 0.05)
    assert scaled["sim_tpot_ms"] == pytest.approx(2 * plain["sim_tpot_ms"], rel=0.1)
    assert fixed["sim_ttft_ms"] > scaled["sim_ttft_ms"]  # 8 clients: waves reshuffle too
    one = _write(tmp_path, [AGG | {"id": REPORTED[0], "batch_size": 1}])
    alone = [  # one client: the engine's TTFT is the same, the client's 50 ms later
        validate_silicon(one, overhead=False, corrections=fix).set_index("id").loc[REPORTED[0]]
        for fix in ({}, {("vllm", "h100_sxm"): Correction("vllm", "h100_sxm", 1.0, 0.05, 9, "x")})
    ]
    assert alone[1]["sim_ttft_ms"] == pytest.approx(alone[0]["sim_ttft_ms"] + 50, rel=1e-6)
    assert fixed["decode_scale"] == 2.0 and fixed["request_latency_ms"] == pytest.approx(50)
    assert plain["decode_scale"] == 1.0 and plain["request_latency_ms"] == 0.0
    assert "decode x2 (fitted)" in fixed["method"] and "fitted" not in plain["method"]
    r = CliRunner().invoke(
        app, ["validate", "silicon", "--csv", str(csv), "--no-progress", "--out",
              str(tmp_path / "o.csv")],
    )  # fmt: skip
    assert r.exit_code == 0 and "corrections (fitted on the fit set, not measured)" in r.output


def test_ttft_falls_count_steps_to_the_next_concurrency_per_class_and_shape() -> None:
    from sunsim.validate.silicon.summary import error_table, ttft_falls

    def row(model: str, isl: int, conc: int, measured: float, sim: float) -> dict[str, object]:
        return {"system": "h100_sxm", "backend": "trtllm", "model_path": model, "status": "ok",
                "isl": isl, "osl": 128, "tp_size": 1, "concurrency": conc,
                "silicon_ttft_ms": measured, "sim_ttft_ms": sim, "ttft_rel_error": 0.0,
                "tpot_rel_error": 0.0}  # fmt: skip

    rows = [
        row("a", 1024, 8, 100.0, 100.0), row("a", 1024, 16, 90.0, 110.0),  # falls 10%
        row("a", 1024, 32, 200.0, 120.0), row("a", 1024, 64, 195.0, 100.0),  # 2.5%: no fall
        row("a", 2048, 64, 10.0, 10.0),  # another shape: no step to the 1024 rows
        row("b", 1024, 16, 50.0, 50.0),  # another model: its own class, no step
    ]  # fmt: skip
    res = pd.DataFrame(rows)
    assert ttft_falls(res, "silicon_ttft_ms") == (3, 1)
    assert ttft_falls(res, "sim_ttft_ms") == (3, 1)  # 120 -> 100 at 64
    et = error_table(res).set_index("model_path")
    assert et.loc["a", "ttft_steps"] == 3 and et.loc["a", "measured_ttft_falls"] == 1 / 3
    assert et.loc["b", "ttft_steps"] == 0 and pd.isna(et.loc["b", "measured_ttft_falls"])
    assert et.loc["", "ttft_steps"] == 3  # all: the classes' steps, never across classes
