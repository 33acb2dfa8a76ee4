"""The shared decode policy (:mod:`sunsim.engine.scheduler`) and the paged KV cache's block
accounting (:mod:`sunsim.engine.kv_cache`), checked against brute force."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sunsim.engine.kv_cache import PagedKvCache
from sunsim.engine.scheduler import DecodePolicy, RejectReason, blocks_for, reject_reason


@pytest.mark.parametrize(
    ("num_tokens", "block_size", "want"),
    [(0, 16, 0), (1, 16, 1), (16, 16, 1), (17, 16, 2), (32, 16, 2), (33, 16, 3), (5, 1, 5)],
)
def test_blocks_for(num_tokens, block_size, want):
    assert blocks_for(num_tokens, block_size) == want


@pytest.mark.parametrize(
    ("prompt", "output", "max_len", "cap", "want"),
    [
        (100, 28, 128, 8, None),  # exactly max_model_len; 127 tokens stored -> 8 blocks
        (100, 29, 128, 100, RejectReason.EXCEEDS_MAX_MODEL_LEN),
        (100, 29, 128, 1, RejectReason.EXCEEDS_MAX_MODEL_LEN),  # length is checked first
        (100, 30, 1000, 8, RejectReason.EXCEEDS_KV_CAPACITY),  # 129 stored -> 9 blocks
        (100, 29, 1000, 8, None),  # 128 stored (the last token never is) -> 8 blocks
        (1, 1, 2, 1, None),
    ],
)
def test_reject_reason(prompt, output, max_len, cap, want):
    assert reject_reason(prompt, output, max_len, cap, 16) is want


def test_reject_reason_values_are_the_record_strings():
    assert [r.value for r in RejectReason] == ["exceeds_max_model_len", "exceeds_kv_capacity"]
    assert RejectReason.EXCEEDS_KV_CAPACITY == "exceeds_kv_capacity"


POLICY = DecodePolicy(max_num_seqs=4, capacity_blocks=10, block_size=16)


@pytest.mark.parametrize(("blocks", "want"), [(9, False), (10, False), (11, True)])
def test_must_preempt(blocks, want):
    assert POLICY.must_preempt(blocks) is want


@pytest.mark.parametrize(
    ("prompt", "generated", "want"), [(16, 0, 1), (16, 1, 2), (1, 1, 1), (100, 12, 7)]
)
def test_admission_blocks(prompt, generated, want):
    assert POLICY.admission_blocks(prompt, generated) == want


@pytest.mark.parametrize(
    ("running", "used", "needed", "want"),
    [
        (0, 0, 10, True),
        (3, 5, 5, True),
        (3, 5, 6, False),  # no blocks
        (4, 0, 1, False),  # max_num_seqs reached
        (0, 0, 11, False),
    ],
)
def test_can_admit(running, used, needed, want):
    assert POLICY.can_admit(running, used, needed) is want


def test_policy_is_frozen():
    with pytest.raises(AttributeError):
        POLICY.max_num_seqs = 5  # type: ignore[misc]


@settings(max_examples=200, deadline=None)
@given(
    block_size=st.integers(1, 32),
    contexts=st.lists(st.integers(1, 500), max_size=12),
    base=st.integers(0, 50),
    steps=st.integers(1, 40),
    remove=st.integers(0, 12),
)
def test_kv_cache_blocks_match_brute_force(block_size, contexts, base, steps, remove):
    kv = PagedKvCache(capacity_blocks=10**6, block_size=block_size)
    offsets = [c - (base + 1) for c in contexts]  # admitted before iteration base + 1
    for a in offsets:
        kv.add(a)
    for a in offsets[:remove]:
        kv.remove(a)
    live = offsets[remove:]
    assert kv.num_seqs == len(live) and kv.sum_offset == sum(live)
    for k in range(base + 1, base + 1 + steps):
        exact = sum(blocks_for(a + k, block_size) for a in live)
        assert kv.blocks_at(k) == exact
        assert kv.context_tokens_at(k) == sum(a + k for a in live)
        assert exact <= kv.blocks_upper_bound(k) < exact + 1 + len(live)


@settings(max_examples=200, deadline=None)
@given(
    block_size=st.integers(1, 32),
    contexts=st.lists(st.integers(1, 200), min_size=1, max_size=8),
    capacity=st.integers(1, 200),
    base=st.integers(0, 20),
)
def test_last_safe_iteration_is_safe_and_tight(block_size, contexts, capacity, base):
    kv = PagedKvCache(capacity_blocks=capacity, block_size=block_size)
    for c in contexts:
        kv.add(c - (base + 1))
    i = kv.last_safe_iteration(base)
    # every iteration up to base + i surely fits by the upper bound; base + i + 1 may not
    if i >= 1:
        assert kv.blocks_upper_bound(base + i) <= capacity
    assert kv.blocks_upper_bound(base + i + 1) > capacity
    assert kv.capacity_tokens == capacity * block_size
