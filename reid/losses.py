"""Training losses: identity cross-entropy and triplet loss, combined as the spec says.

- ID loss: ``F.cross_entropy`` with optional label smoothing, on the head's logits.
- Triplet loss on the pooled embedding, with one of three mining rules (registry
  :data:`TRIPLET_MINING`), each a mean over the anchors / triplets that exist in the batch:

  * ``hard`` (batch-hard, Hermans et al. 2017): per anchor, ``relu(d(a, hardest positive)
    − d(a, hardest negative) + margin)``;
  * ``soft`` (soft-margin batch-hard): ``softplus(d(a, p*) − d(a, n*))``; no margin;
  * ``all`` (batch-all): ``relu(d(a, p) − d(a, n) + margin)`` over every valid triplet,
    averaged over the triplets whose loss is positive (0 when none is).

  Anchors without a positive (an identity seen once in the batch) or without a negative
  (a one-identity batch) take no part; a batch without any valid anchor gives 0 (with a
  gradient of 0, never NaN). The anchor itself is never its own positive.
- Distances: ``euclidean`` is the plain L2 distance (``sqrt`` of the squared distance
  clamped at 1e-12, so gradients stay finite for coincident embeddings); ``cosine`` is
  ``1 − cos``.

:func:`build_loss` turns a :class:`~reid.spec.LossSpec` into a :class:`Criterion`; the
terms it can combine are registered in :data:`reid.registry.LOSSES` (``id``, ``triplet``,
and any term of your own, weighted by ``loss.terms``).

Example:
    >>> import torch
    >>> from reid.spec import LossSpec
    >>> crit = build_loss(LossSpec(id_weight=1.0, triplet_weight=1.0))
    >>> out = {"features": torch.randn(4, 8), "logits": torch.randn(4, 3)}
    >>> total, parts = crit(out, torch.tensor([0, 0, 1, 1]))
    >>> sorted(parts)
    ['id', 'triplet']
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from reid.errors import ReidError
from reid.registry import LOSSES, TRIPLET_MINING
from reid.spec import LossSpec

Gather = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
"""``(features, pids) -> (features, pids)`` of the whole global batch (see :func:`reid.engine.distributed.mining_gather`)."""
Term = Callable[[dict, torch.Tensor, LossSpec, Gather | None], torch.Tensor]  # (outputs, pids, spec, gather) -> loss

_ROW_ENTRIES = 1 << 22  # anchor rows of the distance matrix processed together (bounded memory)


def pairwise_distance(x: torch.Tensor, y: torch.Tensor, distance: str = "euclidean") -> torch.Tensor:
    """``(n, m)`` distances between the rows of ``x`` and ``y``: plain L2 (stable gradients) or ``1 − cos``.

    Example:
        >>> pairwise_distance(torch.tensor([[0., 0.]]), torch.tensor([[3., 4.]])).tolist()
        [[5.0]]
    """
    if distance == "cosine":
        return 1 - F.normalize(x, dim=1) @ F.normalize(y, dim=1).t()
    if distance == "euclidean":
        sq = x.pow(2).sum(1, keepdim=True) + y.pow(2).sum(1)[None] - 2 * x @ y.t()
        return sq.clamp_min(1e-12).sqrt()
    raise ReidError(f"unknown triplet distance {distance!r}", where="loss.triplet_distance", fix="use 'euclidean' or 'cosine'")


@TRIPLET_MINING.register("hard")
def _batch_hard(dist: torch.Tensor, same: torch.Tensor, diff: torch.Tensor, margin: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum of batch-hard hinge losses over the valid anchors of these rows, and their count (a tensor)."""
    gap, valid = _hardest_gap(dist, same, diff)
    return torch.where(valid, F.relu(gap + margin), 0).sum(), valid.sum()


