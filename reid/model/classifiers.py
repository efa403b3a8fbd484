"""Classifier layers of the heads, in the :data:`CLASSIFIERS` registry (``head.classifier``), as fast-reid has them.

A classifier maps the head's (B, D) features to (B, C) logits for the ID loss. The margin
classifiers are *target-aware*: in training they get the batch's identities and move the
target logit by a margin, so cross-entropy on their logits is the published loss. Without
identities (evaluation, FLOP counts) every classifier returns its plain logits. With
``cos θ_j`` the cosine between the L2-normalised feature and class ``j``'s normalised weight
row, ``s`` = ``head.scale`` and ``m`` = ``head.margin``:

- ``linear``: ``W x (+ b)``, the ordinary fully connected layer; ``s`` and ``m`` unused.
- ``cosface`` (Wang et al., CVPR 2018, large-margin cosine): ``s·(cos θ_y − m)`` for the target,
  ``s·cos θ_j`` for the others.
- ``arcface`` (Deng et al., CVPR 2019, additive angular margin): ``s·cos(θ_y + m)`` for the
  target while ``θ_y + m ≤ π``, else ``s·(cos θ_y − m·sin m)`` (the published fallback that keeps the
  target logit decreasing in ``θ``); ``s·cos θ_j`` for the others.
- ``circle`` (Sun et al., CVPR 2020, circle loss in its classification form): with
  ``α_p = [1 + m − cos θ_y]₊`` and ``α_n = [cos θ_j + m]₊`` (both constants for the gradient),
  ``s·α_p·(cos θ_y − (1 − m))`` for the target and ``s·α_n·(cos θ_j − m)`` for the others.

Every classifier's weight is ``classifier.weight`` (C, D), so a checkpoint's keys do not depend
on the choice, and :meth:`fresh` builds a new one of the same kind for other identities.

Example:
    >>> import torch
    >>> from reid.spec import HeadSpec
    >>> layer = build_classifier(HeadSpec(classifier="cosface", scale=10.0, margin=0.5), dim=4, num_classes=3)
    >>> x, y = torch.randn(2, 4), torch.tensor([0, 2])
    >>> margin, plain = layer(x, y), layer(x)
    >>> torch.allclose(plain - margin, torch.tensor([[5.0, 0, 0], [0, 0, 5.0]]))
    True
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from reid.registry import CLASSIFIERS
from reid.spec import HeadSpec


class Linear(nn.Linear):
    """The plain fully connected classifier (``nn.Linear``); identities are accepted and ignored."""

    def forward(self, features: torch.Tensor, pids: torch.Tensor | None = None) -> torch.Tensor:
        """(B, D) → (B, C) logits."""
        return super().forward(features)

    @classmethod
    def initialised(cls, dim: int, num_classes: int, bias: bool) -> Linear:
        """A new layer; without a bias (the BN neck's classifier) its weights start at N(0, 0.001²), as BoT's."""
        layer = cls(dim, num_classes, bias=bias)
        if not bias:
            nn.init.normal_(layer.weight, std=0.001)
        return layer

    def fresh(self, num_classes: int) -> Linear:
        """A newly initialised classifier of the same kind with ``num_classes`` outputs."""
        return self.initialised(self.in_features, num_classes, self.bias is not None).to(self.weight.device)


class CosineClassifier(nn.Module):
    """``s·cos θ`` logits between normalised features and normalised class weights; subclasses add a margin to
    the target class in training (:meth:`with_margin`)."""

    def __init__(self, dim: int, num_classes: int, scale: float, margin: float):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_classes, dim))
        nn.init.normal_(self.weight, std=0.01)
        self.scale, self.margin = float(scale), float(margin)

    @property
    def out_features(self) -> int:
        """Number of classes."""
        return self.weight.shape[0]

    @property
    def in_features(self) -> int:
        """Feature dimension."""
        return self.weight.shape[1]

    def forward(self, features: torch.Tensor, pids: torch.Tensor | None = None) -> torch.Tensor:
        """(B, D) → (B, C) logits: ``s·cos θ``, with the margin applied to each row's target when ``pids`` is given."""
        cos = F.linear(F.normalize(features, dim=1), F.normalize(self.weight, dim=1))
        return self.scale * (cos if pids is None else self.with_margin(cos, pids))

    def with_margin(self, cos: torch.Tensor, pids: torch.Tensor) -> torch.Tensor:
        """The (B, C) cosines with the margin applied (before scaling); the base class applies none."""
        return cos

    def fresh(self, num_classes: int) -> CosineClassifier:
        """A newly initialised classifier of the same kind with ``num_classes`` outputs."""
        return type(self)(self.in_features, num_classes, self.scale, self.margin).to(self.weight.device)

    def extra_repr(self) -> str:
        """Shown by ``print(model)``."""
        return f"in_features={self.in_features}, out_features={self.out_features}, scale={self.scale}, margin={self.margin}"


def _target_mask(cos: torch.Tensor, pids: torch.Tensor) -> torch.Tensor:
    """(B, C) boolean mask of each row's target class."""
    return F.one_hot(pids.long(), cos.shape[1]).bool()


class CosFace(CosineClassifier):
    """Large-margin cosine (CosFace): the target's cosine minus ``m``."""

    def with_margin(self, cos: torch.Tensor, pids: torch.Tensor) -> torch.Tensor:
        """``cos θ_y − m`` at the target, ``cos θ_j`` elsewhere."""
        return cos - self.margin * _target_mask(cos, pids)


class ArcFace(CosineClassifier):
    """Additive angular margin (ArcFace): the target's angle plus ``m``, with the published fallback near π."""

    def with_margin(self, cos: torch.Tensor, pids: torch.Tensor) -> torch.Tensor:
        """``cos(θ_y + m)`` at the target (``cos θ_y − m·sin m`` once ``θ_y + m > π``), ``cos θ_j`` elsewhere."""
        m = self.margin
        sin = (1 - cos * cos).clamp_min(1e-12).sqrt()  # sin θ ≥ 0 on [0, π]; clamped: finite gradient at |cos| = 1
        shifted = torch.where(cos > math.cos(math.pi - m), cos * math.cos(m) - sin * math.sin(m), cos - m * math.sin(m))
        return torch.where(_target_mask(cos, pids), shifted, cos)


class Circle(CosineClassifier):
    """Circle loss in its classification form: self-paced weights ``α`` (no gradient) and margins ``1 − m`` / ``m``."""

    def with_margin(self, cos: torch.Tensor, pids: torch.Tensor) -> torch.Tensor:
        """``α_p·(cos θ_y − (1 − m))`` at the target, ``α_n·(cos θ_j − m)`` elsewhere."""
        m, fixed = self.margin, cos.detach()
        positive = (1 + m - fixed).clamp_min(0) * (cos - (1 - m))
        negative = (fixed + m).clamp_min(0) * (cos - m)
        return torch.where(_target_mask(cos, pids), positive, negative)


@CLASSIFIERS.register("linear")
def linear_classifier(spec: HeadSpec, dim: int, num_classes: int, bias: bool) -> nn.Module:
    """``nn.Linear(dim, num_classes, bias)``, initialised as :meth:`Linear.initialised` says."""
    return Linear.initialised(dim, num_classes, bias)


@CLASSIFIERS.register("cosface")
def cosface_classifier(spec: HeadSpec, dim: int, num_classes: int, bias: bool) -> nn.Module:
    """CosFace with ``head.scale`` and ``head.margin`` (no bias)."""
    return CosFace(dim, num_classes, spec.scale, spec.margin)


@CLASSIFIERS.register("arcface")
def arcface_classifier(spec: HeadSpec, dim: int, num_classes: int, bias: bool) -> nn.Module:
    """ArcFace with ``head.scale`` and ``head.margin`` (radians; no bias)."""
    return ArcFace(dim, num_classes, spec.scale, spec.margin)


@CLASSIFIERS.register("circle")
def circle_classifier(spec: HeadSpec, dim: int, num_classes: int, bias: bool) -> nn.Module:
    """Circle loss's classifier with ``head.scale`` (γ) and ``head.margin`` (relaxation m; no bias)."""
    return Circle(dim, num_classes, spec.scale, spec.margin)


def build_classifier(spec: HeadSpec, dim: int, num_classes: int, bias: bool = False) -> nn.Module:
    """The classifier named by ``spec.classifier``; ``bias`` applies to ``linear`` only."""
    return CLASSIFIERS.get(spec.classifier)(spec, dim, num_classes, bias)
