"""The backbone as data: a list of layer specs, and the named ResNet layouts.

A backbone is a tuple of small frozen dataclasses, read front to back by
:func:`reid.model.builder.build_backbone`:

``StemSpec`` (conv 7×7/s2 + BN + ReLU) → ``MaxPoolSpec`` (3×3/s2) → one ``StageSpec``
per stage of BasicBlocks → ``GlobalPoolSpec``.

Named layouts (blocks per stage) live in :data:`LAYOUTS`; ``layers`` and
``last_stride`` override them. The default is the assignment network: ResNet-18 with
last stride 1, average pooling, for 3×128×128 crops.

Example:
    >>> specs = backbone_specs("resnet18", last_stride=1)
    >>> [s.stride for s in specs if isinstance(s, StageSpec)]
    [1, 2, 2, 1]
    >>> final_feature_size(specs, (128, 128)), embedding_dim(specs)
    ((8, 8), 512)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Union

from reid.errors import ReidError
from reid.registry import Registry

LAYOUTS: Registry[Callable[[], tuple[int, ...]]] = Registry("architecture")


@LAYOUTS.register("resnet18")
def resnet18_layout() -> tuple[int, ...]:
    """BasicBlocks per stage of ResNet-18."""
    return (2, 2, 2, 2)


@LAYOUTS.register("resnet34")
def resnet34_layout() -> tuple[int, ...]:
    """BasicBlocks per stage of ResNet-34."""
    return (3, 4, 6, 3)


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
    """``blocks`` BasicBlocks with ``channels`` outputs; the first one has stride ``stride``."""

    channels: int
    blocks: int
    stride: int


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
    """The layer specs of a BasicBlock ResNet.

    Args:
        arch: a name in :data:`LAYOUTS` (``resnet18``, ``resnet34``).
        layers: blocks per stage (four positive integers); overrides ``arch``.
        last_stride: stride of the first block of the last stage (1 keeps 8×8 maps for 128×128 input).
        pooling: global pooling kind (``avg``, ``max``, ``gem``).

    Raises:
        ReidError: unknown arch, bad layers or stride.
    """
    blocks = tuple(layers) if layers is not None else LAYOUTS.get(arch)()
    if len(blocks) != len(STAGE_CHANNELS) or any(int(b) < 1 for b in blocks):
        raise ReidError(f"layers {list(blocks)} must be {len(STAGE_CHANNELS)} positive block counts", where="model.layers", fix="e.g. 2,2,2,2 or 3,4,6,3")
    if last_stride not in (1, 2):
        raise ReidError(f"last_stride {last_stride} must be 1 or 2", where="model.last_stride")
    strides = STAGE_STRIDES[:-1] + (last_stride,)
    stages = tuple(StageSpec(c, int(b), s) for c, b, s in zip(STAGE_CHANNELS, blocks, strides))
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
    if isinstance(spec, StageSpec):  # only the first 3×3 conv of a stage strides
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
    return [s.channels for s in specs if isinstance(s, StemSpec | StageSpec)][-1]
