"""Export a model to a file and check the file against PyTorch.

:func:`export_model` writes the :class:`~reid.export.graph.EmbeddingGraph` of a model as ONNX or
TorchScript with metadata describing its input (size, mean / std, channel order), output,
reid version and whatever the caller adds (spec name, checkpoint). :func:`check_parity` runs the same
images through PyTorch and through the written file.

Example:
    >>> import tempfile, torch
    >>> from reid.model import build_model
    >>> from reid.spec import HeadSpec, ModelSpec
    >>> m = build_model(ModelSpec(layers=(1, 1, 1, 1)), HeadSpec(type="none"), None, input_size=(3, 64, 32))
    >>> r = export_model(m, (64, 32, (0.5,) * 3, (0.25,) * 3, "RGB"), True, "torchscript", tempfile.mkdtemp() + "/m.pt", {})
    >>> r.metadata["height"], r.metadata["normalized"]
    ('64', 'true')
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import torch
from torch import nn

import reid
from reid.errors import ReidError
from reid.export import onnx_format, torchscript_format
from reid.data.preprocess import Preprocess
from reid.export.graph import EmbeddingGraph, as_preprocess, describe
from reid.export.parity import ParityReport, compare

#: Export formats: name → module with ``SUFFIX``, ``save``, ``load`` and ``read_metadata``.
FORMATS: dict[str, ModuleType] = {"onnx": onnx_format, "torchscript": torchscript_format}


@dataclass
class ExportResult:
    """A written file and what it is: the format, the metadata written into it, and the graph it holds."""

    path: Path
    format: str
    metadata: dict[str, str]
    graph: EmbeddingGraph
    preprocess: Preprocess


def export_model(model: nn.Module, preprocess, normalize: bool, fmt: str, out: str | Path,
                 metadata: dict | None = None) -> ExportResult:
    """Write ``model``'s embedding graph to ``out`` as ``fmt`` (``"onnx"`` or ``"torchscript"``).

    The file maps float32 images ``N×3×H×W`` — RGB, ``pixel / 255`` then ``(x − mean) / std`` per
    channel, i.e. :func:`reid.data.transforms.normalize` — to ``model.embed(images)``, L2-normalised
    if ``normalize``. The batch dimension is dynamic. The model is exported from the CPU in eval mode
    and fp32 (its own mode is restored afterwards).

    Args:
        model: a :class:`reid.model.ReidModel` (anything with ``embed``).
        preprocess: a :class:`reid.data.preprocess.Preprocess`, ``(height, width, mean, std, "RGB")`` or an
            object with those attributes.
        normalize: L2-normalise the embeddings inside the graph (as the run's evaluation does).
        fmt: ``"onnx"`` (needs the ``export`` extra) or ``"torchscript"``.
        out: the file to write (its folder is created).
        metadata: extra string entries for the file's metadata (e.g. ``spec_name``, ``checkpoint``).

    Returns:
        :class:`ExportResult` with the metadata written (printable as ``key: value`` lines).

    Raises:
        ReidError: an unknown format, a missing extra, or a file that cannot be written.
    """
    if fmt not in FORMATS:
        raise ReidError(f"unknown export format {fmt!r}", where="--format", fix=f"use one of {', '.join(FORMATS)}")
    writer = FORMATS[fmt]
    if fmt == "onnx":
        onnx_format.require_extra()
    pre = as_preprocess(preprocess)
    graph = EmbeddingGraph(model, normalize)
    was_training, param = model.training, next(model.parameters(), None)
    device, dtype = (param.device, param.dtype) if param is not None else (torch.device("cpu"), torch.float32)
    model.to("cpu", torch.float32).eval()
    example = torch.randn(2, 3, pre.height, pre.width, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        dim = int(graph(example).shape[1])
    meta = describe(pre, normalize, dim)
    meta.update({"format": fmt, "reid_version": reid.__version__, "torch_version": torch.__version__})
    meta.update({str(k): str(v) for k, v in (metadata or {}).items()})
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        writer.save(graph, example, out, meta)
    except OSError as e:
        raise ReidError(f"cannot write the exported model ({e.strerror or e})", where=str(out)) from None
    finally:
        model.to(device, dtype).train(was_training)
    return ExportResult(out, fmt, meta, graph, pre)


def check_parity(result: ExportResult, images: torch.Tensor, batch_size: int = 32) -> ParityReport:
    """Run ``images`` (normalised float ``N×3×H×W``) through PyTorch and the exported file; compare.

    Both sides run in fp32 on the CPU, in batches of ``batch_size`` (so several batch sizes reach the
    exported file's dynamic batch dimension).
    """
    run = FORMATS[result.format].load(result.path)
    model = result.graph.model
    was_training, param = model.training, next(model.parameters(), None)
    device, dtype = (param.device, param.dtype) if param is not None else (torch.device("cpu"), torch.float32)
    model.to("cpu", torch.float32).eval()
    try:
        with torch.no_grad():
            chunks = images.float().cpu().split(batch_size)
            reference = torch.cat([result.graph(x) for x in chunks])
            exported = torch.cat([run(x) for x in chunks])
    finally:
        model.to(device, dtype).train(was_training)
    return compare(reference, exported)
