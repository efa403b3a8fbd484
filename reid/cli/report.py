"""``reid report [RUN_DIR ...]``: Markdown answers Q1–Q11 with figures, from run directories.

Examples:
    reid report runs/q8 runs/q11                 # → reports/README.md, reports/q01.md … q11.md, reports/figures/
    reid report runs/q8 --out /tmp/report        # Q11 then says which command produces its run
    reid report runs/q8 runs/q11 --runs runs/quickstart runs/market   # + all runs side by side in README.md
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from reid.cli.app import app

DEFAULT_RUNS = ("runs/q8", "runs/q11")


@app.command()
def report(
    run_dirs: Optional[list[Path]] = typer.Argument(
        None, help="run directories (written by `reid run`); default: runs/q8 and runs/q11 where they exist"),
    out: Path = typer.Option(Path("reports"), "--out", "-o", help="report folder"),
    runs: Optional[list[Path]] = typer.Option(
        None, "--runs", help="more run directories to compare side by side in README.md (--runs A B …)"),
) -> None:
    """Write README.md and q01.md … q11.md with figures: every number computed from code or a run directory.

    The ID-loss run answers Q8 and the triplet-loss run Q11 (recognised by their specs); with several runs
    README.md adds a side-by-side table of all of them. Same runs, same Markdown (byte for byte).
    """
    from reid.report.writer import report_command, write_report  # heavy: matplotlib, torch

    given = [*(run_dirs or []), *(runs or [])]
    paths = given or [Path(p) for p in DEFAULT_RUNS if Path(p).is_dir()]
    written = write_report(paths, out, command=report_command(paths, out))
    Console(highlight=False).print(f"[bold green]report[/] {out}: {len(written)} Markdown files "
                                   f"({', '.join(p.name for p in written[:2])} … {written[-1].name}) and figures/")
