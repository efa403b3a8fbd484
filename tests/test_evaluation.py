"""The evaluator, its typed result and ranked lists, against obviously-correct versions."""

from __future__ import annotations

import doctest

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import reid.evaluation.evaluator
import reid.evaluation.ranking
import reid.evaluation.result
from reid.errors import ReidError
from reid.evaluation import EvalResult, Evaluator, top_k
from reid.evaluation.ranking import top_k_of_distances
from reid.metrics import compute_distance, evaluate_features
from reid.spec import EvalSpec


@pytest.mark.parametrize("module", [reid.evaluation.evaluator, reid.evaluation.ranking, reid.evaluation.result])
def test_docstring_examples(module):
    assert doctest.testmod(module).failed == 0


def _brute_top_k(qf, gf, k, q_pids, g_pids, q_cams, g_cams, market, exclude):
    """Every distance (as evaluation computes them), the junk removed, a stable sort: the definition of the ranked list."""
    out = []
    dist = compute_distance(qf, gf)
    for i in range(len(qf)):
        d = dist[i]
        keep = [j for j in range(len(gf))
                if not (market and g_pids[j] == q_pids[i] and g_cams[j] == q_cams[i]) and not (exclude and j == i)]
        keep.sort(key=lambda j: (float(d[j]), j))
        out.append(keep[:k])
    return out


@settings(max_examples=60, deadline=None)
@given(nq=st.integers(1, 6), ng=st.integers(1, 40), k=st.integers(1, 12), chunk=st.integers(1, 9),
       market=st.booleans(), levels=st.integers(2, 5), seed=st.integers(0, 10_000))
def test_top_k_equals_a_full_sort(nq, ng, k, chunk, market, levels, seed):
    g = torch.Generator().manual_seed(seed)
    # few distinct coordinates: many exactly tied distances
    gf = torch.randint(0, levels, (ng, 3), generator=g).float()
    qf = torch.randint(0, levels, (nq, 3), generator=g).float()
    q_pids, g_pids = torch.randint(0, 3, (nq,), generator=g), torch.randint(0, 3, (ng,), generator=g)
    q_cams, g_cams = torch.randint(0, 2, (nq,), generator=g), torch.randint(0, 2, (ng,), generator=g)
    got = top_k(qf, gf, k, q_pids=q_pids, g_pids=g_pids, q_camids=q_cams, g_camids=g_cams,
                protocol="market" if market else "all", chunk=chunk, query_block=2)
    expected = _brute_top_k(qf, gf, k, q_pids, g_pids, q_cams, g_cams, market, exclude=False)
    assert [list(r.gallery) for r in got] == expected
    for r in got:
        assert list(r.correct) == [bool(g_pids[j] == q_pids[r.query]) for j in r.gallery]


def test_top_k_of_distances_equals_top_k_of_features():
    g = torch.Generator().manual_seed(0)
    qf, gf = torch.randn(5, 4, generator=g), torch.randn(30, 4, generator=g)
    pids, cams = torch.arange(30) % 6, torch.arange(30) % 3
    labels = dict(q_pids=pids[:5], g_pids=pids, q_camids=cams[:5], g_camids=cams, protocol="market")
    assert top_k_of_distances(compute_distance(qf, gf), 7, **labels) == top_k(qf, gf, 7, **labels)


def test_top_k_leave_one_out_and_cosine():
    x = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [-1.0, 0.0]])
    lists = top_k(x, x, 2, metric="cosine", exclude=torch.arange(4))
    assert [r.gallery[0] for r in lists] == [1, 0, 1, 2]
    assert all(r.query not in r.gallery for r in lists) and lists[0].correct is None
    with pytest.raises(ReidError, match="needs query and gallery identities"):
        top_k(x, x, 1, protocol="market")


@settings(max_examples=40, deadline=None)
@given(nq=st.integers(1, 8), ng=st.integers(2, 30), same_set=st.booleans(), protocol=st.sampled_from(["auto", "all", "market"]),
       batches=st.integers(1, 3), seed=st.integers(0, 10_000))
