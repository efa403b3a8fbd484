"""Augmentation of whole uint8 batches with tensor ops and an explicit ``torch.Generator``.

Order (training): horizontal flip → zero-pad by ``pad`` and random-crop back to size →
to float in [0, 1] → brightness / contrast jitter (factors in [1-s, 1+s]) → normalise
with mean / std → random erasing (Zhong et al.: area 2–40 % of the image, aspect
0.3–3.3, filled with 0, i.e. the mean colour after normalisation). Evaluation only
converts and normalises.

Every op runs on the device its batch lives on (CPU or CUDA). Random numbers are always
drawn from the CPU generator, in the same order, and then moved to the batch's device, so
for one generator the batches are the same wherever they are made. Pad-crop and erasing
have two equal implementations: one window copy per image (fastest on the CPU) and
index arithmetic / masks over the whole batch (no Python loop, used off the CPU); pass
``vectorised`` to pick one explicitly.

Example:
    >>> import torch
    >>> from reid.spec import AugmentSpec
    >>> x = torch.randint(0, 256, (4, 3, 16, 8), dtype=torch.uint8)
    >>> y = augment_batch(x, AugmentSpec(pad=2), torch.Generator().manual_seed(0))
    >>> y.shape, y.dtype
    (torch.Size([4, 3, 16, 8]), torch.float32)
    >>> z = augment_batch(x, AugmentSpec(pad=2), torch.Generator().manual_seed(0), vectorised=True)
    >>> torch.equal(y, z)
    True
"""

from __future__ import annotations

import math

import torch

from reid.spec import AugmentSpec


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``t`` on ``device`` without a host sync: CPU tensors go through pinned memory with a non-blocking copy.

    A no-op when ``t`` is already there. (A copy from pageable memory would make the host
    wait for all queued GPU work.)
    """
    if t.device == device:
        return t
    if t.device.type == "cpu" and device.type == "cuda" and not t.is_pinned():
        t = t.pin_memory()
    return t.to(device, non_blocking=True)


def _use_vectorised(x: torch.Tensor, vectorised: bool | None) -> bool:
    return x.device.type != "cpu" if vectorised is None else vectorised


def _standardise_(x: torch.Tensor, spec: AugmentSpec) -> torch.Tensor:
    """Normalise float ``x`` in place with the spec's mean / std (and return it)."""
    mean = to_device(torch.tensor(spec.mean).view(1, 3, 1, 1), x.device)
    std = to_device(torch.tensor(spec.std).view(1, 3, 1, 1), x.device)
    return x.sub_(mean).div_(std)


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
    mask = to_device(_rand(x.shape[0], g) < p, x.device)
    return torch.where(mask.view(-1, 1, 1, 1), x.flip(-1), x)


def pad_crop(x: torch.Tensor, pad: int, g: torch.Generator, vectorised: bool | None = None) -> torch.Tensor:
    """Zero-pad by ``pad`` pixels per side, then crop each image back to H×W at a random offset.

    Equivalent to cropping ``F.pad(x, [pad] * 4)`` at offsets ``(dy, dx)`` in ``[0, 2·pad]``.
    ``vectorised=None`` copies each image's visible window on the CPU and gathers rows and
    columns of the whole batch elsewhere (both give the same pixels).
    """
    n = x.shape[0]
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=g)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=g)
    if _use_vectorised(x, vectorised):
        return _pad_crop_gather(x, to_device(dy - pad, x.device), to_device(dx - pad, x.device))
    return _pad_crop_windows(x, (dy - pad).tolist(), (dx - pad).tolist())


def _pad_crop_windows(x: torch.Tensor, sy: list[int], sx: list[int]) -> torch.Tensor:
    """Crop image i at source offset ``(sy[i], sx[i])`` by copying its visible window (zeros elsewhere)."""
    _, _, h, w = x.shape
    out = torch.zeros_like(x)
    for i, (oy, ox) in enumerate(zip(sy, sx)):
        if abs(oy) >= h or abs(ox) >= w:
            continue
        out[i, :, max(0, -oy) : h - max(0, oy), max(0, -ox) : w - max(0, ox)] = \
            x[i, :, max(0, oy) : h + min(0, oy), max(0, ox) : w + min(0, ox)]
    return out


