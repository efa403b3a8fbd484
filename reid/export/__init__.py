"""Deployment: a trained model as an ONNX or TorchScript file, with a parity check against PyTorch.

- :mod:`reid.export.graph` — what is exported: images (float N×3×H×W, already normalised) → the
  embedding the run evaluates with, optionally L2-normalised; and the metadata describing it;
- :mod:`reid.export.onnx_format` — ONNX files (metadata in ``metadata_props``; needs the ``export`` extra);
- :mod:`reid.export.torchscript_format` — TorchScript files (metadata in an extra file);
- :mod:`reid.export.parity` — the same images through PyTorch and the exported file, compared;
- :mod:`reid.export.exporter` — :func:`export_model`, which ties them together.

Example:
    >>> import tempfile, torch
    >>> from reid.model import build_model
    >>> from reid.spec import HeadSpec, ModelSpec
    >>> model = build_model(ModelSpec(layers=(1, 1, 1, 1)), HeadSpec(type="none"), None, input_size=(3, 64, 32))
    >>> pre = (64, 32, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), "RGB")
    >>> out = tempfile.mkdtemp() + "/model.pt"
    >>> result = export_model(model, pre, normalize=True, fmt="torchscript", out=out, metadata={"spec_name": "demo"})
    >>> check_parity(result, torch.randn(4, 3, 64, 32)).ok
    True
"""

from reid.export.exporter import FORMATS, ExportResult, check_parity, export_model
from reid.export.graph import EmbeddingGraph, as_preprocess
from reid.export.parity import MIN_COSINE, ParityReport

__all__ = ["FORMATS", "MIN_COSINE", "EmbeddingGraph", "ExportResult", "ParityReport", "as_preprocess", "check_parity",
           "export_model"]
