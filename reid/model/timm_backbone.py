"""Any timm CNN as the backbone: ``[model] arch = "timm:<name>"``.

timm builds the network without its classifier (``num_classes=0, global_pool=""``);
reid runs its ``forward_features`` (the last feature map, B×C×H×W) and pools it with
reid's own pooling (``avg`` / ``max`` / ``gem``), so heads and losses are unchanged. The
embedding dimension is the model's ``num_features``; the final map size is measured by
one forward pass of a zero image of the input size.

Last stride 1 uses timm's ``output_stride=16``: the last strided stage keeps its
resolution and its convolutions dilate by 2 instead (the block-spec ResNets simply drop
the stride). Where timm cannot do that the outcome is stated, never silent: a model
whose last map is already at most 1/16 of the input (e.g. a ViT-/16) has no final
strided stage, so a warning is logged and nothing changes; a stride-32 model timm builds
without an ``output_stride`` option (MobileNetV3, DenseNet …) is a :class:`ReidError`
asking for ``last_stride = 2``.

``pretrained = "imagenet"`` asks timm for its pretrained weights (downloaded from the
Hugging Face Hub into its cache on first use); a file or run directory loads through
:mod:`reid.model.pretrained` (timm's parameter names, or a reid checkpoint's).

Example:
    >>> net = build_timm_backbone("resnet10t", last_stride=1, input_size=(3, 64, 64))
    >>> net(torch.zeros(2, 3, 64, 64)).shape, net.feature_size, net.embedding_dim
    (torch.Size([2, 512]), (4, 4), 512)
"""

from __future__ import annotations

import difflib
import logging

import torch
from torch import nn

from reid.errors import ReidError
from reid.model.pooling import POOLINGS
from reid.model.pretrained import PretrainedReport

TIMM_PREFIX = "timm:"
log = logging.getLogger(__name__)


def timm_name(arch: str) -> str | None:
    """The timm model name of a ``timm:<name>`` arch, or None for reid's own archs.

    Example:
        >>> timm_name("timm:resnet50d"), timm_name("resnet50")
        ('resnet50d', None)
    """
    return arch.removeprefix(TIMM_PREFIX) if arch.startswith(TIMM_PREFIX) else None


