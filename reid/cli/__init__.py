"""The ``reid`` command line: ``run``, ``runs``, ``eval``, ``embed``, ``search``, ``inspect``, ``report``, ``data``, ``bench``.

Each command lives in its own module and attaches itself to :data:`reid.cli.app.app`.
:func:`main` turns every user mistake into one clear line on stderr and a non-zero exit.
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.markup import escape

from reid.cli import bench, data, embed, evaluate, export, inspect, report, run, search  # noqa: F401  (registers the commands)
from reid.cli import sweep  # noqa: F401  (registers `reid sweep`)
from reid.cli import runs  # noqa: F401  (registers `reid runs`)
from reid.cli import keys  # noqa: F401  (registers `reid keys`)
from reid.cli.app import app
from reid.errors import ReidError

_err = Console(stderr=True, highlight=False)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``reid`` script; exits with the command's status.

    User errors (:class:`ReidError`, bad options) print one ``error:`` line and exit 2;
    Ctrl-C exits 130 after the running command has saved what it needs to.
    """
    try:
        rv = app(args=argv, standalone_mode=False, prog_name="reid")
    except ReidError as e:
        _err.print(f"[bold red]error:[/] {escape(e.message)}", soft_wrap=True)  # "[runtime]", "[/path:1]" as written
        sys.exit(e.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        _err.print("[bold red]interrupted[/]")
        sys.exit(130)
    except typer.TyperException as e:  # bad options and arguments (click's UsageError family)
        ctx = getattr(e, "ctx", None)
        command = ctx.command_path if ctx is not None else "reid"
        _err.print(f"[bold red]error:[/] {command}: {e.format_message()}. Try '{command} --help'.", soft_wrap=True)
        sys.exit(getattr(e, "exit_code", 2) or 2)
    if isinstance(rv, int) and rv != 0:
        sys.exit(rv)
