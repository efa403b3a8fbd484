"""The one distance kernel: query × gallery distances block by block, on the features' device, in bounded memory.

Two metrics, each in the form its users need:

- ``"euclidean"``: the *squared* L2 distance ``|q|² + |g|² − 2 q·g`` clamped at 0, as evaluation ranks by
  it (torchreid's default). One ``addmm`` gives the *partial* distance ``|g|² − 2 q·g``; finishing adds
  ``|q|²`` and clamps. Within a row the partial differs from the distance by a constant and a clamp at 0,
  neither of which reverses an order, so a row can be ranked on its partial and only the chosen entries
  finished (what re-ranking does).
- ``"cosine"``: ``1 − cos(q, g)``, one ``addmm`` of the L2-normalised features; its partial is final.

``normalize`` L2-normalises the features first (cosine always does). :class:`Distances` computes any
block of rows and columns, fills whole rows into one reused buffer (:meth:`Distances.blocks`), or
arbitrary (query, gallery) pairs; it works on the gallery's device (queries are moved there) and in
float32 unless told otherwise. :func:`pairwise_distance` is the differentiable form the triplet loss
uses: the plain (not squared) L2 distance, or ``1 − cos``.

Example:
    >>> import torch
    >>> d = Distances(torch.tensor([[0., 0.], [1., 0.]]), torch.tensor([[3., 4.], [1., 0.]]))
    >>> d.matrix().tolist()
    [[25.0, 1.0], [20.0, 0.0]]
    >>> [(start, block.shape[0]) for start, block in d.blocks(rows_per_block=1)]
    [(0, 1), (1, 1)]
"""

from __future__ import annotations

from typing import Iterator, Literal

import torch
import torch.nn.functional as F

from reid.errors import ReidError

Metric = Literal["euclidean", "cosine"]
METRICS: tuple[str, ...] = ("euclidean", "cosine")
DEFAULT_BLOCK_MB = 64  # distance rows computed at once when the caller names no bound


def check_metric(metric: str, what: str = "distance", where: str | None = None) -> None:
    """Raise a :class:`ReidError` unless ``metric`` is one of :data:`METRICS` (``what`` names it in the message).

    Example:
        >>> check_metric("cosine")
        >>> check_metric("l1")
        Traceback (most recent call last):
        ...
        reid.errors.ReidError: unknown distance 'l1'. Fix: use 'euclidean' or 'cosine'
    """
    if metric not in METRICS:
        raise ReidError(f"unknown {what} {metric!r}", where=where, fix="use 'euclidean' or 'cosine'")


def check_features(queries, gallery) -> tuple[torch.Tensor, torch.Tensor]:
    """``queries`` and ``gallery`` as 2-D tensors of one dimension; a :class:`ReidError` says what is wrong.

    Example:
        >>> check_features(torch.zeros(2, 3), torch.zeros(4, 5))
        Traceback (most recent call last):
        ...
        reid.errors.ReidError: query features have dimension 3 but gallery features 5.
    """
    queries, gallery = torch.as_tensor(queries), torch.as_tensor(gallery)
    for x, name in ((queries, "query features"), (gallery, "gallery features")):
        if x.ndim != 2:
            raise ReidError(f"{name} must be 2-D (images × dimension), got shape {tuple(x.shape)}")
    if queries.shape[1] != gallery.shape[1]:
        raise ReidError(f"query features have dimension {queries.shape[1]} but gallery features {gallery.shape[1]}")
    return queries, gallery


def _squared_norms(x: torch.Tensor) -> torch.Tensor:
    return torch.linalg.vector_norm(x, dim=1) ** 2  # no (n, D) temporary


