"""Embeddings with the names of their images, saved as one ``.safetensors`` file.

The file holds three tensors — ``features`` (N×D float32), ``pids`` and ``camids`` (int64, ``-1``
where the file name does not carry them) — and string metadata: ``names`` (a JSON list of the image
paths), ``normalized`` (whether rows are L2-normalised), and what produced them (``reid_version``,
``checkpoint``, ``spec_name`` and ``weights_sha256``, the :func:`weights_digest` of the model's weights).
safetensors stores no code, so loading a file from anyone is safe.

Features are only comparable with features of the same weights: :meth:`FeatureSet.check_weights` raises
when a file was embedded by other weights (another run, or ``last.pt`` against ``best.pt``), even of
the same dimension — ranking one model's queries against another's gallery gives plausible-looking,
meaningless lists.

Example:
    >>> import tempfile, torch
    >>> fs = FeatureSet(torch.eye(2), ["a.jpg", "b.jpg"], torch.tensor([1, -1]), torch.tensor([0, -1]), normalized=True)
    >>> path = fs.save(tempfile.mkdtemp() + "/feats.safetensors")
    >>> back = FeatureSet.load(path)
    >>> back.names, back.pids.tolist(), back.normalized, torch.equal(back.features, fs.features)
    (['a.jpg', 'b.jpg'], [1, -1], True, True)
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch

from reid.engine.checkpoint import atomic_write_bytes
from reid.errors import ReidError

_FIX = "pass a .safetensors file written by `reid embed`"
#: The metadata key of the producing weights' digest.
WEIGHTS_KEY = "weights_sha256"


def weights_digest(state_dict: dict[str, torch.Tensor]) -> str:
    """SHA-256 of a model's weights: every entry's name, dtype, shape and bytes, in name order (layout-independent).

    Example:
        >>> a = torch.nn.Linear(2, 2).state_dict()
        >>> weights_digest(a) == weights_digest({k: v.clone() for k, v in a.items()})
        True
        >>> a["bias"][0] += 1
        >>> len(weights_digest(a))
        64
    """
    h = hashlib.sha256()
    for name in sorted(state_dict):
        t = state_dict[name].detach().cpu().contiguous()
        h.update(f"{name}\0{t.dtype}\0{tuple(t.shape)}\n".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


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

    def check_weights(self, digest: str, model: str, where: str, allow_other: bool = False) -> None:
        """Check these features were embedded by the weights whose :func:`weights_digest` is ``digest``.

        Args:
            digest: the searching model's weights digest.
            model: the searching model, for the message (e.g. its checkpoint path).
            where: what the features are (a file name, ``"query features"``), for the message.
            allow_other: accept other weights with a warning instead of an error.

        Raises:
            ReidError: other weights embedded them (unless ``allow_other``).

        Features without a recorded digest (written before reid recorded one) pass with a warning.

        Example:
            >>> fs = FeatureSet(torch.eye(2), ["a", "b"], torch.tensor([-1, -1]), torch.tensor([-1, -1]),
            ...                 meta={"weights_sha256": "ab" * 32, "checkpoint": "runs/x/checkpoints/best.pt"})
            >>> fs.check_weights("ab" * 32, "runs/x/checkpoints/best.pt", "g.safetensors")  # the same weights: fine
            >>> fs.check_weights("cd" * 32, "runs/y/checkpoints/best.pt", "g.safetensors")  # doctest: +ELLIPSIS
            Traceback (most recent call last):
            reid.errors.ReidError: g.safetensors: these features were embedded by other weights (runs/x/checkpoints/best.pt, weights abababababab…) than the searching model's (runs/y/checkpoints/best.pt, weights cdcdcdcdcdcd…): ...
        """
        recorded = self.meta.get(WEIGHTS_KEY)
        if recorded is None:
            warnings.warn(f"{where}: no weights digest recorded (written by reid < 0.3?), so it cannot be checked that "
                          f"{model} embedded these features", stacklevel=4)
            return
        if recorded == digest:
            return
        what = (f"these features were embedded by other weights ({self.meta.get('checkpoint', 'unknown checkpoint')}, "
                f"weights {recorded[:12]}…) than the searching model's ({model}, weights {digest[:12]}…)")
        if allow_other:
            warnings.warn(f"{where}: {what}; ranking them anyway (allowed)", stacklevel=4)
            return
        raise ReidError(f"{what}: distances between two models' embeddings mean nothing", where=where,
                        fix="embed them again with this model (`reid embed RUN DIR -o FILE`), or pass "
                            "--allow-other-checkpoint (allow_other_checkpoint=True) if both share one embedding space")

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
