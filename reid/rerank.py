"""k-reciprocal re-ranking (Zhong et al., "Re-ranking Person Re-identification with k-reciprocal Encoding", CVPR 2017).

The numbers are those of the reference formulation that torchreid (``torchreid/utils/rerank.py``)
and the strong baseline (``utils/re_ranking.py``) share, computed without a Python loop over images:

1. all ``N = nq + ng`` images form one set (a leave-one-out set is that set once, ``N`` images, each
   both query and gallery: :func:`rerank_features` with ``gf=None``); the original distance ``o[i, j]`` is the squared input
   distance ``d[j, i]²`` divided by the largest squared distance of column ``i``, read transposed
   (for symmetric distances: row ``i`` scaled to a maximum of 1);
2. ``R(i, k)`` = the ``k + 1`` nearest of ``i`` (itself included) that also have ``i`` among their
   ``k + 1`` nearest; the expanded set adds ``R(c, round(k1 / 2))`` of every ``c`` in ``R(i, k1)``
   that shares more than 2/3 of its members with ``R(i, k1)``;
3. ``V[i, j] = exp(−o[i, j])`` over the expanded set, normalised to sum 1; with ``k2 > 1`` each row
   becomes the mean of the rows of its ``k2`` nearest (local query expansion);
4. the Jaccard distance ``1 − s / (2 − s)`` with ``s = Σ_k min(V[q, k], V[g, k])`` is mixed with the
   original distance: ``final = (1 − λ) · jaccard + λ · o``, query rows, gallery columns.

Ties: "nearest" is a *stable* order (equal distances ordered by index). The reference's ``np.argsort``
leaves tie order unspecified, so on tie-free input the neighbour sets are identical. Sums run in
float32 in another order than the reference's, so values agree to float32 rounding (≈1e-6).

How it is vectorised and where memory goes (``N`` images, ``K = max(k1 + 1, k2)``):

- only the ``K`` nearest of every image are kept, found by ``topk`` on blocks of rows (rows with tied
  values are ranked again by unique int64 keys: the float's bits, then the column index) — the full
  ``N × N`` ranking of the reference never exists;
- reciprocity, the 2/3 expansion test and the de-duplicated expanded sets are tensor operations on
  ``(rows, k1 + 1, round(k1 / 2) + 1)`` blocks; ``V`` is held sparse, at most
  ``(k1 + 1)(round(k1 / 2) + 2)`` entries per image, and query expansion merges ``k2`` such rows;
- the Jaccard sums use an inverted index (gallery images per column of ``V``) and a scatter-add, in
  query blocks of a bounded number of (query, gallery, column) triples.

:func:`rerank_features` (features in, distances out) never holds an ``N × N`` matrix: distance rows are
computed block by block (``memory_mb`` each). Its peak is the ``nq × ng`` float32 output plus the sparse
``V`` plus one block: at Market-1501 size (3,368 × 15,913, N = 19,281) 0.5–0.65 GB above the features,
where the reference needs about 7 GB (four N × N arrays plus the argsort's int64 temporary).
:func:`rerank_distances` takes the three distance matrices of the reference and must hold their
``N × N`` concatenation (1.5 GB in float32 at Market-1501 size; the inputs themselves are 1.2 GB more);
the rest of it is bounded as above.

Example:
    >>> import torch
    >>> qf, gf = torch.tensor([[0.0, 0.0]]), torch.tensor([[0.1, 0.0], [3.0, 0.0], [0.0, 3.1]])
    >>> d = rerank_features(qf, gf, k1=2, k2=1)
    >>> d.shape, int(d.argmin())
    (torch.Size([1, 3]), 0)
"""

from __future__ import annotations

import numpy as np
import torch

from reid.errors import ReidError
from reid.ops.distance import Distances, Metric, check_features, check_metric

_TRIPLES_PER_BLOCK = 4_000_000  # (query, gallery, column) terms of the Jaccard sums handled at once


