"""``reid export RUN``: write a trained model as ONNX or TorchScript and check it against PyTorch."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from reid.cli.app import Checkpoint, CheckpointOption, Device, Precision, RunArgument, app, load_model
from reid.errors import ReidError


class ExportFormat(str, Enum):
    """Formats ``reid export`` writes."""

    onnx = "onnx"
    torchscript = "torchscript"


@app.command("export")
def export_command(
    run: RunArgument,
    fmt: Annotated[ExportFormat, typer.Option("--format", "-f", help="onnx (needs the export extra) or torchscript")] = ExportFormat.onnx,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="file to write [default: model.onnx or model.pt in RUN, or next to RUN when it is a checkpoint file]")] = None,
    which: CheckpointOption = Checkpoint.best,
    normalize: Annotated[Optional[bool], typer.Option("--normalize/--no-normalize", help="L2-normalise the embedding in the graph [default: as the run evaluates]")] = None,
    images: Annotated[int, typer.Option("--images", min=0, help="validation images in the parity check")] = 64,
) -> None:
    """Export RUN's model (images → the embedding the run evaluates with, flip-averaged when it flips) and check parity.

    The file takes float32 N×3×H×W batches, RGB, pixel/255 then (x − mean) / std — size, mean, std and
    channel order are printed and written into the file's metadata — with dynamic batch, height and width (the
    metadata's size, the trained one, is the preferred size).
    Random and validation images then go through the loaded model's own embedding and the file; the command exits 1 if the
    smallest cosine similarity is below 0.9999. Examples: `reid export runs/quickstart`,
    `reid export runs/q8 --format torchscript --out q8.pt`.
    """
    import torch  # heavy: imported when the command runs, not at `reid` start-up

    from reid.export import FORMATS, check_parity, export_model, parity

    console = Console(highlight=False, soft_wrap=True)
    writer = FORMATS[fmt.value]
    if fmt is ExportFormat.onnx:
        writer.require_extra()  # before the (slower) loading
    loaded = load_model(run, which, Device.cpu, Precision.fp32)
    norm = loaded.normalize if normalize is None else normalize
    target = out or (run if run.is_dir() else loaded.checkpoint.parent) / f"model{writer.SUFFIX}"
    meta = {"spec_name": loaded.spec.name, "checkpoint": str(loaded.checkpoint)}
    result = export_model(loaded.model, loaded.preprocess, norm, fmt.value, target, meta, flip=loaded.spec.eval.flip)
    console.print(f"wrote {result.path} ({fmt.value}, {result.path.stat().st_size / 2**20:.1f} MiB)")
    for key, value in result.metadata.items():
        console.print(f"  {key}: {value}")

    pre = result.preprocess
    random = torch.randn(16, 3, pre.height, pre.width, generator=torch.Generator().manual_seed(0))
    def reference(batch):  # what `reid eval` / reid.load(...).embed compute for these images
        return loaded.embed_preprocessed(batch, normalize=norm)

    reports = [("random images", check_parity(result, random, reference=reference))]
    real = _validation_images(loaded, images, console) if images else None
    if real is not None:
        reports.append(("validation images", check_parity(result, real, reference=reference)))
    for name, report in reports:
        console.print(f"parity, {name}: {report.summary()}")
    broken = [(name, r) for name, r in reports if not r.ok]
    if broken:
        name, r = broken[0]
        Console(stderr=True, highlight=False, soft_wrap=True).print(
            f"[bold red]parity check failed:[/] on {name} the exported {fmt.value} model's embeddings reach a cosine"
            f" similarity of only {r.min_cosine:.6f} with PyTorch's (≥ {parity.MIN_COSINE} required);"
            f" {result.path} is not a faithful copy")
        raise typer.Exit(1)


def _validation_images(loaded, count: int, console: Console):
    """Up to ``count`` query images of the run's validation split, normalised as evaluation does (None if unavailable)."""
    try:
        query = loaded.eval_data().query  # the validation split only: nothing of the training set is decoded
    except ReidError as e:
        console.print(f"[yellow]note:[/] parity on random images only: the run's validation data is unavailable ({e.message})")
        return None
    batch, _ = next(query.batches([range(min(count, len(query)))]))
    return loaded.preprocess.apply(batch)
