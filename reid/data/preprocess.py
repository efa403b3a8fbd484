"""What turns an image into the model's input: size, channel order, mean and std.

A checkpoint carries one (so a model can be used without its dataset or spec at hand), the loaded
model applies it to a user's images, and exports write it into their metadata.

Example:
    >>> import torch
    >>> p = Preprocess(height=4, width=2, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    >>> p.apply(torch.full((1, 3, 4, 2), 255, dtype=torch.uint8)).unique().tolist()
    [1.0]
    >>> Preprocess.from_json(p.to_json()) == p
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from reid.data.transforms import normalize
from reid.spec import AugmentSpec, Spec


@dataclass(frozen=True)
class Preprocess:
    """Decoded images are resized (bilinear) to ``height`` × ``width``, kept in ``channels`` order (RGB),
    scaled to [0, 1] and normalised with ``mean`` / ``std`` per channel."""

    height: int
    width: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    channels: str = "RGB"

    @classmethod
    def from_spec(cls, spec: Spec) -> Preprocess:
        """The preprocessing a run trained and evaluated with (``[data]`` size, ``[augment]`` mean / std)."""
        return cls(spec.data.height, spec.data.width, tuple(spec.augment.mean), tuple(spec.augment.std))

    def normalization(self) -> AugmentSpec:
        """An ``[augment]`` table with this mean / std: what evaluation's normalisation reads."""
        return AugmentSpec(mean=self.mean, std=self.std)

    def apply(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 N×3×H×W (already at this size) → the normalised float32 batch the model takes.

        The same arithmetic as evaluation's (:func:`reid.data.transforms.normalize`), so features match bitwise.
        """
        return normalize(images, self.normalization())

    def to_json(self) -> dict[str, Any]:
        """A dict of plain numbers and strings (what checkpoints and export metadata store)."""
        return {"height": self.height, "width": self.width, "mean": list(self.mean), "std": list(self.std),
                "channels": self.channels}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Preprocess:
        """Inverse of :meth:`to_json`."""
        return cls(int(data["height"]), int(data["width"]), tuple(float(x) for x in data["mean"]),
                   tuple(float(x) for x in data["std"]), str(data.get("channels", "RGB")))
