"""Serving designs are data: the registry's entries and what a cluster spec accepts of them."""

from __future__ import annotations

import dataclasses

import pytest

from sunsim.engine.designs import DESIGNS, PoolDesign, PoolScope, get_design
from sunsim.engine.spec import ClusterSpec
from sunsim.errors import ConfigError


@pytest.mark.parametrize(
    ("name", "decode_pools", "precision"),
    [("partitioned", 3, "bf16"), ("sun", 1, "bf16"), ("qsun", 1, "w4a16")],
)
def test_registry_entries_give_the_pools(name, decode_pools, precision):
    d = get_design(name)
    assert d.num_decode_pools(3) == decode_pools
    assert d.decode_pool_names(("a", "b", "c")) == (
        ["a", "b", "c"] if decode_pools == 3 else ["shared"]
    )
    cl = ClusterSpec(name, ("a", "b", "c"), (1, 1, 1), (1,) * decode_pools)
    assert cl.design is d and cl.decode_precision == precision


def test_unknown_design_and_wrong_pool_counts_are_one_line():
    with pytest.raises(ConfigError, match="unknown design 'aggregated'; choose one of partitioned"):
        get_design("aggregated")
    with pytest.raises(ConfigError, match="design partitioned needs 2 decode worker count"):
        ClusterSpec("partitioned", ("a", "b"), (1, 1), (2,))


@pytest.mark.parametrize(
    ("pool", "message"),
    [
        (PoolDesign(PoolScope.SHARED, tensor_parallel=3), "must be a power of two"),
        (PoolDesign(PoolScope.SHARED, gpu="b300"), "unknown GPU 'b300'"),
    ],
)
def test_design_pools_the_engine_cannot_simulate_are_refused(pool, message):
    design = dataclasses.replace(DESIGNS["sun"], decode=pool)
    with pytest.raises(ConfigError, match=message):
        ClusterSpec(design, ("a", "b"), (1, 1), (2,), gpu="h100")
    # a design that pins its decode pools' GPU runs them there, and refuses another
    pinned = dataclasses.replace(DESIGNS["sun"], decode=PoolDesign(PoolScope.SHARED, gpu="h200"))
    assert ClusterSpec(pinned, ("a", "b"), (1, 1), (2,), gpu="h100").decode_gpu_name == "h200"
    with pytest.raises(ConfigError, match="runs its decode pools on h200; set decode_gpu"):
        ClusterSpec(pinned, ("a", "b"), (1, 1), (2,), gpu="h100", decode_gpu="a100")
    same = dataclasses.replace(DESIGNS["sun"], decode=PoolDesign(PoolScope.SHARED, gpu="H100"))
    assert ClusterSpec(same, ("a", "b"), (1, 1), (2,), gpu="h100").design is same
