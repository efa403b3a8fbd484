"""Augmentation of whole uint8 batches with tensor ops and an explicit ``torch.Generator``.

Order (training): horizontal flip → zero-pad by ``pad`` and random-crop back to size →
to float in [0, 1] → brightness / contrast jitter (factors in [1-s, 1+s]) → normalise
with mean / std → random erasing (Zhong et al.: area 2–40 % of the image, aspect
0.3–3.3, filled with 0, i.e. the mean colour after normalisation). Evaluation only
converts and normalises.

Example:
    >>> import torch
    >>> from reid.spec import AugmentSpec
    >>> x = torch.randint(0, 256, (4, 3, 16, 8), dtype=torch.uint8)
    >>> y = augment_batch(x, AugmentSpec(pad=2), torch.Generator().manual_seed(0))
    >>> y.shape, y.dtype
    (torch.Size([4, 3, 16, 8]), torch.float32)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from reid.spec import AugmentSpec


def _standardise(x: torch.Tensor, spec: AugmentSpec) -> torch.Tensor:
    return (x - torch.tensor(spec.mean).view(1, 3, 1, 1)) / torch.tensor(spec.std).view(1, 3, 1, 1)


def normalize(batch: torch.Tensor, spec: AugmentSpec) -> torch.Tensor:
    """uint8 N×3×H×W → float32, scaled to [0, 1] and normalised with the spec's mean / std."""
    return _standardise(batch.float() / 255, spec)


def _rand(n: int, g: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=g)


def random_flip(x: torch.Tensor, p: float, g: torch.Generator) -> torch.Tensor:
    """Mirror each image left-right with probability ``p``."""
    mask = _rand(x.shape[0], g) < p
    return torch.where(mask.view(-1, 1, 1, 1), x.flip(-1), x)


def pad_crop(x: torch.Tensor, pad: int, g: torch.Generator) -> torch.Tensor:
    """Zero-pad by ``pad`` pixels per side, then crop each image back to H×W at a random offset."""
    n, c, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=g)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=g)
    rows = (dy.view(n, 1) + torch.arange(h)).view(n, 1, h, 1)
    cols = (dx.view(n, 1) + torch.arange(w)).view(n, 1, 1, w)
    return padded[torch.arange(n).view(n, 1, 1, 1), torch.arange(c).view(1, c, 1, 1), rows, cols]


def color_jitter(x: torch.Tensor, strength: float, g: torch.Generator) -> torch.Tensor:
    """Per-image brightness and contrast factors in [1 - strength, 1 + strength] on [0, 1] floats."""
    n = x.shape[0]
    brightness = 1 + (2 * _rand(n, g) - 1) * strength
    contrast = 1 + (2 * _rand(n, g) - 1) * strength
    gray = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - gray) * contrast.view(n, 1, 1, 1) + gray
    return (x * brightness.view(n, 1, 1, 1)).clamp(0, 1)


def random_erase(x: torch.Tensor, p: float, g: torch.Generator, area=(0.02, 0.4), aspect=(0.3, 3.3)) -> torch.Tensor:
    """With probability ``p`` per image, set a random rectangle to 0."""
    n, _, h, w = x.shape
    apply = _rand(n, g) < p
    s = (area[0] + (area[1] - area[0]) * _rand(n, g)) * h * w
    r = torch.exp(math.log(aspect[0]) + (math.log(aspect[1]) - math.log(aspect[0])) * _rand(n, g))
    eh = torch.sqrt(s * r).round().clamp(1, h).long()
    ew = torch.sqrt(s / r).round().clamp(1, w).long()
    y0 = (_rand(n, g) * (h - eh + 1)).long()
    x0 = (_rand(n, g) * (w - ew + 1)).long()
    ys = torch.arange(h).view(1, h, 1)
    xs = torch.arange(w).view(1, 1, w)
    box = (ys >= y0.view(n, 1, 1)) & (ys < (y0 + eh).view(n, 1, 1)) & (xs >= x0.view(n, 1, 1)) & (xs < (x0 + ew).view(n, 1, 1))
    mask = (box & apply.view(n, 1, 1)).unsqueeze(1)
    return x.masked_fill(mask, 0.0)


def augment_batch(batch: torch.Tensor, spec: AugmentSpec, g: torch.Generator) -> torch.Tensor:
    """Training augmentation of a uint8 N×3×H×W batch → normalised float32 (see the module docstring)."""
    x = batch
    if spec.flip > 0:
        x = random_flip(x, spec.flip, g)
    if spec.pad > 0:
        x = pad_crop(x, spec.pad, g)
    x = x.float() / 255
    if spec.color_jitter > 0:
        x = color_jitter(x, spec.color_jitter, g)
    x = _standardise(x, spec)
    if spec.erase > 0:
        x = random_erase(x, spec.erase, g)
    return x
