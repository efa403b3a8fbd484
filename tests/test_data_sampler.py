"""PK and random batch samplers: batch structure, epoch coverage, rank sharding, determinism."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reid.data.sampler import PKSampler, RandomBatchSampler
from reid.errors import ReidError


@st.composite
def pk_cases(draw):
    p = draw(st.integers(2, 5))
    k = draw(st.integers(1, 4))
    world = draw(st.integers(1, 3))
    n_ids = draw(st.integers(p * world, p * world + 12))
    counts = draw(st.lists(st.integers(2, 9), min_size=n_ids, max_size=n_ids))
    pids = [pid * 10 for pid, c in enumerate(counts) for _ in range(c)]  # non-contiguous ids
    return p, k, world, pids, draw(st.integers(0, 3)), draw(st.integers(0, 5))


@settings(max_examples=60, deadline=None)
@given(pk_cases())
def test_pk_batches_structure_coverage_and_ranks(case):
    p, k, world, pids, seed, epoch = case
    samplers = [PKSampler(pids, p, k, seed=seed, rank=r, world_size=world) for r in range(world)]
    per_rank = []
    for s in samplers:
        s.set_epoch(epoch)
        batches = list(s)
        assert len(batches) == len(s) == len(samplers[0])  # same number of batches on every rank
        for b in batches:
            ids = Counter(pids[i] for i in b)
            assert len(b) == p * k and len(ids) == p and set(ids.values()) == {k}  # P distinct ids × K images
        per_rank.append(batches)
    seen = [{pids[i] for b in batches for i in b} for batches in per_rank]
    for r in range(world):  # ranks hold disjoint identities
        for q in range(r + 1, world):
            assert seen[r].isdisjoint(seen[q])
    assert set().union(*seen) == set(pids)  # every identity is seen each epoch
    s0 = samplers[0]
    n_ids = len(set(pids))
    assert len(s0) == s0.passes * -(-(-(-n_ids // world)) // p)
    for r, batches in enumerate(per_rank):  # each identity once per pass, plus at most P fill-ins per pass
        uses = Counter(pids[b[j * k]] for b in batches for j in range(p))
        assert s0.passes <= min(uses.values()) and max(uses.values()) <= 2 * s0.passes
        assert sum(uses.values()) - s0.passes * len(seen[r]) <= s0.passes * p


def test_pk_images_cycle_without_repeats_and_is_deterministic():
    pids = [pid for pid in range(8) for _ in range(8)]
    s = PKSampler(pids, p=4, k=4, seed=1)
    assert s.passes == 2 and len(s) == 4
    s.set_epoch(3)
    first = list(s)
    per_id = Counter(i for b in first for i in b)
    assert max(per_id.values()) == 1 and len(per_id) == 64  # 2 passes × 4 images = all 8 images once
    s.set_epoch(3)
    assert list(s) == first
    s.set_epoch(4)
    assert list(s) != first
    assert list(PKSampler(pids, p=4, k=4, seed=2)) != list(PKSampler(pids, p=4, k=4, seed=1))


def test_pk_short_identities_are_sampled_with_replacement_and_singletons_rejected():
    pids = [0, 0, 1, 1, 1, 1, 2, 2, 2, 2]
    s = PKSampler(pids, p=2, k=4)
    assert s.short_identities == 1
    for b in s:
        assert Counter(pids[i] for i in b) == Counter({pids[b[0]]: 4, pids[b[4]]: 4})
    with pytest.raises(ReidError, match=r"single image.*pid 3"):
        PKSampler(pids + [3], p=2, k=2)
    with pytest.raises(ReidError, match="at least P × world_size = 2 × 2 = 4"):
        PKSampler(pids, p=2, k=2, world_size=2)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 60), st.integers(1, 8), st.integers(1, 4), st.integers(0, 3))
def test_random_batches_shard_by_rank(n, batch_size, world, epoch):
    samplers = [RandomBatchSampler(n, batch_size, seed=0, rank=r, world_size=world) for r in range(world)]
    per_rank = []
    for s in samplers:
        s.set_epoch(epoch)
        batches = list(s)
        assert len(batches) == len(s) == len(samplers[0]) >= 1
        per_rank.append([i for b in batches for i in b])
    per_rank_n = -(-n // world)
    if per_rank_n >= batch_size:
        assert all(len(b) == batch_size for s in samplers for b in s)
    flat = [i for r in per_rank for i in r]
    assert set(flat) <= set(range(n))
    if per_rank_n % batch_size == 0 and n % world == 0:  # no padding, no drop: a permutation
        assert sorted(flat) == list(range(n))
