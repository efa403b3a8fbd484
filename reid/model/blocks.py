"""The backbone as data: a list of layer specs, and the named ResNet layouts.

A backbone is a tuple of small frozen dataclasses, read front to back by
:func:`reid.model.builder.build_backbone`:

``StemSpec`` (conv 7×7/s2 + BN + ReLU) → ``MaxPoolSpec`` (3×3/s2) → one ``StageSpec``
per stage of residual blocks (``basic`` or ``bottleneck``) → ``GlobalPoolSpec``.

Named layouts (block kind and blocks per stage) live in :data:`ARCHS`: ResNet-18/34
use BasicBlocks, ResNet-50/101/152 Bottlenecks (1×1 → 3×3 → 1×1, four times wider
output). ``layers`` and ``last_stride`` override them. The default is the assignment
network: ResNet-18 with last stride 1, average pooling, for 3×128×128 crops.

IBN-a ResNet-50/101 (Pan et al., ECCV 2018) are the same layouts with ``ibn`` set for
stages 1–3: the ``bn1`` after each block's first conv becomes an IBN layer (InstanceNorm
on the first half of the channels, BatchNorm on the rest). OSNet x1.0 (Zhou et al., ICCV
2019) is registered here too, as an :class:`OSNetLayout` (channels and OSBlocks per
stage); :mod:`reid.model.osnet` builds it.

Example:
    >>> specs = backbone_specs("resnet18", last_stride=1)
    >>> [s.stride for s in specs if isinstance(s, StageSpec)]
    [1, 2, 2, 1]
    >>> final_feature_size(specs, (128, 128)), embedding_dim(specs)
    ((8, 8), 512)
    >>> embedding_dim(backbone_specs("resnet50")), final_feature_size(backbone_specs("resnet50"), (256, 128))
    (2048, (16, 8))
    >>> [s.ibn for s in backbone_specs("resnet50_ibn_a") if isinstance(s, StageSpec)]
    [True, True, True, False]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Union

from reid.errors import ReidError
from reid.registry import ARCHS

#: Output channels of a block = its width × this factor.
EXPANSION = {"basic": 1, "bottleneck": 4}


@dataclass(frozen=True)
class Layout:
    """A named ResNet: the kind of residual block, how many per stage, and which stages use IBN-a."""

    block: str
    blocks: tuple[int, ...]
    ibn: tuple[bool, ...] = (False, False, False, False)


#: IBN-a (Pan et al. 2018): IBN layers in stages 1–3, plain BatchNorm in stage 4.
IBN_A = (True, True, True, False)


@dataclass(frozen=True)
class OSNetLayout:
    """A named OSNet (Zhou et al. 2019): stem width + three stage widths, and OSBlocks per stage.

    Not a ResNet: :func:`backbone_specs` refuses it and :func:`reid.model.osnet.build_osnet` builds it.
    """

    channels: tuple[int, int, int, int]
    blocks: tuple[int, int, int]


@ARCHS.register("resnet18")
def resnet18_layout() -> Layout:
    """ResNet-18: 2, 2, 2, 2 BasicBlocks."""
    return Layout("basic", (2, 2, 2, 2))


@ARCHS.register("resnet34")
def resnet34_layout() -> Layout:
    """ResNet-34: 3, 4, 6, 3 BasicBlocks."""
    return Layout("basic", (3, 4, 6, 3))


@ARCHS.register("resnet50")
def resnet50_layout() -> Layout:
    """ResNet-50: 3, 4, 6, 3 Bottlenecks."""
    return Layout("bottleneck", (3, 4, 6, 3))


@ARCHS.register("resnet101")
def resnet101_layout() -> Layout:
    """ResNet-101: 3, 4, 23, 3 Bottlenecks."""
    return Layout("bottleneck", (3, 4, 23, 3))


@ARCHS.register("resnet152")
def resnet152_layout() -> Layout:
    """ResNet-152: 3, 8, 36, 3 Bottlenecks."""
    return Layout("bottleneck", (3, 8, 36, 3))


@ARCHS.register("resnet50_ibn_a")
def resnet50_ibn_a_layout() -> Layout:
    """ResNet-50-IBN-a: 3, 4, 6, 3 Bottlenecks, IBN layers in stages 1–3."""
    return Layout("bottleneck", (3, 4, 6, 3), IBN_A)


@ARCHS.register("resnet101_ibn_a")
def resnet101_ibn_a_layout() -> Layout:
    """ResNet-101-IBN-a: 3, 4, 23, 3 Bottlenecks, IBN layers in stages 1–3."""
    return Layout("bottleneck", (3, 4, 23, 3), IBN_A)


@ARCHS.register("osnet_x1_0")
def osnet_x1_0_layout() -> OSNetLayout:
    """OSNet x1.0: a 64-channel stem, then 2, 2, 2 OSBlocks of 256, 384, 512 channels."""
    return OSNetLayout((64, 256, 384, 512), (2, 2, 2))


@dataclass(frozen=True)
class StemSpec:
    """Conv k×k (padding k//2, no bias) + BatchNorm + ReLU."""

    channels: int = 64
    kernel: int = 7
    stride: int = 2


@dataclass(frozen=True)
class MaxPoolSpec:
    """Max pooling k×k (padding k//2) after the stem."""

    kernel: int = 3
    stride: int = 2


@dataclass(frozen=True)
class StageSpec:
    """``blocks`` residual blocks of width ``channels``; the first one has stride ``stride``.

    ``block`` is ``basic`` (output = width) or ``bottleneck`` (output = 4 × width);
    ``ibn`` makes every block's ``bn1`` an IBN-a layer (IN on half the channels, BN on the rest).
    """

    channels: int
    blocks: int
    stride: int
    block: str = "basic"
    ibn: bool = False

    @property
    def out_channels(self) -> int:
        """Channels the stage outputs."""
        return self.channels * EXPANSION[self.block]


@dataclass(frozen=True)
class GlobalPoolSpec:
    """Pooling over the whole final feature map: ``avg``, ``max`` or ``gem``."""

    kind: str = "avg"


LayerSpec = Union[StemSpec, MaxPoolSpec, StageSpec, GlobalPoolSpec]

STAGE_CHANNELS = (64, 128, 256, 512)
STAGE_STRIDES = (1, 2, 2, 2)


def backbone_specs(
    arch: str = "resnet18",
    layers: tuple[int, ...] | None = None,
    last_stride: int = 1,
    pooling: str = "avg",
) -> tuple[LayerSpec, ...]:
    """The layer specs of a ResNet.

    Args:
        arch: a name in :data:`ARCHS` (``resnet18`` … ``resnet152``); sets the block kind and counts.
        layers: blocks per stage (four positive integers); overrides the arch's counts, not its block kind.
        last_stride: stride of the first block of the last stage (1 keeps 8×8 maps for 128×128 input).
        pooling: global pooling kind (``avg``, ``max``, ``gem``).

    Raises:
        ReidError: unknown arch, an arch that is not a ResNet (OSNet), bad layers or stride.
    """
    layout = ARCHS.get(arch)()
    if not isinstance(layout, Layout):
        raise ReidError(f"arch {arch!r} is not a block-spec ResNet", where="model.arch",
                        fix="build it with reid.model.build_model, which knows every registered arch")
    blocks = tuple(layers) if layers is not None else layout.blocks
    if len(blocks) != len(STAGE_CHANNELS) or any(int(b) < 1 for b in blocks):
        raise ReidError(f"layers {list(blocks)} must be {len(STAGE_CHANNELS)} positive block counts", where="model.layers", fix="e.g. 2,2,2,2 or 3,4,6,3")
    if last_stride not in (1, 2):
        raise ReidError(f"last_stride {last_stride} must be 1 or 2", where="model.last_stride")
    strides = STAGE_STRIDES[:-1] + (last_stride,)
    stages = tuple(StageSpec(c, int(b), s, layout.block, ibn)
                   for c, b, s, ibn in zip(STAGE_CHANNELS, blocks, strides, layout.ibn))
    return (StemSpec(), MaxPoolSpec(), *stages, GlobalPoolSpec(pooling))


def conv_output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """Output length of a convolution or pooling window along one axis (floor mode).

    Example:
        >>> conv_output_size(128, kernel=7, stride=2, padding=3)
        64
    """
    return (size + 2 * padding - kernel) // stride + 1


def spec_output_size(spec: LayerSpec, hw: tuple[int, int]) -> tuple[int, int]:
    """Spatial size after one layer spec (global pooling gives 1×1)."""
    if isinstance(spec, StemSpec | MaxPoolSpec):
        k, s = spec.kernel, spec.stride
        return tuple(conv_output_size(n, k, s, k // 2) for n in hw)  # type: ignore[return-value]
    if isinstance(spec, StageSpec):  # only the first 3×3 conv of a stage (and its 1×1 shortcut) strides
        return tuple(conv_output_size(n, 3, spec.stride, 1) for n in hw)  # type: ignore[return-value]
    return (1, 1)


def final_feature_size(specs: tuple[LayerSpec, ...], hw: tuple[int, int]) -> tuple[int, int]:
    """Spatial size of the last feature map (just before global pooling) for input ``hw``."""
    for spec in specs:
        if isinstance(spec, GlobalPoolSpec):
            break
        hw = spec_output_size(spec, hw)
    return hw


def embedding_dim(specs: tuple[LayerSpec, ...]) -> int:
    """Channels of the last stage = length of the pooled embedding."""
    return [s.out_channels if isinstance(s, StageSpec) else s.channels for s in specs if isinstance(s, StemSpec | StageSpec)][-1]
