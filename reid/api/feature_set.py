"""Embeddings with the names of their images, saved as one ``.safetensors`` file.

The file holds three tensors — ``features`` (N×D float32), ``pids`` and ``camids`` (int64, ``-1``
where the file name does not carry them) — and string metadata: ``names`` (a JSON list of the image
paths), ``normalized`` (whether rows are L2-normalised), and what produced them (``reid_version``,
``checkpoint``, ``spec_name``). safetensors stores no code, so loading a file from anyone is safe.

Example:
    >>> import tempfile, torch
    >>> fs = FeatureSet(torch.eye(2), ["a.jpg", "b.jpg"], torch.tensor([1, -1]), torch.tensor([0, -1]), normalized=True)
    >>> path = fs.save(tempfile.mkdtemp() + "/feats.safetensors")
    >>> back = FeatureSet.load(path)
    >>> back.names, back.pids.tolist(), back.normalized, torch.equal(back.features, fs.features)
    (['a.jpg', 'b.jpg'], [1, -1], True, True)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from reid.engine.checkpoint import atomic_write_bytes
from reid.errors import ReidError

_FIX = "pass a .safetensors file written by `reid embed`"


@dataclass
class FeatureSet:
    """Features of named images, with identities and cameras where known (``-1`` otherwise).

    Attributes:
        features: N×D float32 (CPU).
        names: the image of each row (a file path, or ``<array i>`` for in-memory images).
        pids, camids: int64 of length N.
        normalized: rows are L2-normalised.
        meta: provenance strings (reid version, checkpoint, spec name).
    """

    features: torch.Tensor
    names: list[str]
    pids: torch.Tensor
    camids: torch.Tensor
    normalized: bool = False
    meta: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.names)

    @property
    def dim(self) -> int:
        """The feature dimension D."""
        return int(self.features.shape[1])

    @property
    def labelled(self) -> bool:
        """Every image has a known identity and camera."""
        return bool(len(self)) and bool((self.pids >= 0).all() and (self.camids >= 0).all())

    def save(self, path: str | Path) -> Path:
        """Write the set atomically to ``path`` (a ``.safetensors`` file) and return the path."""
        from safetensors.torch import save

        path = Path(path)
        meta = {**self.meta, "names": json.dumps(self.names), "normalized": str(self.normalized).lower()}
        data = save({"features": self.features.float().contiguous(), "pids": self.pids.long().contiguous(),
                     "camids": self.camids.long().contiguous()}, metadata=meta)
        try:
            atomic_write_bytes(path, lambda f: f.write(data))
        except OSError as e:
            raise ReidError(f"cannot write the features ({e.strerror or e})", where=str(path),
                            fix="choose a writable --out path with enough free space") from None
        return path

    @classmethod
    def load(cls, path: str | Path, dim: int | None = None) -> FeatureSet:
        """Read a file written by :meth:`save`; with ``dim``, check the feature dimension matches.

        Raises:
            ReidError: missing file, not a reid feature file, or features of another dimension.
        """
        from safetensors import SafetensorError, safe_open

        path = Path(path)
        if not path.is_file():
            raise ReidError("feature file not found", where=str(path), fix=_FIX)
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = dict(f.metadata() or {})
                tensors = {k: f.get_tensor(k) for k in f.keys()}
        except (SafetensorError, OSError, ValueError) as e:
            raise ReidError(f"not a readable safetensors file ({str(e).splitlines()[0]})", where=str(path), fix=_FIX) from None
        if not {"features", "pids", "camids"} <= tensors.keys() or "names" not in meta:
            raise ReidError("not a reid feature file (it lacks features, pids, camids or names)", where=str(path), fix=_FIX)
        names = json.loads(meta.pop("names"))
        normalized = meta.pop("normalized", "false") == "true"
        fs = cls(tensors["features"], names, tensors["pids"], tensors["camids"], normalized, meta)
        if dim is not None and fs.dim != dim:
            raise ReidError(f"these features have dimension {fs.dim}, but the model embeds into {dim}", where=str(path),
                            fix="embed the gallery again with this model (`reid embed RUN DIR --out …`)")
        return fs
