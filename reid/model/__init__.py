"""The model core: backbone as data (block specs) or any timm CNN, one builder, heads, pretrained weights, checks.

- :mod:`reid.model.blocks` — layer spec dataclasses and named layouts (``resnet18`` … ``resnet152``,
  ``resnet50_ibn_a``, ``resnet101_ibn_a``, ``osnet_x1_0``);
- :mod:`reid.model.builder` — ``ResBlock`` (BasicBlock), ``Bottleneck``, the ``IBN`` layer and the one builder;
- :mod:`reid.model.osnet` — OSNet (omni-scale blocks, Lite 3×3 convs, aggregation gate) as a backbone;
- :mod:`reid.model.timm_backbone` — ``arch = "timm:<name>"``: a timm feature extractor + reid pooling;
- :mod:`reid.model.pooling` — global pooling (avg / max / gem) of any map size;
- :mod:`reid.model.heads` — ``none`` / ``classifier`` / ``bnneck`` heads;
- :mod:`reid.model.network` — :class:`ReidModel` and :func:`build_model`;
- :mod:`reid.model.pretrained` — ImageNet / run / file weights, with a load report;
- :mod:`reid.model.download` — sha256-checked weight downloads with a progress bar;
- :mod:`reid.model.summary` — torchsummary-style layer table, parameter totals, a block's parameters;
- :mod:`reid.model.flops` — fvcore FLOP counts per stage.

Example:
    >>> from reid.spec import HeadSpec, ModelSpec
    >>> model = build_model(ModelSpec(), HeadSpec(type="none"), num_classes=None)
    >>> model.embedding_dim
    512
"""

from reid.model.network import ReidModel, build_model

__all__ = ["ReidModel", "build_model"]
