"""Training losses: identity cross-entropy, triplet and center loss, combined as the spec says.

- ID loss: ``F.cross_entropy`` with optional label smoothing, on the head's logits (which the
  margin classifiers of :mod:`reid.model.classifiers` already carry their margin in).
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
- Distances (:func:`reid.ops.distance.pairwise_distance`): ``euclidean`` is the plain L2 distance
  (``sqrt`` of the squared distance clamped at 1e-12, so gradients stay finite for coincident
  embeddings); ``cosine`` is ``1 − cos``.
- Center loss (``loss.center_weight``): :func:`center_loss` against learned per-identity centres,
  which :class:`CenterLoss` updates with its own SGD.

:func:`build_loss` turns a :class:`~reid.spec.LossSpec` into a :class:`Criterion` (an ``nn.Module``
whose parameters go into the checkpoint); the terms it can combine are registered in
:data:`reid.registry.LOSSES` (``id``, ``triplet``, ``center``, and any term of your own — a
:class:`LossTerm` subclass or a plain function — weighted by ``loss.terms``).

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
from torch import nn

from reid.errors import ReidError
from reid.ops.distance import check_metric, pairwise_distance
from reid.registry import LOSSES, TRIPLET_MINING
from reid.spec import LossSpec

Gather = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
"""``(features, pids) -> (features, pids)`` of the whole global batch (see :func:`reid.engine.distributed.mining_gather`)."""

_ROW_ENTRIES = 1 << 22  # anchor rows of the distance matrix processed together (bounded memory)


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
    check_metric(distance, "triplet distance", where="loss.triplet_distance")
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


class LossTerm(nn.Module):
    """Base of the built-in loss terms: built from ``(LossSpec, num_classes, embedding dim)``, called as
    ``term(outputs, pids, gather) -> loss`` (unweighted; the criterion weights it).

    A term's parameters join the optimiser in their own parameter group
    (:func:`reid.engine.optim.parameter_groups`) and the checkpoint, unless the term updates them itself:
    such a term sets :attr:`own_optimizer`, and :meth:`step` runs after every optimiser step.

    Attributes:
        needs_logits: whether the term reads ``outputs["logits"]`` (the model computes logits only then).
        own_optimizer: the optimiser of parameters the term updates itself, or None.
    """

    needs_logits = False
    own_optimizer: torch.optim.Optimizer | None = None

    def step(self, weight: float, grad_scale: float = 1.0) -> None:
        """Update the parameters of :attr:`own_optimizer` (nothing here). ``weight`` is the term's weight in the
        criterion, ``grad_scale`` what undoes a loss scaler's factor on the gradients (1 without one)."""


@LOSSES.register("id")
class IDLoss(LossTerm):
    """Cross-entropy on the head's logits (margin-aware for the margin classifiers), label-smoothed as
    ``loss.label_smoothing`` says."""

    needs_logits = True

    def __init__(self, spec: LossSpec, num_classes: int | None = None, dim: int | None = None):
        super().__init__()
        self.label_smoothing = spec.label_smoothing

    def forward(self, outputs: dict, pids: torch.Tensor, gather: Gather | None = None) -> torch.Tensor:
        """The ID loss of this rank's batch (DDP averages it over ranks)."""
        logits = outputs.get("logits")
        if logits is None:
            raise ReidError("ID loss needs logits but the model's head has no classifier",
                            where="loss.id_weight", fix='set head.type = "classifier" or "bnneck", or loss.id_weight = 0')
        return id_loss(logits, pids, self.label_smoothing)


@LOSSES.register("triplet")
class TripletLoss(LossTerm):
    """:func:`triplet_loss` on the pre-neck features, mined over the global batch under torchrun."""

    def __init__(self, spec: LossSpec, num_classes: int | None = None, dim: int | None = None):
        super().__init__()
        self.margin, self.mining, self.distance = spec.margin, spec.mining, spec.triplet_distance

    def forward(self, outputs: dict, pids: torch.Tensor, gather: Gather | None = None) -> torch.Tensor:
        """The triplet loss of the (gathered) batch."""
        features = outputs["features"]
        if gather is not None:
            features, pids = gather(features, pids)
        return triplet_loss(features, pids, self.margin, self.mining, self.distance)


