"""The Typer application object that every command module attaches to."""

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