def rerank_distances(q_g, q_q, g_g, k1: int = 20, k2: int = 6, lambda_value: float = 0.3):
    """Re-ranked query-gallery distances from the three distance matrices, as the reference ``re_ranking``.

    Args:
        q_g: ``(nq, ng)`` query-gallery distances (numpy array or tensor).
        q_q: ``(nq, nq)`` query-query distances.
        g_g: ``(ng, ng)`` gallery-gallery distances.
        k1: neighbourhood size of the k-reciprocal sets (paper: 20).
        k2: neighbours averaged by local query expansion; 1 switches it off (paper: 6).
        lambda_value: weight of the original distance in the result (paper: 0.3).

    Returns:
        ``(nq, ng)`` float32 distances: a numpy array if ``q_g`` is one, else a tensor.

    The inputs are distances as the reference expects them (it squares them): Euclidean, not squared
    Euclidean, for the paper's setting. Memory: the ``(nq + ng)²`` float32 concatenation is built
    (1.5 GB at Market-1501 size); use :func:`rerank_features` to avoid it.

    Raises:
        ReidError: shapes disagree, a value is not finite, a parameter is out of range, or an
            image's distances to all images are zero.

    Example:
        >>> import numpy as np
        >>> d = rerank_distances(np.array([[0.1, 3.0]]), np.zeros((1, 1)), np.array([[0.0, 2.9], [2.9, 0.0]]), k1=1, k2=1)
        >>> d.dtype.name, d.shape, bool(d[0, 0] < d[0, 1])
        ('float32', (1, 2), True)
    """
    _check_params(k1, k2, lambda_value)
    as_numpy = isinstance(q_g, np.ndarray)
    qg, qq, gg = (_matrix(x, name) for x, name in ((q_g, "q_g"), (q_q, "q_q"), (g_g, "g_g")))
    nq, ng = qg.shape
    if qq.shape != (nq, nq) or gg.shape != (ng, ng):
        raise ReidError(f"re-ranking needs q_g (nq, ng), q_q (nq, nq) and g_g (ng, ng); got {tuple(qg.shape)}, "
                        f"{tuple(qq.shape)} and {tuple(gg.shape)}")
    dtype = torch.promote_types(torch.promote_types(qg.dtype, qq.dtype), gg.dtype)
    full = torch.empty(nq + ng, nq + ng, dtype=dtype)  # [[q_q, q_g], [q_gᵀ, g_g]], filled in place
    full[:nq, :nq], full[:nq, nq:], full[nq:, :nq], full[nq:, nq:] = qq, qg, qg.t(), gg
    full = full.square_().float()  # squared in the input precision, then float32, as the reference
    col_max = full.amax(0)
    if (col_max == 0).any():
        raise ReidError(f"image {int((col_max == 0).nonzero()[0])} has distance 0 to every image",
                        fix="check for duplicated or constant features")
    full.div_(col_max)  # the reference's original distance is this matrix transposed
    source = _MatrixSource(full, nq, nq)
    out = _rerank(source, k1, k2, lambda_value)
    return out.numpy() if as_numpy else out


