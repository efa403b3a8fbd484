"""Global pooling over the final feature map: average, max or generalised-mean, whatever the map's size.

Every registered pooling turns a (B, C, H, W) map into (B, C, 1, 1) for any H and W, so a model
built for one input size embeds (and exports for) any other. A pooling is registered in
:data:`reid.registry.POOLINGS` as a factory that takes no argument.

Example:
    >>> pool = POOLINGS.get("avg")()
    >>> pool, pool(torch.ones(1, 2, 16, 8)).shape
    (AdaptiveAvgPool2d(output_size=1), torch.Size([1, 2, 1, 1]))
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from reid.registry import POOLINGS


class GeM(nn.Module):
    """Generalised-mean pooling over the whole map: ``mean(x.clamp(eps) ** p) ** (1/p)``, learnable ``p``.

    ``p = 1`` is average pooling, ``p → ∞`` approaches max pooling. Output is (B, C, 1, 1).

    Example:
        >>> GeM()(torch.full((1, 2, 3, 5), 2.0)).flatten().tolist()
        [2.0, 2.0]
    """

    def __init__(self, p: float = 3.0, eps: float = 1e-6):
        super().__init__()
        self.p = nn.Parameter(torch.tensor([float(p)]))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pool (B, C, H, W) to (B, C, 1, 1)."""
        return F.adaptive_avg_pool2d(x.clamp(min=self.eps).pow(self.p), 1).pow(1.0 / self.p)


@POOLINGS.register("avg")
def avg_pool() -> nn.Module:
    """Average pooling of the whole final map, whatever its size."""
    return nn.AdaptiveAvgPool2d(1)


@POOLINGS.register("max")
def max_pool() -> nn.Module:
    """Max pooling of the whole final map, whatever its size."""
    return nn.AdaptiveMaxPool2d(1)


@POOLINGS.register("gem")
def gem_pool() -> nn.Module:
    """Generalised-mean pooling (p = 3, learnable) of the whole final map."""
    return GeM()