@TRIPLET_MINING.register("soft")
def _soft_margin(dist: torch.Tensor, same: torch.Tensor, diff: torch.Tensor, margin: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum of soft-margin (softplus) batch-hard losses over the valid anchors, and their count; ``margin`` unused."""
    gap, valid = _hardest_gap(dist, same, diff)
    return torch.where(valid, F.softplus(gap), 0).sum(), valid.sum()


@TRIPLET_MINING.register("all")
def _batch_all(dist: torch.Tensor, same: torch.Tensor, diff: torch.Tensor, margin: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum of hinge losses over every valid triplet of these anchors, and how many are positive (a tensor)."""
    losses = F.relu(dist[:, :, None] - dist[:, None, :] + margin)  # (anchor, positive, negative)
    losses = losses * (same[:, :, None] & diff[:, None, :])
    return losses.sum(), (losses > 0).sum()


def _hardest_gap(dist, same, diff):
    """``d(a, hardest positive) − d(a, hardest negative)`` per anchor row (0 where the anchor is not valid)."""
    valid = same.any(1) & diff.any(1)
    hardest_pos = torch.where(same, dist, float("-inf")).amax(1)
    hardest_neg = torch.where(diff, dist, float("inf")).amin(1)
    return torch.where(valid, hardest_pos - hardest_neg, 0), valid  # −inf, never NaN, before masking


def triplet_loss(
    features: torch.Tensor,
    pids: torch.Tensor,
    margin: float = 0.3,
    mining: str = "hard",
    distance: str = "euclidean",
) -> torch.Tensor:
    """Triplet loss of a batch of embeddings ``(B, D)`` with identities ``(B,)`` (see the module notes).

    Anchors are processed in row blocks, so with ``hard`` / ``soft`` mining large sets (e.g.
    a whole validation set under ``torch.no_grad()``) need memory for a block of the
    distance matrix only; ``all`` needs ``B²`` entries per anchor (training batches).
    Everything stays on the features' device: no value is read back to the host (masks
    multiply instead of indexing, counts stay tensors).

    Example:
        >>> f = torch.tensor([[0.], [0.1], [5.], [5.2]])
        >>> float(triplet_loss(f, torch.tensor([0, 0, 1, 1]), margin=0.3))
        0.0
    """
    rule = TRIPLET_MINING.get(mining)
    pids = torch.as_tensor(pids, device=features.device)
    if features.ndim != 2 or pids.shape != features.shape[:1]:
        raise ReidError(f"triplet loss needs (B, D) features and (B,) identities, got {tuple(features.shape)} and {tuple(pids.shape)}")
    n = features.shape[0]
    per_row = n * n if mining == "all" else n
    step = max(1, _ROW_ENTRIES // max(per_row, 1))
    columns = torch.arange(n, device=features.device)
    total, count = features.sum() * 0, torch.zeros((), dtype=torch.long, device=features.device)
    for s in range(0, n, step):
        rows = columns[s:s + step]
        same = pids[s:s + step, None] == pids[None]
        diff = ~same
        same &= rows[:, None] != columns[None]  # an anchor is not its own positive
        part, k = rule(pairwise_distance(features[s:s + step], features, distance), same, diff, margin)
        total, count = total + part, count + k
    return total / count.clamp_min(1)


def id_loss(logits: torch.Tensor, pids: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy of ``(B, C)`` logits against identity indices ``(B,)``, optionally label-smoothed.

    With smoothing ε the target is ``(1 − ε)·onehot + ε / C``.
    """
    return F.cross_entropy(logits, pids, label_smoothing=label_smoothing)


@LOSSES.register("id")
def _id_term(outputs: dict, pids: torch.Tensor, spec: LossSpec, gather: Gather | None) -> torch.Tensor:
    logits = outputs.get("logits")
    if logits is None:
        raise ReidError("ID loss needs logits but the model's head has no classifier",
                        where="loss.id_weight", fix='set head.type = "classifier" or "bnneck", or loss.id_weight = 0')
    return id_loss(logits, pids, spec.label_smoothing)


@LOSSES.register("triplet")
def _triplet_term(outputs: dict, pids: torch.Tensor, spec: LossSpec, gather: Gather | None) -> torch.Tensor:
    features = outputs["features"]
    if gather is not None:
        features, pids = gather(features, pids)
    return triplet_loss(features, pids, spec.margin, spec.mining, spec.triplet_distance)


class Criterion:
    """Weighted sum of the loss terms a :class:`~reid.spec.LossSpec` switches on.

    ``criterion(outputs, pids) -> (total, parts)``: ``outputs`` is the model's
    ``{"features": (B, D), "logits": (B, C) or None}``; ``total`` is the weighted sum (a
    tensor to backpropagate); ``parts`` maps each active term (``"id"``, ``"triplet"``, ``loss.terms``)
    to its *unweighted* value as a detached 0-dim tensor on the device (read it back only
    when logging: ``float()`` waits for the GPU).

    Under torchrun, ``gather`` (:func:`reid.engine.distributed.mining_gather`) makes the
    triplet term mine over every rank's batch; the ID term stays per rank (DDP averages it).
    """

    def __init__(self, spec: LossSpec, gather: Gather | None = None):
        self.spec, self.gather = spec, gather
        weights = {"id": spec.id_weight, "triplet": spec.triplet_weight, **spec.terms}
        self.terms = [(name, w, LOSSES.get(name)) for name, w in weights.items() if w > 0]

    def __call__(self, outputs: dict, pids: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Total loss and its unweighted parts for one batch."""
        total, parts = 0, {}
        for name, weight, term in self.terms:
            value = term(outputs, pids, self.spec, self.gather)
            total = total + weight * value
            parts[name] = value.detach()
        return total, parts


def build_loss(spec: LossSpec, gather: Gather | None = None) -> Criterion:
    """The training criterion of ``spec`` (terms with weight 0 are switched off); ``gather``: see :class:`Criterion`."""
    return Criterion(spec, gather)
