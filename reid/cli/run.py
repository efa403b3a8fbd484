"""``reid run SPEC``: train and evaluate an experiment, leaving a run directory."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from reid.cli.app import app
from reid.errors import ReidError
from reid.spec import load_spec


@app.command()
def run(
    spec: Optional[Path] = typer.Argument(None, help="experiment spec (.toml); optional with --resume"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="run directory [default: runs/<spec name>]"),
    set_: list[str] = typer.Option([], "--set", "-s", help="override a spec key: --set schedule.epochs=3"),
    resume: Optional[Path] = typer.Option(None, "--resume", help="continue the run in this directory"),
    force: bool = typer.Option(False, "--force", help="overwrite an existing run directory"),
    plain: bool = typer.Option(False, "--plain", "--quiet", "-q", help="one line per epoch, no live progress bar"),
) -> None:
    """Train and evaluate SPEC; write spec.toml, metrics.jsonl, checkpoints/ and summary.json.

    Examples: `reid run specs/quickstart.toml`, `reid run specs/q8.toml --set schedule.epochs=5`,
    `reid run --resume runs/q8` after an interruption.
    """
    if spec is None and resume is None:
        raise ReidError("no spec given", where="reid run", fix="give a spec file (reid run specs/quickstart.toml) or --resume DIR")
    if resume is not None and out is not None and out != resume:
        raise ReidError("--out and --resume name different directories", where="reid run", fix="give only --resume DIR")
    parsed = load_spec(spec, set_) if spec is not None else None
    if resume is not None and set_ and parsed is None:
        raise ReidError("--set needs a spec", where="reid run --resume", fix="a resumed run keeps the spec it started with")
    from reid.engine.experiment import run_experiment  # heavy: import after the spec is known to be valid

    target = resume or out or Path("runs") / parsed.name
    console = Console(force_terminal=None if not plain else False)
    summary = run_experiment(parsed, target, resume=resume is not None, force=force,
                             plain=plain or not console.is_terminal or bool(os.environ.get("CI")), console=console)
    final = summary.get("final")  # empty on ranks other than 0 under torchrun
    if final:
        console.print(f"[bold green]done[/] {target}: " + " · ".join(
            f"{k} {final[k]:.4f}" for k in final if k.startswith("rank") or k in ("mAP", "mINP")))
