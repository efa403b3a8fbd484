"""k-reciprocal re-ranking: equal to a straightforward port of the reference loop, and it helps where it should."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from reid.errors import ReidError
from reid.metrics import compute_distance, evaluate
from reid.rerank import rerank_distances, rerank_features
from reference_rerank import reference, reference_one_set


def _symmetric(rng, n, levels):
    """Random symmetric distances with a zero diagonal; few ``levels`` make many ties."""
    a = rng.integers(1, levels + 1, size=(n, n)).astype(np.float32) if levels else rng.random((n, n), dtype=np.float32)
    a = np.triu(a, 1)
    return a + a.T


@settings(max_examples=40, deadline=None)
@given(
    nq=st.integers(1, 6), ng=st.integers(1, 14), k1=st.integers(1, 25), k2=st.integers(1, 8),
    lam=st.sampled_from([0.0, 0.3, 1.0]), levels=st.sampled_from([0, 2, 4]), symmetric=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_equals_reference(nq, ng, k1, k2, lam, levels, symmetric, seed):
    rng = np.random.default_rng(seed)
    n = nq + ng
    if symmetric:
        full = _symmetric(rng, n, levels)
    else:  # the reference reads the matrix transposed: any square matrix is a valid input
        full = (rng.integers(1, levels + 1, size=(n, n)) if levels else rng.random((n, n)) + 0.01).astype(np.float32)
    q_q, q_g, g_g = full[:nq, :nq], full[:nq, nq:], full[nq:, nq:]
    expected = reference(q_g, q_q, g_g, k1, k2, lam)
    got = rerank_distances(q_g, q_q, g_g, k1=k1, k2=k2, lambda_value=lam)
    assert got.dtype == np.float32 and got.shape == (nq, ng)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_equals_reference_on_clustered_features_with_defaults():
    g = torch.Generator().manual_seed(1)
    centres = torch.randn(12, 16, generator=g) * 3
    feats = centres[torch.randint(0, 12, (90,), generator=g)] + torch.randn(90, 16, generator=g)
    qf, gf = feats[:20], feats[20:]
    d = lambda a, b: compute_distance(a, b).sqrt().numpy()  # noqa: E731
    expected = reference(d(qf, gf), d(qf, qf), d(gf, gf), 20, 6, 0.3)
    np.testing.assert_allclose(rerank_distances(d(qf, gf), d(qf, qf), d(gf, gf)), expected, rtol=1e-5, atol=1e-6)
    # the features entry is the same computation without the N × N matrices, in small blocks
    got = rerank_features(qf, gf, memory_mb=1)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-4, atol=1e-5)


@settings(max_examples=10, deadline=None)
@given(metric=st.sampled_from(["euclidean", "cosine"]), normalize=st.booleans(), seed=st.integers(0, 1000))
def test_features_match_distances(metric, normalize, seed):
    g = torch.Generator().manual_seed(seed)
    qf, gf = torch.randn(7, 12, generator=g), torch.randn(30, 12, generator=g)
    if metric == "euclidean":
        d = lambda a, b: compute_distance(a, b, normalize=normalize).sqrt()  # noqa: E731
    else:
        d = lambda a, b: compute_distance(a, b, "cosine")  # noqa: E731
    expected = rerank_distances(d(qf, gf), d(qf, qf), d(gf, gf), k1=6, k2=3)
    got = rerank_features(qf, gf, k1=6, k2=3, metric=metric, normalize=normalize)
    assert isinstance(got, torch.Tensor) and got.dtype == torch.float32
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 1000))
def test_features_match_distances_with_ties(seed):
    # features c · e_k (c in 1..3, e_k an axis): squared norms, dot products and distances are exact
    # integers on both paths, so many distances tie exactly, and ties are ordered by index on both
    g = torch.Generator().manual_seed(seed)
    n, dim = 36, 6
    feats = torch.zeros(n, dim)
    feats[torch.arange(n), torch.randint(0, dim, (n,), generator=g)] = torch.randint(1, 4, (n,), generator=g).float()
    qf, gf = feats[:6], torch.cat([feats[6:], feats[:2]])
    d = lambda a, b: compute_distance(a, b).sqrt()  # noqa: E731
    expected = rerank_distances(d(qf, gf), d(qf, qf), d(gf, gf), k1=6, k2=3)
    torch.testing.assert_close(rerank_features(qf, gf, k1=6, k2=3), expected, rtol=1e-4, atol=1e-5)


@settings(max_examples=15, deadline=None)
@given(n=st.integers(2, 24), k1=st.integers(1, 12), k2=st.integers(1, 5), metric=st.sampled_from(["euclidean", "cosine"]),
       seed=st.integers(0, 1000))
def test_one_set_equals_the_reference_on_that_set(n, k1, k2, metric, seed):
    feats = torch.randn(n, 8, generator=torch.Generator().manual_seed(seed))
    d = compute_distance(feats, feats).sqrt() if metric == "euclidean" else compute_distance(feats, feats, "cosine")
    expected = reference_one_set(d.numpy(), k1, k2, 0.3)
    got = rerank_features(feats, None, k1=k1, k2=k2, metric=metric)
    assert got.shape == (n, n)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-4, atol=1e-5)


def test_a_leave_one_out_evaluation_reranks_the_one_set():
    """Not the set concatenated with itself, where each image's copy is its nearest and k1, k2 act halved."""
    from reid.evaluation import Evaluator
    from reid.spec import EvalSpec

    qf, qp, qc, gf, gp, gc = _overlapping_clusters()
    feats, pids, cams = gf[:200], gp[:200], gc[:200]
    spec = EvalSpec(rerank=True, k1=8, k2=3, protocol="all")
    ev = Evaluator(spec, same_set=True)
    ev.process(feats, pids, cams, "query")
    got = ev.evaluate()
    d = compute_distance(feats, feats).sqrt().numpy()
    one_set = evaluate(torch.from_numpy(reference_one_set(d, 8, 3, spec.lambda_)), pids, pids, cams, cams,
                       max_rank=spec.max_rank, protocol="all", same_set=True)
    doubled = evaluate(torch.from_numpy(reference(d, d, d, 8, 3, spec.lambda_)), pids, pids, cams, cams,
                       max_rank=spec.max_rank, protocol="all", same_set=True)
    assert abs(one_set["mAP"] - doubled["mAP"]) > 1e-3  # the two rules differ on this set
    assert got.mAP == pytest.approx(float(one_set["mAP"]), abs=1e-6)
    assert got.cmc[0] == pytest.approx(float(one_set["cmc"][0]), abs=1e-6)


