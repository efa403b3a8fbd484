"""Re-ID evaluation: query-gallery distances, CMC, mAP and mINP.

The numbers are those of torchreid's ``evaluate_rank`` (``eval_market1501``) plus mINP
as defined by the AGW baseline, computed without a Python loop over queries:

- every metric of a query depends only on the ranks of its true matches among the
  gallery entries left after the protocol's removals, so each distance row is sorted
  once (numpy's SIMD sort, query chunks spread over threads) and each match's rank is
  found by binary search in its sorted row;
- ``cmc[k]`` = share of valid queries whose first match is within the top ``k + 1``;
  AP = mean over matches of (matches so far / position); INP = matches / position of
  the last match (positions 1-based);
- ties: ranking is a *stable* sort by distance, i.e. equal distances are ordered by
  gallery index (torchreid's default ``np.argsort`` leaves tie order unspecified, so on
  tie-free input the results are identical);
- queries without a true match (after removals) are skipped and counted;
- when the gallery has fewer than ``max_rank`` entries, ``max_rank`` becomes the
  gallery size (with a warning, as torchreid); when a query keeps fewer than
  ``max_rank`` entries, its CMC stays at 1 to the end.

Memory is bounded: rows are processed in chunks of a few MB, and
:func:`evaluate_features` never holds more than ``memory_mb`` of distances.

Example:
    >>> import torch
    >>> d = torch.tensor([[0.1, 0.5, 0.3], [0.9, 0.2, 0.4]])
    >>> r = evaluate(d, [1, 2], [1, 2, 1], [0, 0], [1, 1, 1], max_rank=3)
    >>> r["cmc"].tolist(), r["mAP"], r["num_valid"]
    ([1.0, 1.0, 1.0], 1.0, 2)
"""

from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Iterable, Literal

import numpy as np
import torch

from reid.errors import ReidError
from reid.ops.distance import Distances, Metric

Protocol = Literal["market", "all"]

_CHUNK_BYTES = 8 << 20  # distance rows sorted together (per thread): cache-friendly, bounded
_TIE_PASSES = 64  # tied matches in a row above which re-sorting it with unique keys is cheaper


def auto_protocol(same_set: bool, num_cameras: int) -> Protocol:
    """The protocol that fits the data: ``all`` for a leave-one-out set or single-camera data (the market
    rule would remove nothing useful or everything), ``market`` otherwise.

    Example:
        >>> auto_protocol(False, 2), auto_protocol(True, 2), auto_protocol(False, 1)
        ('market', 'all', 'all')
    """
    return "all" if same_set or num_cameras < 2 else "market"


def compute_distance(
    qf: torch.Tensor,
    gf: torch.Tensor,
    metric: Metric = "euclidean",
    normalize: bool = False,
    chunk_size: int | None = None,
) -> torch.Tensor:
    """Distances between query and gallery features, shape ``(nq, ng)``, float32, on the gallery's device.

    ``"euclidean"`` is the *squared* L2 distance (as torchreid's default), computed as
    ``|q|² + |g|² − 2 q·g`` and clamped at 0; ``"cosine"`` is ``1 − cos(q, g)``.
    ``normalize`` L2-normalises features first (cosine always does). Rows are computed
    ``chunk_size`` at a time (default: about 64 MB of output per chunk) by :class:`reid.ops.distance.Distances`.

    Example:
        >>> compute_distance(torch.tensor([[0., 0.]]), torch.tensor([[3., 4.], [1., 0.]])).tolist()
        [[25.0, 1.0]]
    """
    return Distances(qf, gf, metric, normalize).matrix(chunk_size)


def evaluate(
    distmat: torch.Tensor | np.ndarray,
    q_pids,
    g_pids,
    q_camids=None,
    g_camids=None,
    max_rank: int = 50,
    protocol: Protocol = "market",
    same_set: bool = False,
    chunk_size: int | None = None,
) -> dict:
    """CMC, mAP and mINP of a query × gallery distance matrix (smaller = more similar).

    Args:
        distmat: ``(nq, ng)`` distances, numpy array or tensor.
        q_pids, g_pids, q_camids, g_camids: identities and cameras (sequences, arrays or tensors).
        max_rank: length of the CMC curve (capped at the gallery size, with a warning).
        protocol: ``"market"`` removes, per query, gallery entries with the same identity
            *and* the same camera (cameras required); ``"all"`` removes nothing.
        same_set: query and gallery are the same set; query ``i``'s own entry (gallery ``i``)
            is removed (leave-one-out).
        chunk_size: query rows ranked together (default: rows of about 8 MB).

    Returns:
        ``{"cmc": float64 array (cmc[0] is Rank-1), "mAP": float, "mINP": float,
        "num_valid": int, "num_skipped": int, "first_match": int64 array}`` — fractions in [0, 1];
        queries without a true match are skipped (not counted as failures), as torchreid does;
        ``first_match[i]`` is the 0-based rank of query ``i``'s first true match (−1 when skipped).

    Raises:
        ReidError: shapes disagree, cameras are missing for ``"market"``, or no query has a
            true match in the gallery.
    """
    d = torch.as_tensor(distmat)
    if chunk_size is not None and chunk_size < 1:
        raise ReidError(f"chunk_size must be at least 1, got {chunk_size}")
    if d.ndim != 2:
        raise ReidError(f"distance matrix must be 2-D (queries × gallery), got shape {tuple(d.shape)}")
    ranker = _Ranker(d.shape[0], d.shape[1], q_pids, g_pids, q_camids, g_camids, protocol, same_set)
    return _summarise(ranker, [(0, d)], max_rank, chunk_size)


