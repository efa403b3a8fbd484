"""A rich progress bar for long CLI work, or nothing when ``plain`` (logs, scripts, ``--format json``)."""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


@contextlib.contextmanager
def progress_bar(console: Console, label: str, total: int, plain: bool = False) -> Iterator[Callable[[int], None]]:
    """Yield ``advance(n)``: moves a bar of ``total`` steps labelled ``label`` by ``n`` (a no-op when ``plain``)."""
    if plain or not console.is_terminal:
        yield lambda n: None
        return
    with Progress(TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TimeRemainingColumn(), console=console, transient=True) as progress:
        task = progress.add_task(label, total=total)
        yield lambda n: progress.advance(task, n)
