"""Heads that sit on the pooled embedding, in the :data:`HEADS` registry.

Every head maps the (B, D) pooled features to ``(embedding, logits)``: ``embedding``
is what retrieval uses, ``logits`` is (B, num_classes) or None when there is no
classifier.

- ``none``: embedding only (e.g. triplet-only training).
- ``classifier``: dropout + Linear(D, num_classes); retrieval uses the pooled features.
- ``bnneck``: BatchNorm1d neck with frozen bias, then Linear(D, num_classes, bias=False)
  — the "strong baseline" (Luo et al., 2019); retrieval uses the post-BN features,
  triplet loss the pre-BN ones. ``HeadSpec.dropout`` and ``HeadSpec.bias`` do not apply.

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
from reid.registry import HEADS
from reid.spec import HeadSpec


class EmbeddingHead(nn.Module):
    """No classifier: the pooled features are the embedding."""

    num_classes: int | None = None

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, None]:
        """(B, D) → ((B, D), None)."""
        return features, None


class ClassifierHead(nn.Module):
    """Dropout + Linear classifier; retrieval uses the pooled features."""

    def __init__(self, dim: int, num_classes: int, dropout: float = 0.5, bias: bool = True):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(dim, num_classes, bias=bias)

    @property
    def num_classes(self) -> int:
        """Outputs of the classifier."""
        return self.classifier.out_features

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, D) → ((B, D) features, (B, C) logits)."""
        return features, self.classifier(self.dropout(features))

    def replace_classifier(self, num_classes: int) -> None:
        """A fresh Linear layer with ``num_classes`` outputs (e.g. to fine-tune on new identities)."""
        old = self.classifier
        self.classifier = nn.Linear(old.in_features, num_classes, bias=old.bias is not None).to(old.weight.device)


class BNNeckHead(nn.Module):
    """BatchNorm1d neck (bias frozen at 0) + bias-free Linear; retrieval uses the post-BN features."""

    def __init__(self, dim: int, num_classes: int):
        super().__init__()
        self.neck = nn.BatchNorm1d(dim)
        self.neck.bias.requires_grad_(False)
        self.classifier = nn.Linear(dim, num_classes, bias=False)
        nn.init.normal_(self.classifier.weight, std=0.001)

    @property
    def num_classes(self) -> int:
        """Outputs of the classifier."""
        return self.classifier.out_features

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, D) → ((B, D) post-BN embedding, (B, C) logits)."""
        neck = self.neck(features)
        return neck, self.classifier(neck)

    def replace_classifier(self, num_classes: int) -> None:
        """A fresh bias-free Linear layer with ``num_classes`` outputs."""
        old = self.classifier
        self.classifier = nn.Linear(old.in_features, num_classes, bias=False).to(old.weight.device)
        nn.init.normal_(self.classifier.weight, std=0.001)


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
    """Dropout(``spec.dropout``) + Linear(dim, num_classes, bias=``spec.bias``)."""
    return ClassifierHead(dim, _need_classes(spec, num_classes), spec.dropout, spec.bias)


@HEADS.register("bnneck")
def bnneck_head(spec: HeadSpec, dim: int, num_classes: int | None) -> nn.Module:
    """BatchNorm1d neck + bias-free Linear (strong baseline)."""
    return BNNeckHead(dim, _need_classes(spec, num_classes))


def build_head(spec: HeadSpec, dim: int, num_classes: int | None) -> nn.Module:
    """The head named by ``spec.type`` for ``dim``-d features."""
    return HEADS.get(spec.type)(spec, dim, num_classes)