class TimmBackbone(nn.Module):
    """A timm feature extractor (``body``) followed by reid's global pooling (``pool``), flattened.

    Attributes:
        name: the timm model name.
        input_size: (C, H, W) it was built for (its preferred size; the pooling takes any).
        feature_size: (H, W) of the last feature map.
        embedding_dim: D = the model's ``num_features``.
        groups: stage name → child module names (``body``, ``pooling``), for FLOP counts.
    """

    def __init__(self, name: str, body: nn.Module, pool: nn.Module, input_size: tuple[int, int, int],
                 feature_size: tuple[int, int], embedding_dim: int):
        super().__init__()
        self.body = body
        self.pool = pool
        self.name = name
        self.input_size = input_size
        self.feature_size = feature_size
        self.embedding_dim = embedding_dim
        self.groups = {"body": ["body"], "pooling": ["pool"]}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) images → (B, D) pooled embedding."""
        return self.pool_map(self.feature_map(x))

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) images → the last feature map, before pooling."""
        return self.body.forward_features(x)

    def pool_map(self, x: torch.Tensor) -> torch.Tensor:
        """The last feature map → (B, D) pooled embedding."""
        return torch.flatten(self.pool(x), 1)

    def adopt_keys(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Put timm's own parameter names (``conv1.weight``) under ``body.``; reid's (``body.…``, ``pool.…``) stay."""
        return {k if k.startswith(("body.", "pool.")) else f"body.{k}": v for k, v in state.items()}


def _create(name: str, pretrained: bool, output_stride: int | None) -> nn.Module:
    import timm

    kwargs = {"output_stride": output_stride} if output_stride else {}
    try:
        return timm.create_model(name, pretrained=pretrained, num_classes=0, global_pool="", **kwargs)
    except TypeError as e:
        if output_stride and "output_stride" in str(e):
            raise  # handled by the caller: this architecture has no output_stride option
        raise ReidError(f"timm could not build {name!r} ({e})", where="model.arch") from None
    except Exception as e:  # offline / hub errors come in many types (OSError, HfHubHTTPError, LocalEntryNotFoundError …)
        if not pretrained:
            raise ReidError(f"timm could not build {name!r} ({type(e).__name__}: {e})", where="model.arch") from None
        raise ReidError(
            f"could not fetch timm's pretrained weights for {name!r} ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})",
            where="model.pretrained",
            fix="connect to the internet (timm downloads from the Hugging Face Hub into ~/.cache/huggingface), "
            'or set model.pretrained = "none"',
        ) from None


def _reduction(body: nn.Module) -> int | None:
    """How many times smaller than the input the model's last feature map is (timm's ``feature_info``), or None."""
    info = getattr(body, "feature_info", None)
    return int(info[-1]["reduction"]) if info else None


def _body(name: str, last_stride: int, pretrained: bool) -> nn.Module:
    """Build the timm model, with ``output_stride=16`` for last stride 1 where it can."""
    if last_stride == 2:
        return _create(name, pretrained, None)
    try:
        body = _create(name, pretrained, 16)
    except TypeError:  # no output_stride option: fine only when there is no final strided stage to undo
        reduction = _reduction(_create(name, False, None))
        if reduction is None or reduction > 16:
            raise ReidError(
                f"timm:{name} cannot use last stride 1: timm builds it without an output_stride option"
                + (f" and its last feature map is 1/{reduction} of the input" if reduction else ""),
                where="model.last_stride",
                fix="set model.last_stride = 2 (keep its own strides)",
            ) from None
        log.warning("timm:%s has no final strided stage (last map is 1/%d of the input): last_stride = 1 changes nothing",
                    name, reduction)
        return _create(name, pretrained, None)
    if (_reduction(body) or 0) > 16:
        raise ReidError(f"timm:{name} ignored output_stride=16", where="model.last_stride", fix="set model.last_stride = 2")
    return body


def build_timm_backbone(name: str, last_stride: int = 1, pooling: str = "avg",
                        input_size: tuple[int, int, int] = (3, 128, 128), pretrained: bool = False) -> TimmBackbone:
    """Build timm model ``name`` as a reid backbone for images of ``input_size``.

    Args:
        name: a timm model name (``timm.list_models()``), e.g. ``resnet50d``, ``efficientnet_b0``.
        last_stride: 1 (timm ``output_stride=16`` where the model has a final strided stage) or 2 (as built).
        pooling: reid global pooling (``avg``, ``max``, ``gem``).
        input_size: (C, H, W).
        pretrained: load timm's pretrained weights (see :func:`timm_pretrained_report`).

    Raises:
        ReidError: unknown name, last stride 1 impossible, a model that gives tokens rather than
            feature maps or cannot run at ``input_size``, or pretrained weights that cannot be fetched.
    """
    import timm

    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=5, cutoff=0.7)
        raise ReidError(f"timm has no model {name!r}", where="model.arch",
                        fix=f"e.g. {', '.join('timm:' + n for n in close)}" if close else "see timm.list_models() for names")
    body = _body(name, last_stride, pretrained)
    probe = torch.zeros(1, *input_size)
    body.eval()
    try:
        with torch.no_grad():
            maps = body.forward_features(probe)
    except Exception as e:  # timm asserts on fixed-size models (ViT …) and channel counts
        raise ReidError(f"timm:{name} cannot run on a {'x'.join(map(str, input_size))} input ({type(e).__name__}: {e})",
                        where="model.arch", fix="use a CNN, or the model's own input size") from None
    body.train()
    if maps.dim() != 4 or maps.shape[1] != body.num_features:
        raise ReidError(f"timm:{name} gives {tuple(maps.shape)} outputs, not a B×{body.num_features}×H×W feature map "
                        "(tokens or channels-last maps); reid pools B×C×H×W maps",
                        where="model.arch", fix="choose a convolutional model, e.g. timm:resnet50d or timm:efficientnet_b0")
    feature_size = (int(maps.shape[2]), int(maps.shape[3]))
    return TimmBackbone(name, body, POOLINGS.get(pooling)(), tuple(input_size),
                        feature_size, int(body.num_features))


def timm_pretrained_report(net: TimmBackbone) -> PretrainedReport:
    """The load report for timm's own pretrained weights: timm loads every tensor of ``body`` and drops its classifier."""
    cfg = net.body.pretrained_cfg
    source = cfg.get("hf_hub_id") or cfg.get("url") or net.name
    keys = list(net.state_dict())
    return PretrainedReport(source=f"timm pretrained weights ({source})", loaded=[k for k in keys if k.startswith("body.")],
                            missing=[k for k in keys if k.startswith("pool.")],
                            discarded=[cfg["classifier"]] if cfg.get("classifier") else [])
