"""A torchsummary-style layer table, its check against the documented table, and one block's parameters.

Rows come from forward hooks on every leaf module, every residual block (``ResBlock``,
``Bottleneck``, OSNet's ``OSBlock``) and the pooling layer, in calling order, named ``<Class>-<index>``
exactly like torchsummary (a module called twice, such as a block's ReLU, gives two
rows; a row's params are the module's own, so a block row shows 0). Any backbone works,
timm ones included (their leaf modules are listed). The documented assignment table (72 rows, ending
``AvgPool2d-72 [-1, 512, 1, 1] 0``) ships as ``documented_resnet18_128.tsv``.

Example:
    >>> from reid.model import build_model
    >>> from reid.spec import HeadSpec, ModelSpec
    >>> rows = layer_table(build_model(ModelSpec(), HeadSpec(type="none"), None))
    >>> len(rows), rows[-1].layer, format_shape(rows[-1].output_shape), compare_with_documented(rows)
    (72, 'AvgPool2d-72', '[-1, 512, 1, 1]', [])
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from importlib import resources

import torch
from torch import nn

from reid.registry import ARCHS
from reid.model.blocks import Layout
from reid.model.builder import RESIDUAL_BLOCKS
from reid.model.network import ReidModel
from reid.model.osnet import OSBlock
from reid.spec import ModelSpec

DOCUMENTED_TABLE = "documented_resnet18_128.tsv"
DOCUMENTED_INPUT = (3, 128, 128)
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
class DocumentedRow:
    """One row of the documented table."""

    layer: str
    output_shape: list[int]
    params: int


@dataclass(frozen=True)
class Mismatch:
    """A difference between a built row and the documented one.

    ``layer`` is the documented row's name (the built one's past the documented end);
    ``field`` is ``layer``, ``output_shape``, ``params``, or ``row`` for a missing / extra row.
    """

    row: int
    layer: str
    field: str
    expected: str | int
    got: str | int


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


def load_documented_table() -> list[DocumentedRow]:
    """The assignment's documented layer table (ResNet-18, last stride 1, 3×128×128 input)."""
    text = resources.files("reid.model").joinpath(DOCUMENTED_TABLE).read_text(encoding="utf-8")
    reader = csv.DictReader(text.splitlines(), delimiter="\t")
    return [
        DocumentedRow(
            layer=r["layer"],
            output_shape=[int(n) for n in r["output_shape"].strip("[]").split(",")],
            params=int(r["params"].replace(",", "")),
        )
        for r in reader
    ]


def compare_with_documented(rows: list[LayerRow]) -> list[Mismatch]:
    """Compare the backbone rows with the documented table, row by row and field by field.

    A missing or extra row is one ``row`` mismatch (expected/got ``(none)``).
    """
    built = [r for r in rows if r.part == "backbone"]
    documented = load_documented_table()
    out: list[Mismatch] = []
    for i in range(max(len(built), len(documented))):
        if i >= len(built) or i >= len(documented):
            expected = documented[i].layer if i < len(documented) else "(none)"
            got = built[i].layer if i < len(built) else "(none)"
            out.append(Mismatch(row=i + 1, layer=expected if i < len(documented) else got, field="row", expected=expected, got=got))
            continue
        b, d = built[i], documented[i]
        if b.layer != d.layer:
            out.append(Mismatch(i + 1, d.layer, "layer", d.layer, b.layer))
        if b.output_shape != d.output_shape:
            out.append(Mismatch(i + 1, d.layer, "output_shape", format_shape(d.output_shape), format_shape(b.output_shape)))
        if b.params != d.params:
            out.append(Mismatch(i + 1, d.layer, "params", d.params, b.params))
    return out


def differences_from_documented(model: ModelSpec, input_size: tuple[int, int, int]) -> list[str]:
    """How ``model`` + ``input_size`` differ from the documented network; empty when its table should match.

    A block-spec arch matters only through its block kind, blocks per stage (``layers``
    overrides the counts) and IBN-a stages; an OSNet or a timm arch always differs.

    Example:
        >>> differences_from_documented(ModelSpec(last_stride=2), (3, 128, 128))
        ['last_stride 2 (documented: 1)']
        >>> differences_from_documented(ModelSpec(arch="resnet50"), (3, 128, 128))
        ['block bottleneck (documented: basic)', 'layers 3,4,6,3 (documented: 2,2,2,2)']
        >>> differences_from_documented(ModelSpec(arch="resnet50_ibn_a"), (3, 128, 128))[-1]
        'ibn layer1,layer2,layer3 (documented: none)'
    """
    layout = ARCHS.get(model.arch)() if model.arch in ARCHS else None
    if isinstance(layout, Layout):
        ibn = ",".join(f"layer{i}" for i, on in enumerate(layout.ibn, 1) if on)
        found = {"block": layout.block, "layers": ",".join(str(n) for n in (model.layers or layout.blocks)), "ibn": ibn or "none"}
    else:
        found = {"arch": model.arch}
    found |= {"last_stride": str(model.last_stride), "pooling": model.pooling}
    documented = {"arch": "resnet18", "block": "basic", "layers": "2,2,2,2", "ibn": "none", "last_stride": "1", "pooling": "avg"}
    out = [f"{k} {found[k]} (documented: {v})" for k, v in documented.items() if k in found and found[k] != v]
    if tuple(input_size) != DOCUMENTED_INPUT:
        size = "x".join(str(n) for n in input_size)
        out.append(f"input {size} (documented: {'x'.join(str(n) for n in DOCUMENTED_INPUT)})")
    return out


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
