"""Global pooling over the final feature map: its geometry, and average pooling as an equivalent convolution.

The pooling window is derived from the final feature-map size (itself derived from
the input size by stride arithmetic), never typed in: for 3×128×128 input and last
stride 1 the map is 8×8, so average pooling uses an 8×8 kernel. That kernel is what the
layer table, ``reid inspect`` and the assignment show; the model itself pools the whole
final map whatever its size, so a model built for one input size embeds (and exports for)
any other.

Example:
    >>> pooling_geometry((8, 8))
    PoolingGeometry(feature_size=(8, 8), kernel=(8, 8), stride=(1, 1), output_size=(1, 1))
    >>> pool = POOLINGS.get("avg")(pooling_geometry((8, 4)))
    >>> pool, pool(torch.ones(1, 2, 16, 8)).shape
    (AvgPool2d(kernel_size=(8, 4), stride=(1, 1), padding=0), torch.Size([1, 2, 1, 1]))
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from reid.model.blocks import conv_output_size
from reid.registry import POOLINGS


@dataclass(frozen=True)
class PoolingGeometry:
    """Kernel and stride of the global pooling layer.

    The kernel covers the whole final feature map, so there is exactly one window and
    the stride does not change the result; it is 1, as in the documented answer.
    """

    feature_size: tuple[int, int]
    kernel: tuple[int, int]
    stride: tuple[int, int]
    output_size: tuple[int, int]


def pooling_geometry(feature_size: tuple[int, int]) -> PoolingGeometry:
    """Kernel, stride and output size of the pooling that turns ``feature_size`` maps into 1×1."""
    kernel = (int(feature_size[0]), int(feature_size[1]))
    stride = (1, 1)
    out = (conv_output_size(kernel[0], kernel[0], 1, 0), conv_output_size(kernel[1], kernel[1], 1, 0))
    return PoolingGeometry(feature_size=kernel, kernel=kernel, stride=stride, output_size=out)


class AvgPool2d(nn.AvgPool2d):
    """Global average pooling of the whole map, whatever its size; ``kernel_size`` is the map size it was built for.

    A subclass of torch's ``AvgPool2d`` under the same name, so the layer table keeps the documented
    ``AvgPool2d-72`` row and ``reid inspect`` its 8×8 kernel while the model pools any input size.
    At the built size it computes what ``nn.AvgPool2d`` computes (to float rounding).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pool (B, C, H, W) to (B, C, 1, 1), for any H and W."""
        return F.adaptive_avg_pool2d(x, 1)


class MaxPool2d(nn.MaxPool2d):
    """Global max pooling of the whole map, whatever its size; ``kernel_size`` is the map size it was built for.

    A subclass of torch's ``MaxPool2d`` under the same name, for the same reason as :class:`AvgPool2d`.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pool (B, C, H, W) to (B, C, 1, 1), for any H and W."""
        return F.adaptive_max_pool2d(x, 1)


class GeM(nn.Module):
    """Generalised-mean pooling over the whole map: ``mean(x.clamp(eps) ** p) ** (1/p)``, learnable ``p``.

    ``p = 1`` is average pooling, ``p → ∞`` approaches max pooling. Output is (B, C, 1, 1).
    """

    def __init__(self, p: float = 3.0, eps: float = 1e-6):
        super().__init__()
        self.p = nn.Parameter(torch.tensor([float(p)]))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pool (B, C, H, W) to (B, C, 1, 1)."""
        return F.adaptive_avg_pool2d(x.clamp(min=self.eps).pow(self.p), 1).pow(1.0 / self.p)


@POOLINGS.register("avg")
def avg_pool(geometry: PoolingGeometry) -> nn.Module:
    """Average pooling with a kernel the size of the final feature map (and of any other map it is given)."""
    return AvgPool2d(kernel_size=geometry.kernel, stride=geometry.stride)


@POOLINGS.register("max")
def max_pool(geometry: PoolingGeometry) -> nn.Module:
    """Max pooling with a kernel the size of the final feature map (and of any other map it is given)."""
    return MaxPool2d(kernel_size=geometry.kernel, stride=geometry.stride)


@POOLINGS.register("gem")
def gem_pool(geometry: PoolingGeometry) -> nn.Module:
    """Generalised-mean pooling (p = 3, learnable) over the whole map."""
    return GeM()


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
