"""reid.losses against brute-force loops, closed forms and the spec's weights."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from reid import losses
from reid.errors import ReidError
from reid.losses import LOSSES, build_loss, id_loss, pairwise_distance, triplet_loss
from reid.spec import LossSpec


def dist(a, b, distance):
    if distance == "cosine":
        return 1 - float(a @ b) / (float(a.norm()) * float(b.norm()))
    return float((a - b).norm())


def brute_force(features, pids, margin, mining, distance):
    """Loops over anchors / triplets, exactly as the module docstring defines each rule."""
    n, pids = len(features), pids.tolist()
    pos = lambda a: [p for p in range(n) if p != a and pids[p] == pids[a]]  # noqa: E731
    neg = lambda a: [q for q in range(n) if pids[q] != pids[a]]  # noqa: E731
    d = lambda i, j: dist(features[i], features[j], distance)  # noqa: E731
    if mining == "all":
        values = [max(d(a, p) - d(a, q) + margin, 0.0) for a in range(n) for p in pos(a) for q in neg(a)]
        positive = [v for v in values if v > 0]
        return sum(positive) / len(positive) if positive else 0.0
    values = []
    for a in range(n):
        if pos(a) and neg(a):
            gap = max(d(a, p) for p in pos(a)) - min(d(a, q) for q in neg(a))
            values.append(math.log1p(math.exp(gap)) if mining == "soft" else max(gap + margin, 0.0))
    return sum(values) / len(values) if values else 0.0


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(1, 10),
    ids=st.integers(1, 4),
    mining=st.sampled_from(["hard", "all", "soft"]),
    distance=st.sampled_from(["euclidean", "cosine"]),
    margin=st.floats(0, 1),
)
def test_triplet_matches_brute_force(seed, n, ids, mining, distance, margin):
    g = torch.Generator().manual_seed(seed)
    features = torch.randn(n, 5, generator=g, dtype=torch.float64)
    pids = torch.randint(0, ids, (n,), generator=g)
    got = float(triplet_loss(features, pids, margin, mining, distance))
    assert got == pytest.approx(brute_force(features, pids, margin, mining, distance), abs=1e-6)


def test_row_blocks_do_not_change_the_loss(monkeypatch):
    g = torch.Generator().manual_seed(0)
    features, pids = torch.randn(12, 4, generator=g), torch.randint(0, 3, (12,), generator=g)
    whole = {m: triplet_loss(features, pids, 0.5, m) for m in ("hard", "all", "soft")}
    monkeypatch.setattr(losses, "_ROW_ENTRIES", 1)  # one anchor per block
    for m, value in whole.items():
        torch.testing.assert_close(triplet_loss(features, pids, 0.5, m), value)


@pytest.mark.parametrize("mining", ["hard", "all"])
def test_zero_when_identities_are_separated_by_more_than_the_margin(mining):
    features = torch.tensor([[0.0, 0.0], [0.1, 0.0], [5.0, 5.0], [5.0, 5.1], [-5.0, 5.0]], requires_grad=True)
    loss = triplet_loss(features, torch.tensor([0, 0, 1, 1, 2]), margin=0.3, mining=mining)
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(features.grad, torch.zeros_like(features))


def test_soft_margin_is_softplus_of_the_hardest_gap():
    features = torch.tensor([[0.0], [1.0], [3.0]])
    # anchor 0: p = 1 (d 1), n = 2 (d 3); anchor 1: p = 0 (d 1), n = 2 (d 2); anchor 2 has no positive
    want = (F.softplus(torch.tensor(1.0 - 3.0)) + F.softplus(torch.tensor(1.0 - 2.0))) / 2
    torch.testing.assert_close(triplet_loss(features, torch.tensor([0, 0, 1]), mining="soft"), want)


@pytest.mark.parametrize("mining", ["hard", "all", "soft"])
@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
def test_gradients_finite_with_singletons_and_duplicates(mining, distance):
    # identity 2 appears once (no positive); images 0 and 1 are identical (zero distance)
    features = torch.tensor([[1.0, 2.0], [1.0, 2.0], [0.5, 0.1], [3.0, -1.0]], requires_grad=True)
    loss = triplet_loss(features, torch.tensor([0, 0, 1, 2]), margin=0.3, mining=mining, distance=distance)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(features.grad).all()


@pytest.mark.parametrize("pids", [[0, 1, 2], [4, 4, 4]])
def test_no_valid_anchor_gives_zero_with_zero_gradient(pids):
    features = torch.randn(3, 4, requires_grad=True)
    loss = triplet_loss(features, torch.tensor(pids))
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(features.grad, torch.zeros_like(features))


def test_euclidean_distance_is_plain_l2():
    x, y = torch.randn(4, 6), torch.randn(5, 6)
    torch.testing.assert_close(pairwise_distance(x, y), torch.cdist(x, y), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.4])
def test_label_smoothing_equals_the_formula(eps):
    g = torch.Generator().manual_seed(1)
    logits, pids = torch.randn(6, 5, generator=g), torch.randint(0, 5, (6,), generator=g)
    target = (1 - eps) * F.one_hot(pids, 5) + eps / 5
    want = -(target * logits.log_softmax(1)).sum(1).mean()
    torch.testing.assert_close(id_loss(logits, pids, eps), want)


def test_build_loss_weights_and_parts():
    g = torch.Generator().manual_seed(2)
    outputs = {"features": torch.randn(8, 4, generator=g), "logits": torch.randn(8, 3, generator=g)}
    pids = torch.tensor([0, 0, 1, 1, 2, 2, 0, 1])
    spec = LossSpec(id_weight=0.5, triplet_weight=2.0, label_smoothing=0.1, margin=0.2, mining="all")
    total, parts = build_loss(spec)(outputs, pids)
    id_value = id_loss(outputs["logits"], pids, 0.1)
    tri_value = triplet_loss(outputs["features"], pids, 0.2, "all")
    assert all(v.ndim == 0 and not v.requires_grad for v in parts.values())  # detached tensors, read back when logged
    assert {k: float(v) for k, v in parts.items()} == pytest.approx({"id": float(id_value), "triplet": float(tri_value)})
    torch.testing.assert_close(total, 0.5 * id_value + 2.0 * tri_value)

    total, parts = build_loss(LossSpec(id_weight=1.0, triplet_weight=0.0))(outputs, pids)
    assert list(parts) == ["id"] and float(total) == pytest.approx(parts["id"])
    total, parts = build_loss(LossSpec(id_weight=0.0, triplet_weight=1.0))({"features": outputs["features"], "logits": None}, pids)
    assert list(parts) == ["triplet"] and float(total) == pytest.approx(parts["triplet"])


def test_build_loss_backpropagates_to_both_inputs():
    features, logits = torch.randn(6, 4, requires_grad=True), torch.randn(6, 3, requires_grad=True)
    total, _ = build_loss(LossSpec(triplet_weight=1.0))({"features": features, "logits": logits}, torch.tensor([0, 0, 1, 1, 2, 2]))
    total.backward()
    assert features.grad.abs().sum() > 0 and logits.grad.abs().sum() > 0


def test_registry_and_mistakes():
    assert LOSSES.names() == ["center", "id", "triplet"]
    with pytest.raises(ReidError, match="needs logits"):
        build_loss(LossSpec())({"features": torch.randn(2, 3), "logits": None}, torch.tensor([0, 1]))
    with pytest.raises(ReidError, match="unknown triplet mining"):
        triplet_loss(torch.randn(2, 3), torch.tensor([0, 1]), mining="semi")
    with pytest.raises(ReidError, match="unknown triplet distance"):
        triplet_loss(torch.randn(2, 3), torch.tensor([0, 1]), distance="l1")
    with pytest.raises(ReidError, match="identities"):
        triplet_loss(torch.randn(2, 3), torch.tensor([0, 1, 2]))


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), scale=st.floats(0.1, 10))
def test_triplet_is_scale_covariant_and_permutation_invariant(seed, scale):
    """Euclidean batch-hard with margin 0 scales linearly; reordering the batch changes nothing."""
    g = torch.Generator().manual_seed(seed)
    features, pids = torch.randn(10, 3, generator=g, dtype=torch.float64), torch.randint(0, 3, (10,), generator=g)
    base = triplet_loss(features, pids, margin=0.0)
    torch.testing.assert_close(triplet_loss(features * scale, pids, margin=0.0), base * scale)
    perm = torch.randperm(10, generator=g)
    torch.testing.assert_close(triplet_loss(features[perm], pids[perm], margin=0.0), base)


@pytest.mark.parametrize("mining", ["hard", "all", "soft"])
def test_triplet_reads_nothing_back_from_the_device(mining):
    """On the meta device every data-dependent step (boolean-mask indexing, ``int()`` of a count,
    ``nonzero``) fails: the loss, its gradient and the criterion's parts must all stay device tensors."""
    features = torch.randn(12, 4, device="meta", requires_grad=True)
    pids = torch.randint(0, 3, (12,), device="meta")
    loss = triplet_loss(features, pids, mining=mining)
    loss.backward()
    assert loss.device.type == "meta" and features.grad.shape == features.shape
    outputs = {"features": features, "logits": torch.randn(12, 3, device="meta")}
    total, parts = build_loss(LossSpec(triplet_weight=1.0, mining=mining))(outputs, pids)
    assert total.device.type == "meta" and all(v.device.type == "meta" for v in parts.values())


def test_gather_feeds_the_triplet_term_only():
    """The criterion mines over what ``gather`` returns (the global batch under torchrun); ID loss stays local."""
    g = torch.Generator().manual_seed(4)
    local = {"features": torch.randn(4, 3, generator=g), "logits": torch.randn(4, 5, generator=g)}
    others, other_pids = torch.randn(4, 3, generator=g), torch.tensor([2, 2, 3, 3])
    pids = torch.tensor([0, 0, 1, 1])

    def gather(features, p):
        return torch.cat([features, others]), torch.cat([p, other_pids])

    spec = LossSpec(triplet_weight=1.0)
    _, parts = build_loss(spec, gather=gather)(local, pids)
    assert float(parts["triplet"]) == pytest.approx(float(triplet_loss(torch.cat([local["features"], others]),
                                                                       torch.cat([pids, other_pids]))))
    assert float(parts["id"]) == pytest.approx(float(id_loss(local["logits"], pids)))
