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
terms it can combine are registered in :data:`LOSSES`.

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
from reid.registry import Registry
from reid.spec import LossSpec

Term = Callable[[dict, torch.Tensor, LossSpec], torch.Tensor]
LOSSES: Registry[Term] = Registry("loss")
TRIPLET_MINING: Registry[Callable] = Registry("triplet mining")

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
def _batch_hard(dist: torch.Tensor, same: torch.Tensor, diff: torch.Tensor, margin: float) -> tuple[torch.Tensor, int]:
    """Sum of batch-hard hinge losses over the valid anchors of these rows, and their count."""
    hardest_pos, hardest_neg, valid = _hardest(dist, same, diff)
    return F.relu(hardest_pos - hardest_neg + margin).sum(), int(valid.sum())


@TRIPLET_MINING.register("soft")
def _soft_margin(dist: torch.Tensor, same: torch.Tensor, diff: torch.Tensor, margin: float) -> tuple[torch.Tensor, int]:
    """Sum of soft-margin (softplus) batch-hard losses over the valid anchors, and their count; ``margin`` unused."""
    hardest_pos, hardest_neg, valid = _hardest(dist, same, diff)
    return F.softplus(hardest_pos - hardest_neg).sum(), int(valid.sum())


@TRIPLET_MINING.register("all")
def _batch_all(dist: torch.Tensor, same: torch.Tensor, diff: torch.Tensor, margin: float) -> tuple[torch.Tensor, int]:
    """Sum of hinge losses over every valid triplet of these anchors, and how many are positive."""
    losses = F.relu(dist[:, :, None] - dist[:, None, :] + margin)  # (anchor, positive, negative)
    valid = same[:, :, None] & diff[:, None, :]
    losses = losses[valid]
    return losses.sum(), int((losses > 0).sum())


def _hardest(dist, same, diff):
    valid = same.any(1) & diff.any(1)
    dist, same, diff = dist[valid], same[valid], diff[valid]
    hardest_pos = torch.where(same, dist, float("-inf")).amax(1)
    hardest_neg = torch.where(diff, dist, float("inf")).amin(1)
    return hardest_pos, hardest_neg, valid


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
    total, count = features.sum() * 0, 0
    for s in range(0, n, step):
        rows = torch.arange(s, min(s + step, n), device=features.device)
        same = pids[rows, None] == pids[None]
        diff = ~same
        same[torch.arange(len(rows)), rows] = False
        part, k = rule(pairwise_distance(features[rows], features, distance), same, diff, margin)
        total, count = total + part, count + k
    return total / max(count, 1)


def id_loss(logits: torch.Tensor, pids: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy of ``(B, C)`` logits against identity indices ``(B,)``, optionally label-smoothed.

    With smoothing ε the target is ``(1 − ε)·onehot + ε / C``.
    """
    return F.cross_entropy(logits, pids, label_smoothing=label_smoothing)


@LOSSES.register("id")
def _id_term(outputs: dict, pids: torch.Tensor, spec: LossSpec) -> torch.Tensor:
    logits = outputs.get("logits")
    if logits is None:
        raise ReidError("ID loss needs logits but the model's head has no classifier",
                        where="loss.id_weight", fix='set head.type = "classifier" or "bnneck", or loss.id_weight = 0')
    return id_loss(logits, pids, spec.label_smoothing)


@LOSSES.register("triplet")
def _triplet_term(outputs: dict, pids: torch.Tensor, spec: LossSpec) -> torch.Tensor:
    return triplet_loss(outputs["features"], pids, spec.margin, spec.mining, spec.triplet_distance)


class Criterion:
    """Weighted sum of the loss terms a :class:`~reid.spec.LossSpec` switches on.

    ``criterion(outputs, pids) -> (total, parts)``: ``outputs`` is the model's
    ``{"features": (B, D), "logits": (B, C) or None}``; ``total`` is the weighted sum (a
    tensor to backpropagate); ``parts`` maps each active term (``"id"``, ``"triplet"``)
    to its *unweighted* value as a float.
    """

    def __init__(self, spec: LossSpec):
        self.spec = spec
        weights = {"id": spec.id_weight, "triplet": spec.triplet_weight}
        self.terms = [(name, w, LOSSES.get(name)) for name, w in weights.items() if w > 0]

    def __call__(self, outputs: dict, pids: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """Total loss and its unweighted parts for one batch."""
        total, parts = 0, {}
        for name, weight, term in self.terms:
            value = term(outputs, pids, self.spec)
            total = total + weight * value
            parts[name] = float(value.detach())
        return total, parts


def build_loss(spec: LossSpec) -> Criterion:
    """The training criterion of ``spec`` (terms with weight 0 are switched off)."""
    return Criterion(spec)
