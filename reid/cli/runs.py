"""``reid runs [DIR ...]``: one table of every run below some folders — status, progress, best and last metrics.

Examples:
    reid runs                                   # everything under runs/
    reid runs runs/sweep-lr --sort best-mAP     # a sweep's runs, best first
    reid runs --filter loss.margin=0.3 --filter optim.lr=3.5e-4
    reid runs --format json                     # for scripts
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from reid.cli.app import FormatOption, OutputFormat, PlainOption, app, print_json
from reid.engine.run_index import RunRecord, RunStatus, SortKey, SpecFilter, headline, list_runs

if TYPE_CHECKING:
    from reid.engine.summary import EvaluatedEpoch

STATUS_STYLE = {RunStatus.running: "cyan", RunStatus.finished: "green", RunStatus.failed: "red",
                RunStatus.interrupted: "yellow"}


def _percent(m: EvaluatedEpoch | None, rank1: bool) -> str:
    value = headline(m, rank1)
    return "–" if value is None else f"{100 * value:.1f}"


def _duration(seconds: float) -> str:
    minutes, s = divmod(int(round(seconds)), 60)
    hours, m = divmod(minutes, 60)
    return f"{hours}h{m:02d}m" if hours else (f"{m}m{s:02d}s" if m else f"{s}s")


def status_text(r: RunRecord) -> str:
    """The status cell: finished, running, failed, resumable (interrupted, ``last.pt`` kept) or interrupted."""
    if r.status is RunStatus.interrupted and r.resumable:
        return "resumable"
    return r.status.value


def note(r: RunRecord) -> str | None:
    """The line printed below the table for a run that needs one: who runs it, why it failed, how to resume."""
    if r.status is RunStatus.running:
        return f"{r.run}: running in {r.detail}"
    if r.status is RunStatus.failed:
        return f"{r.run}: failed: {r.detail}" + (f" (reid run --resume {r.run} continues it)" if r.resumable else "")
    if r.status is RunStatus.interrupted and r.resumable:
        return f"{r.run}: interrupted; reid run --resume {r.run} continues it"
    return None


def _pair(m: EvaluatedEpoch | None) -> str:
    return "–" if m is None else f"{_percent(m, True)}/{_percent(m, False)}"


def table(records: list[RunRecord], plain: bool) -> Table:
    """The rich table of ``records`` (no box or colour with ``plain``)."""
    out = Table(box=None if plain else box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1 if plain else 0),
                highlight=False)
    for column in ("run", "spec", "seed", "status", "epochs", "best R1/mAP", "last R1/mAP", "wall", "device"):
        right = column in {"seed", "epochs", "wall"} or "mAP" in column
        out.add_column(column, justify="right" if right else "left", no_wrap=column != "device")
    for r in records:
        status = status_text(r)
        out.add_row(r.run, r.spec, "" if r.seed is None else str(r.seed),
                    status if plain else f"[{STATUS_STYLE[r.status]}]{status}[/]",
                    f"{r.epochs_done}/{r.epochs_planned if r.epochs_planned is not None else '?'}",
                    _pair(r.best), _pair(r.last), _duration(r.wall_seconds), r.device)
    return out


@app.command()
def runs(
    folders: Annotated[Optional[list[Path]], typer.Argument(metavar="[DIR]...", help="folders searched recursively "
                                                            "for run directories [default: runs]")] = None,
    sort: Annotated[SortKey, typer.Option("--sort", help="order by this column (metrics and epochs: highest "
                                          "first)")] = SortKey.run,
    filters: Annotated[list[str], typer.Option("--filter", help="only runs whose spec has key=value, e.g. "
                                               "optim.lr=1e-3 (repeatable: all must hold)")] = [],  # noqa: B006
    fmt: FormatOption = OutputFormat.text,
    plain: PlainOption = False,
) -> None:
    """List every run below DIR (default runs/): status, epochs, best and last Rank-1 / mAP, wall time, device.

    Status is finished, running (a process holds the run's lock), failed (its error line is printed below
    the table) or interrupted: `resumable` when checkpoints/last.pt exists (`reid run --resume RUN`). Reads only
    spec.toml, summary.json, status.json and metrics.jsonl, never a checkpoint.
    """
    parsed = [SpecFilter.parse(f) for f in filters]
    records = list_runs(folders or [Path("runs")], parsed, sort)
    if fmt is OutputFormat.json:
        print_json([r.to_json() for r in records])
        return
    console = Console(highlight=False, no_color=plain, width=None if not plain else 10_000)
    if not records:
        console.print("no runs found" + (" matching the filters" if parsed else ""))
        return
    console.print(table(records, plain))
    for line in filter(None, map(note, records)):
        console.print(line, soft_wrap=True)
    counts = {s: sum(r.status is s for r in records) for s in RunStatus}
    console.print(", ".join(f"{n} {s.value}" for s, n in counts.items() if n))
