"""Heterogeneous pools: each pool its own GPU type (``prefill_gpu`` / ``decode_gpu``).

KV capacity from the decode pool's GPU, step times resolved per pool GPU, cost by GPU type,
the tables naming the types, and bad input as one line with exit code 2.
"""

from __future__ import annotations

import dataclasses

import pytest
from typer.testing import CliRunner

from sunsim.cli import app
from sunsim.cli.result_tables import replay_frame
from sunsim.config import Scenario
from sunsim.engine.cluster import kv_capacity_blocks
from sunsim.engine.spec import ClusterSpec
from sunsim.errors import ConfigError
from sunsim.latency.base import ConstantLatency
from sunsim.metrics import RunSummary
from sunsim.metrics.cost import design_costs
from sunsim.replay import resolve_latency, run_replay

H200_BYTES = 141 * 10**9


def sun(**kw) -> ClusterSpec:
    kw.setdefault("gpu_memory_utilization", 1.0)
    kw.setdefault("reserve_bytes", 0)
    return ClusterSpec("sun", ("a", "b"), (1, 2), (3,), block_size=4, **kw)


def test_kv_capacity_comes_from_the_decode_pools_gpu():
    """Weights 141 GB - 4000 bytes, 1 KV byte a token, 4-token blocks: 1000 blocks on an
    H200 decode pool; on the H100 cluster GPU (80 GB) the weights do not fit at all."""
    lat = ConstantLatency(weight_bytes=H200_BYTES - 4000, kv_bytes_per_token=1)
    cl = sun(gpu="h100", prefill_gpu="h100", decode_gpu="h200")
    assert kv_capacity_blocks(cl, lat) == 1000
    with pytest.raises(ConfigError, match="leave no KV cache on H100"):
        kv_capacity_blocks(sun(gpu="h100"), lat)


def test_pool_gpus_resolve_and_count_by_type():
    cl = sun(gpu="h100", decode_gpu="H200-SXM")  # an alias, normalised
    assert (cl.prefill_gpu_name, cl.decode_gpu_name) == ("h100", "h200")
    assert cl.gpus_by_type == {"h100": 3, "h200": 3}
    same = sun(gpu="a100")
    assert same.gpus_by_type == {"a100": 6}
    co = ClusterSpec("colocated", ("a",), (), (), colocated_workers=(2,), decode_gpu="l40s")
    assert co.gpus_by_type == {"l40s": 2}  # co-located workers run on the decode GPU


def test_unknown_pool_gpu_is_refused():
    with pytest.raises(ConfigError, match="unknown GPU 'b300'"):
        sun(decode_gpu="b300")
    with pytest.raises(ConfigError, match="unknown GPU 'x1'"):
        sun(prefill_gpu="x1")


def test_latency_is_resolved_on_each_pools_gpu():
    s = Scenario(latency="roofline", gpu="h100", prefill_gpu="h100", decode_gpu="l40s")
    pl, _ = resolve_latency(s, "bf16", "prefill")
    dl, _ = resolve_latency(s, "bf16", "decode")
    assert "H100" in pl.description and "L40S" in dl.description
    assert s.cluster("sun").decode_gpu_name == "l40s"


def test_cost_by_gpu_type_hand_checked():
    """Three models, one prefill worker each on H100 ($2/h), three decode workers on H200
    ($3/h): sun costs 3 x 2 + 3 x 3 = $15/h; colocated (2 workers per model, on the decode
    GPU) 6 x 3 = $18/h."""
    s = Scenario(
        modes=("partitioned", "sun", "colocated"),
        served_models=("a", "b", "c"),
        latency="roofline",
        max_requests=60,
        gpu="h100",
        prefill_gpu="h100",
        decode_gpu="h200",
        gpu_hour_usd={"h100": 2.0, "h200": 3.0},
    )
    rr = run_replay(s)
    costs = design_costs(rr.summaries, s.gpu, s.gpu_prices)
    assert costs["sun"].gpus_by_type == {"h100": 3, "h200": 3}
    assert costs["sun"].usd_per_hour == pytest.approx(15.0)
    assert costs["sun"].gpu_hour_usd == {"h100": 2.0, "h200": 3.0}
    assert costs["colocated"].gpus_by_type == {"h200": 6}
    assert costs["colocated"].usd_per_hour == pytest.approx(18.0)
    assert costs["partitioned"].usd_per_hour == pytest.approx(15.0)
    tput = rr.summaries["sun"].throughput.output_tokens_per_s
    assert costs["sun"].usd_per_million_output_tokens == pytest.approx(15.0 / (tput * 3600) * 1e6)
    # the summary keeps the pools' GPUs through summary.json, and the tables name them
    summ = rr.summaries["sun"]
    back = RunSummary.from_dict(summ.to_dict())
    assert (back.gpus.prefill_gpu, back.gpus.decode_gpu) == ("h100", "h200")
    df = replay_frame(rr.summaries, costs)
    assert df.loc["GPUs prefill+decode", "sun"] == "3 H100+3 H200=6"
    assert df.loc["GPUs by type", "sun"] == "3 H100 + 3 H200"
    assert df.loc["GPUs prefill+decode", "colocated"] == "6 co-located H200"


def test_single_gpu_summaries_keep_their_keys():
    """Without a pool GPU the summary dict has no new keys (older summaries unchanged)."""
    s = Scenario(modes=("sun",), latency="roofline", max_requests=20)
    d = run_replay(s).summaries["sun"].to_dict()
    assert "prefill_gpu" not in d["gpus"] and "decode_gpu" not in d["gpus"]
    g = RunSummary.from_dict(d).gpus
    assert dataclasses.replace(g).by_type("h100") == {"h100": g.total}


runner = CliRunner()


@pytest.mark.parametrize("option", ["--decode-gpu", "--prefill-gpu"])
def test_cli_unknown_pool_gpu_one_line_exit_2(option, tmp_path):
    r = runner.invoke(
        app, ["replay", "--no-progress", "--out", str(tmp_path / "o"), option, "b300"]
    )
    out = r.output.strip()
    assert r.exit_code == 2, out
    assert len(out.splitlines()) == 1 and "Traceback" not in out
    assert "b300" in out and option in out
