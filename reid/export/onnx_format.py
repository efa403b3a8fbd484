"""ONNX files: export with dynamic batch, height and width, metadata in ``metadata_props``, run with onnxruntime.

``onnx`` and ``onnxruntime`` are the optional ``export`` extra; without them every function here
raises one :class:`ReidError` naming the install command. The graph is written by torch's
TorchScript-based exporter (``torch.onnx.export(..., dynamo=False)``, opset 17): it works offline with
what the extra installs, where torch's default (``dynamo=True``) would also need ``onnxscript``.

Example:
    >>> import tempfile, torch
    >>> path = tempfile.mkdtemp() + "/m.onnx"
    >>> save(torch.nn.Flatten(), torch.randn(2, 3, 4, 4), path, {"height": "4"})
    >>> read_metadata(path)["height"], load(path)(torch.randn(5, 3, 4, 4)).shape
    ('4', torch.Size([5, 48]))
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from reid.errors import ReidError

SUFFIX = ".onnx"
OPSET = 17
INPUT, OUTPUT = "images", "embeddings"


def require_extra():
    """Import and return ``(onnx, onnxruntime)``.

    Raises:
        ReidError: either is missing (one message naming the install command).
    """
    try:
        import onnx
        import onnxruntime
    except ImportError as e:
        raise ReidError(f"ONNX export needs the optional packages onnx and onnxruntime ({e.name} is not installed)",
                        fix="pip install -e '.[export]' (or pip install onnx onnxruntime), or use --format torchscript") from None
    return onnx, onnxruntime


def save(graph: nn.Module, example: torch.Tensor, path: str | Path, metadata: dict[str, str]) -> None:
    """Export ``graph`` (traced on ``example``) to ``path`` with dynamic batch, height and width and ``metadata``."""
    onnx, _ = require_extra()
    path = Path(path)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        warnings.filterwarnings("ignore", message=".*feature will be removed.*")
        torch.onnx.export(graph, (example,), str(path), dynamo=False, opset_version=OPSET, input_names=[INPUT],
                          output_names=[OUTPUT],
                          dynamic_axes={INPUT: {0: "batch", 2: "height", 3: "width"}, OUTPUT: {0: "batch"}})
    model = onnx.load(str(path))
    onnx.helper.set_model_props(model, dict(metadata))
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def read_metadata(path: str | Path) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file."""
    onnx, _ = require_extra()
    return {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}


def load(path: str | Path, threads: int | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
    """An onnxruntime (CPU) session for ``path`` as a function: float32 tensor batch → tensor embeddings."""
    _, ort = require_extra()
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def run(images: torch.Tensor) -> torch.Tensor:
        x = images.detach().cpu().float().contiguous().numpy()
        return torch.from_numpy(session.run([OUTPUT], {INPUT: x})[0])

    return run
