"""The assignment's documented network: its layer table (Q1), its fixed-kernel pooling (Q2), pooling as a convolution (Q3).

The assignment documents a ResNet-18 with last stride 1 for 3×128×128 crops as a torchsummary table of
72 rows (shipped as ``documented_resnet18_128.tsv``) ending ``AvgPool2d-72 [-1, 512, 1, 1] 0``: global
average pooling written as a fixed 8×8 kernel with stride 1, the final map's size. reid's model pools
adaptively instead (``nn.AdaptiveAvgPool2d(1)``, any input size), which at the built size is the same
computation. :func:`fixed_kernel_view` shows a model the documented way — a copy whose global pooling is
torch's fixed-kernel pool, kernel = the final map — and :func:`documented_layer_table` is its layer table,
the one :func:`compare_with_documented` checks. The core model never imports this module.

Example:
    >>> from reid.model import build_model
    >>> from reid.spec import HeadSpec
    >>> model = build_model(ModelSpec(), HeadSpec(type="none"), None, DOCUMENTED_INPUT)
    >>> rows = documented_layer_table(model)
    >>> len(rows), rows[-1].layer, format_shape(rows[-1].output_shape), compare_with_documented(rows)
    (72, 'AvgPool2d-72', '[-1, 512, 1, 1]', [])
    >>> model.backbone.pool, fixed_kernel_view(model).backbone.pool
    (AdaptiveAvgPool2d(output_size=1), AvgPool2d(kernel_size=(8, 8), stride=(1, 1), padding=0))
"""

from __future__ import annotations

import copy
import csv
from dataclasses import dataclass
from importlib import resources

import torch
from torch import nn

from reid.model.blocks import Layout, conv_output_size
from reid.model.network import ReidModel
from reid.model.summary import LayerRow, format_shape, layer_table
from reid.registry import ARCHS
from reid.spec import ModelSpec

DOCUMENTED_TABLE = "documented_resnet18_128.tsv"
DOCUMENTED_INPUT = (3, 128, 128)
#: The adaptive global poolings of the core model → torch's fixed-kernel pool that computes the same at the built size.
FIXED_KERNEL_POOLS: dict[type[nn.Module], type[nn.Module]] = {nn.AdaptiveAvgPool2d: nn.AvgPool2d, nn.AdaptiveMaxPool2d: nn.MaxPool2d}


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
class PoolingGeometry:
    """Kernel and stride of the fixed-kernel global pooling layer the assignment documents.

    The kernel covers the whole final feature map, so there is exactly one window and
    the stride does not change the result; it is 1, as in the documented answer.
    """

    feature_size: tuple[int, int]
    kernel: tuple[int, int]
    stride: tuple[int, int]
    output_size: tuple[int, int]


def pooling_geometry(feature_size: tuple[int, int]) -> PoolingGeometry:
    """Kernel, stride and output size of the fixed-kernel pooling that turns ``feature_size`` maps into 1×1.

    Example:
        >>> pooling_geometry((8, 8))
        PoolingGeometry(feature_size=(8, 8), kernel=(8, 8), stride=(1, 1), output_size=(1, 1))
    """
    kernel = (int(feature_size[0]), int(feature_size[1]))
    out = (conv_output_size(kernel[0], kernel[0], 1, 0), conv_output_size(kernel[1], kernel[1], 1, 0))
    return PoolingGeometry(feature_size=kernel, kernel=kernel, stride=(1, 1), output_size=out)


def fixed_kernel_view(model: ReidModel) -> ReidModel:
    """A copy of ``model`` whose global pooling is torch's fixed-kernel pool, as the assignment documents it.

    An ``nn.AdaptiveAvgPool2d(1)`` becomes ``nn.AvgPool2d(kernel = final map size, stride 1)`` (an
    adaptive max pool a ``nn.MaxPool2d`` alike); at the built input size the copy computes the same
    embedding, and the pool holds no weights, so the state dicts of both are the same. Any other pooling
    (GeM, one registered by the user) has no fixed-kernel form and is kept. ``model`` is not changed.

    Example:
        >>> from reid.model import build_model
        >>> from reid.spec import HeadSpec
        >>> model = build_model(ModelSpec(pooling="max"), HeadSpec(type="none"), None, (3, 256, 128))
        >>> fixed_kernel_view(model).backbone.pool
        MaxPool2d(kernel_size=(16, 8), stride=(1, 1), padding=0, dilation=1, ceil_mode=False)
    """
    view = copy.deepcopy(model)
    pool = getattr(view.backbone, "pool", None)
    fixed = FIXED_KERNEL_POOLS.get(type(pool))
    if fixed is not None and pool.output_size in (1, (1, 1)):
        g = pooling_geometry(view.backbone.feature_size)
        view.backbone.pool = fixed(kernel_size=g.kernel, stride=g.stride)
    return view


