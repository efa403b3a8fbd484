"""Pretrained backbone weights: ``"none"``, ``"imagenet"`` (torch hub cache) or a file path.

Nothing is ever downloaded. ``"imagenet"`` reads torchvision's ImageNet checkpoint
for the arch from ``torch.hub.get_dir()/checkpoints/`` (the file name comes from
``ResNet18_Weights.IMAGENET1K_V1.url``); a path reads a state dict saved with
``torch.save`` (a bare state dict, or a dict holding one under ``"state_dict"`` or
``"model"``; ``module.`` and ``backbone.`` key prefixes are stripped).

The backbone uses torchvision's parameter names, so keys map one to one; the report
says what loaded, what the model still lacks, what the file had that the model does
not use (torchvision's ``fc.weight`` / ``fc.bias``) and shape mismatches.

Example:
    >>> imagenet_weights_path("resnet18").name
    'resnet18-f37072fd.pth'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn
from torchvision.models import ResNet18_Weights, ResNet34_Weights

from reid.errors import ReidError

IMAGENET_WEIGHTS = {"resnet18": ResNet18_Weights.IMAGENET1K_V1, "resnet34": ResNet34_Weights.IMAGENET1K_V1}
_WRAPPER_KEYS = ("state_dict", "model")
_PREFIXES = ("module.", "backbone.")


@dataclass
class PretrainedReport:
    """What happened when a state dict was mapped onto a backbone.

    Attributes:
        source: the file read.
        loaded: model keys that received a tensor.
        missing: model keys the file lacked (``num_batches_tracked`` counters excepted).
        discarded: file keys the model has no place for (e.g. ``fc.weight``, ``fc.bias``).
        shape_mismatches: (key, shape in file, shape in model) for keys not loaded because shapes differ.
    """

    source: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    discarded: list[str] = field(default_factory=list)
    shape_mismatches: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """True when every backbone tensor loaded."""
        return not self.missing and not self.shape_mismatches


def imagenet_weights_path(arch: str) -> Path:
    """Where torchvision's ImageNet weights for ``arch`` sit in the torch hub cache."""
    if arch not in IMAGENET_WEIGHTS:
        raise ReidError(f"no ImageNet weights known for arch {arch!r}", where="model.pretrained", fix=f"use one of: {', '.join(IMAGENET_WEIGHTS)}")
    name = Path(urlparse(IMAGENET_WEIGHTS[arch].url).path).name
    return Path(torch.hub.get_dir()) / "checkpoints" / name


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict with ``torch.load(weights_only=True)``; unwrap and strip prefixes.

    Raises:
        ReidError: the file is missing, unreadable, corrupt, or holds no tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise ReidError("weights file not found", where=str(path), fix="give the path of a state dict saved with torch.save")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for bad files (UnpicklingError, RuntimeError, EOFError …)
        raise ReidError(f"cannot read weights ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else 'corrupt file'})", where=str(path), fix="re-save it with torch.save(model.state_dict(), path)") from None
    for key in _WRAPPER_KEYS:
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ReidError("file does not hold a state dict (a dict of tensors)", where=str(path), fix="save model.state_dict(), not the model")
    state = {}
    for key, value in obj.items():
        for prefix in _PREFIXES:
            key = key.removeprefix(prefix)
        state[key] = value
    return state


def load_state_dict_into(module: nn.Module, state: dict[str, torch.Tensor], source: str) -> PretrainedReport:
    """Copy every tensor whose key and shape match into ``module``; report the rest."""
    own = module.state_dict()
    report = PretrainedReport(source=source)
    usable = {}
    for key, value in state.items():
        if key not in own:
            report.discarded.append(key)
        elif tuple(value.shape) != tuple(own[key].shape):
            report.shape_mismatches.append((key, tuple(value.shape), tuple(own[key].shape)))
        else:
            usable[key] = value
    module.load_state_dict(usable, strict=False)
    report.loaded = [k for k in own if k in usable]
    mismatched = {k for k, _, _ in report.shape_mismatches}
    report.missing = [k for k in own if k not in usable and k not in mismatched and not k.endswith("num_batches_tracked")]
    return report


def load_pretrained(backbone: nn.Module, pretrained: str, arch: str = "resnet18") -> PretrainedReport | None:
    """Load ``pretrained`` (``"none"``, ``"imagenet"`` or a path) into ``backbone``.

    Returns:
        The load report, or None for ``"none"``.

    Raises:
        ReidError: the ImageNet file is not in the hub cache, or the file is missing / corrupt.
    """
    if pretrained == "none":
        return None
    if pretrained == "imagenet":
        path = imagenet_weights_path(arch)
        if not path.is_file():
            raise ReidError(
                f"ImageNet weights {path.name} are not in the torch hub cache (nothing is downloaded)",
                where=str(path),
                fix=f"copy {path.name} (from {IMAGENET_WEIGHTS[arch].url}) into {path.parent}, or set model.pretrained = \"none\"",
            )
    else:
        path = Path(pretrained)
    return load_state_dict_into(backbone, read_state_dict(path), str(path))
