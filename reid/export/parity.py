"""Parity of an exported model: the same images through PyTorch and through the file, compared.

Three numbers: the largest absolute difference of any embedding entry, the smallest cosine
similarity between the two embeddings of one image, and the share of images whose nearest
neighbour (among the checked images, itself excluded) is the same image under both. Parity holds
when the smallest cosine is at least :data:`MIN_COSINE` (fp32 on both sides).

Example:
    >>> x = torch.randn(6, 4)
    >>> r = compare(x, x + 1e-7)
    >>> r.ok, r.nearest_neighbour_agreement
    (True, 1.0)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from reid.ops.distance import Distances

MIN_COSINE = 0.9999


@dataclass(frozen=True)
class ParityReport:
    """How closely an exported model reproduces PyTorch's embeddings."""

    images: int
    max_abs_diff: float
    min_cosine: float
    nearest_neighbour_agreement: float

    @property
    def ok(self) -> bool:
        """Smallest cosine similarity at least :data:`MIN_COSINE`."""
        return self.min_cosine >= MIN_COSINE

    def summary(self) -> str:
        """One line: the three numbers and the verdict."""
        return (f"{self.images} images: max |difference| {self.max_abs_diff:.2e}, minimum cosine {self.min_cosine:.7f},"
                f" nearest-neighbour agreement {self.nearest_neighbour_agreement:.1%} —"
                f" {'parity holds' if self.ok else 'PARITY BROKEN'} (cosine ≥ {MIN_COSINE} required)")


def compare(reference: torch.Tensor, exported: torch.Tensor) -> ParityReport:
    """Compare ``(N, D)`` embeddings of the same images from PyTorch (``reference``) and an exported file."""
    a, b = reference.detach().double().cpu(), exported.detach().double().cpu()
    if a.shape != b.shape:
        return ParityReport(len(a), float("inf"), -1.0, 0.0)
    cosine = F.cosine_similarity(a, b, dim=1, eps=1e-12)
    return ParityReport(len(a), float((a - b).abs().max()), float(cosine.min()), _nn_agreement(a, b))


def _nn_agreement(a: torch.Tensor, b: torch.Tensor) -> float:
    if len(a) < 2:
        return 1.0
    eye = torch.eye(len(a), dtype=torch.bool)
    nearest = [Distances(x, x, dtype=torch.float64).matrix().masked_fill_(eye, float("inf")).argmin(1) for x in (a, b)]
    return float((nearest[0] == nearest[1]).double().mean())