def documented_layer_table(model: ReidModel) -> list[LayerRow]:
    """The layer table of ``model`` with its global pooling shown as the documented fixed kernel (:func:`fixed_kernel_view`)."""
    return layer_table(fixed_kernel_view(model))


def load_documented_table() -> list[DocumentedRow]:
    """The assignment's documented layer table (ResNet-18, last stride 1, 3×128×128 input).

    Example:
        >>> table = load_documented_table()
        >>> len(table), table[-1]
        (72, DocumentedRow(layer='AvgPool2d-72', output_shape=[-1, 512, 1, 1], params=0))
    """
    text = resources.files(__package__).joinpath(DOCUMENTED_TABLE).read_text(encoding="utf-8")
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

    ``rows`` should come from :func:`documented_layer_table` (the core table names its pooling
    ``AdaptiveAvgPool2d``, which the documented table does not). A missing or extra row is one
    ``row`` mismatch (expected/got ``(none)``).
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


def avgpool_as_conv(pool: nn.AvgPool2d, channels: int) -> nn.Conv2d:
    """A convolution that computes exactly what ``pool`` computes.

    Choice: a depthwise convolution (``groups = channels``), bias off, every weight
    ``1 / (kh·kw)``, same kernel, stride and padding as the pool. Each output channel
    then averages only its own input channel's window — the definition of average
    pooling — using ``channels·kh·kw`` parameters. A full convolution would need
    ``channels²·kh·kw`` weights, all zero except the identity-channel ones, to do the
    same; the pool itself has no parameters.

    Example:
        >>> avgpool_as_conv(nn.AvgPool2d(8, stride=1), channels=512).weight.shape
        torch.Size([512, 1, 8, 8])
    """
    k = pool.kernel_size
    kernel = tuple(k) if isinstance(k, (tuple, list)) else (k, k)
    conv = nn.Conv2d(
        channels, channels, kernel_size=kernel, stride=pool.stride, padding=pool.padding, groups=channels, bias=False
    )
    with torch.no_grad():
        conv.weight.fill_(1.0 / (kernel[0] * kernel[1]))
    return conv


@dataclass(frozen=True)
class PoolConvEquivalence:
    """Result of comparing AvgPool2d with its convolution replacement."""

    kernel: tuple[int, int]
    stride: tuple[int, int]
    max_abs_diff: float
    pool_params: int
    conv_params: int
    full_conv_params: int


def check_avgpool_as_conv(
    channels: int, height: int, width: int, kernel: tuple[int, int] | None = None, batch: int = 2, seed: int = 0
) -> PoolConvEquivalence:
    """Run AvgPool2d and :func:`avgpool_as_conv` on the same random input and compare.

    ``kernel`` defaults to the whole map (global pooling, stride 1); otherwise the
    stride equals the kernel (non-overlapping windows).

    Example:
        >>> r = check_avgpool_as_conv(512, 8, 8)
        >>> r.max_abs_diff < 1e-6, r.pool_params, r.conv_params
        (True, 0, 32768)
    """
    kernel = kernel or (height, width)
    stride = (1, 1) if kernel == (height, width) else kernel
    pool = nn.AvgPool2d(kernel_size=kernel, stride=stride)
    conv = avgpool_as_conv(pool, channels)
    x = torch.randn(batch, channels, height, width, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        diff = (pool(x) - conv(x)).abs().max().item()
    return PoolConvEquivalence(
        kernel=tuple(kernel),
        stride=tuple(stride),
        max_abs_diff=diff,
        pool_params=sum(p.numel() for p in pool.parameters()),
        conv_params=sum(p.numel() for p in conv.parameters()),
        full_conv_params=channels * channels * kernel[0] * kernel[1],
    )