def test_evaluator_equals_metrics_on_all_features(nq, ng, same_set, protocol, batches, seed):
    g = torch.Generator().manual_seed(seed)
    qf, gf = torch.randn(nq, 4, generator=g), torch.randn(ng, 4, generator=g)
    q_pids, g_pids = torch.randint(0, 3, (nq,), generator=g), torch.randint(0, 3, (ng,), generator=g)
    q_cams, g_cams = torch.randint(0, 2, (nq,), generator=g), torch.randint(0, 2, (ng,), generator=g)
    if same_set:
        gf, g_pids, g_cams = qf, q_pids, q_cams
    spec = EvalSpec(protocol=protocol, max_rank=5)
    ev = Evaluator(spec, same_set=same_set)
    for part in torch.arange(nq).chunk(batches):  # batch by batch, as extraction feeds it
        ev.process(qf[part], q_pids[part], q_cams[part], split="query")
    if not same_set:
        ev.process(gf, g_pids, g_cams, split="gallery")
    resolved = protocol if protocol != "auto" else (
        "all" if same_set or len(torch.cat([q_cams, g_cams]).unique()) < 2 else "market")
    try:
        expected = evaluate_features(qf, gf, q_pids, g_pids, q_cams, g_cams, protocol=resolved, same_set=same_set,
                                     max_rank=max(1, min(5, len(gf) - int(same_set))))
    except ReidError:  # no query has a match: the evaluator says the same
        with pytest.raises(ReidError):
            ev.evaluate()
        return
    got = ev.evaluate()
    assert got.protocol == resolved
    assert got.cmc == tuple(float(x) for x in expected["cmc"])
    assert (got.mAP, got.mINP, got.num_valid, got.num_skipped) == (
        expected["mAP"], expected["mINP"], expected["num_valid"], expected["num_skipped"])
    ev.reset()
    with pytest.raises(ReidError, match="no query features"):
        ev.evaluate()


def test_eval_result_json_round_trip_and_record():
    r = EvalResult(cmc=(0.25, 0.5), mAP=0.3, mINP=0.1, num_valid=4, num_skipped=1, protocol="all",
                   distance="cosine", normalize=True, ranks=(1, 5), val_loss=0.7)
    assert EvalResult.from_json(r.to_json()) == r
    assert r.to_record()["rank5"] == 0.5 and r.to_record()["val_loss"] == 0.7


def test_evaluator_rejects_a_gallery_for_a_leave_one_out_set():
    ev = Evaluator(EvalSpec(), same_set=True)
    with pytest.raises(ReidError, match="leave-one-out"):
        ev.process(torch.zeros(1, 2), [0], [0], split="gallery")
    with pytest.raises(ReidError, match="N×D features"):
        ev.process(torch.zeros(2, 2), [0], [0], split="query")


def test_rerank_in_the_evaluator_equals_reranked_distances_ranked():
    from reid.metrics import evaluate
    from reid.rerank import rerank_features

    g = torch.Generator().manual_seed(5)
    centres = torch.randn(6, 8, generator=g)
    pids = torch.arange(6).repeat_interleave(4)
    feats = centres[pids] + 0.6 * torch.randn(24, 8, generator=g)
    cams = torch.arange(24) % 2
    spec = EvalSpec(rerank=True, k1=5, k2=2, max_rank=10)
    ev = Evaluator(spec)
    ev.process(feats[::4], pids[::4], cams[::4], split="query")
    ev.process(feats, pids, cams, split="gallery")
    got = ev.evaluate()
    dist = rerank_features(feats[::4], feats, 5, 2, 0.3)
    expected = evaluate(dist, pids[::4], pids, cams[::4], cams, max_rank=10, protocol="market")
    assert got.rerank and got.mAP == expected["mAP"] and got.cmc == tuple(float(x) for x in expected["cmc"])
