"""``reid report``'s output: a page per run, a comparison page, an index — or the assignment's Q1–Q11.

Regenerating from the same runs gives byte-identical Markdown: no timestamps, runs in a fixed order,
fixed number formats, and PNGs without time/version metadata.

Example::

    write_report(["runs/quickstart", "runs/market"], Path("report"))   # README.md, quickstart.md, market.md, comparison.md
    write_report(["runs/q8", "runs/q11"], Path("reports"))             # the specs declare Q8 / Q11: q01.md … q11.md
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from reid.engine.run_index import headline
from reid.report.assignment import write_assignment_report
from reid.report.assignment.roles import declares_role
from reid.report.comparison import comparison_page
from reid.report.markdown import count, pct, table
from reid.report.pages import Figures
from reid.report.run_page import run_page
from reid.report.runs import Run, expand_run_paths, load_run


def report_command(run_paths: Sequence[str | Path], out: Path, assignment: bool = False,
                   default_out: Path = Path("reports")) -> str:
    """The command line that regenerates a report (``--out`` only when ``out`` is not ``default_out``)."""
    parts = ["reid", "report", *[str(p) for p in run_paths]]
    if Path(out) != Path(default_out):
        parts += ["--out", str(out)]
    if assignment:
        parts.append("--assignment")
    return " ".join(parts)


def page_names(runs: list[Run]) -> dict[Path, str]:
    """A unique file stem per run: its folder name, else its last two path parts joined by ``-``.

    Example:
        >>> from types import SimpleNamespace as R
        >>> page_names([R(path=Path("a/seed-0")), R(path=Path("b/seed-0")), R(path=Path("runs/c"))])
        {PosixPath('a/seed-0'): 'a-seed-0', PosixPath('b/seed-0'): 'b-seed-0', PosixPath('runs/c'): 'c'}
    """
    names = [r.path.name for r in runs]
    out = {}
    for run, name in zip(runs, names):
        if names.count(name) > 1:
            name = "-".join(run.path.parts[-2:])
        out[run.path] = name
    return out


def write_run_reports(runs: list[Run], out: Path, command: str) -> list[Path]:
    """A page per run, a comparison page (two or more runs) and a README index; the files written (README first)."""
    out.mkdir(parents=True, exist_ok=True)
    figures, stems = Figures(out), page_names(runs)
    pages = {path: f"{stem}.md" for path, stem in stems.items()}
    written = [out / "README.md"]
    for run in runs:
        (out / pages[run.path]).write_text(run_page(run, figures, stems[run.path]), encoding="utf-8")
        written.append(out / pages[run.path])
    rows = [[f"[`{r.path}`]({pages[r.path]})", f"`{r.name}`", count(r.summary.epochs),
             pct(headline(r.summary.final, rank1=True)), pct(headline(r.summary.final, rank1=False))] for r in runs]
    readme = ["# Run reports", "Every number and figure is computed by `reid report` from the run directories. "
              "Regenerate with:", f"```\n{command}\n```",
              table(["run", "spec", "epochs", "final Rank-1", "final mAP"], rows, align="llrrr")]
    if len(runs) > 1:
        (out / "comparison.md").write_text(comparison_page(runs, figures, pages), encoding="utf-8")
        written.append(out / "comparison.md")
        readme.append("All runs side by side, with mean ± std over seeds: [comparison.md](comparison.md).")
    (out / "README.md").write_text("\n\n".join(readme) + "\n", encoding="utf-8")
    return written


def write_report(run_paths: Sequence[str | Path], out: Path, command: str | None = None,
                 assignment: bool = False) -> list[Path]:
    """Write the report of ``run_paths`` into ``out`` and return the Markdown files written (README first).

    The assignment's Q1–Q11 are written when ``assignment`` is set or a run's spec declares a role
    (``role = "q8"``); otherwise a page per run and a comparison page.

    Args:
        run_paths: run directories, or folders holding finished runs (e.g. a seed group).
        out: the report folder (created; figures go to ``out/figures``).
        command: the regenerating command shown in the README (default: :func:`report_command`).
        assignment: write the assignment's answers; runs without a declared role then take it from their name.

    Raises:
        ReidError: no run was given, or a path is not a finished run directory.
    """
    runs = [load_run(p) for p in expand_run_paths(run_paths)]
    out = Path(out)
    command = command or report_command(run_paths, out, assignment)
    if assignment or declares_role(runs):
        return write_assignment_report(runs, out, command, by_name=assignment)
    return write_run_reports(runs, out, command)
