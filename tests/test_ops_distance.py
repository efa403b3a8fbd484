"""The distance kernel against obviously-correct direct computations: values, blocks, memory, devices, errors."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from reid.errors import ReidError
from reid.ops.distance import Distances, pairwise_distance

DEVICES = ["cpu", "meta"] + (["cuda"] if torch.cuda.is_available() else [])  # meta: shapes and devices, no values


def _features(seed: int, n: int, dim: int, levels: int) -> torch.Tensor:
    """Seeded features; ``levels`` > 0 rounds them to few values (many exactly tied distances)."""
    x = torch.randn(n, dim, generator=torch.Generator().manual_seed(seed)) * 2
    return x.round().clamp(-levels, levels) if levels else x


def _direct(q: torch.Tensor, g: torch.Tensor, metric: str, normalize: bool) -> torch.Tensor:
    """Every distance by broadcasting, in float64: squared L2 of (normalised) features, or 1 − cos."""
    q, g = q.double(), g.double()
    if normalize or metric == "cosine":
        q = q / q.norm(dim=1, keepdim=True).clamp_min(1e-12)
        g = g / g.norm(dim=1, keepdim=True).clamp_min(1e-12)
    if metric == "cosine":
        return 1 - (q[:, None, :] * g[None, :, :]).sum(2)
    return ((q[:, None, :] - g[None, :, :]) ** 2).sum(2)


problems = dict(nq=st.integers(0, 13), ng=st.integers(1, 17), dim=st.integers(1, 9), levels=st.sampled_from([0, 1, 3]),
                metric=st.sampled_from(["euclidean", "cosine"]), normalize=st.booleans(), seed=st.integers(0, 10_000))


@settings(max_examples=60, deadline=None)
@given(rows_per_block=st.integers(1, 14), **problems)
def test_blocks_equal_the_direct_computation(nq, ng, dim, levels, metric, normalize, seed, rows_per_block):
    q, g = _features(seed, nq, dim, levels), _features(seed + 1, ng, dim, levels)
    distances = Distances(q, g, metric, normalize)
    pieces = [(start, block.clone()) for start, block in distances.blocks(rows_per_block)]
    assert [start for start, _ in pieces] == list(range(0, nq, rows_per_block))  # sizes need not divide nq
    got = torch.cat([block for _, block in pieces]) if pieces else torch.empty(0, ng)
    assert got.shape == (nq, ng) and got.dtype == torch.float32
    assert torch.equal(got, distances.matrix(rows_per_block))  # the reused buffer held each block intact
    scale = 1 + 2 * float(torch.cat([q, g]).norm(dim=1).max()) ** 2
    torch.testing.assert_close(got.double(), _direct(q, g, metric, normalize), rtol=1e-5, atol=1e-5 * scale)
    if metric == "euclidean":
        assert (got >= 0).all()


@settings(max_examples=40, deadline=None)
@given(chunk=st.integers(1, 9), **problems)
def test_column_blocks_and_pairs_equal_the_whole_rows(nq, ng, dim, levels, metric, normalize, seed, chunk):
    q, g = _features(seed, nq, dim, levels), _features(seed + 1, ng, dim, levels)
    distances = Distances(q, g, metric, normalize)
    whole = distances.matrix()
    rows = slice(0, nq)
    by_columns = torch.cat([distances.block(rows, slice(g0, g0 + chunk)) for g0 in range(0, ng, chunk)], 1)
    torch.testing.assert_close(by_columns, whole, rtol=1e-5, atol=1e-5)
    if nq:
        cols = torch.randint(0, ng, (nq, 5), generator=torch.Generator().manual_seed(seed))
        picked = torch.arange(nq)
        got = distances.finish(distances.pair_partial(picked, cols, memory_mb=1e-5), picked)  # tiny bound: one row a step
        torch.testing.assert_close(got, whole.gather(1, cols), rtol=1e-5, atol=1e-5)


@settings(max_examples=40, deadline=None)
@given(**problems)
def test_a_row_ranked_on_its_partial_distances_keeps_its_order(nq, ng, dim, levels, metric, normalize, seed):
    distances = Distances(_features(seed, nq, dim, levels), _features(seed + 1, ng, dim, levels), metric, normalize)
    rows = slice(0, nq)
    partial = distances.partial(rows)
    finished = distances.finish(partial, rows)  # a new tensor: partial stays as it was
    assert torch.equal(partial, distances.partial(rows))
    torch.testing.assert_close(finished, distances.matrix())
    order = partial.argsort(dim=1, stable=True)
    assert (finished.gather(1, order).diff(dim=1) >= 0).all()  # finishing never reverses an order


@pytest.mark.parametrize("memory_mb, ng", [(1, 1000), (1, 300_000), (0, 50), (0.01, 7)])
def test_the_buffer_stays_within_the_memory_bound(memory_mb, ng):
    distances = Distances(torch.zeros(64, 2), torch.zeros(ng, 2))
    rows = distances.rows_within(memory_mb)
    assert rows >= 1 and (rows == 1 or rows * ng * 4 <= memory_mb * 2**20)
    storages = {b.untyped_storage().data_ptr() for _, b in distances.blocks(rows)}
    assert len(storages) == 1 and all(len(b) <= rows for _, b in distances.blocks(rows))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("metric, normalize", [("euclidean", False), ("euclidean", True), ("cosine", False)])
def test_every_output_is_on_the_gallery_device(device, metric, normalize):
    g = torch.randn(9, 4, device=device)
    distances = Distances(torch.randn(5, 4), g, metric, normalize)  # the queries move to the gallery's device
    outputs = [distances.matrix(), distances.block(slice(1, 3), slice(2, 8)), *(b for _, b in distances.blocks(2)),
               distances.pair_partial(torch.tensor([0, 4], device=device), torch.tensor([[1], [8]], device=device)),
               pairwise_distance(g, g, metric)]
    assert all(o.device == g.device for o in outputs)


def test_dtype_is_float32_unless_asked():
    q = torch.randn(3, 4, dtype=torch.float64)
    assert Distances(q, q).matrix().dtype == torch.float32
    assert Distances(q, q, dtype=torch.float64).matrix().dtype == torch.float64
    assert Distances(q.numpy(), q.numpy()).matrix().dtype == torch.float32  # arrays are accepted


def test_one_set_equals_two_copies_of_it():
    x = _features(3, 20, 6, 0)
    for metric, normalize in (("euclidean", False), ("euclidean", True), ("cosine", False)):
        assert torch.equal(Distances(x, x, metric, normalize).matrix(), Distances(x, x.clone(), metric, normalize).matrix())


def test_pairwise_distance_is_plain_l2_or_one_minus_cosine_with_finite_gradients():
    x = torch.tensor([[1.0, 2.0], [1.0, 2.0], [0.5, -3.0]], requires_grad=True)
    torch.testing.assert_close(pairwise_distance(x, x), torch.cdist(x, x), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(pairwise_distance(x, x, "cosine"), _direct(x, x, "cosine", False).float())
    pairwise_distance(x, x).sum().backward()  # coincident rows 0 and 1: sqrt of a clamped square
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("call, message", [
    (lambda: Distances(torch.zeros(2, 3), torch.zeros(2, 4)), "query features have dimension 3 but gallery features 4"),
    (lambda: Distances(torch.zeros(2, 3), torch.zeros(2, 3), metric="manhattan"), "unknown distance 'manhattan'"),
    (lambda: Distances(torch.zeros(3), torch.zeros(2, 3)), "query features must be 2-D"),
    (lambda: pairwise_distance(torch.zeros(2, 3), torch.zeros(2, 3), "l1"), "unknown distance 'l1'"),
])
def test_user_mistakes_raise_reid_error(call, message):
    with pytest.raises(ReidError, match=message):
        call()