class Distances:
    """Distances between the rows of ``queries`` (``(nq, D)``) and ``gallery`` (``(ng, D)``), block by block.

    Args:
        queries, gallery: features (tensors or arrays); the same tensor twice for one set against itself.
        metric: ``"euclidean"`` (squared L2) or ``"cosine"`` (``1 − cos``).
        normalize: L2-normalise the features first (cosine always does).
        dtype: the floating type computed in and returned (float32 unless told otherwise).

    Everything lives on the gallery's device: the queries are moved there, and every block is made there.
    """

    def __init__(self, queries, gallery, metric: Metric = "euclidean", normalize: bool = False,
                 dtype: torch.dtype = torch.float32):
        one_set = queries is gallery
        queries, gallery = check_features(queries, gallery)
        check_metric(metric)
        gallery = gallery.to(dtype)
        queries = gallery if one_set else queries.to(device=gallery.device, dtype=dtype)
        self.cosine = metric == "cosine"
        if normalize or self.cosine:
            gallery = F.normalize(gallery, dim=1)
            queries = gallery if one_set else F.normalize(queries, dim=1)
        self.queries, self.gallery = queries, gallery
        self.nq, self.ng, self.dtype, self.device = len(queries), len(gallery), dtype, gallery.device
        if self.cosine:
            self._bias, self._query_sq = torch.ones(1, 1, dtype=dtype, device=self.device), None
        else:
            self._bias = _squared_norms(gallery)[None]
            self._query_sq = self._bias[0] if one_set else _squared_norms(queries)

    def rows_within(self, memory_mb: float) -> int:
        """How many whole rows (at least 1) fit in ``memory_mb`` megabytes."""
        return max(1, int(memory_mb * (1 << 20)) // (self.dtype.itemsize * max(self.ng, 1)))

    def partial(self, rows: slice, columns: slice = slice(None),
                out: torch.Tensor | None = None) -> torch.Tensor:
        """Partial distances of queries ``rows`` to gallery ``columns``: ``|g|² − 2 q·g``, or ``1 − cos`` (final).

        ``out`` receives them when given (shape ``(rows, columns)``).
        """
        bias = self._bias if self.cosine else self._bias[:, columns]
        alpha = -1.0 if self.cosine else -2.0
        return torch.addmm(bias, self.queries[rows], self.gallery[columns].t(), alpha=alpha, out=out)

    def finish(self, partial: torch.Tensor, rows: slice | torch.Tensor,
               out: torch.Tensor | None = None) -> torch.Tensor:
        """Distances from partial ones of queries ``rows`` (any columns): ``+ |q|²``, clamped at 0.

        The result goes to ``out`` (``partial`` itself for in place) or to a new tensor; cosine partials are
        final and returned as they are.

        Example:
            >>> d = Distances(torch.tensor([[1., 0.]]), torch.tensor([[1., 0.], [0., 2.]]))
            >>> p = d.partial(slice(0, 1))
            >>> p.tolist(), d.finish(p, slice(0, 1)).tolist()
            ([[-1.0, 4.0]], [[0.0, 5.0]])
        """
        if self.cosine:
            return partial if out is None or out is partial else out.copy_(partial)
        return torch.add(partial, self._query_sq[rows, None], out=out).clamp_min_(0)

    def block(self, rows: slice, columns: slice = slice(None), out: torch.Tensor | None = None) -> torch.Tensor:
        """Distances of queries ``rows`` to gallery ``columns``, into ``out`` when given."""
        partial = self.partial(rows, columns, out)
        return self.finish(partial, rows, out=partial)

    def blocks(self, rows_per_block: int) -> Iterator[tuple[int, torch.Tensor]]:
        """``(first query, distance rows)`` of ``rows_per_block`` whole rows at a time, all in one reused buffer.

        Each block is overwritten by the next: use it (or copy it) before asking for another.
        """
        buffer = torch.empty(min(rows_per_block, self.nq), self.ng, dtype=self.dtype, device=self.device)
        for start in range(0, self.nq, rows_per_block):
            end = min(start + rows_per_block, self.nq)
            yield start, self.block(slice(start, end), out=buffer[: end - start])

    def matrix(self, rows_per_block: int | None = None) -> torch.Tensor:
        """The whole ``(nq, ng)`` matrix, computed ``rows_per_block`` rows at a time (default: about 64 MB)."""
        out = torch.empty(self.nq, self.ng, dtype=self.dtype, device=self.device)
        step = rows_per_block or self.rows_within(DEFAULT_BLOCK_MB)
        for start in range(0, self.nq, step):
            self.block(slice(start, start + step), out=out[start : start + step])
        return out

    def pair_partial(self, rows: torch.Tensor, columns: torch.Tensor,
                     memory_mb: float = DEFAULT_BLOCK_MB) -> torch.Tensor:
        """``(B, M)`` partial distances of query ``rows[b]`` (``rows``: ``(B,)``) to gallery ``columns[b, j]``.

        The values :meth:`partial` gives for those entries, up to rounding (a batched product, not one matrix
        product); the gallery vectors are gathered ``memory_mb`` at a time. :meth:`finish` them with ``rows``.

        Example:
            >>> d = Distances(torch.tensor([[1., 0.]]), torch.tensor([[1., 0.], [0., 2.]]))
            >>> d.pair_partial(torch.tensor([0]), torch.tensor([[1, 0]])).tolist()
            [[4.0, -1.0]]
        """
        out = torch.empty(columns.shape, dtype=self.dtype, device=self.device)
        gathered_row_bytes = self.dtype.itemsize * max(1, columns.shape[1] * self.gallery.shape[1])
        step = max(1, int(memory_mb * (1 << 20)) // gathered_row_bytes)
        for s in range(0, len(rows), step):
            r, c = rows[s : s + step], columns[s : s + step]
            dots = torch.bmm(self.gallery[c], self.queries[r, :, None])[..., 0]
            out[s : s + step] = (1 - dots) if self.cosine else dots.mul_(-2).add_(self._bias[0, c])
        return out


def pairwise_distance(x: torch.Tensor, y: torch.Tensor, metric: str = "euclidean") -> torch.Tensor:
    """``(n, m)`` differentiable distances between the rows of ``x`` and ``y``: the plain L2 distance
    (``sqrt`` of the squared one clamped at 1e-12, so gradients stay finite for coincident rows) or ``1 − cos``.

    Computed in the inputs' dtype and on their device, in one piece (the caller bounds ``x``'s rows).

    Example:
        >>> pairwise_distance(torch.tensor([[0., 0.]]), torch.tensor([[3., 4.]])).tolist()
        [[5.0]]
    """
    check_metric(metric)
    if metric == "cosine":
        return 1 - F.normalize(x, dim=1) @ F.normalize(y, dim=1).t()
    sq = x.pow(2).sum(1, keepdim=True) + y.pow(2).sum(1)[None] - 2 * x @ y.t()
    return sq.clamp_min(1e-12).sqrt()
