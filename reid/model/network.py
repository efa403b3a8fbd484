"""The whole re-ID network (backbone + head) and :func:`build_model`, the one entry point.

Example:
    >>> from reid.spec import HeadSpec, ModelSpec
    >>> model = build_model(ModelSpec(), HeadSpec(type="bnneck"), num_classes=230)
    >>> out = model(torch.randn(2, 3, 128, 128))
    >>> out["features"].shape, out["logits"].shape, model.embed(torch.randn(2, 3, 128, 128)).shape
    (torch.Size([2, 512]), torch.Size([2, 230]), torch.Size([2, 512]))
"""

from __future__ import annotations

import torch
from torch import nn

from reid.errors import ReidError
from reid.model.blocks import OSNetLayout, backbone_specs
from reid.model.builder import Backbone, build_backbone
from reid.model.heads import build_head
from reid.model.osnet import build_osnet
from reid.model.pretrained import PretrainedReport, load_pretrained
from reid.model.timm_backbone import TimmBackbone, build_timm_backbone, timm_name, timm_pretrained_report
from reid.registry import ARCHS
from reid.spec import HeadSpec, ModelSpec


class ReidModel(nn.Module):
    """Backbone + head.

    ``forward(x, pids=None)`` returns ``{"features": (B, D) pooled embedding (what triplet and
    center loss use), "logits": (B, C) or None}``. Logits are computed whenever the head has a
    classifier (in training *and* eval mode; margin classifiers apply their margin when ``pids``
    is given), unless :meth:`train_without_classifier` switched them off; they are None for head
    ``none``. ``embed(x)`` is the retrieval feature: post-BN for ``bnneck``,
    the pooled embedding otherwise.

    Attributes:
        backbone: the :class:`~reid.model.builder.Backbone` (block-spec ResNet, or an OSNet from
            :mod:`reid.model.osnet`) or a :class:`~reid.model.timm_backbone.TimmBackbone`.
        head: the head module (see :mod:`reid.model.heads`).
        embedding_dim: D.
        pretrained_report: what loading pretrained weights did (None when none were loaded).
    """

    def __init__(self, backbone: Backbone | TimmBackbone, head: nn.Module, pretrained_report: PretrainedReport | None = None):
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.embedding_dim = backbone.embedding_dim
        self.pretrained_report = pretrained_report
        self.computes_logits = head.num_classes is not None

    def forward(self, x: torch.Tensor, pids: torch.Tensor | None = None) -> dict[str, torch.Tensor | None]:
        """(B, C, H, W) images (and in training their identities, which margin classifiers use) →
        ``{"features": (B, D), "logits": (B, C) or None}``."""
        features = self.backbone(x)
        _, logits = self.head(features, pids, logits=self.computes_logits)
        return {"features": features, "logits": logits}

    def train_without_classifier(self) -> None:
        """Compute no logits and freeze what only the ID loss would train (the classifier, a BN neck's scale).

        For training without an ID term: those parameters would get no gradient, which
        ``DistributedDataParallel`` reports as an error ("Expected to have finished reduction in the prior
        iteration"); frozen, they are left out of its reduction and keep their initial values, as they
        would in one process.
        """
        self.computes_logits = False
        for p in getattr(self.head, "unreached_parameters", list)():
            p.requires_grad_(False)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) images → (B, D) retrieval features (call in eval mode).

        Under autocast only the convolutions run in reduced precision: pooling and the head (the BN
        neck) run in float32 on the float32 copy of the last feature map, so a bf16 / fp16 embedding
        loses no more than its convolutions do. Without autocast this is exactly ``head(backbone(x))``.
        """
        fmap = self.backbone.feature_map(x)
        with torch.autocast(fmap.device.type, enabled=False):
            embedding, _ = self.head(self.backbone.pool_map(fmap.float()))
        return embedding

    @property
    def num_classes(self) -> int | None:
        """Classifier outputs, or None without a classifier."""
        return self.head.num_classes

    def replace_classifier(self, num_classes: int) -> None:
        """Swap in a freshly initialised classifier with ``num_classes`` outputs.

        Raises:
            ReidError: the head has no classifier.
        """
        if not hasattr(self.head, "replace_classifier"):
            raise ReidError("this model's head has no classifier to replace", where="head.type")
        self.head.replace_classifier(num_classes)


def check_input_size(input_size: tuple[int, ...]) -> tuple[int, int, int]:
    """Validate (C, H, W): three positive integers.

    Raises:
        ReidError: anything else.
    """
    if len(input_size) != 3 or any(not isinstance(n, int) or n < 1 for n in input_size):
        raise ReidError(f"input size {tuple(input_size)} must be three positive integers (C, H, W)", where="input size", fix="e.g. 3x128x128")
    return tuple(input_size)  # type: ignore[return-value]


def build_model(
    model: ModelSpec, head: HeadSpec, num_classes: int | None, input_size: tuple[int, int, int] = (3, 128, 128)
) -> ReidModel:
    """Build backbone + head from the spec tables, loading pretrained weights if asked.

    ``arch = "timm:<name>"`` builds the timm model instead of a block-spec ResNet, and
    ``pretrained = "imagenet"`` then means timm's own pretrained weights; an OSNet arch
    (``osnet_x1_0``) builds :func:`~reid.model.osnet.build_osnet`. The head is
    always built fresh, so a model fine-tuned from a run gets a new classifier.

    Args:
        model: ``[model]`` table: arch / layers / last_stride / pooling / pretrained.
        head: ``[head]`` table.
        num_classes: training identities (required for ``classifier`` and ``bnneck``).
        input_size: (C, H, W) the model is built for (``feature_size`` is derived from it; the pooling takes any size).

    Raises:
        ReidError: bad sizes, a head without classes, missing or corrupt weights.
    """
    input_size = check_input_size(input_size)
    name = timm_name(model.arch)
    if name is not None:
        imagenet = model.pretrained == "imagenet"
        backbone = build_timm_backbone(name, model.last_stride, model.pooling, input_size, pretrained=imagenet)
        report = timm_pretrained_report(backbone) if imagenet else load_pretrained(backbone, model.pretrained)
    else:
        backbone = build_arch_backbone(model, input_size)
        report = load_pretrained(backbone, model.pretrained, model.arch)
    return ReidModel(backbone, build_head(head, backbone.embedding_dim, num_classes), report)


def build_arch_backbone(model: ModelSpec, input_size: tuple[int, int, int]) -> Backbone:
    """The backbone of a registered (non-timm) arch: an OSNet for an :class:`OSNetLayout`, else a block-spec ResNet.

    Example:
        >>> build_arch_backbone(ModelSpec(arch="osnet_x1_0"), (3, 64, 32)).feature_size
        (4, 2)

    Raises:
        ReidError: options the arch cannot take (layers or last stride 2 with an OSNet, bad layers / stride).
    """
    layout = ARCHS.get(model.arch)()
    if isinstance(layout, OSNetLayout):
        return build_osnet(layout, model.arch, model.layers, model.last_stride, model.pooling, input_size)
    return build_backbone(backbone_specs(model.arch, model.layers, model.last_stride, model.pooling), input_size)
