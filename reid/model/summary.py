"""A torchsummary-style layer table, parameter totals and one block's parameters.

Rows come from forward hooks on every leaf module, every residual block (``ResBlock``,
``Bottleneck``, OSNet's ``OSBlock``) and the pooling layer, in calling order, named ``<Class>-<index>``
exactly like torchsummary (a module called twice, such as a block's ReLU, gives two
rows; a row's params are the module's own, so a block row shows 0). Any backbone works,
timm ones included (their leaf modules are listed). The assignment's documented table, and the
fixed-kernel pooling it shows, live with the assignment (:mod:`reid.report.assignment.documented_network`).

Example:
    >>> from reid.model import build_model
    >>> from reid.spec import HeadSpec, ModelSpec
    >>> rows = layer_table(build_model(ModelSpec(), HeadSpec(type="none"), None))
    >>> len(rows), rows[-1].layer, format_shape(rows[-1].output_shape), sum(r.params for r in rows)
    (72, 'AdaptiveAvgPool2d-72', '[-1, 512, 1, 1]', 11176512)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from reid.model.builder import RESIDUAL_BLOCKS
from reid.model.network import ReidModel
from reid.model.osnet import OSBlock

#: Modules that get a row of their own although they have children: the residual blocks.
BLOCK_ROWS = (*RESIDUAL_BLOCKS.values(), OSBlock)


@dataclass(frozen=True)
class LayerRow:
    """One row of the layer table.

    Attributes:
        index: 1-based calling order.
        layer: ``<Class>-<index>``, e.g. ``Conv2d-1``.
        module: dotted module path, e.g. ``backbone.layer1.0.conv1``.
        part: ``backbone`` or ``head``.
        output_shape: ``[-1, C, H, W]`` (batch dimension shown as -1).
        params: the module's own parameters.
        trainable: those of them with ``requires_grad``.
    """

    index: int
    layer: str
    module: str
    part: str
    output_shape: list[int]
    params: int
    trainable: int


@dataclass(frozen=True)
class Totals:
    """Parameter counts of the whole model and of its parts."""

    total: int
    trainable: int
    non_trainable: int
    backbone: int
    head: int


@dataclass(frozen=True)
class BlockSummary:
    """The rows and parameter total of one residual block."""

    block: str
    rows: list[LayerRow]
    params: int


def format_shape(shape: list[int]) -> str:
    """torchsummary's shape text. Example: ``format_shape([-1, 64, 8, 8])`` → ``'[-1, 64, 8, 8]'``."""
    return "[" + ", ".join(str(n) for n in shape) + "]"


def layer_table(model: ReidModel, batch_size: int = 2) -> list[LayerRow]:
    """Run a zero batch through ``model`` (eval mode, no grad) and list the hooked modules' rows.

    The input size is the one the backbone was built for. Training mode is restored afterwards.
    """
    rows: list[LayerRow] = []

    def hook_for(path: str):
        def hook(module: nn.Module, _inputs, output) -> None:
            if not isinstance(output, torch.Tensor):
                return
            own = list(module.parameters(recurse=False))
            index = len(rows) + 1
            rows.append(
                LayerRow(
                    index=index,
                    layer=f"{type(module).__name__}-{index}",
                    module=path,
                    part=path.split(".", 1)[0],
                    output_shape=[-1, *output.shape[1:]],
                    params=sum(p.numel() for p in own),
                    trainable=sum(p.numel() for p in own if p.requires_grad),
                )
            )

        return hook

    handles = [
        m.register_forward_hook(hook_for(path))
        for path, m in model.named_modules()
        if path and (not list(m.children()) or isinstance(m, BLOCK_ROWS))
    ]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(batch_size, *model.backbone.input_size))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return rows


def totals(model: ReidModel) -> Totals:
    """Total / trainable / frozen parameters, and backbone / head shares."""
    params = list(model.parameters())
    total = sum(p.numel() for p in params)
    trainable = sum(p.numel() for p in params if p.requires_grad)
    backbone = sum(p.numel() for p in model.backbone.parameters())
    return Totals(total=total, trainable=trainable, non_trainable=total - trainable, backbone=backbone, head=total - backbone)


def first_block(rows: list[LayerRow]) -> BlockSummary | None:
    """The rows of the first residual block (``layer1.0``, its own block row excluded) and their parameter total.

    None for a backbone without a block-spec ``layer1.0`` (a timm one).
    """
    prefix = "backbone.layer1.0"
    inside = [r for r in rows if r.module.startswith(prefix + ".")]
    block = next((r.layer for r in rows if r.module == prefix), None)
    if block is None:
        return None
    return BlockSummary(block=block, rows=inside, params=sum(r.params for r in inside))