def _pad_crop_gather(x: torch.Tensor, sy: torch.Tensor, sx: torch.Tensor) -> torch.Tensor:
    """The same crop for the whole batch at once: gather rows, then columns, then zero what fell outside."""
    n, c, h, w = x.shape
    rows = torch.arange(h, device=x.device).view(1, h) + sy.view(n, 1)  # n×h source rows
    cols = torch.arange(w, device=x.device).view(1, w) + sx.view(n, 1)  # n×w source columns
    out = x.gather(2, rows.clamp(0, h - 1).view(n, 1, h, 1).expand(n, c, h, w))
    out = out.gather(3, cols.clamp(0, w - 1).view(n, 1, 1, w).expand(n, c, h, w))
    inside = ((rows >= 0) & (rows < h)).view(n, 1, h, 1) & ((cols >= 0) & (cols < w)).view(n, 1, 1, w)
    return out.masked_fill_(~inside, 0)


def color_jitter(x: torch.Tensor, strength: float, g: torch.Generator) -> torch.Tensor:
    """Per-image brightness and contrast factors in [1 - strength, 1 + strength] on [0, 1] floats."""
    n = x.shape[0]
    brightness = to_device(1 + (2 * _rand(n, g) - 1) * strength, x.device)
    contrast = to_device(1 + (2 * _rand(n, g) - 1) * strength, x.device)
    gray = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - gray) * contrast.view(n, 1, 1, 1) + gray
    return (x * brightness.view(n, 1, 1, 1)).clamp(0, 1)


def random_erase(x: torch.Tensor, p: float, g: torch.Generator, area=(0.02, 0.4), aspect=(0.3, 3.3),
                 vectorised: bool | None = None) -> torch.Tensor:
    """With probability ``p`` per image, set a random rectangle to 0 (returns a new tensor).

    The rectangles are drawn (and sized) on the CPU; ``vectorised=None`` zeroes them one
    window per image on the CPU and with one batch mask elsewhere (same result).
    """
    n, _, h, w = x.shape
    apply = _rand(n, g) < p
    s = (area[0] + (area[1] - area[0]) * _rand(n, g)) * h * w
    r = torch.exp(math.log(aspect[0]) + (math.log(aspect[1]) - math.log(aspect[0])) * _rand(n, g))
    eh = torch.sqrt(s * r).round().clamp(1, h).long()
    ew = torch.sqrt(s / r).round().clamp(1, w).long()
    y0 = (_rand(n, g) * (h - eh + 1)).long()
    x0 = (_rand(n, g) * (w - ew + 1)).long()
    if _use_vectorised(x, vectorised):
        box = to_device(torch.stack([apply.long(), y0, y0 + eh, x0, x0 + ew]), x.device)
        ys, xs = torch.arange(h, device=x.device), torch.arange(w, device=x.device)
        in_rows = (ys.view(1, h) >= box[1].view(n, 1)) & (ys.view(1, h) < box[2].view(n, 1))
        in_cols = (xs.view(1, w) >= box[3].view(n, 1)) & (xs.view(1, w) < box[4].view(n, 1))
        mask = box[0].bool().view(n, 1, 1, 1) & in_rows.view(n, 1, h, 1) & in_cols.view(n, 1, 1, w)
        return x.masked_fill(mask, 0.0)
    out = x.clone()
    for i, top, left, bh, bw in zip(apply.nonzero().flatten().tolist(), *(t[apply].tolist() for t in (y0, x0, eh, ew))):
        out[i, :, top : top + bh, left : left + bw] = 0.0
    return out


def augment_batch(batch: torch.Tensor, spec: AugmentSpec, g: torch.Generator,
                  vectorised: bool | None = None) -> torch.Tensor:
    """Training augmentation of a uint8 N×3×H×W batch → normalised float32 on the batch's device.

    See the module docstring; ``vectorised`` picks the pad-crop / erasing implementation
    (``None``: per-image windows on the CPU, whole-batch index arithmetic elsewhere).
    """
    x = batch
    if spec.flip > 0:
        x = random_flip(x, spec.flip, g)
    if spec.pad > 0:
        x = pad_crop(x, spec.pad, g, vectorised)
    x = _to_unit_float(x)
    if spec.color_jitter > 0:
        x = color_jitter(x, spec.color_jitter, g)
    x = _standardise_(x, spec)
    if spec.erase > 0:
        x = random_erase(x, spec.erase, g, vectorised=vectorised)
    return x