def evaluate_features(
    qf: torch.Tensor,
    gf: torch.Tensor,
    q_pids,
    g_pids,
    q_camids=None,
    g_camids=None,
    metric: Metric = "euclidean",
    normalize: bool = False,
    max_rank: int = 50,
    protocol: Protocol = "market",
    same_set: bool = False,
    memory_mb: int = 32,
) -> dict:
    """:func:`evaluate` of :func:`compute_distance`, never holding more than ``memory_mb`` of distances.

    Query rows are computed and ranked in blocks whose distances fit in ``memory_mb``
    (one reused buffer), so the full matrix never exists: galleries of any size fit, and
    it is faster than the two steps. Same result as
    ``evaluate(compute_distance(qf, gf, metric, normalize), ...)``.
    """
    distances = Distances(qf, gf, metric, normalize)
    ranker = _Ranker(distances.nq, distances.ng, q_pids, g_pids, q_camids, g_camids, protocol, same_set)
    return _summarise(ranker, distances.blocks(distances.rows_within(memory_mb)), max_rank, None)


def _labels(x, n: int, name: str) -> np.ndarray:
    a = (x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)).reshape(-1)
    if a.shape[0] != n:
        raise ReidError(f"{name} has {a.shape[0]} entries but the distance matrix needs {n}")
    return a


