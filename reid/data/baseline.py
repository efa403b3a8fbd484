"""A non-learned colour-histogram nearest-neighbour baseline (how hard is a dataset?).

Each image is cut to its central 60 % of columns (where the person is; the sides are
mostly background), split into 6 horizontal stripes, and described per stripe by a
16-bin histogram of each RGB channel, normalised to sum to 1. Query and gallery are
compared with the Hellinger distance (euclidean distance between square-rooted
histograms) and ranked by :func:`reid.metrics.evaluate`.

Example:
    >>> import torch
    >>> x = torch.randint(0, 256, (2, 3, 32, 20), dtype=torch.uint8)
    >>> f = stripe_histograms(x, stripes=4, bins=8)
    >>> f.shape, torch.allclose(f.view(2, 3, 4, 8).sum(-1), torch.ones(2, 3, 4))
    (torch.Size([2, 96]), True)
"""

from __future__ import annotations

import torch

from reid.data.build import ReidData
from reid.ops.distance import Distances


def stripe_histograms(images: torch.Tensor, stripes: int = 6, bins: int = 16, keep_width: float = 0.6) -> torch.Tensor:
    """N×(3·stripes·bins) descriptors of uint8 N×3×H×W images (see the module docstring)."""
    w = images.shape[-1]
    margin = int(round(w * (1 - keep_width) / 2))
    x = images[..., margin : w - margin].long()
    n, _, h, w = x.shape
    stripe = (torch.arange(h) * stripes // h).view(1, 1, h, 1)
    channel = torch.arange(3).view(1, 3, 1, 1)
    index = ((channel * stripes + stripe) * bins + x * bins // 256).reshape(n, -1)
    hist = torch.zeros(n, 3 * stripes * bins).scatter_add_(1, index, torch.ones(index.shape))
    per_stripe = torch.bincount(torch.arange(h) * stripes // h, minlength=stripes).float() * w
    return (hist.view(n, 3, stripes, bins) / per_stripe.view(1, 1, stripes, 1)).reshape(n, -1)


def hellinger_distances(q: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Q×G euclidean distances between square-rooted histograms (the square root of the kernel's squared L2)."""
    return Distances(q.sqrt(), g.sqrt()).matrix().sqrt_()


def run_baseline(data: ReidData, max_rank: int = 50) -> dict:
    """Evaluate the histogram baseline on ``data``'s query / gallery; returns :func:`reid.metrics.evaluate`'s dict.

    The protocol is "all" (leave-one-out, query excluded from its own gallery) when
    query and gallery are one set or there is a single camera, else "market".
    """
    from reid.metrics import evaluate

    protocol = data.describe().protocol
    q = stripe_histograms(data.query.all_images())
    g = q if data.same_set else stripe_histograms(data.gallery.all_images())
    result = evaluate(
        hellinger_distances(q, g), data.query.pids, data.gallery.pids, data.query.camids, data.gallery.camids,
        max_rank=min(max_rank, len(data.gallery)), protocol=protocol, same_set=data.same_set,
    )
    result["protocol"] = protocol
    return result
