"""reid.metrics against an obviously-correct per-query reference, hand-worked values and edge cases."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from reid.errors import ReidError
from reid import metrics
from reid.metrics import compute_distance, evaluate, evaluate_features


def reference(distmat, q_pids, g_pids, q_camids, g_camids, max_rank, protocol, same_set):
    """Plain loops: stable order by (distance, gallery index), protocol removals, torchreid formulas."""
    nq, ng = len(distmat), len(distmat[0])
    max_rank = min(max_rank, ng)
    cmc_sum, aps, inps, valid, firsts = [0.0] * max_rank, [], [], 0, []
    for i in range(nq):
        order = sorted(range(ng), key=lambda j: (distmat[i][j], j))
        kept = []
        for j in order:
            if protocol == "market" and g_pids[j] == q_pids[i] and g_camids[j] == q_camids[i]:
                continue
            if same_set and j == i:
                continue
            kept.append(g_pids[j] == q_pids[i])
        if not any(kept):
            firsts.append(-1)
            continue
        valid += 1
        first = kept.index(True)
        firsts.append(first)
        for k in range(max_rank):
            cmc_sum[k] += 1.0 if first <= k else 0.0
        hits, precisions, last = 0, [], 0
        for pos, is_match in enumerate(kept):
            if is_match:
                hits += 1
                precisions.append(hits / (pos + 1))
                last = pos
        aps.append(sum(precisions) / hits)
        inps.append(hits / (last + 1))
    return {"cmc": [c / valid for c in cmc_sum], "mAP": sum(aps) / valid, "mINP": sum(inps) / valid,
            "num_valid": valid, "num_skipped": nq - valid, "first_match": firsts}


def assert_same(got, want):
    assert got["num_valid"] == want["num_valid"] and got["num_skipped"] == want["num_skipped"]
    assert list(got["first_match"]) == list(want["first_match"])
    np.testing.assert_allclose(got["cmc"], want["cmc"], rtol=0, atol=1e-12)
    assert got["mAP"] == pytest.approx(want["mAP"], abs=1e-12)
    assert got["mINP"] == pytest.approx(want["mINP"], abs=1e-12)


@st.composite
def problems(draw):
    """Small integer-distance problems: many ties, few identities/cameras (so skipped queries occur)."""
    same_set = draw(st.booleans())
    nq = draw(st.integers(1, 7))
    ng = nq if same_set else draw(st.integers(1, 12))
    ids, cams = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    g_pids = draw(st.lists(st.integers(0, ids - 1), min_size=ng, max_size=ng))
    g_cams = draw(st.lists(st.integers(0, cams - 1), min_size=ng, max_size=ng))
    q_pids = g_pids if same_set else draw(st.lists(st.integers(0, ids), min_size=nq, max_size=nq))
    q_cams = g_cams if same_set else draw(st.lists(st.integers(0, cams - 1), min_size=nq, max_size=nq))
    dist = draw(st.lists(st.lists(st.integers(0, 4), min_size=ng, max_size=ng), min_size=nq, max_size=nq))
    protocol = draw(st.sampled_from(["market", "all"]))
    max_rank = draw(st.integers(1, 15))
    return dist, q_pids, g_pids, q_cams, g_cams, max_rank, protocol, same_set


@settings(max_examples=300, deadline=None)
@given(problems(), st.integers(1, 4))
def test_matches_reference_with_ties_skips_and_small_galleries(problem, chunk):
    dist, q_pids, g_pids, q_cams, g_cams, max_rank, protocol, same_set = problem
    want = None
    try:
        want = reference(*problem)
    except ZeroDivisionError:  # no valid query at all
        pass
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if want is None:
            with pytest.raises(ReidError, match="no query has a true match"):
                evaluate(np.array(dist), q_pids, g_pids, q_cams, g_cams, max_rank, protocol, same_set, chunk)
            return
        got = evaluate(np.array(dist, dtype=np.float32), q_pids, g_pids, q_cams, g_cams, max_rank, protocol,
                       same_set, chunk_size=chunk)
    assert len(got["cmc"]) == min(max_rank, len(g_pids))
    assert_same(got, want)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_matches_reference_on_float_distances(seed):
    g = torch.Generator().manual_seed(seed)
    qf, gf = torch.randn(9, 4, generator=g), torch.randn(30, 4, generator=g)
    qp, gp = torch.randint(0, 5, (9,), generator=g), torch.randint(0, 5, (30,), generator=g)
    qc, gc = torch.randint(0, 3, (9,), generator=g), torch.randint(0, 3, (30,), generator=g)
    d = compute_distance(qf, gf)
    got = evaluate(d, qp, gp, qc, gc, max_rank=10)
    assert_same(got, reference(d.tolist(), qp.tolist(), gp.tolist(), qc.tolist(), gc.tolist(), 10, "market", False))


@pytest.mark.parametrize("tie_passes", [0, 64])
def test_ties_negatives_and_signed_zeros_match_reference(monkeypatch, tie_passes):
    """Both tie strategies (count in a pass / re-rank with unique keys) give the stable order."""
    monkeypatch.setattr(metrics, "_TIE_PASSES", tie_passes)
    rng = np.random.default_rng(tie_passes)
    for _ in range(30):
        nq, ng = rng.integers(1, 8), rng.integers(1, 40)
        d = rng.choice(np.array([-1.5, -0.0, 0.0, 0.5, 2.0], dtype=np.float32), size=(nq, ng))
        q_pids, g_pids = rng.integers(0, 3, nq).tolist(), rng.integers(0, 3, ng).tolist()
        q_cams, g_cams = rng.integers(0, 2, nq).tolist(), rng.integers(0, 2, ng).tolist()
        args = (q_pids, g_pids, q_cams, g_cams, 10, "market", False)
        try:
            want = reference(d.tolist(), *args)
        except ZeroDivisionError:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert_same(evaluate(d, *args, chunk_size=3), want)


def test_hand_worked_example():
    # query 0 (pid 1, cam 0): gallery by distance: g1 (pid 2), g0 (pid 1, cam 0: removed), g2 (pid 1), g3 (pid 1)
    #   kept ranking: g1 ✗, g2 ✓, g3 ✓ → first match at rank 2; AP = (1/2 + 2/3) / 2 = 7/12; INP = 2/3
    # query 1 (pid 2, cam 1): g1 (pid 2, cam 1) is its only match and is removed → skipped
    # query 2 (pid 3): no gallery entry → skipped
    d = [[0.2, 0.1, 0.3, 0.4], [0.5, 0.1, 0.2, 0.3], [0.1, 0.2, 0.3, 0.4]]
    r = evaluate(d, [1, 2, 3], [1, 2, 1, 1], [0, 1, 0], [0, 1, 1, 1], max_rank=3)
    assert r["cmc"].tolist() == [0.0, 1.0, 1.0]
    assert r["mAP"] == pytest.approx(7 / 12) and r["mINP"] == pytest.approx(2 / 3)
    assert (r["num_valid"], r["num_skipped"]) == (1, 2)
    # protocol "all" keeps g0 for query 0: g1 ✗, g0 ✓, g2 ✓, g3 ✓ → AP = (1/2 + 2/3 + 3/4) / 3, INP = 3/4;
    # query 1 now keeps g1, its first entry → AP = INP = 1
    r = evaluate(d, [1, 2, 3], [1, 2, 1, 1], max_rank=3, protocol="all")
    assert r["mAP"] == pytest.approx(((1 / 2 + 2 / 3 + 3 / 4) / 3 + 1) / 2)
    assert r["mINP"] == pytest.approx((3 / 4 + 1) / 2)
    assert r["cmc"].tolist() == [0.5, 1.0, 1.0] and (r["num_valid"], r["num_skipped"]) == (2, 1)


def test_ties_are_broken_by_gallery_index():
    # all distances equal: ranking is the gallery order, so the match at index 2 has rank 3
    r = evaluate(np.zeros((1, 4)), [7], [1, 2, 7, 3], max_rank=4, protocol="all")
    assert r["cmc"].tolist() == [0.0, 0.0, 1.0, 1.0] and r["mAP"] == pytest.approx(1 / 3)


def test_same_set_removes_own_entry():
    d = torch.tensor([[0.0, 0.5, 0.1], [0.5, 0.0, 0.2], [0.1, 0.2, 0.0]])
    r = evaluate(d, [1, 1, 2], [1, 1, 2], max_rank=2, protocol="all", same_set=True)
    # query 0: g2 (✗), g1 (✓) → rank 2; query 1: g2 ✗, g0 ✓; query 2: only itself → skipped
    assert r["cmc"].tolist() == [0.0, 1.0] and (r["num_valid"], r["num_skipped"]) == (2, 1)


def test_small_gallery_caps_max_rank_with_warning():
    with pytest.warns(UserWarning, match="max_rank lowered"):
        r = evaluate([[0.3, 0.1]], [1], [1, 2], [0], [1, 1], max_rank=50)
    assert r["cmc"].tolist() == [0.0, 1.0]


def test_chunk_size_and_input_types_do_not_change_results():
    g = torch.Generator().manual_seed(1)
    d = torch.rand(23, 40, generator=g)
    qp, gp = torch.randint(0, 6, (23,), generator=g), torch.randint(0, 6, (40,), generator=g)
    qc, gc = torch.randint(0, 3, (23,), generator=g), torch.randint(0, 3, (40,), generator=g)
    base = evaluate(d, qp, gp, qc, gc, max_rank=20)
    for chunk in (1, 3, 7, 100):
        assert_same(evaluate(d, qp, gp, qc, gc, max_rank=20, chunk_size=chunk), base)
    assert_same(evaluate(d.numpy(), qp.numpy(), gp.numpy(), qc.numpy(), gc.numpy(), max_rank=20), base)
    assert_same(evaluate(d.double(), qp.tolist(), gp.tolist(), qc.tolist(), gc.tolist(), max_rank=20), base)


@pytest.mark.parametrize("metric,normalize", [("euclidean", False), ("euclidean", True), ("cosine", False)])
def test_evaluate_features_equals_two_steps(metric, normalize):
    g = torch.Generator().manual_seed(2)
    qf, gf = torch.randn(37, 8, generator=g), torch.randn(90, 8, generator=g)
    qp, gp = torch.randint(0, 9, (37,), generator=g), torch.randint(0, 9, (90,), generator=g)
    qc, gc = torch.randint(0, 3, (37,), generator=g), torch.randint(0, 3, (90,), generator=g)
    two = evaluate(compute_distance(qf, gf, metric, normalize), qp, gp, qc, gc, max_rank=30)
    # memory_mb=0 → one query row per block
    assert_same(evaluate_features(qf, gf, qp, gp, qc, gc, metric, normalize, max_rank=30, memory_mb=0), two)


def test_compute_distance_matches_cdist_and_cosine():
    g = torch.Generator().manual_seed(3)
    qf, gf = torch.randn(5, 16, generator=g), torch.randn(70, 16, generator=g)
    torch.testing.assert_close(compute_distance(qf, gf, chunk_size=2), torch.cdist(qf, gf) ** 2, atol=1e-4, rtol=1e-5)
    cos = torch.nn.functional.cosine_similarity(qf[:, None], gf[None], dim=2)
    torch.testing.assert_close(compute_distance(qf, gf, "cosine"), 1 - cos, atol=1e-5, rtol=1e-5)
    qn, gn = torch.nn.functional.normalize(qf, dim=1), torch.nn.functional.normalize(gf, dim=1)
    torch.testing.assert_close(compute_distance(qf, gf, normalize=True), torch.cdist(qn, gn) ** 2, atol=1e-5, rtol=1e-5)
    assert compute_distance(qf.double(), gf).dtype == torch.float32
    assert (compute_distance(qf, qf).diagonal() >= 0).all()


def test_user_mistakes_raise_reid_error():
    d = np.zeros((2, 3))
    with pytest.raises(ReidError, match="camera ids"):
        evaluate(d, [1, 2], [1, 2, 3])
    with pytest.raises(ReidError, match="q_pids has 3 entries"):
        evaluate(d, [1, 2, 3], [1, 2, 3], protocol="all")
    with pytest.raises(ReidError, match="protocol"):
        evaluate(d, [1, 2], [1, 2, 3], protocol="cuhk")
    with pytest.raises(ReidError, match="same_set"):
        evaluate(d, [1, 2], [1, 2, 3], protocol="all", same_set=True)
    with pytest.raises(ReidError, match="NaN"):
        evaluate(np.array([[np.nan, 1.0, 2.0]]), [1], [1, 2, 3], max_rank=3, protocol="all")
    with pytest.raises(ReidError, match="dimension"):
        compute_distance(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ReidError, match="unknown distance"):
        compute_distance(torch.zeros(2, 3), torch.zeros(2, 3), metric="manhattan")
