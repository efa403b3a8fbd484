"""The Typer application object that every command module attaches to, and the option types commands share.

Every command follows one shape (Typer ``Annotated`` parameters, Enums for closed choices)::

    reid VERB [SPEC | RUN] [PATHS...] [-o/--out PATH] [-s/--set key=value]... [--format text|json] [-q/--plain]

:data:`Overrides`, :data:`FormatOption` and :data:`PlainOption` are those shared options, ready to annotate
a parameter with; :class:`OutputFormat`, :class:`Device`, :class:`Checkpoint` and :class:`Precision` the
shared closed choices.
"""

import json
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

app = typer.Typer(
    name="reid",
    help="Declarative person re-identification experiments.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def versions() -> str:
    """One line with the versions of reid, torch, torchvision and timm."""
    import timm
    import torch
    import torchvision

    import reid

    return f"reid {reid.__version__} · torch {torch.__version__} · torchvision {torchvision.__version__} · timm {timm.__version__}"


def _print_version(value: bool) -> None:
    if value:
        typer.echo(versions())
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[Optional[bool], typer.Option("--version", callback=_print_version, is_eager=True,
                                                    help="Print the versions of reid, torch, torchvision and timm, and exit.")] = None,
) -> None:
    """Declarative person re-identification experiments."""


@app.command()
def version() -> None:
    """Print the versions of reid, torch, torchvision and timm (the same as reid --version)."""
    typer.echo(versions())


class OutputFormat(str, Enum):
    """How a command prints its result: a rich table for people, or JSON for scripts."""

    text = "text"
    json = "json"


class Device(str, Enum):
    """Where a loaded model runs."""

    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class Checkpoint(str, Enum):
    """Which weights of a run directory: the best Rank-1 (``best.pt``) or the final ones (``last.pt``)."""

    best = "best"
    last = "last"


class Precision(str, Enum):
    """Autocast precision of a loaded model's forwards (``run``: the run's ``eval.precision``, fp32 unless it says otherwise)."""

    run = "run"
    auto = "auto"
    bf16 = "bf16"
    fp16 = "fp16"
    fp32 = "fp32"

    def value_or_none(self) -> str | None:
        """The precision to ask for, ``None`` for the run's own."""
        return None if self is Precision.run else self.value


def print_json(data) -> None:
    """Write ``data`` as indented JSON on stdout (the ``--format json`` output)."""
    typer.echo(json.dumps(data, indent=2, sort_keys=True))


Overrides = Annotated[list[str], typer.Option("--set", "-s", metavar="KEY=VALUE", help="override a spec key: --set data.root=/data/x (repeatable)")]
"""``-s/--set key=value`` (repeatable): spec overrides, applied by :func:`reid.spec.apply_overrides`."""

FormatOption = Annotated[OutputFormat, typer.Option("--format", help="text: tables for people; json: for scripts")]
"""``--format text|json``: how a command prints its results."""

PlainOption = Annotated[bool, typer.Option("--plain", "-q", help="no progress bars: one line per step (for logs)")]
"""``-q/--plain``: no live progress bars."""

RunArgument = Annotated[Path, typer.Argument(help="run directory (or checkpoint file) written by `reid run`")]
"""``RUN``: a run directory or a checkpoint file, as :func:`reid.load` takes."""
CheckpointOption = Annotated[Checkpoint, typer.Option("--checkpoint", "-c", help="best (best Rank-1) or last (final weights)")]
"""``-c/--checkpoint best|last``: which weights of a run directory."""
DeviceOption = Annotated[Device, typer.Option("--device", help="where the model runs")]
"""``--device auto|cpu|cuda``."""
PrecisionOption = Annotated[Precision, typer.Option("--precision", help="autocast precision of the embedding forwards [default: the run's eval.precision, fp32 unless set]")]
"""``--precision run|auto|bf16|fp16|fp32``."""


def load_model(run: Path, checkpoint: Checkpoint, device: Device = Device.auto, precision: Precision = Precision.run):
    """:func:`reid.load` with the shared options' values (imported on use: torch is heavy)."""
    from reid.api import load

    return load(run, device=device.value, precision=precision.value_or_none(), which=checkpoint.value)
