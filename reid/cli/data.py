"""The ``reid data`` commands: ``synth`` (write the synthetic dataset), ``info`` (counts,
Q6 and Q10) and ``baseline`` (colour-histogram nearest neighbour on the validation set).

Example:
    reid data synth --out /tmp/synth --identities 279 --images 10 --cameras 2 --size 128x128
    reid data info /tmp/synth
    reid data info specs/quickstart.toml
    reid data baseline
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from reid.cli.app import app
from reid.errors import ReidError

data_app = typer.Typer(help="Datasets: write the synthetic one, describe one, run the histogram baseline.", no_args_is_help=True)
app.add_typer(data_app, name="data")
_out = Console(highlight=False, soft_wrap=True)


def _parse_size(size: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in size.lower().split("x"))
    except ValueError:
        raise ReidError(f"cannot read size {size!r}", where="--size", fix="write HEIGHTxWIDTH, e.g. 128x128") from None
    if not (16 <= h <= 1024 and 16 <= w <= 1024):
        raise ReidError(f"size {size} is outside 16..1024 pixels per side", where="--size")
    return h, w


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
    out: Path = typer.Option(..., "--out", help="folder to write (must not exist or be empty)"),
    identities: int = typer.Option(279, "--identities", min=2, help="number of identities"),
    images: int = typer.Option(10, "--images", min=2, help="images per identity"),
    cameras: int = typer.Option(2, "--cameras", min=1, help="number of cameras"),
    seed: int = typer.Option(0, "--seed", min=0, help="renderer seed (same seed, same bytes)"),
    size: str = typer.Option("128x128", "--size", help="HEIGHTxWIDTH"),
    train_ids: int = typer.Option(230, "--train-ids", min=1, help="identities in bounding_box_train"),
    split_seed: int = typer.Option(0, "--split-seed", min=0),
) -> None:
    """Write synthetic pedestrians in Market-1501 layout (train / query / gallery folders)."""
    from reid.data.synthetic import SynthParams, write_market_layout

    params = SynthParams(identities, images, cameras, seed, _parse_size(size))
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
    target: str = typer.Argument(..., metavar="ROOT_OR_SPEC", help="a .toml spec or a dataset folder"),
    fmt: Optional[str] = typer.Option(None, "--format", help="dataset format of a folder: market1501, dukemtmc, cuhk03, msmt17, folder"),
    overrides: list[str] = typer.Option([], "--set", help="data.key=value overrides, e.g. data.train_fraction=0.8"),
) -> None:
    """Identities, images and cameras per split; Q6 (classifier size) and Q10 (triplets)."""
    from reid.data.build import prepare_splits
    from reid.data.describe import describe_splits

    d = describe_splits(prepare_splits(_data_spec(target, fmt, overrides)))
    _out.print(_counts_table(d))
    _out.print(f"Q6  classifier outputs (training identities): [bold]{d['num_classes']}[/]; validation identities: {d['validation_identities']}")
    _out.print(f"Q10 possible triplets Σ n_i(n_i−1)(N−n_i) over training identities: [bold]{d['triplets']:,}[/]")
    _out.print(f"evaluation protocol: {d['protocol']}" + (" (query = gallery, each query excluded from its own gallery)" if d["same_set"] else ""))
    if d["skipped"]:
        _out.print("skipped: " + ", ".join(f"{n} {why}" for why, n in sorted(d["skipped"].items())))


@data_app.command("baseline")
def baseline(
    target: Optional[str] = typer.Argument(None, metavar="[SPEC]", help="a .toml spec or dataset folder (default: the synthetic default)"),
    fmt: Optional[str] = typer.Option(None, "--format", help="dataset format when SPEC is a folder"),
    overrides: list[str] = typer.Option([], "--set", help="data.key=value overrides"),
) -> None:
    """Rank-1/5/10 and mAP of a colour-histogram nearest-neighbour baseline on the validation set."""
    from reid.data.baseline import run_baseline
    from reid.data.build import build_data

    start = time.perf_counter()
    data = build_data(_data_spec(target, fmt, overrides))
    r = run_baseline(data)
    cmc = r["cmc"]
    ranks = "  ".join(f"Rank-{k}: {100 * cmc[min(k, len(cmc)) - 1]:.1f}%" for k in (1, 5, 10))
    _out.print(
        f"{data.name}: {len(data.query)} queries, {len(data.gallery)} gallery, protocol {r['protocol']} · "
        f"{ranks}  mAP: {100 * r['mAP']:.1f}%  ({time.perf_counter() - start:.1f} s)"
    )
