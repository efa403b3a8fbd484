"""Pretrained backbone weights: ``"none"``, ``"imagenet"``, a run directory or a weights file.

``"imagenet"`` reads the arch's ImageNet checkpoint (torchvision's ``IMAGENET1K_V1`` for
ResNet-18 … 152, the IBN-Net authors' release for the IBN-a ResNets) from
``torch.hub.get_dir()/checkpoints/``; when it is not there it is downloaded from its URL (sha256-checked, with a progress bar; see
:mod:`reid.model.download`, whose ``REID_WEIGHTS_URL`` points at a mirror). Offline,
the error says what failed, the URL and where to put the file.

A run directory (``runs/market-r50``) means its ``checkpoints/best.pt``, else
``checkpoints/last.pt`` — fine-tuning from a finished run; the new model's classifier is
built fresh. A file is read with ``torch.load(weights_only=True)``: a bare state dict, or
a dict holding one under ``"state_dict"`` or ``"model"`` (a reid checkpoint);
``module.`` and ``backbone.`` key prefixes are stripped, and the ``head.`` tensors of a
reid checkpoint are reported as discarded.

The backbone uses torchvision's parameter names, so keys map one to one; the report
says what loaded, what the model still lacks, what the file had that the model does
not use (torchvision's ``fc.weight`` / ``fc.bias``) and shape mismatches.

Example:
    >>> imagenet_weights_path("resnet50").name
    'resnet50-0676ba61.pth'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn
from torchvision.models import ResNet18_Weights, ResNet34_Weights, ResNet50_Weights, ResNet101_Weights, ResNet152_Weights

from reid.errors import ReidError
from reid.model.download import download, mirrored_url, sha256_prefix

#: Where each arch's ImageNet weights are downloaded from; the file name carries its sha256 prefix (torch hub's
#: convention), which the download checks.
IMAGENET_WEIGHTS = {
    "resnet18": ResNet18_Weights.IMAGENET1K_V1.url,
    "resnet34": ResNet34_Weights.IMAGENET1K_V1.url,
    "resnet50": ResNet50_Weights.IMAGENET1K_V1.url,
    "resnet101": ResNet101_Weights.IMAGENET1K_V1.url,
    "resnet152": ResNet152_Weights.IMAGENET1K_V1.url,
    # the IBN-Net authors' release (Pan et al. 2018; the weights fast-reid's and BoT's IBN-a recipes start from)
    "resnet50_ibn_a": "https://github.com/XingangPan/IBN-Net/releases/download/v1.0/resnet50_ibn_a-d9d0bb7b.pth",
    "resnet101_ibn_a": "https://github.com/XingangPan/IBN-Net/releases/download/v1.0/resnet101_ibn_a-59ea0ac6.pth",
}
#: Archs whose ImageNet weights exist upstream but are not offered here (no checked URL and sha256 yet): where they are.
IMAGENET_NOT_OFFERED = {
    "osnet_x1_0": "torchreid's ImageNet-pretrained osnet_x1_0 (github.com/KaiyangZhou/deep-person-reid, model zoo; "
                  "a Google Drive file)",
}
#: Inside a run directory, in order of preference (the engine's ``RunDir`` layout).
#: Where a run directory keeps its checkpoints: the best Rank-1 weights, then the latest resumable state.
RUN_CHECKPOINTS = ("checkpoints/best.pt", "checkpoints/last.pt")
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
    """Where the ImageNet weights for ``arch`` sit in the torch hub cache.

    Raises:
        ReidError: no ImageNet weights offered for ``arch`` (for OSNet the error says where
            its authors' file is: it loads as a weights file, one to one).
    """
    if arch in IMAGENET_NOT_OFFERED:
        raise ReidError(f"ImageNet weights for {arch} are not offered yet", where="model.pretrained",
                        fix=f"download {IMAGENET_NOT_OFFERED[arch]} yourself and set model.pretrained to that file "
                            '(its parameter names load one to one), or set model.pretrained = "none"')
    if arch not in IMAGENET_WEIGHTS:
        raise ReidError(f"no ImageNet weights known for arch {arch!r}", where="model.pretrained", fix=f"use one of: {', '.join(IMAGENET_WEIGHTS)}")
    name = Path(urlparse(IMAGENET_WEIGHTS[arch]).path).name
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


def imagenet_weights(arch: str) -> Path:
    """The ImageNet weights for ``arch``: from the torch hub cache, downloaded there first if missing.

    Raises:
        ReidError: no weights known for ``arch``, or the download fails (offline, bad hash).
    """
    path = imagenet_weights_path(arch)
    if not path.is_file():
        url = mirrored_url(IMAGENET_WEIGHTS[arch])
        try:
            download(url, path, sha256_prefix(path.name))
        except ReidError as e:
            raise ReidError(f"ImageNet weights for {arch} are not in the torch hub cache and {e.what}", where=e.where,
                            fix=f"{e.fix}; or set model.pretrained = \"none\"") from None
    return path


def resolve_weights_file(pretrained: str | Path, which: str = "best") -> Path:
    """The file a path means: the file itself, or a run directory's ``best.pt`` (else ``last.pt``; with
    ``which="last"`` the other way round).

    Raises:
        ReidError: a directory without a checkpoint.
    """
    path = Path(pretrained)
    if not path.is_dir():
        return path
    for name in RUN_CHECKPOINTS if which == "best" else RUN_CHECKPOINTS[::-1]:
        if (path / name).is_file():
            return path / name
    raise ReidError("no checkpoint in this directory", where=str(path),
                    fix=f"give a run directory written by `reid run` (holding {' or '.join(RUN_CHECKPOINTS)}), "
                        "or a weights file")


def load_pretrained(backbone: nn.Module, pretrained: str, arch: str = "resnet18") -> PretrainedReport | None:
    """Load ``pretrained`` (``"none"``, ``"imagenet"``, a run directory or a file) into ``backbone``.

    The file's keys are first put into the backbone's own naming by ``backbone.adopt_keys``.

    Returns:
        The load report, or None for ``"none"``.

    Raises:
        ReidError: the ImageNet file cannot be had, or the file is missing / corrupt.
    """
    if pretrained == "none":
        return None
    path = imagenet_weights(arch) if pretrained == "imagenet" else resolve_weights_file(pretrained)
    return load_state_dict_into(backbone, backbone.adopt_keys(read_state_dict(path)), str(path))
