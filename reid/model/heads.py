"""Heads that sit on the pooled embedding, in the :data:`HEADS` registry.

Every head maps the (B, D) pooled features (and, in training, the batch's identities, which
the margin classifiers need) to ``(embedding, logits)``: ``embedding`` is what retrieval uses,
``logits`` is (B, num_classes), or None when there is no classifier or when the caller asks for
none (``logits=False``: no ID loss is active). The classifier layer is ``head.classifier``
(:mod:`reid.model.classifiers`: linear, cosface, arcface, circle).

- ``none``: embedding only (e.g. triplet-only training).
- ``classifier``: dropout + classifier(D, num_classes); retrieval uses the pooled features.
- ``bnneck``: BatchNorm1d neck with frozen bias, then a bias-free classifier(D, num_classes)
  — the "strong baseline" (Luo et al., 2019); retrieval uses the post-BN features (or the pre-BN
  ones: ``HeadSpec.neck_feature = "before"``), triplet loss the pre-BN ones. ``HeadSpec.dropout``
  and ``HeadSpec.bias`` do not apply.

Example:
    >>> from reid.spec import HeadSpec
    >>> head = build_head(HeadSpec(type="bnneck"), dim=512, num_classes=10)
    >>> emb, logits = head(torch.randn(4, 512))
    >>> emb.shape, logits.shape, head.neck.bias.requires_grad
    (torch.Size([4, 512]), torch.Size([4, 10]), False)
"""

from __future__ import annotations

import torch
from torch import nn

from reid.errors import ReidError
from reid.model.classifiers import build_classifier
from reid.registry import HEADS
from reid.spec import HeadSpec


class EmbeddingHead(nn.Module):
    """No classifier: the pooled features are the embedding."""

    num_classes: int | None = None

    def forward(self, features: torch.Tensor, pids: torch.Tensor | None = None,
                logits: bool = True) -> tuple[torch.Tensor, None]:
        """(B, D) → ((B, D), None)."""
        return features, None


class ClassifyingHead(nn.Module):
    """Base of the heads with a classifier layer (:mod:`reid.model.classifiers`)."""

    def __init__(self, classifier: nn.Module):
        super().__init__()
        self.classifier = classifier

    @property
    def num_classes(self) -> int:
        """Outputs of the classifier."""
        return self.classifier.out_features

    def replace_classifier(self, num_classes: int) -> None:
        """A fresh classifier of the same kind with ``num_classes`` outputs (e.g. to fine-tune on new identities)."""
        self.classifier = self.classifier.fresh(num_classes)

    def unreached_parameters(self) -> list[nn.Parameter]:
        """The parameters only the ID loss trains (the classifier's; subclasses add theirs)."""
        return list(self.classifier.parameters())


class ClassifierHead(ClassifyingHead):
    """Dropout + a classifier layer; retrieval uses the pooled features."""

    def __init__(self, classifier: nn.Module, dropout: float = 0.5):
        super().__init__(classifier)
        self.dropout = nn.Dropout(dropout)

    def forward(self, features: torch.Tensor, pids: torch.Tensor | None = None,
                logits: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(B, D) → ((B, D) features, (B, C) logits — margin-aware when ``pids`` is given — or None when
        ``logits`` is False)."""
        return features, self.classifier(self.dropout(features), pids) if logits else None


class BNNeckHead(ClassifyingHead):
    """BatchNorm1d neck (bias frozen at 0) + a bias-free classifier; retrieval uses the post-BN features, or the
    pre-BN ones when ``before_neck``."""

    def __init__(self, dim: int, classifier: nn.Module, before_neck: bool = False):
        super().__init__(classifier)
        self.neck = nn.BatchNorm1d(dim)
        self.neck.bias.requires_grad_(False)
        self.before_neck = before_neck

    def forward(self, features: torch.Tensor, pids: torch.Tensor | None = None,
                logits: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(B, D) → ((B, D) embedding — post-BN, or the input when ``before_neck`` —, (B, C) logits or None)."""
        neck = self.neck(features)
        return features if self.before_neck else neck, self.classifier(neck, pids) if logits else None

    def unreached_parameters(self) -> list[nn.Parameter]:
        """What only the ID loss trains: the neck's scale and the classifier (the other losses see pre-BN features)."""
        return [self.neck.weight, *super().unreached_parameters()]


def _need_classes(spec: HeadSpec, num_classes: int | None) -> int:
    if num_classes is None or num_classes < 1:
        raise ReidError(
            f"head {spec.type!r} needs a positive number of classes, got {num_classes}",
            where="head.type",
            fix='pass num_classes (the number of training identities) or use head.type = "none"',
        )
    return num_classes


@HEADS.register("none")
def embedding_head(spec: HeadSpec, dim: int, num_classes: int | None) -> nn.Module:
    """Embedding only; ``num_classes`` is ignored."""
    return EmbeddingHead()


@HEADS.register("classifier")
def classifier_head(spec: HeadSpec, dim: int, num_classes: int | None) -> nn.Module:
    """Dropout(``spec.dropout``) + the ``spec.classifier`` layer (``linear``: bias = ``spec.bias``)."""
    return ClassifierHead(build_classifier(spec, dim, _need_classes(spec, num_classes), spec.bias), spec.dropout)


@HEADS.register("bnneck")
def bnneck_head(spec: HeadSpec, dim: int, num_classes: int | None) -> nn.Module:
    """BatchNorm1d neck + the bias-free ``spec.classifier`` layer (strong baseline); retrieval embeds with the
    features ``spec.neck_feature`` names."""
    return BNNeckHead(dim, build_classifier(spec, dim, _need_classes(spec, num_classes), bias=False),
                      before_neck=spec.neck_feature == "before")


def build_head(spec: HeadSpec, dim: int, num_classes: int | None) -> nn.Module:
    """The head named by ``spec.type`` for ``dim``-d features."""
    return HEADS.get(spec.type)(spec, dim, num_classes)