def test_tensor_in_tensor_out_and_float64_input():
    rng = np.random.default_rng(0)
    full = _symmetric(rng, 9, 0).astype(np.float64)
    parts = full[:3, 3:], full[:3, :3], full[3:, 3:]
    expected = reference(*parts, 4, 2, 0.3)
    np.testing.assert_allclose(rerank_distances(*parts, k1=4, k2=2), expected, rtol=1e-5, atol=1e-6)
    out = rerank_distances(*(torch.from_numpy(p) for p in parts), k1=4, k2=2)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32


def _overlapping_clusters(seed: int = 0):
    """30 identities of 20 images each: Gaussian clusters whose spread (1.0 per dimension) is as large as
    the distance between their centres, so a query's plain nearest images mix identities, while images
    of one identity stay mostly each other's reciprocal neighbours — the structure re-ranking exploits."""
    g = torch.Generator().manual_seed(seed)
    ids, per_id, dim = 30, 20, 32
    pids = torch.arange(ids).repeat_interleave(per_id)
    feats = torch.randn(ids, dim, generator=g)[pids] + torch.randn(ids * per_id, dim, generator=g)
    cams = torch.arange(ids * per_id) % 6
    q = torch.arange(ids * per_id) % per_id == 0  # one query per identity, camera 0
    return feats[q], pids[q], cams[q], feats[~q], pids[~q], cams[~q]


def test_reranking_raises_map_on_overlapping_clusters():
    qf, qp, qc, gf, gp, gc = _overlapping_clusters()
    plain = evaluate(compute_distance(qf, gf), qp, gp, qc, gc, max_rank=10)
    reranked = evaluate(rerank_features(qf, gf), qp, gp, qc, gc, max_rank=10)
    assert plain["mAP"] < 0.8  # measured 0.78: room to improve
    assert reranked["mAP"] > plain["mAP"] + 0.15  # measured 0.98
    assert reranked["cmc"][0] >= plain["cmc"][0]


def test_lambda_one_keeps_the_original_order():
    qf, qp, qc, gf, gp, gc = _overlapping_clusters(1)
    plain = compute_distance(qf, gf)
    only_original = rerank_features(qf, gf, lambda_value=1.0)
    assert torch.equal(plain.argsort(dim=1, stable=True), only_original.argsort(dim=1, stable=True))


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: rerank_distances(np.ones((2, 3)), np.ones((2, 2)), np.ones((2, 2))), "g_g (ng, ng)"),
        (lambda: rerank_distances(np.ones((1, 1)), np.ones((1, 1)), np.full((1, 1), np.nan)), "NaN"),
        (lambda: rerank_distances(np.zeros((1, 1)), np.zeros((1, 1)), np.zeros((1, 1))), "distance 0"),
        (lambda: rerank_features(torch.ones(2, 3), torch.ones(4, 3), k1=0), "k1 ≥ 1"),
        (lambda: rerank_features(torch.ones(2, 3), torch.ones(4, 3), lambda_value=2), "lambda"),
        (lambda: rerank_features(torch.ones(2, 3), torch.ones(4, 5)), "dimension"),
        (lambda: rerank_features(torch.ones(2, 3), torch.ones(4, 3), metric="l1"), "unknown distance"),
    ],
)
def test_user_errors(call, message):
    with pytest.raises(ReidError, match=re.escape(message)):
        call()
