"""``reid embed RUN IMAGES_OR_DIRS...``: features of any images, saved with their paths as ``.safetensors``.

Examples:
    reid embed runs/quickstart ~/photos/people --out feats.safetensors
    reid embed runs/q8 a.jpg b.jpg -o two.safetensors --format json
    reid search runs/q8 --query q.jpg --gallery feats.safetensors     # reuse the gallery's features
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from reid.cli.app import (Checkpoint, CheckpointOption, Device, DeviceOption, FormatOption, OutputFormat, PlainOption,
                          Precision, PrecisionOption, RunArgument, app, load_model, print_json)
from reid.cli.progress import progress_bar


@app.command()
def embed(
    run: RunArgument,
    images: Annotated[list[Path], typer.Argument(help="image files and/or folders (searched recursively)")],
    out: Annotated[Path, typer.Option("--out", "-o", help="the .safetensors file to write")] = Path("features.safetensors"),
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", min=0, help="images per batch (0: the run's eval.batch_size)")] = 0,
    checkpoint: CheckpointOption = Checkpoint.best,
    fmt: FormatOption = OutputFormat.text,
    device: DeviceOption = Device.auto,
    precision: PrecisionOption = Precision.run,
    plain: PlainOption = False,
) -> None:
    """Embed images with a trained model; write features, image paths and Market-style ids (-1 where absent).

    Memory stays bounded: images are decoded a batch at a time.
    """
    from reid.api.inputs import collect_images

    model = load_model(run, checkpoint, device, precision)
    items = collect_images(images)
    console = Console(highlight=False, stderr=fmt is OutputFormat.json)
    with progress_bar(console, "embedding", len(items), plain or fmt is OutputFormat.json) as advance:
        features = model.embed_set([item.source for item in items], batch_size=batch_size or None, progress=advance)
    path = features.save(out)
    summary = {"out": str(path), "images": len(features), "dim": features.dim, "normalized": features.normalized,
               "labelled": int((features.pids >= 0).sum()), "checkpoint": str(model.checkpoint)}
    if fmt is OutputFormat.json:
        print_json(summary)
    else:
        console.print(f"[bold green]embedded[/] {len(features)} images → {features.dim}-d features "
                      f"({'L2-normalised' if features.normalized else 'raw'}; {summary['labelled']} with ids from their "
                      f"file names) → {path}")
