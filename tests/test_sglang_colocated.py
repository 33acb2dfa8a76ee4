"""SGLang's prefill-first co-located scheduler (:mod:`sunsim.engine.sglang_colocated`): a
hand-checked timeline against vLLM's decode-first one, lock-step waves, and the option."""

from __future__ import annotations

import pandas as pd
import pytest

from sunsim.engine.cluster import simulate
from sunsim.engine.spec import ClusterSpec
from sunsim.errors import ConfigError
from sunsim.latency.base import ConstantLatency

H100_BYTES = 80 * 10**9


def colo(**kw: object) -> ClusterSpec:
    return ClusterSpec(
        "colocated", ("a",), (), (), colocated_workers=(1,), gpu_memory_utilization=1.0,
        reserve_bytes=0, **kw,  # type: ignore[arg-type]
    )  # fmt: skip


def frame(arrival: list[float], prompt: list[int], output: list[int]) -> pd.DataFrame:
    n = len(arrival)
    return pd.DataFrame(
        {"arrival_s": arrival, "model": ["a"] * n, "prompt_tokens": prompt,
         "output_tokens": output}
    )  # fmt: skip


def test_prefill_first_pauses_decodes_hand_checked() -> None:
    """Budget 16 tokens; a step with chunks costs 0.1 s, a decode step 0.01 s. t=0: A (4-token
    prompt, 5 out) and B (40-token prompt, 3 out). SGLang: step 1 prefills A's 4 and B's first
    12 tokens (A's first token at 0.1); steps 2 and 3 prefill B's next 16 and last 12 tokens
    alone while A waits (B's first token at 0.3); then both decode: B's tokens 2, 3 at 0.31,
    0.32 (done), A's 2..5 at 0.31..0.34. vLLM (decode-first) ends both at 0.32."""
    lat = ConstantLatency(prefill_s=0.1, decode_s=0.01, weight_bytes=H100_BYTES - 400)
    work = frame([0.0, 0.0], [4, 40], [5, 3])
    kw = {"max_num_batched_tokens": 16, "max_num_seqs": 4, "block_size": 4}
    r = simulate(work, colo(colocated_scheduler="sglang", **kw), lat, lat).records
    assert r["first_token_at"].tolist() == pytest.approx([0.1, 0.3])
    assert r["finished_at"].tolist() == pytest.approx([0.34, 0.32])
    assert r["tpot_s"].tolist() == pytest.approx([(0.34 - 0.1) / 4, 0.01])
    v = simulate(work, colo(**kw), lat, lat).records
    assert v["finished_at"].tolist() == pytest.approx([0.32, 0.32])


def test_an_arrival_pauses_the_running_decodes() -> None:
    """A decodes from 0.1 (one token per 0.01 s); B arrives at 0.125, during A's third
    decode step: at its end (0.13) B's prefill runs alone (0.1 s), then both decode."""
    lat = ConstantLatency(prefill_s=0.1, decode_s=0.01, weight_bytes=H100_BYTES - 400)
    cl = colo(colocated_scheduler="sglang", max_num_batched_tokens=16, max_num_seqs=4, block_size=4)
    r = simulate(frame([0.0, 0.125], [4, 4], [10, 2]), cl, lat, lat).records
    assert r["first_token_at"].tolist() == pytest.approx([0.1, 0.23])
    # A: tokens 2..4 by 0.13, paused to 0.23, tokens 5..10 at 0.24..0.29
    assert r["finished_at"].tolist() == pytest.approx([0.29, 0.24])


def test_unknown_scheduler_is_one_line() -> None:
    with pytest.raises(ConfigError, match="colocated_scheduler 'x': choose vllm, sglang or trtllm"):
        colo(colocated_scheduler="x")