def rerank_features(qf, gf=None, k1: int = 20, k2: int = 6, lambda_value: float = 0.3, metric: Metric = "euclidean",
                    normalize: bool = False, memory_mb: int = 64) -> torch.Tensor:
    """Re-ranked query-gallery distances straight from features, never holding an ``N × N`` matrix.

    ``gf=None`` re-ranks *one* set against itself (a leave-one-out evaluation): the ``N`` images of ``qf``
    are the whole set, every one of them both query and gallery, and the result is ``N × N`` (the caller
    masks the diagonal). Passing the set as both ``qf`` and ``gf`` instead would put every image in the
    neighbourhoods twice — a ``2N`` set in which each image's duplicate is its nearest neighbour, so
    ``k1`` and ``k2`` act as about half their values.

    Equals :func:`rerank_distances` of the ``metric`` distances between the features, where
    ``"euclidean"`` is the plain (not squared) L2 distance — the reference then squares it, so the
    original distance is the squared L2 distance, as in the paper and the strong baseline (torchreid's
    engine passes squared distances, i.e. ranks by their square) — and ``"cosine"`` is ``1 − cos``.
    ``normalize`` L2-normalises the features first (cosine always does).

    Memory: rows of the ``N × N`` distance matrix (``N = nq + ng``) are computed ``memory_mb`` at a
    time and reduced to each image's ``max(k1 + 1, k2)`` nearest at once (the chunked path: it is
    always taken, whatever the size); what stays is the ``(nq, ng)`` float32 result (214 MB at
    Market-1501 size) and the sparse neighbourhood weights (tens of MB). At Market-1501 size the
    whole call needs 0.5–0.65 GB above the features (peak RSS measured by ``benchmarks/bench_rerank.py``),
    where the reference needs about 7 GB.

    Args:
        qf: ``(nq, D)`` query features.
        gf: ``(ng, D)`` gallery features, or ``None``: ``qf`` is one set, ranked against itself.
        k1, k2, lambda_value: as :func:`rerank_distances` (paper: 20, 6, 0.3).
        metric: ``"euclidean"`` or ``"cosine"``.
        normalize: L2-normalise the features before Euclidean distances.
        memory_mb: size of one block of distance rows.

    Returns:
        ``(nq, ng)`` float32 tensor of re-ranked distances (smaller = more similar); ``(N, N)`` for one set.

    Example:
        >>> import torch
        >>> d = rerank_features(torch.randn(4, 8), torch.randn(10, 8), k1=3, k2=2)
        >>> d.shape, d.dtype
        (torch.Size([4, 10]), torch.float32)
        >>> rerank_features(torch.randn(6, 8), k1=3, k2=2).shape  # one leave-one-out set
        torch.Size([6, 6])
    """
    _check_params(k1, k2, lambda_value)
    qf = _features(qf, "query features")
    one_set = gf is None
    gf = qf[:0] if one_set else _features(gf, "gallery features")
    check_features(qf, gf)
    check_metric(metric)
    if memory_mb < 1:
        raise ReidError(f"memory_mb must be at least 1, got {memory_mb}")
    feats = torch.cat([qf, gf])
    distances = Distances(feats, feats, metric, normalize)  # one set of N images, ranked against itself
    source = _FeatureSource(distances, qf.shape[0], 0 if one_set else qf.shape[0], memory_mb)
    return _rerank(source, k1, k2, lambda_value)


def _check_params(k1: int, k2: int, lambda_value: float) -> None:
    if int(k1) != k1 or k1 < 1 or int(k2) != k2 or k2 < 1:
        raise ReidError(f"re-ranking needs k1 ≥ 1 and k2 ≥ 1 (integers), got k1={k1}, k2={k2}",
                        fix="use the paper's k1 = 20, k2 = 6")
    if not 0 <= lambda_value <= 1:
        raise ReidError(f"re-ranking's lambda must be in [0, 1], got {lambda_value}", fix="use the paper's 0.3")


def _matrix(x, name: str) -> torch.Tensor:
    t = torch.as_tensor(x).detach().cpu()
    if t.ndim != 2:
        raise ReidError(f"{name} must be a 2-D distance matrix, got shape {tuple(t.shape)}")
    if not t.is_floating_point():
        t = t.double()
    if not torch.isfinite(t).all():
        raise ReidError(f"{name} contains NaN or infinite distances", fix="check the features (a diverged model?)")
    return t


