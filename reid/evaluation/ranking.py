"""The ``k`` nearest gallery entries of each query, under the evaluation's distance and junk rule.

Brute force in bounded memory: the gallery is read in chunks of ``chunk`` rows, each chunk's
distances to a block of queries are computed by the distance kernel (:class:`reid.ops.distance.Distances`,
the evaluation's own values), removed entries are set to +inf, and a running top-``k`` is kept, so a
query against a 1,000,000 × 512 gallery needs a few MB beyond the gallery itself (and an L2-normalised
copy of it for cosine or ``normalize``). The final order is by distance, ties broken by gallery index
(the evaluation's stable order).

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

from dataclasses import dataclass, replace

import torch

from reid.errors import ReidError
from reid.ops.distance import Distances
from reid.rerank import rerank_features
from reid.spec import EvalSpec


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


@dataclass
class _Labels:
    """Identities, cameras and excluded entries of a query set and a gallery (``None`` where unknown)."""

    q_pids: torch.Tensor | None
    g_pids: torch.Tensor | None
    q_camids: torch.Tensor | None
    g_camids: torch.Tensor | None
    exclude: torch.Tensor | None
    market: bool

    @classmethod
    def of(cls, nq: int, ng: int, q_pids, g_pids, q_camids, g_camids, protocol: str, exclude) -> _Labels:
        labels = cls(_labels(q_pids, nq, "q_pids"), _labels(g_pids, ng, "g_pids"), _labels(q_camids, nq, "q_camids"),
                     _labels(g_camids, ng, "g_camids"), _labels(exclude, nq, "exclude"), protocol == "market")
        if protocol not in ("market", "all"):
            raise ReidError(f"unknown evaluation protocol {protocol!r}", fix="use 'market' or 'all'")
        if labels.market and None in (labels.q_pids, labels.g_pids, labels.q_camids, labels.g_camids):
            raise ReidError("the 'market' protocol needs query and gallery identities and cameras", fix="use protocol 'all'")
        return labels

    def remove(self, d: torch.Tensor, q0: int, g0: int) -> torch.Tensor:
        """Set the removed entries of the distance block ``d`` (queries ``q0 …``, gallery ``g0 …``) to +inf."""
        qs, gs = slice(q0, q0 + d.shape[0]), slice(g0, g0 + d.shape[1])
        if self.exclude is not None:
            cols = torch.arange(g0, g0 + d.shape[1])
            d[(self.exclude[qs, None] == cols[None]).to(d.device)] = float("inf")
        if self.market:
            junk = (self.q_pids[qs, None] == self.g_pids[None, gs]) & (self.q_camids[qs, None] == self.g_camids[None, gs])
            d[junk.to(d.device)] = float("inf")
        return d

    def lists(self, q0: int, best_d: torch.Tensor, best_i: torch.Tensor, k: int) -> list[RankedList]:
        """The :class:`RankedList` s of queries ``q0 …`` from their best candidates (removed ones dropped)."""
        out = []
        for r in range(best_d.shape[0]):
            finite = torch.isfinite(best_d[r])
            idx, dist = best_i[r][finite][:k].tolist(), best_d[r][finite][:k].tolist()
            correct = None if self.q_pids is None or self.g_pids is None else \
                tuple(bool(self.g_pids[i] == self.q_pids[q0 + r]) for i in idx)
            out.append(RankedList(q0 + r, tuple(idx), tuple(dist), correct))
        return out


def _nearest_in_blocks(blocks, q0: int, nq_block: int, k: int, labels: _Labels, device) -> list[RankedList]:
    """Merge the gallery blocks ``(g0, distances)`` of queries ``q0 … q0 + nq_block`` into their ranked lists."""
    best_d = torch.full((nq_block, 0), float("inf"), device=device)
    best_i = torch.empty((nq_block, 0), dtype=torch.long, device=device)
    for g0, d in blocks:
        d_k, i_k = _smallest(labels.remove(d, q0, g0), min(k, d.shape[1]))
        best_d, best_i = _first_k(torch.cat([best_d, d_k], 1), torch.cat([best_i, i_k + g0], 1), k)
    return labels.lists(q0, best_d.cpu(), best_i.cpu(), k)


def _check_k(k: int) -> None:
    if k < 1:
        raise ReidError(f"k must be at least 1, got {k}")


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
    distances = Distances(qf, gf, metric, normalize)
    _check_k(k)
    labels = _Labels.of(distances.nq, distances.ng, q_pids, g_pids, q_camids, g_camids, protocol, exclude)
    out: list[RankedList] = []
    for q0 in range(0, distances.nq, query_block):
        rows = slice(q0, min(q0 + query_block, distances.nq))
        blocks = ((g0, distances.block(rows, slice(g0, g0 + chunk))) for g0 in range(0, distances.ng, chunk))
        out += _nearest_in_blocks(blocks, q0, rows.stop - q0, k, labels, distances.device)
    return out


def top_k_of_distances(dist: torch.Tensor, k: int, q_pids=None, g_pids=None, q_camids=None, g_camids=None,
                       protocol: str = "all", exclude=None, query_block: int = 256) -> list[RankedList]:
    """:func:`top_k` of a precomputed ``(nq, ng)`` distance matrix (e.g. re-ranked distances).

    Example:
        >>> [r.gallery for r in top_k_of_distances(torch.tensor([[0.3, 0.1, 0.2]]), k=2)]
        [(1, 2)]
    """
    dist = torch.as_tensor(dist).float()
    if dist.ndim != 2:
        raise ReidError(f"the distance matrix must be 2-D (queries × gallery), got shape {tuple(dist.shape)}")
    _check_k(k)
    labels = _Labels.of(dist.shape[0], dist.shape[1], q_pids, g_pids, q_camids, g_camids, protocol, exclude)
    out: list[RankedList] = []
    for q0 in range(0, dist.shape[0], query_block):
        block = dist[q0 : q0 + query_block].clone()
        out += _nearest_in_blocks([(0, block)], q0, len(block), k, labels, dist.device)
    return out


def ranked_lists(spec: EvalSpec, qf: torch.Tensor, gf: torch.Tensor, k: int, queries=None, q_pids=None, g_pids=None,
                 q_camids=None, g_camids=None, protocol: str = "all", same_set: bool = False) -> list[RankedList]:
    """The ``k`` nearest gallery entries of queries ``queries`` (default: all) ranked as evaluation ranks them
    under ``spec`` (an ``[eval]`` table): k-reciprocal re-ranked distances with ``spec.rerank`` — where every
    query and gallery entry shapes the neighbourhoods, so all of them are used — else :func:`top_k`.

    ``same_set``: query ``i`` is gallery ``i`` (leave-one-out) and is not its own neighbour.
    ``RankedList.query`` is the index into ``qf``.

    Example:
        >>> from reid.spec import EvalSpec
        >>> x = torch.tensor([[0.0], [1.0], [5.0], [6.0]])
        >>> [r.gallery for r in ranked_lists(EvalSpec(), x, x, k=1, queries=[0, 2], same_set=True)]
        [(1,), (3,)]
    """
    picked = torch.arange(len(qf)) if queries is None else torch.as_tensor(queries, dtype=torch.long).reshape(-1)
    rows = lambda x: None if x is None else torch.as_tensor(x)[picked]  # noqa: E731
    labels = dict(q_pids=rows(q_pids), g_pids=g_pids, q_camids=rows(q_camids), g_camids=g_camids, protocol=protocol,
                  exclude=picked if same_set else None)
    if spec.rerank:
        dist = rerank_features(qf, None if same_set else gf, spec.k1, spec.k2, spec.lambda_, metric=spec.distance,
                               normalize=spec.normalize)
        lists = top_k_of_distances(dist[picked], k, **labels)
    else:
        lists = top_k(torch.as_tensor(qf)[picked], gf, k, metric=spec.distance, normalize=spec.normalize, **labels)
    return [replace(r, query=int(picked[r.query])) for r in lists]
