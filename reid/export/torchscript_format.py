"""TorchScript files: a traced graph (dynamic batch, height and width), metadata as the extra file ``reid_metadata.json``.

Needs nothing beyond torch. ``torch.jit`` is deprecated in favour of ``torch.export`` in recent torch;
its deprecation warnings are silenced here, the files load with ``torch.jit.load`` in C++ and Python.

Example:
    >>> import tempfile, torch
    >>> path = tempfile.mkdtemp() + "/m.pt"
    >>> save(torch.nn.Flatten(), torch.randn(2, 3, 4, 4), path, {"height": "4"})
    >>> read_metadata(path)["height"], load(path)(torch.randn(5, 3, 4, 4)).shape
    ('4', torch.Size([5, 48]))
"""

from __future__ import annotations

import json
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from reid.errors import ReidError

SUFFIX = ".pt"
METADATA_FILE = "reid_metadata.json"


@contextmanager
def _quiet_jit():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*`torch\.jit\.\w+` is deprecated.*")
        yield


def save(graph: nn.Module, example: torch.Tensor, path: str | Path, metadata: dict[str, str]) -> None:
    """Trace ``graph`` on ``example`` and save it to ``path`` with ``metadata``."""
    with _quiet_jit(), torch.no_grad():
        traced = torch.jit.trace(graph, (example,), check_trace=False)
        torch.jit.save(traced, str(path), _extra_files={METADATA_FILE: json.dumps(metadata, ensure_ascii=False)})


def read_metadata(path: str | Path) -> dict[str, str]:
    """The metadata saved with a TorchScript file (``{}`` for files not written by reid)."""
    extra = {METADATA_FILE: ""}
    with _quiet_jit():
        _load(path, extra)
    return json.loads(extra[METADATA_FILE]) if extra[METADATA_FILE] else {}


def load(path: str | Path) -> Callable[[torch.Tensor], torch.Tensor]:
    """The saved module as a function: float32 tensor batch → tensor embeddings (CPU, no grad)."""
    with _quiet_jit():
        module = _load(path, {})

    def run(images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return module(images.detach().cpu().float())

    return run


def _load(path, extra: dict):
    try:
        return torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    except (RuntimeError, ValueError) as e:
        raise ReidError(f"not a TorchScript file ({str(e).splitlines()[0]})", where=str(path)) from None
