"""``reid report RUN... [--out DIR] [--assignment]``: Markdown pages with figures, from run directories.

Examples:
    reid report runs/quickstart                  # → reports/runs/README.md, quickstart.md, figures/
    reid report runs/sweep runs/market -o /tmp/r # every finished run below runs/sweep too; comparison.md with mean ± std
    reid report runs/q8 runs/q11                 # their specs declare roles q8 / q11 → reports/README.md, q01.md … q11.md
    reid report old/q8 old/q11 --assignment      # runs written before specs declared roles: by spec name
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from reid.cli.app import app

#: where each kind of report goes without --out
ASSIGNMENT_OUT, RUNS_OUT = Path("reports"), Path("reports/runs")


@app.command()
def report(
    run_dirs: Annotated[Optional[list[Path]], typer.Argument(
        help="run directories written by `reid run`, or folders holding finished runs")] = None,
    out: Annotated[Optional[Path], typer.Option(
        "--out", "-o", help=f"report folder (default: {RUNS_OUT}, or {ASSIGNMENT_OUT} for the assignment)")] = None,
    assignment: Annotated[bool, typer.Option(
        "--assignment", help="write the assignment's answers q01.md … q11.md (roles from the specs, else from spec names q8 / q11)")] = False,
) -> None:
    """Markdown pages with figures from run directories: a page per run and a comparison page.

    Each run page has the spec diff, metrics, curves, retrieval grid, embeddings, per-camera Rank-1 and
    cost; the comparison page shows mean ± std over seeds. When the runs' specs declare assignment roles
    (or with --assignment) the assignment's answers (q01.md … q11.md) are written instead. Same runs, same
    Markdown (byte for byte).
    """
    from reid.report.assignment.roles import declares_role  # heavy: matplotlib, torch
    from reid.report.runs import expand_run_paths, load_run
    from reid.report.writer import report_command, write_report

    paths = list(run_dirs or [])
    is_assignment = assignment or declares_role([load_run(p) for p in expand_run_paths(paths)])
    default = ASSIGNMENT_OUT if is_assignment else RUNS_OUT
    target = out or default
    command = report_command(paths, target, assignment, default_out=default)
    written = write_report(paths, target, command=command, assignment=assignment)
    Console(highlight=False).print(f"[bold green]report[/] {target}: {len(written)} Markdown files "
                                   f"({', '.join(p.name for p in written[:2])}{' …' if len(written) > 2 else ''}) "
                                   "and figures/")
