"""The reference k-reciprocal re-ranking (torchreid / strong baseline ``re_ranking``), ported loop by loop.

The one copy of the slow loop: ``tests/test_rerank.py`` checks :mod:`reid.rerank` against
:func:`reference` (whole loops, small inputs) and ``benchmarks/bench_rerank.py`` times its stages
(the Python loops on their first ``rows`` iterations only, then extrapolated). Ties are ordered by
index (a stable argsort), where the reference's ``np.argsort`` leaves them unspecified.

Example:
    >>> import numpy as np
    >>> d = np.array([[0.0, 1.0, 4.0], [1.0, 0.0, 3.0], [4.0, 3.0, 0.0]], dtype=np.float32)
    >>> reference_one_set(d, k1=1, k2=1, lam=0.3).shape
    (3, 3)
"""

from __future__ import annotations

import numpy as np


def concatenated(q_g: np.ndarray, q_q: np.ndarray, g_g: np.ndarray) -> np.ndarray:
    """The whole set's distances ``[[q_q, q_g], [q_gᵀ, g_g]]``, queries first."""
    return np.concatenate([np.concatenate([q_q, q_g], 1), np.concatenate([q_g.T, g_g], 1)], 0)


def original(d: np.ndarray) -> np.ndarray:
    """The reference's original distance: ``d`` squared (float32), each column over its maximum, transposed."""
    o = np.power(d, 2).astype(np.float32)
    return np.transpose(o / np.max(o, axis=0))


def nearest_order(o: np.ndarray) -> np.ndarray:
    """Every row's images, nearest first (a stable argsort: ties by index)."""
    return np.argsort(o, axis=1, kind="stable")


def reciprocal(rank: np.ndarray, i: int, k: int) -> np.ndarray:
    """``R(i, k)``: the ``k + 1`` nearest of ``i`` that have ``i`` among their own ``k + 1`` nearest."""
    forward = rank[i, : k + 1]
    return forward[np.where(rank[forward, : k + 1] == i)[0]]


def weights(o: np.ndarray, rank: np.ndarray, k1: int, rows: int) -> np.ndarray:
    """``V``: per image, ``exp(−o)`` over its expanded k-reciprocal set, summing to 1 (rows past ``rows`` stay 0)."""
    V = np.zeros(o.shape, dtype=np.float32)
    for i in range(rows):
        r = reciprocal(rank, i, k1)
        expanded = r
        for c in r:
            rc = reciprocal(rank, c, int(np.around(k1 / 2.0)))
            if len(np.intersect1d(rc, r)) > 2.0 / 3 * len(rc):
                expanded = np.append(expanded, rc)
        expanded = np.unique(expanded)
        w = np.exp(-o[i, expanded])
        V[i, expanded] = w / np.sum(w)
    return V


def expand_queries(V: np.ndarray, rank: np.ndarray, k2: int, rows: int) -> np.ndarray:
    """Local query expansion: row ``i`` becomes the mean of the rows of its ``k2`` nearest (rows past ``rows`` stay 0)."""
    expanded = np.zeros_like(V)
    for i in range(rows):
        expanded[i] = np.mean(V[rank[i, :k2], :], axis=0)
    return expanded


def inverted_index(V: np.ndarray, columns: int) -> list[np.ndarray]:
    """The images with a non-zero weight in each of the first ``columns`` columns of ``V``."""
    return [np.where(V[:, k] != 0)[0] for k in range(columns)]


def jaccard(V: np.ndarray, index: list[np.ndarray], queries: int) -> np.ndarray:
    """``(queries, N)`` Jaccard distances ``1 − s / (2 − s)``, ``s = Σ_k min(V[q, k], V[g, k])``.

    Columns past the inverted ``index`` are looked up as they come.
    """
    out = np.zeros((queries, V.shape[0]), dtype=np.float32)
    for i in range(queries):
        s = np.zeros(V.shape[0], dtype=np.float32)
        for k in np.where(V[i] != 0)[0]:
            js = index[k] if k < len(index) else np.where(V[:, k] != 0)[0]
            s[js] += np.minimum(V[i, k], V[js, k])
        out[i] = 1 - s / (2.0 - s)
    return out


def reference_rows(d: np.ndarray, nq: int, k1: int, k2: int, lam: float) -> np.ndarray:
    """The reference's loops on the whole set's distances ``d``: final distances of rows ``0 … nq`` to all images."""
    o = original(d)
    n = o.shape[0]
    rank = nearest_order(o)
    V = weights(o, rank, k1, n)
    if k2 != 1:
        V = expand_queries(V, rank, k2, n)
    return jaccard(V, inverted_index(V, n), nq) * (1 - lam) + o[:nq] * lam


def reference(q_g: np.ndarray, q_q: np.ndarray, g_g: np.ndarray, k1: int, k2: int, lam: float) -> np.ndarray:
    """The reference ``re_ranking`` of a query / gallery pair: ``(nq, ng)`` re-ranked distances."""
    nq = q_g.shape[0]
    return reference_rows(concatenated(q_g, q_q, g_g), nq, k1, k2, lam)[:, nq:]


def reference_one_set(d: np.ndarray, k1: int, k2: int, lam: float) -> np.ndarray:
    """The reference on one leave-one-out set: its ``N`` images once, every image a query of all ``N``."""
    return reference_rows(d, d.shape[0], k1, k2, lam)
