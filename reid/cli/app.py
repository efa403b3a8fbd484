"""The Typer application object that every command module attaches to, and the option types commands share."""

import json
from enum import Enum

import typer

app = typer.Typer(
    name="reid",
    help="Declarative person re-identification experiments.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.command()
def version() -> None:
    """Print the versions of reid, torch, torchvision and timm."""
    import timm
    import torch
    import torchvision

    import reid

    typer.echo(f"reid {reid.__version__} · torch {torch.__version__} · torchvision {torchvision.__version__} · timm {timm.__version__}")


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
    """Autocast precision of a loaded model (``run``: what the run used)."""

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
