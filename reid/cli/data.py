"""The ``reid data`` commands: ``synth`` (write the synthetic dataset), ``info`` (counts,
classifier outputs, triplets) and ``baseline`` (colour-histogram nearest neighbour on the validation set).

Example:
    reid data synth -o /tmp/synth --identities 279 --images 10 --cameras 2 --size 128x128
    reid data info /tmp/synth
    reid data info /data/my-people --dataset folder -s 'data.camera_regex="_c(\\d+)"' --format json
    reid data info specs/quickstart.toml
    reid data baseline specs/q8.toml --format json
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from reid.cli.app import FormatOption, OutputFormat, Overrides, PlainOption, app, print_json
from reid.cli.progress import progress_bar
from reid.errors import ReidError

data_app = typer.Typer(help="Datasets: write the synthetic one, describe one, run the histogram baseline.", no_args_is_help=True)
app.add_typer(data_app, name="data")
_out = Console(highlight=False, soft_wrap=True)
_err = Console(stderr=True)  # progress bars, kept off stdout


def _parse_size(size: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in size.lower().split("x"))
    except ValueError:
        raise ReidError(f"cannot read size {size!r}", where="--size", fix="write HEIGHTxWIDTH, e.g. 128x128") from None
    if not (16 <= h <= 1024 and 16 <= w <= 1024):
        raise ReidError(f"size {size} is outside 16..1024 pixels per side", where="--size")
    return h, w


DatasetOption = Annotated[Optional[str], typer.Option(
    "--dataset", "-d", help="dataset format of a folder: market1501, dukemtmc, cuhk03, msmt17, folder, or one you "
    "registered (default: detected)")]


def _data_spec(target: Optional[str], fmt: Optional[str], overrides: list[str]):
    """The DataSpec for a spec file, a dataset folder (format detected or given), or None (defaults)."""
    from reid.data.formats import detect_format
    from reid.spec import apply_overrides, load_spec, validate_spec

    if target is None:
        return validate_spec(apply_overrides({}, overrides), "<defaults>").data
    path = Path(target).expanduser()
    if path.suffix == ".toml":
        return load_spec(path, overrides).data
    if not path.exists():
        raise ReidError("no such spec file or dataset folder", where=str(path), fix="give a .toml spec or a dataset folder")
    dataset = fmt or detect_format(path)
    return validate_spec(apply_overrides({"data": {"dataset": dataset, "root": str(path)}}, overrides), f"{path} (--set)").data


@data_app.command("synth")
def synth(
    out: Annotated[Path, typer.Option("--out", "-o", help="folder to write (must not exist or be empty)")],
    identities: Annotated[int, typer.Option("--identities", min=2, help="number of identities")] = 279,
    images: Annotated[int, typer.Option("--images", min=2, help="images per identity")] = 10,
    cameras: Annotated[int, typer.Option("--cameras", min=1, help="number of cameras")] = 2,
    seed: Annotated[int, typer.Option("--seed", min=0, help="renderer seed (same seed, same bytes)")] = 0,
    size: Annotated[str, typer.Option("--size", help="HEIGHTxWIDTH")] = "128x128",
    train_ids: Annotated[int, typer.Option("--train-ids", min=1, help="identities in bounding_box_train "
                                           "(the assignment's 230 of 279)")] = 230,
    split_seed: Annotated[int, typer.Option("--split-seed", min=0, help="seed of the identity split")] = 0,
    renderer: Annotated[int, typer.Option("--renderer", min=1, max=3, help="renderer version: 3 (the default: outfits "
                                          "shared across identities, front/back cameras, crowds, lighting, misaligned crops), "
                                          "2 (its heavier-degraded draft) or 1 (the first, easy set)")] = 3,
) -> None:
    """Write synthetic pedestrians in Market-1501 layout (train / query / gallery folders)."""
    from reid.data.synthetic import SynthParams, write_market_layout

    params = SynthParams(identities, images, cameras, seed, _parse_size(size), renderer)
    start = time.perf_counter()
    write_market_layout(out, params, train_ids=train_ids, split_seed=split_seed)
    _out.print(f"wrote {identities * images} images of {identities} identities to {out} in {time.perf_counter() - start:.1f} s")


def _counts_table(info: dict) -> Table:
    table = Table(title=f"{info['name']} · {info['root']}")
    for col in ("split", "identities", "images", "cameras", "images / identity"):
        table.add_column(col, justify="left" if col == "split" else "right")
    splits = ("train", "query") if info["same_set"] else ("train", "query", "gallery")
    for split in splits:
        c = info[split]
        label = "validation (q = g)" if info["same_set"] and split == "query" else split
        per = f"{c['min_images_per_identity']}" + (f"–{c['max_images_per_identity']}" if c["max_images_per_identity"] != c["min_images_per_identity"] else "")
        table.add_row(label, str(c["identities"]), str(c["images"]), str(c["cameras"]), per)
    return table


@data_app.command("info")
def info(
    target: Annotated[str, typer.Argument(metavar="SPEC_OR_ROOT", help="a .toml spec or a dataset folder")],
    dataset: DatasetOption = None,
    overrides: Overrides = [],  # noqa: B006
    fmt: FormatOption = OutputFormat.text,
) -> None:
    """Identities, images and cameras per split; classifier outputs and possible training triplets."""
    from reid.data.build import prepare_splits
    from reid.data.describe import describe_splits

    d = describe_splits(prepare_splits(_data_spec(target, dataset, overrides))).to_json()
    if fmt is OutputFormat.json:
        print_json(d)
        return
    _out.print(_counts_table(d))
    _out.print(f"classifier outputs (training identities): [bold]{d['num_classes']}[/]; validation identities: {d['validation_identities']}")
    _out.print(f"possible triplets Σ n_i(n_i−1)(N−n_i) over training identities: [bold]{d['triplets']:,}[/]")
    _out.print(f"evaluation protocol: {d['protocol']}" + (" (query = gallery, each query excluded from its own gallery)" if d["same_set"] else ""))
    if d["skipped"]:
        _out.print("skipped: " + ", ".join(f"{n} {why}" for why, n in sorted(d["skipped"].items())))


@data_app.command("baseline")
def baseline(
    target: Annotated[Optional[str], typer.Argument(metavar="[SPEC_OR_ROOT]", help="a .toml spec or a dataset folder "
                                                    "(default: the default synthetic set)")] = None,
    dataset: DatasetOption = None,
    overrides: Overrides = [],  # noqa: B006
    fmt: FormatOption = OutputFormat.text,
    plain: PlainOption = False,
) -> None:
    """Rank-1/5/10 and mAP of a colour-histogram nearest-neighbour baseline on the validation set."""
    from reid.data.baseline import run_baseline
    from reid.data.build import build_data

    start = time.perf_counter()
    quiet = plain or fmt is OutputFormat.json
    data = build_data(_data_spec(target, dataset, overrides),
                      progress=lambda label, total: progress_bar(_err, label, total, plain=quiet))
    r = run_baseline(data)
    cmc = r["cmc"]
    if fmt is OutputFormat.json:
        print_json({"dataset": data.name, "queries": len(data.query), "gallery": len(data.gallery), "same_set": data.same_set,
                    "protocol": r["protocol"], **{f"rank{k}": float(cmc[min(k, len(cmc)) - 1]) for k in (1, 5, 10)},
                    "mAP": float(r["mAP"]), "seconds": round(time.perf_counter() - start, 3)})
        return
    ranks = "  ".join(f"Rank-{k}: {100 * cmc[min(k, len(cmc)) - 1]:.1f}%" for k in (1, 5, 10))
    _out.print(
        f"{data.name}: {len(data.query)} queries, {len(data.gallery)} gallery, protocol {r['protocol']} · "
        f"{ranks}  mAP: {100 * r['mAP']:.1f}%  ({time.perf_counter() - start:.1f} s)"
    )