def center_loss(features: torch.Tensor, pids: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
    """Mean squared distance of each feature to its identity's centre: ``mean_i ‖f_i − c_{y_i}‖²`` — the
    Bag-of-Tricks baseline's center loss (Wen et al. 2016 without the ½).

    Example:
        >>> float(center_loss(torch.tensor([[1., 0.], [0., 3.]]), torch.tensor([0, 1]), torch.zeros(2, 2)))
        5.0
    """
    return (features - centers[pids]).pow(2).sum(1).mean()


@LOSSES.register("center")
class CenterLoss(LossTerm):
    """Center loss with its own centres (``num_classes × dim``, N(0, 1) at the start), as the Bag-of-Tricks
    baseline trains them: a plain SGD of their own at ``loss.center_lr`` on the gradient of the *unweighted*
    loss (the criterion's gradient divided by ``loss.center_weight``), no weight decay, no schedule.

    Under torchrun the loss is computed on the gathered global batch, so every rank computes the same
    gradient for the centres and they stay equal without an all-reduce.
    """

    def __init__(self, spec: LossSpec, num_classes: int | None = None, dim: int | None = None):
        super().__init__()
        if not num_classes or not dim:
            raise ReidError("center loss needs the number of training identities and the embedding size",
                            where="loss.center_weight", fix="build the criterion with num_classes and dim")
        self.centers = nn.Parameter(torch.randn(num_classes, dim))
        self.own_optimizer = torch.optim.SGD([self.centers], lr=spec.center_lr)

    def forward(self, outputs: dict, pids: torch.Tensor, gather: Gather | None = None) -> torch.Tensor:
        """The center loss of the (gathered) batch."""
        features = outputs["features"]
        if gather is not None:
            features, pids = gather(features, pids)
        return center_loss(features, pids, self.centers)

    def step(self, weight: float, grad_scale: float = 1.0) -> None:
        """One SGD step of the centres on the unweighted loss's gradient (skipped if it is not finite)."""
        grad = self.centers.grad
        if grad is None:
            return
        grad.mul_(grad_scale / weight)
        if bool(torch.isfinite(grad).all()):
            self.own_optimizer.step()
        self.own_optimizer.zero_grad(set_to_none=True)


class FunctionTerm(LossTerm):
    """A loss term registered as a plain function ``(outputs, pids, LossSpec, gather) -> loss`` (no parameters)."""

    def __init__(self, function: Callable, spec: LossSpec):
        super().__init__()
        self.function, self.spec = function, spec

    def forward(self, outputs: dict, pids: torch.Tensor, gather: Gather | None = None) -> torch.Tensor:
        """The function's value."""
        return self.function(outputs, pids, self.spec, gather)


def build_term(name: str, spec: LossSpec, num_classes: int | None, dim: int | None) -> nn.Module:
    """The term registered as ``name``: a :class:`LossTerm` class is built with ``(spec, num_classes, dim)``, a
    function is wrapped in a :class:`FunctionTerm`."""
    factory = LOSSES.get(name)
    if isinstance(factory, type) and issubclass(factory, nn.Module):
        return factory(spec, num_classes, dim)
    return FunctionTerm(factory, spec)


class Criterion(nn.Module):
    """Weighted sum of the loss terms a :class:`~reid.spec.LossSpec` switches on, with their parameters.

    ``criterion(outputs, pids) -> (total, parts)``: ``outputs`` is the model's
    ``{"features": (B, D), "logits": (B, C) or None}``; ``total`` is the weighted sum (a
    tensor to backpropagate); ``parts`` maps each active term (``"id"``, ``"triplet"``, ``"center"``,
    ``loss.terms``) to its *unweighted* value as a detached 0-dim tensor on the device (read it back
    only when logging: ``float()`` waits for the GPU).

    Its parameters (e.g. center loss's centres) are saved with the run's checkpoint; those of terms
    without an own optimiser join the training optimiser (:meth:`optimized_parameters`); call
    :meth:`step` after every optimiser step for the others.

    Under torchrun, ``gather`` (:func:`reid.engine.distributed.mining_gather`) makes the triplet and
    center terms see every rank's batch; the ID term stays per rank (DDP averages it).
    """

    def __init__(self, spec: LossSpec, num_classes: int | None = None, dim: int | None = None,
                 gather: Gather | None = None):
        super().__init__()
        weights = {"id": spec.id_weight, "triplet": spec.triplet_weight, "center": spec.center_weight, **spec.terms}
        self.weights = {name: float(w) for name, w in weights.items() if w > 0}
        self.terms = nn.ModuleDict({name: build_term(name, spec, num_classes, dim) for name in self.weights})
        self.gather = gather

    @property
    def needs_logits(self) -> bool:
        """Whether any active term reads the logits (the model computes them only then)."""
        return any(term.needs_logits for term in self.terms.values())

    @property
    def updates_itself(self) -> bool:
        """Whether a term has an own optimiser (then :meth:`step` must run after every optimiser step)."""
        return any(term.own_optimizer is not None for term in self.terms.values())

    def optimized_parameters(self) -> list[nn.Parameter]:
        """The parameters the training optimiser updates (those of terms without an own optimiser)."""
        return [p for term in self.terms.values() if term.own_optimizer is None for p in term.parameters()]

    def forward(self, outputs: dict, pids: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Total loss and its unweighted parts for one batch."""
        total, parts = 0, {}
        for name, term in self.terms.items():
            value = term(outputs, pids, self.gather)
            total = total + self.weights[name] * value
            parts[name] = value.detach()
        return total, parts

    def step(self, grad_scale: float = 1.0) -> None:
        """Let terms with an own optimiser update their parameters (after the training optimiser's step)."""
        for name, term in self.terms.items():
            term.step(self.weights[name], grad_scale)


def build_loss(spec: LossSpec, num_classes: int | None = None, dim: int | None = None,
               gather: Gather | None = None) -> Criterion:
    """The training criterion of ``spec`` (terms with weight 0 are switched off) for ``num_classes`` identities and
    ``dim``-d features (needed by terms with parameters, e.g. center loss); ``gather``: see :class:`Criterion`."""
    return Criterion(spec, num_classes, dim, gather)
