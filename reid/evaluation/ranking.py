"""The ``k`` nearest gallery entries of each query, under the evaluation's distance and junk rule.

Brute force in bounded memory: the gallery is read in chunks of ``chunk`` rows, each chunk's
distances to a block of queries are computed with one matrix product, removed entries are set to
+inf, and a running top-``k`` is kept, so a query against a 1,000,000 × 512 gallery needs a few MB
beyond the gallery itself. The final order is by distance, ties broken by gallery index (the
evaluation's stable order).

Example:
    >>> import torch
    >>> g = torch.tensor([[0.0], [1.0], [2.0], [3.0]])
    >>> [r.gallery for r in top_k(torch.tensor([[2.2]]), g, k=2)]
    [(2, 3)]
    >>> r = top_k(torch.tensor([[0.0]]), g, k=2, q_pids=[7], g_pids=[7, 7, 8, 7], q_camids=[0], g_camids=[0, 1, 1, 1],
    ...           protocol="market")[0]
    >>> r.gallery, r.correct   # gallery 0 is the same identity seen by the same camera: ignored
    ((1, 2), (True, False))
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from reid.errors import ReidError


@dataclass(frozen=True)
class RankedList:
    """The nearest gallery entries of one query.

    Attributes:
        query: the query's index.
        gallery: gallery indices, nearest first.
        distances: their distances.
        correct: whether each has the query's identity (``None`` when identities are unknown).
    """

    query: int
    gallery: tuple[int, ...]
    distances: tuple[float, ...]
    correct: tuple[bool, ...] | None


def _labels(x, n: int, name: str) -> torch.Tensor | None:
    if x is None:
        return None
    t = torch.as_tensor(x).reshape(-1).long()
    if len(t) != n:
        raise ReidError(f"{name} has {len(t)} entries for {n} features")
    return t


def _smallest(d: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` smallest entries of each row, ties broken by column: ``topk`` where no tie straddles the k-th
    value (the common case), a stable sort of the block where one does."""
    values, index = d.topk(k, dim=1, largest=False)
    if ((d <= values.max(dim=1, keepdim=True).values).sum(1) > k).any():
        values, index = d.sort(dim=1, stable=True)
        values, index = values[:, :k], index[:, :k]
    return values, index


def _first_k(d: torch.Tensor, idx: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Candidates ordered by (distance, gallery index), the first ``k`` kept."""
    idx, order = idx.sort(dim=1)
    d, order = d.gather(1, order).sort(dim=1, stable=True)
    return d[:, :k], idx.gather(1, order)[:, :k]


def top_k(qf: torch.Tensor, gf: torch.Tensor, k: int, metric: str = "euclidean", normalize: bool = False,
          q_pids=None, g_pids=None, q_camids=None, g_camids=None, protocol: str = "all", exclude=None,
          chunk: int = 65536, query_block: int = 256) -> list[RankedList]:
    """The ``k`` nearest gallery entries of every query (fewer when fewer remain after removals).

    Args:
        qf, gf: query and gallery features (N×D; float, any device).
        k: entries per query.
        metric: ``euclidean`` (squared L2, as evaluation) or ``cosine`` (1 − cosine similarity).
        normalize: L2-normalise features first (cosine always does).
        q_pids, g_pids, q_camids, g_camids: identities and cameras when known; ``correct`` is filled from pids.
        protocol: ``market`` ignores gallery entries of the query's identity seen by the query's camera
            (needs pids and cameras); ``all`` ignores nothing.
        exclude: per query, a gallery index it must not return (its own entry when query and gallery are
            one set, leave-one-out).
        chunk, query_block: gallery rows and queries handled per matrix product.
    """
    qf, gf = torch.as_tensor(qf).float(), torch.as_tensor(gf).float()
    if qf.ndim != 2 or gf.ndim != 2 or qf.shape[1] != gf.shape[1]:
        raise ReidError(f"query features {tuple(qf.shape)} and gallery features {tuple(gf.shape)} must be N×D with the same D")
    if k < 1:
        raise ReidError(f"k must be at least 1, got {k}")
    if metric not in ("euclidean", "cosine"):
        raise ReidError(f"unknown distance {metric!r}", fix="use 'euclidean' or 'cosine'")
    nq, ng = len(qf), len(gf)
    qp, gp = _labels(q_pids, nq, "q_pids"), _labels(g_pids, ng, "g_pids")
    qc, gc = _labels(q_camids, nq, "q_camids"), _labels(g_camids, ng, "g_camids")
    own = _labels(exclude, nq, "exclude")
    if protocol == "market" and None in (qp, gp, qc, gc):
        raise ReidError("the 'market' protocol needs query and gallery identities and cameras", fix="use protocol 'all'")
    unit = normalize or metric == "cosine"
    qf = F.normalize(qf, dim=1) if unit else qf
    out: list[RankedList] = []
    for q0 in range(0, nq, query_block):
        q = qf[q0 : q0 + query_block].to(gf.device)
        own_block = None if own is None else own[q0 : q0 + len(q)].to(gf.device)
        best_d = torch.full((len(q), 0), float("inf"), device=gf.device)
        best_i = torch.empty((len(q), 0), dtype=torch.long, device=gf.device)
        for g0 in range(0, ng, chunk):
            g = gf[g0 : g0 + chunk]
            g = F.normalize(g, dim=1) if unit else g
            cols = torch.arange(g0, g0 + len(g), device=gf.device)
            if metric == "cosine":
                d = 1 - q @ g.T
            else:
                d = (q.square().sum(1, keepdim=True) + g.square().sum(1)[None] - 2 * q @ g.T).clamp_min_(0)
            if own_block is not None:
                d[own_block[:, None] == cols[None]] = float("inf")
            if protocol == "market":
                junk = (qp[q0 : q0 + len(q), None] == gp[None, g0 : g0 + len(g)]) & \
                       (qc[q0 : q0 + len(q), None] == gc[None, g0 : g0 + len(g)])
                d[junk.to(d.device)] = float("inf")
            d_k, i_k = _smallest(d, min(k, len(g)))
            best_d, best_i = _first_k(torch.cat([best_d, d_k], 1), torch.cat([best_i, i_k + g0], 1), k)
        for r in range(len(q)):
            finite = torch.isfinite(best_d[r])
            idx, dist = best_i[r][finite][:k].tolist(), best_d[r][finite][:k].tolist()
            correct = None if qp is None or gp is None else tuple(bool(gp[i] == qp[q0 + r]) for i in idx)
            out.append(RankedList(q0 + r, tuple(idx), tuple(dist), correct))
    return out
