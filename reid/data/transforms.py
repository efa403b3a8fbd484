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

from reid.spec import AugmentSpec


def _standardise_(x: torch.Tensor, spec: AugmentSpec) -> torch.Tensor:
    """Normalise float ``x`` in place with the spec's mean / std (and return it)."""
    return x.sub_(torch.tensor(spec.mean).view(1, 3, 1, 1)).div_(torch.tensor(spec.std).view(1, 3, 1, 1))


def _to_unit_float(batch: torch.Tensor) -> torch.Tensor:
    """uint8 → a new float32 tensor in [0, 1]."""
    return batch.float().div_(255)


def normalize(batch: torch.Tensor, spec: AugmentSpec) -> torch.Tensor:
    """uint8 N×3×H×W → float32, scaled to [0, 1] and normalised with the spec's mean / std."""
    return _standardise_(_to_unit_float(batch), spec)


def _rand(n: int, g: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=g)


def random_flip(x: torch.Tensor, p: float, g: torch.Generator) -> torch.Tensor:
    """Mirror each image left-right with probability ``p``."""
    mask = _rand(x.shape[0], g) < p
    return torch.where(mask.view(-1, 1, 1, 1), x.flip(-1), x)


def pad_crop(x: torch.Tensor, pad: int, g: torch.Generator) -> torch.Tensor:
    """Zero-pad by ``pad`` pixels per side, then crop each image back to H×W at a random offset.

    Equivalent to cropping ``F.pad(x, [pad] * 4)`` at offsets ``(dy, dx)`` in ``[0, 2·pad]``,
    but copies each image's visible window once instead of gathering every pixel.
    """
    n, _, h, w = x.shape
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=g).tolist()
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=g).tolist()
    out = torch.zeros_like(x)
    for i in range(n):
        sy, sx = dy[i] - pad, dx[i] - pad  # source offset of the crop in the unpadded image
        if abs(sy) >= h or abs(sx) >= w:
            continue
        out[i, :, max(0, -sy) : h - max(0, sy), max(0, -sx) : w - max(0, sx)] = \
            x[i, :, max(0, sy) : h + min(0, sy), max(0, sx) : w + min(0, sx)]
    return out


def color_jitter(x: torch.Tensor, strength: float, g: torch.Generator) -> torch.Tensor:
    """Per-image brightness and contrast factors in [1 - strength, 1 + strength] on [0, 1] floats."""
    n = x.shape[0]
    brightness = 1 + (2 * _rand(n, g) - 1) * strength
    contrast = 1 + (2 * _rand(n, g) - 1) * strength
    gray = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - gray) * contrast.view(n, 1, 1, 1) + gray
    return (x * brightness.view(n, 1, 1, 1)).clamp(0, 1)


def random_erase(x: torch.Tensor, p: float, g: torch.Generator, area=(0.02, 0.4), aspect=(0.3, 3.3)) -> torch.Tensor:
    """With probability ``p`` per image, set a random rectangle to 0 (returns a new tensor)."""
    n, _, h, w = x.shape
    apply = _rand(n, g) < p
    s = (area[0] + (area[1] - area[0]) * _rand(n, g)) * h * w
    r = torch.exp(math.log(aspect[0]) + (math.log(aspect[1]) - math.log(aspect[0])) * _rand(n, g))
    eh = torch.sqrt(s * r).round().clamp(1, h).long()
    ew = torch.sqrt(s / r).round().clamp(1, w).long()
    y0 = (_rand(n, g) * (h - eh + 1)).long()
    x0 = (_rand(n, g) * (w - ew + 1)).long()
    out = x.clone()
    for i, top, left, bh, bw in zip(apply.nonzero().flatten().tolist(), *(t[apply].tolist() for t in (y0, x0, eh, ew))):
        out[i, :, top : top + bh, left : left + bw] = 0.0
    return out


def augment_batch(batch: torch.Tensor, spec: AugmentSpec, g: torch.Generator) -> torch.Tensor:
    """Training augmentation of a uint8 N×3×H×W batch → normalised float32 (see the module docstring)."""
    x = batch
    if spec.flip > 0:
        x = random_flip(x, spec.flip, g)
    if spec.pad > 0:
        x = pad_crop(x, spec.pad, g)
    x = _to_unit_float(x)
    if spec.color_jitter > 0:
        x = color_jitter(x, spec.color_jitter, g)
    x = _standardise_(x, spec)
    if spec.erase > 0:
        x = random_erase(x, spec.erase, g)
    return x
