"""The exported graph and the metadata that documents its input.

The graph maps a float32 batch ``N×3×H×W`` — RGB, pixel values scaled to [0, 1], then
``(x − mean) / std`` per channel (exactly :func:`reid.data.transforms.normalize`) — to the ``N×D``
embedding the run evaluates with (:meth:`reid.model.ReidModel.embed`: after the BN neck where there
is one), averaged with the mirrored image's when the run's evaluation flips (``eval.flip``, in the
same order of operations as :func:`reid.engine.evaluation.embed_batch`), L2-normalised when the
run's evaluation normalises. Normalising the pixels stays outside
the graph, so the exported file takes what the PyTorch model takes. The model pools its whole
final feature map (:mod:`reid.model.pooling`), so the graph takes any height and width; the
metadata's ``height`` and ``width`` are the size it was trained at, the preferred one.

Example:
    >>> p = as_preprocess((256, 128, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), "RGB"))
    >>> describe(p, normalize=True, embedding_dim=512)["input"]
    'float32 N×3×H×W (trained at 256×128, the preferred size; any H, W run), RGB, pixel/255 then (x − mean) / std per channel, mean (0.5, 0.5, 0.5), std (0.25, 0.25, 0.25)'
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from reid.data.preprocess import Preprocess
from reid.errors import ReidError


def as_preprocess(p) -> Preprocess:
    """A :class:`~reid.data.preprocess.Preprocess` from one, from ``(height, width, mean, std[, channels])``,
    or from any object with those attributes.

    Raises:
        ReidError: something else, or not 3 means / 3 stds / RGB.
    """
    if not isinstance(p, Preprocess):
        try:
            if isinstance(p, (tuple, list)):
                fields = dict(zip(("height", "width", "mean", "std", "channels"), p))
            else:
                fields = {k: getattr(p, k) for k in ("height", "width", "mean", "std", "channels") if hasattr(p, k)}
            p = Preprocess(int(fields["height"]), int(fields["width"]), tuple(float(v) for v in fields["mean"]),
                           tuple(float(v) for v in fields["std"]), str(fields.get("channels", "RGB")))
        except (KeyError, TypeError, ValueError):
            raise ReidError(f"cannot read the preprocessing from {p!r}",
                            fix="give (height, width, mean, std, 'RGB') or an object with those attributes") from None
    if len(p.mean) != 3 or len(p.std) != 3 or p.channels != "RGB":
        raise ReidError(f"preprocessing must have 3 means, 3 stds and channels 'RGB', got {p}")
    return p


class EmbeddingGraph(nn.Module):
    """``images → model.embed(images)`` (averaged with ``model.embed`` of the mirrored images if ``flip``),
    L2-normalised if ``normalize``: the function that is exported.

    Example:
        >>> from reid.model import build_model
        >>> from reid.spec import HeadSpec, ModelSpec
        >>> m = build_model(ModelSpec(layers=(1, 1, 1, 1)), HeadSpec(type="none"), None, input_size=(3, 64, 32))
        >>> EmbeddingGraph(m, normalize=True).eval()(torch.randn(2, 3, 64, 32)).norm(dim=1).round(decimals=4).tolist()
        [1.0, 1.0]
    """

    def __init__(self, model: nn.Module, normalize: bool, flip: bool = False):
        super().__init__()
        if not hasattr(model, "embed"):
            raise ReidError(f"cannot export a {type(model).__name__}: it has no embed() method",
                            fix="export a reid.model.ReidModel (reid.load(RUN).model)")
        self.model, self.normalize, self.flip = model, bool(normalize), bool(flip)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) normalised float images → (N, D) float embeddings."""
        embedding = self.model.embed(images)
        if self.flip:
            embedding = (embedding + self.model.embed(torch.flip(images, dims=[3]))) / 2
        return F.normalize(embedding, dim=1) if self.normalize else embedding


def describe(pre: Preprocess, normalize: bool, embedding_dim: int, flip: bool = False) -> dict[str, str]:
    """The metadata written into an exported file (all values strings): input and output, spelled out."""
    mean, std = (f"({', '.join(f'{v:g}' for v in t)})" for t in (pre.mean, pre.std))
    return {
        "input": f"float32 N×3×H×W (trained at {pre.height}×{pre.width}, the preferred size; any H, W run), {pre.channels},"
                 f" pixel/255 then (x − mean) / std per channel, mean {mean}, std {std}",
        "output": f"float32 N×{embedding_dim} embedding{', mean with the mirrored image' if flip else ''}"
                  f"{', L2-normalised' if normalize else ''}",
        "height": str(pre.height),
        "width": str(pre.width),
        "mean": mean,
        "std": std,
        "channels": pre.channels,
        "normalized": "true" if normalize else "false",
        "flip": "true" if flip else "false",
        "embedding_dim": str(embedding_dim),
    }
