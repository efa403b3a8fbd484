"""Export a model to a file and check the file against PyTorch.

:func:`export_model` writes the :class:`~reid.export.graph.EmbeddingGraph` of a model as ONNX or
TorchScript with metadata describing its input (size, mean / std, channel order), output,
reid version and whatever the caller adds (spec name, checkpoint). :func:`check_parity` runs the same
images through the written file and through the embedding the run evaluates with — by default the
evaluation's own code (:func:`reid.engine.evaluation.embed_batch`, not the exported graph), or a given
reference such as a loaded model's :meth:`~reid.api.loaded.LoadedModel.embed_preprocessed` — so a graph
that leaves out a step the evaluation takes (flip averaging, normalisation) fails it.

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
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

import reid
from reid.errors import ReidError
from reid.export import onnx_format, torchscript_format
from reid.data.preprocess import Preprocess
from reid.engine.evaluation import embed_batch
from reid.engine.runtime import Runtime
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
                 metadata: dict | None = None, flip: bool = False) -> ExportResult:
    """Write ``model``'s embedding graph to ``out`` as ``fmt`` (``"onnx"`` or ``"torchscript"``).

    The file maps float32 images ``N×3×H×W`` — RGB, ``pixel / 255`` then ``(x − mean) / std`` per
    channel, i.e. :func:`reid.data.transforms.normalize` — to ``model.embed(images)``, averaged with the
    mirrored images' embedding if ``flip`` and L2-normalised if ``normalize``. Batch, height and width are dynamic
    (the graph is traced at the preprocessing's size, which the metadata records as the preferred one). The model is
    exported from the CPU in eval mode and fp32 (its own mode is restored afterwards).

    Args:
        model: a :class:`reid.model.ReidModel` (anything with ``embed``).
        preprocess: a :class:`reid.data.preprocess.Preprocess`, ``(height, width, mean, std, "RGB")`` or an
            object with those attributes.
        normalize: L2-normalise the embeddings inside the graph (as the run's evaluation does).
        fmt: ``"onnx"`` (needs the ``export`` extra) or ``"torchscript"``.
        out: the file to write (its folder is created).
        metadata: extra string entries for the file's metadata (e.g. ``spec_name``, ``checkpoint``).
        flip: average with the mirrored image inside the graph (as a run with ``eval.flip`` evaluates).

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
    graph = EmbeddingGraph(model, normalize, flip)
    was_training, param = model.training, next(model.parameters(), None)
    device, dtype = (param.device, param.dtype) if param is not None else (torch.device("cpu"), torch.float32)
    model.to("cpu", torch.float32).eval()
    example = torch.randn(2, 3, pre.height, pre.width, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        dim = int(graph(example).shape[1])
    meta = describe(pre, normalize, dim, flip)
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


def check_parity(result: ExportResult, images: torch.Tensor, batch_size: int = 32,
                 reference: Callable[[torch.Tensor], torch.Tensor] | None = None) -> ParityReport:
    """Run ``images`` (normalised float ``N×3×H×W``) through the exported file and the PyTorch reference; compare.

    The reference is ``reference(batch)`` — e.g. ``reid.load(run, device="cpu", precision="fp32").embed_preprocessed``,
    the loaded model's own embedding — or by default the evaluation's embedding of the exported model
    (:func:`reid.engine.evaluation.embed_batch` with the graph's flip setting, L2-normalised as the graph is),
    never the exported graph itself. Both sides run in fp32 on the CPU, in batches of ``batch_size`` (so several
    batch sizes reach the exported file's dynamic batch dimension).
    """
    run = FORMATS[result.format].load(result.path)
    model = result.graph.model
    was_training, param = model.training, next(model.parameters(), None)
    device, dtype = (param.device, param.dtype) if param is not None else (torch.device("cpu"), torch.float32)
    model.to("cpu", torch.float32).eval()
    try:
        with torch.no_grad():
            chunks = images.float().cpu().split(batch_size)
            embed = reference or partial(_evaluated_embedding, result.graph)
            expected = torch.cat([embed(x) for x in chunks])
            exported = torch.cat([run(x) for x in chunks])
    finally:
        model.to(device, dtype).train(was_training)
    return compare(expected, exported)


def _evaluated_embedding(graph: EmbeddingGraph, images: torch.Tensor) -> torch.Tensor:
    """What evaluation computes for ``graph``'s model and settings: :func:`embed_batch` in fp32 on the CPU."""
    feats = embed_batch(graph.model, images, Runtime(torch.device("cpu"), None, channels_last=False), graph.flip)
    return F.normalize(feats, dim=1) if graph.normalize else feats