class _Ranker:
    """Per-query ranks of true matches, for one query/gallery labelling and protocol."""

    def __init__(self, nq, ng, q_pids, g_pids, q_camids, g_camids, protocol, same_set):
        if protocol not in ("market", "all"):
            raise ReidError(f"unknown evaluation protocol {protocol!r}", fix="use 'market' or 'all'")
        if same_set and nq != ng:
            raise ReidError(f"same_set needs as many queries as gallery entries, got {nq} and {ng}")
        if nq == 0 or ng == 0:
            raise ReidError(f"nothing to evaluate: {nq} queries and {ng} gallery entries")
        self.nq, self.ng, self.same_set = nq, ng, same_set
        self.q_pids, self.g_pids = _labels(q_pids, nq, "q_pids"), _labels(g_pids, ng, "g_pids")
        self.cams = None
        if protocol == "market":
            if q_camids is None or g_camids is None:
                raise ReidError("the 'market' protocol needs query and gallery camera ids", fix="pass camids or use protocol 'all'")
            self.cams = (_labels(q_camids, nq, "q_camids"), torch.as_tensor(_labels(g_camids, ng, "g_camids")))
        # gallery indices grouped by identity: the only entries that can match or be removed
        order = np.argsort(self.g_pids, kind="stable")
        uniq, starts, counts = np.unique(self.g_pids[order], return_index=True, return_counts=True)
        pos = np.clip(np.searchsorted(uniq, self.q_pids), 0, len(uniq) - 1)
        found = uniq[pos] == self.q_pids
        self.order = torch.from_numpy(order)
        self.start = torch.from_numpy(np.where(found, starts[pos], 0))
        self.count = torch.from_numpy(np.where(found, counts[pos], 0))

    def ranks(self, d: torch.Tensor, q0: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Sorted 0-based ranks (among kept entries) of the true matches of queries ``q0 …``.

        Returns ``(ranks, npos)``: ``(B, M)`` int64 ranks padded with ``ng``, and ``(B,)`` counts.
        """
        b, ng = d.shape
        rows = torch.arange(q0, q0 + b)
        m = max(int(self.count[rows].max()), 1)
        slot = torch.arange(m)
        real = slot[None] < self.count[rows, None]
        cand = self.order[(self.start[rows, None] + slot).clamp_max(ng - 1) * real]  # (B, M)
        removed = torch.zeros_like(real)
        if self.cams is not None:
            removed |= torch.from_numpy(self.cams[0][q0 : q0 + b])[:, None] == self.cams[1][cand]
        if self.same_set:
            removed |= cand == rows[:, None]
        removed &= real
        full = torch.from_numpy(_stable_positions(d.numpy(), cand.numpy(), real.numpy()))
        # rank among kept entries = rank in the full list − removed entries ranked before it
        full, perm = torch.where(real, full, ng).sort(dim=1)
        removed, positive = removed.gather(1, perm), (real & ~removed).gather(1, perm)
        before = removed.cumsum(1) - removed.long()
        ranks = torch.where(positive, full - before, ng).sort(dim=1).values
        return ranks, positive.sum(1)


def _stable_positions(d: np.ndarray, cand: np.ndarray, real: np.ndarray) -> np.ndarray:
    """0-based positions of gallery entries ``cand`` (``(B, M)``, ``real`` marks non-padding) in each row's stable order.

    The order is by distance, then gallery index. float32 rows (the common case) are sorted
    by value only (numpy's SIMD sort, the fastest exact option measured) and each entry's
    position is found by binary search; where another entry has exactly the same distance,
    the tied entries with a smaller index are counted by a scan of the row's prefix, or, for
    rows with many ties (degenerate features), the row is re-ranked with unique int64 keys.
    Other dtypes use a stable argsort.
    """
    if np.isnan(d).any():
        raise ReidError("the distance matrix contains NaN", fix="check the features for NaN (a diverged model?)")
    if d.dtype != np.float32:
        order = np.argsort(d, axis=1, kind="stable")
        positions = np.empty_like(order)
        np.put_along_axis(positions, order, np.arange(d.shape[1])[None], axis=1)
        return np.take_along_axis(positions, cand, axis=1)
    d = d + np.float32(0)  # turns -0.0 into +0.0: the two are equal distances
    srt = torch.from_numpy(np.sort(d, axis=1))
    values = torch.from_numpy(np.take_along_axis(d, cand, axis=1))
    positions = torch.searchsorted(srt, values)
    tied = (torch.searchsorted(srt, values, right=True) - positions > 1) & torch.from_numpy(real)
    heavy = tied.sum(1) > _TIE_PASSES
    if heavy.any():
        rows = heavy.nonzero()[:, 0].numpy()
        positions[heavy] = torch.from_numpy(_key_positions(d[rows], cand[rows]))
    positions, values = positions.numpy(), values.numpy()
    for r, k in (tied & ~heavy[:, None]).nonzero().tolist():  # few: a float32 value seldom repeats
        positions[r, k] += np.count_nonzero(d[r, : cand[r, k]] == values[r, k])
    return positions


def _key_positions(d: np.ndarray, cand: np.ndarray) -> np.ndarray:
    """:func:`_stable_positions` of float32 rows via unique int64 keys (integer image of the float, then the index)."""
    bits = d.view(np.int32).copy()
    bits ^= (bits >> 31) & 0x7FFFFFFF  # flip magnitude bits of negatives: integer order = float order
    keys = (bits.astype(np.int64) << 32) | np.arange(d.shape[1], dtype=np.int64)
    srt = torch.from_numpy(np.sort(keys, axis=1))
    return torch.searchsorted(srt, torch.from_numpy(np.take_along_axis(keys, cand, axis=1))).numpy()


def _summarise(ranker: _Ranker, blocks: Iterable[tuple[int, torch.Tensor]], max_rank: int, chunk_size):
    if max_rank < 1:
        raise ReidError(f"max_rank must be at least 1, got {max_rank}")
    if ranker.ng < max_rank:
        warnings.warn(f"gallery has only {ranker.ng} entries: max_rank lowered from {max_rank} to {ranker.ng}", stacklevel=3)
        max_rank = ranker.ng
    first = torch.empty(ranker.nq, dtype=torch.int64)
    ap = torch.zeros(ranker.nq, dtype=torch.float64)
    inp = torch.zeros(ranker.nq, dtype=torch.float64)
    npos = torch.zeros(ranker.nq, dtype=torch.int64)

    def job(q0: int, d: torch.Tensor) -> None:
        ranks, n = ranker.ranks(d, q0)
        sl = slice(q0, q0 + d.shape[0])
        hits = torch.arange(1, ranks.shape[1] + 1, dtype=torch.float64)
        kept = hits[None] <= n[:, None]
        ap[sl] = torch.where(kept, hits / (ranks + 1), 0).sum(1) / n.clamp_min(1)
        last = ranks.gather(1, (n - 1).clamp_min(0)[:, None])[:, 0]
        inp[sl] = n.double() / (last + 1).double()
        first[sl], npos[sl] = ranks[:, 0], n

    rows_default = max(8, _CHUNK_BYTES // (4 * max(ranker.ng, 1)))
    with ThreadPoolExecutor(max(1, torch.get_num_threads())) as pool:
        for q0, block in blocks:
            block = block.detach().cpu().contiguous()
            if block.dtype in (torch.float16, torch.bfloat16):
                block = block.float()
            rows = chunk_size or rows_default
            list(pool.map(lambda s: job(q0 + s, block[s : s + rows]), range(0, block.shape[0], rows)))
    valid = npos > 0
    num_valid = int(valid.sum())
    if num_valid == 0:
        raise ReidError("no query has a true match in the gallery", fix="check the query/gallery split and identity labels")
    hist = torch.bincount(first[valid].clamp_max(max_rank), minlength=max_rank + 1)[:max_rank]
    return {
        "cmc": (hist.cumsum(0).double() / num_valid).numpy(),
        "mAP": float(ap[valid].mean()),
        "mINP": float(inp[valid].mean()),
        "num_valid": num_valid,
        "num_skipped": ranker.nq - num_valid,
        "first_match": torch.where(valid, first, -1).numpy(),
    }
