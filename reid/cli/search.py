"""``reid search RUN --query … --gallery …``: ranked gallery lists for any images, drawn as a grid (torchreid's visrank).

Examples:
    reid search runs/q8 --query q.jpg --gallery gallery/ --top 10 -o ranks.png
    reid embed runs/q8 gallery/ -o gallery.safetensors                 # embed a big gallery once …
    reid search runs/q8 --query queries/ --gallery gallery.safetensors  # … and search it many times
    reid search runs/q8 --query q.jpg --gallery gallery/ --format json
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from reid.cli.app import (Checkpoint, CheckpointOption, Device, DeviceOption, FormatOption, OutputFormat, Precision,
                          PrecisionOption, RunArgument, app, load_model, print_json)
from reid.errors import ReidError


@app.command()
def search(
    run: RunArgument,
    query: Annotated[list[Path], typer.Option("--query", "-q", help="query image(s) or folder(s); repeat for several")],
    gallery: Annotated[list[Path], typer.Option("--gallery", "-g", help="gallery folder(s)/image(s), or a .safetensors "
                                                "file from `reid embed`")],
    top: Annotated[int, typer.Option("--top", "-k", min=1, max=100, help="gallery images per query")] = 10,
    out: Annotated[Path, typer.Option("--out", "-o", help="the ranked-list grid (PNG)")] = Path("ranks.png"),
    rows: Annotated[int, typer.Option("--rows", min=1, max=100, help="queries drawn in the grid (all are listed)")] = 8,
    checkpoint: CheckpointOption = Checkpoint.best,
    fmt: FormatOption = OutputFormat.text,
    device: DeviceOption = Device.auto,
    precision: PrecisionOption = Precision.run,
    allow_other_checkpoint: Annotated[bool, typer.Option(
        "--allow-other-checkpoint", help="search a .safetensors gallery embedded by other weights (a warning, not "
        "an error): only for checkpoints that share one embedding space")] = False,
) -> None:
    """The nearest gallery images of each query, with distances, drawn as a ranked-list grid.

    Correct / wrong matches are coloured when Market-style file names give identities (and the market
    junk rule then applies). A .safetensors gallery must come from this run's weights (recorded by
    `reid embed`); another checkpoint's is an error unless --allow-other-checkpoint.
    """
    from reid.report.figures import save

    model = load_model(run, checkpoint, device, precision)
    if len(gallery) == 1 and gallery[0].suffix == ".safetensors":
        target = gallery[0]
    elif any(g.suffix == ".safetensors" for g in gallery):
        raise ReidError("a .safetensors gallery cannot be mixed with images", where="--gallery", fix="give one feature file, or images only")
    else:
        target = gallery
    results = model.search(query, target, top_k=top, allow_other_checkpoint=allow_other_checkpoint)
    save(search_figure(results[:rows], model, top), out)
    if fmt is OutputFormat.json:
        print_json({"png": str(out), "top": top, "results": [
            {"query": r.query, "gallery": r.gallery, "distances": list(r.ranked.distances),
             "correct": None if r.ranked.correct is None else list(r.ranked.correct)} for r in results]})
        return
    table = Table(title=f"{model.spec.name}: top-{top} of {len(results)} queries (first {min(rows, len(results))} drawn)")
    for col in ("query", "#1", "distance", "correct"):
        table.add_column(col)
    for r in results:
        first = r.gallery[0] if r.gallery else "–"
        ok = "–" if r.ranked.correct is None or not r.gallery else ("yes" if r.ranked.correct[0] else "no")
        table.add_row(Path(r.query).name, Path(first).name, f"{r.ranked.distances[0]:.4g}" if r.gallery else "–", ok)
    console = Console(highlight=False)
    console.print(table)
    console.print(f"[bold green]grid[/] → {out}")


def search_figure(results, model, top: int):
    """The ranked-list grid of ``results``: query (blue), then its top gallery images framed green / red
    (same / other identity) or grey (identity unknown)."""
    from reid.api.inputs import ImageItem
    from reid.engine.ranked_grid import CORRECT, MATCH_LEGEND, QUERY, UNKNOWN, WRONG, Tile, ranked_grid

    if not results:
        raise ReidError("no query images", where="--query")
    h, w = model.preprocess.height, model.preprocess.width

    def pixels(name: str):
        import torch

        path = Path(name)
        if not path.is_file():
            raise ReidError("a gallery image listed in the feature file is gone", where=name,
                            fix="keep the images where `reid embed` found them, or embed the gallery again")
        return torch.from_numpy(ImageItem(name, path).decode(h, w)).permute(2, 0, 1)

    grid = []
    for r in results:
        row = [Tile(pixels(r.query), f"query\n{Path(r.query).name[:18]}", QUERY)]
        for i, name in enumerate(r.gallery):
            colour = UNKNOWN if r.ranked.correct is None else (CORRECT if r.ranked.correct[i] else WRONG)
            row.append(Tile(pixels(name), f"#{i + 1} {Path(name).name[:14]}\nd={r.ranked.distances[i]:.3g}", colour))
        grid.append(row)
    labelled = results[0].ranked.correct is not None
    legend = MATCH_LEGEND if labelled else [(QUERY, "query"), (UNKNOWN, "gallery (identity unknown)")]
    return ranked_grid(grid, f"{model.spec.name}: top-{top} gallery images per query", legend, columns=top + 1)