def _features(x, name: str) -> torch.Tensor:
    t = torch.as_tensor(x).detach().cpu().float()
    if t.ndim != 2 or t.shape[0] == 0:
        raise ReidError(f"{name} must be a non-empty 2-D array (images × dimension), got shape {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise ReidError(f"{name} contain NaN or infinite values", fix="check the model (diverged?)")
    return t


class _MatrixSource:
    """Original distances from a held matrix ``m`` (the reference's matrix before its transpose).

    Sources (this and :class:`_FeatureSource`) hold ``n`` images: queries are ``0 … nq``, the gallery
    ``g0 … n`` (``g0 = nq`` for a query / gallery pair, ``0`` with ``nq = n`` for one set).
    """

    def __init__(self, m: torch.Tensor, nq: int, g0: int):
        self.m, self.n, self.nq, self.g0 = m, m.shape[0], nq, g0
        self.rows_per_block = max(1, (64 << 20) // (4 * self.n))

    def nearest(self, start: int, end: int, k: int, out: torch.Tensor) -> torch.Tensor:
        """The ``k`` nearest of images ``start … end`` (stable order); their query-gallery originals go to ``out``."""
        blk = self.m[:, start:end].t().contiguous()  # rows of the original distance = columns of m
        if start < self.nq:
            out[start : min(end, self.nq)] = blk[: self.nq - start, self.g0 :]
        vals, idx = torch.topk(blk, min(k + 1, self.n), dim=1, largest=False, sorted=True)
        return _untie(vals, idx, lambda rows: blk[rows], k)

    def pairs(self, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        """Original distances ``o[rows[b], cols[b, j]]``."""
        return self.m[cols, rows[:, None]]


class _FeatureSource:
    """Original distances computed from features: the kernel's distance (squared L2, or ``1 − cos`` squared) over
    each row's maximum.

    Euclidean rows are ranked on the kernel's partial distance ``|g|² − 2 q·g``: finishing it (adding ``|q|²``,
    clamping at 0) and dividing by the row's maximum never reverse an order, so only the ``k + 1`` candidates
    (and rows where they tie) are finished — the same float operations as on the whole row, so the same values.
    """

    def __init__(self, distances: Distances, nq: int, g0: int, memory_mb: int):
        self.distances, self.n, self.nq, self.g0, self.cosine = distances, distances.ng, nq, g0, distances.cosine
        self.row_max = torch.empty(self.n)
        self.rows_per_block = distances.rows_within(memory_mb)

    def _finish(self, partial: torch.Tensor, rows: torch.Tensor | slice) -> torch.Tensor:
        """Original distances from the kernel's partial distances of ``rows`` (a new tensor)."""
        finished = self.distances.finish(partial, rows)
        return (finished.square() if self.cosine else finished).div_(self.row_max[rows, None])

    def nearest(self, start: int, end: int, k: int, out: torch.Tensor) -> torch.Tensor:
        """The ``k`` nearest of images ``start … end`` (stable order); their query-gallery originals go to ``out``."""
        rows = slice(start, end)
        partial = self.distances.partial(rows)
        if self.cosine:
            m = partial.square().amax(1)
        else:  # the largest partial distance of a row, finished: the row's largest distance
            m = self.distances.finish(partial.amax(1, keepdim=True), rows)[:, 0]
        if (m == 0).any():
            raise ReidError(f"image {start + int((m == 0).nonzero()[0])} has distance 0 to every image",
                            fix="check for duplicated or constant features")
        self.row_max[rows] = m
        if start < self.nq:
            q = slice(start, min(end, self.nq))
            out[q] = self._finish(partial[: q.stop - start, self.g0 :], q)
        if self.cosine:  # squaring is not monotone below 0 (1 − cos can round there): rank finished rows
            finished = self._finish(partial, rows)
            vals, idx = torch.topk(finished, min(k + 1, self.n), dim=1, largest=False, sorted=True)
            return _untie(vals, idx, lambda r: finished[r], k)
        _, idx = torch.topk(partial, min(k + 1, self.n), dim=1, largest=False, sorted=True)
        vals = self._finish(partial.gather(1, idx), rows)
        return _untie(vals, idx, lambda r: self._finish(partial[r], r + start), k)

    def pairs(self, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        """Original distances ``o[rows[b], cols[b, j]]`` (rows already seen by :meth:`nearest`)."""
        return self._finish(self.distances.pair_partial(rows, cols), rows)


def _rerank(source, k1: int, k2: int, lam: float) -> torch.Tensor:
    n, nq, g0 = source.n, source.nq, source.g0
    kf, kh, kq = min(k1 + 1, n), min(int(np.around(k1 / 2.0)) + 1, n), min(k2, n)
    out = torch.empty(nq, n - g0)
    k = max(kf, kq)
    nearest = torch.empty(n, k, dtype=torch.int64)
    for s in range(0, n, source.rows_per_block):
        e = min(n, s + source.rows_per_block)
        nearest[s:e] = source.nearest(s, e, k, out)
    forward, recip = _reciprocal(nearest, kf)
    half, half_recip = _reciprocal(nearest, kh)
    idx, val = _weights(source, forward, recip, half, half_recip)
    rows, cols, vals = _expand_queries(idx, val, nearest[:, :kq], n) if k2 != 1 else _coo(idx, val, n)
    jaccard = _jaccard(rows, cols, vals, nq, g0, n)
    return out.mul_(lam).add_(jaccard.mul_(1 - lam))


def _untie(vals: torch.Tensor, idx: torch.Tensor, full_rows, k: int) -> torch.Tensor:
    """The first ``k`` of ``topk`` candidates (``vals`` their original distances, ascending), ties ordered by index.

    ``topk`` of ``k + 1`` is exact wherever those values have no ties (the usual case); rows with a tie
    are ranked again by unique int64 keys (the float's bits, then the column index) over the whole row,
    ``full_rows(rows)``.
    """
    tied = (vals[:, 1:] == vals[:, :-1]).any(1).nonzero()[:, 0]
    if len(tied):
        full = full_rows(tied)
        keys = full.contiguous().view(torch.int32).to(torch.int64).clamp_min_(0)  # -0.0 (sign bit set) is 0.0
        keys.bitwise_left_shift_(32).bitwise_or_(torch.arange(full.shape[1]))
        idx[tied] = torch.topk(keys, idx.shape[1], dim=1, largest=False, sorted=True).indices
    return idx[:, :k]


def _reciprocal(nearest: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` nearest of each image and which of them have it among their own ``k`` nearest."""
    fwd = nearest[:, :k].contiguous()
    mask = torch.empty(fwd.shape, dtype=torch.bool)
    step = max(1, (16 << 20) // (k * k))
    for s in range(0, len(fwd), step):
        f = fwd[s : s + step]
        own = torch.arange(s, s + len(f))[:, None, None]
        mask[s : s + step] = (fwd[f] == own).any(2)
    return fwd, mask


def _weights(source, fwd, recip, half, half_recip) -> tuple[torch.Tensor, torch.Tensor]:
    """Sparse ``V``: per image the sorted members of its expanded k-reciprocal set (padded with ``N``) and their weights."""
    n, kf, kh = source.n, fwd.shape[1], half.shape[1]
    width = kf * (kh + 1)
    idx = torch.full((n, width), n, dtype=torch.int64)
    step = max(1, (16 << 20) // (kf * kh * kf))
    for s in range(0, n, step):
        r, rm = fwd[s : s + step], recip[s : s + step]
        h, hm = half[r], half_recip[r]  # candidates' own (half-size) reciprocal sets
        in_r = ((h[..., None] == r[:, None, None, :]) & rm[:, None, None, :]).any(3) & hm
        size = hm.sum(2)
        accept = rm & (in_r.sum(2) > (2.0 / 3) * size.double())
        members = torch.cat([torch.where(rm, r, n), torch.where(accept[..., None] & hm, h, n).flatten(1)], 1)
        members = members.sort(1).values
        dup = torch.zeros_like(members, dtype=torch.bool)
        dup[:, 1:] = members[:, 1:] == members[:, :-1]
        idx[s : s + step] = members.masked_fill_(dup, n).sort(1).values
    width = max(1, int((idx < n).sum(1).max()))
    idx = idx[:, :width].contiguous()
    real = idx < n
    val = torch.empty(idx.shape)
    rows = torch.arange(n)
    step = max(1, (32 << 20) // (4 * width))
    for s in range(0, n, step):
        i, m = idx[s : s + step], real[s : s + step]
        w = torch.exp(-source.pairs(rows[s : s + step], i.clamp_max(n - 1))).masked_fill_(~m, 0)
        val[s : s + step] = w / w.sum(1, keepdim=True).clamp_min(torch.finfo(torch.float32).tiny)
    return idx, val


def _coo(idx: torch.Tensor, val: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Row-major (row, column, value) triples of a padded sparse matrix."""
    real = idx < n
    rows = torch.arange(len(idx))[:, None].expand_as(idx)
    return rows[real], idx[real], val[real]


def _expand_queries(idx, val, neighbours, n) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Local query expansion: each row of ``V`` becomes the mean of the rows of its ``k2`` nearest (as COO)."""
    k2, width = neighbours.shape[1], idx.shape[1]
    parts = []
    step = max(1, (16 << 20) // (k2 * width))
    for s in range(0, len(idx), step):
        nb = neighbours[s : s + step]
        cols, order = idx[nb].flatten(1).sort(dim=1, stable=True)
        vals = val[nb].flatten(1).gather(1, order)
        key = (torch.arange(s, s + len(nb))[:, None] * (n + 1) + cols).flatten()
        uniq, inverse = torch.unique_consecutive(key, return_inverse=True)
        sums = torch.zeros(len(uniq)).index_add_(0, inverse, vals.flatten())
        keep = uniq % (n + 1) < n
        parts.append((uniq[keep] // (n + 1), uniq[keep] % (n + 1), sums[keep] / k2))
    return tuple(torch.cat(p) for p in zip(*parts))


def _jaccard(rows, cols, vals, nq: int, g0: int, n: int) -> torch.Tensor:
    """``(nq, ng)`` Jaccard distances ``1 − s / (2 − s)``, ``s = Σ_k min(V[q, k], V[g, k])``, via an inverted index.

    Queries are rows ``0 … nq`` of ``V``, the gallery rows ``g0 … n`` (the same rows for one set).
    """
    ng = n - g0
    gal = rows >= g0  # inverted index: gallery rows of each column, ascending
    g_cols, order = cols[gal].sort(stable=True)
    g_rows, g_vals = rows[gal][order] - g0, vals[gal][order]
    counts = torch.bincount(g_cols, minlength=n)
    starts = counts.cumsum(0) - counts
    n_query = int((rows < nq).sum())  # rows are sorted: query entries come first
    q_rows, q_cols, q_vals = rows[:n_query], cols[:n_query], vals[:n_query]
    cost = counts[q_cols]
    per_query = torch.zeros(nq, dtype=torch.int64).index_add_(0, q_rows, cost)
    ends = per_query.cumsum(0)
    entry_end = torch.searchsorted(q_rows, torch.arange(1, nq + 1))  # entries of queries < q
    rows_per_block = max(1, (64 << 20) // (4 * max(ng, 1)))
    out = torch.empty(nq, ng)
    q0 = 0
    while q0 < nq:
        done = int(ends[q0 - 1]) if q0 else 0
        q1 = int(torch.searchsorted(ends, done + _TRIPLES_PER_BLOCK, right=True))
        q1 = min(max(q1, q0 + 1), q0 + rows_per_block, nq)
        e0 = int(entry_end[q0 - 1]) if q0 else 0
        e1 = int(entry_end[q1 - 1])
        c = cost[e0:e1]
        rep = torch.repeat_interleave(torch.arange(e1 - e0), c)
        offset = torch.arange(len(rep)) - (c.cumsum(0) - c)[rep]
        pos = starts[q_cols[e0:e1]][rep] + offset
        terms = torch.minimum(q_vals[e0:e1][rep], g_vals[pos])
        flat = (q_rows[e0:e1][rep] - q0) * ng + g_rows[pos]
        s = torch.zeros((q1 - q0) * ng).index_add_(0, flat, terms).view(q1 - q0, ng)
        out[q0:q1] = 1 - s / (2 - s)
        q0 = q1
    return out
