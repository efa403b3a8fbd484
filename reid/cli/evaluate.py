"""``reid eval RUN``: evaluate a trained model without training — on its own validation set or any other dataset.

Examples:
    reid eval runs/q8                                          # the run's validation set → runs/q8/eval.json
    reid eval runs/q8 --checkpoint last                        # the final weights (what the last epoch logged)
    reid eval runs/q8 --data /data/my-folder-dataset           # cross-domain: every identity of that folder
    reid eval runs/q8 --set data.dataset=market1501 --set data.root=/data/Market-1501 -o market.json
    reid eval runs/q8 --format json | jq .result.mAP
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from reid.cli.app import (Checkpoint, CheckpointOption, Device, DeviceOption, FormatOption, OutputFormat, Overrides,
                          Precision, PrecisionOption, RunArgument, app, load_model, print_json)
from reid.cli.progress import progress_bar
from reid.errors import ReidError


@app.command("eval")
def eval_command(
    run: RunArgument,
    data: Annotated[Optional[Path], typer.Option("--data", "-d", help="a .toml spec or a dataset folder to evaluate on "
                                                 "[default: the run's own validation set]")] = None,
    set_: Overrides = [],  # noqa: B006 (Typer copies list defaults)
    checkpoint: CheckpointOption = Checkpoint.best,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="where to write eval.json [default: RUN/eval.json]")] = None,
    fmt: FormatOption = OutputFormat.text,
    device: DeviceOption = Device.auto,
    precision: PrecisionOption = Precision.run,
) -> None:
    """Evaluate a trained model (Rank-k, mAP, mINP) and write eval.json; no training happens."""
    model = load_model(run, checkpoint, device, precision)
    target = model.evaluation_target(data, set_)
    built = model.eval_data(target.data, target.whole_dataset,
                            progress=lambda label, total: progress_bar(Console(stderr=True), label, total,
                                                                       plain=fmt is OutputFormat.json))
    result = model.evaluate(built, target.eval)
    record = {
        "result": result.to_json(),
        "dataset": {"name": built.name, "root": built.root, "queries": len(built.query),
                    "gallery": len(built.gallery), "same_set": built.same_set, "whole_dataset": built.whole_dataset},
        "checkpoint": str(model.checkpoint), "epoch": model.epoch, "spec_name": model.spec.name,
        "device": model.runtime.describe(), "reid_version": _version(),
    }
    path = out or (run / "eval.json" if run.is_dir() else model.checkpoint.with_name("eval.json"))
    _write(path, record)
    if fmt is OutputFormat.json:
        print_json(record)
        return
    table = Table(title=f"{model.spec.name} · {model.checkpoint} (epoch {model.epoch}) on {built.name} "
                        f"({len(built.query)} queries, {len(built.gallery)} gallery{', leave-one-out' if built.same_set else ''})")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k in result.ranks:
        table.add_row(f"Rank-{k}", f"{100 * result.rank(k):.2f} %")
    table.add_row("mAP", f"{100 * result.mAP:.2f} %")
    table.add_row("mINP", f"{100 * result.mINP:.2f} %")
    table.add_row("queries evaluated / skipped", f"{result.num_valid} / {result.num_skipped}")
    console = Console(highlight=False)
    console.print(table)
    console.print(f"protocol {result.protocol} · {result.distance}{' (L2-normalised)' if result.normalize else ''}"
                  f"{' · flip' if result.flip else ''} · {model.runtime.describe()['device_name']} "
                  f"{model.runtime.precision} → {path}")


def _version() -> str:
    import reid

    return reid.__version__


def _write(path: Path, record: dict) -> None:
    from reid.engine.checkpoint import atomic_write_text

    try:
        atomic_write_text(path, json.dumps(record, indent=2, sort_keys=True) + "\n")
    except OSError as e:
        raise ReidError(f"cannot write the evaluation ({e.strerror or e})", where=str(path), fix="choose another --out") from None
