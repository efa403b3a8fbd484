"""Write the assignment's report: one Markdown file per question (Q1–Q11), figures beside them, a README index.

Regenerating from the same runs gives byte-identical Markdown: no timestamps, runs and
sections in a fixed order, fixed number formats, and PNGs without time/version metadata.

Example::

    write_assignment_report([load_run("runs/q8"), load_run("runs/q11")], Path("reports"), "reid report runs/q8 runs/q11")
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable

from reid.engine.run_index import headline
from reid.report.assignment import data_questions, model_questions, run_questions, visual_questions
from reid.report.assignment.roles import RUN_COMMANDS, assign_groups, missing_run_line, role_of
from reid.report.assignment.section import ReportContext, Section
from reid.report.comparison import seed_table
from reid.report.markdown import count, pct, seconds, table
from reid.report.pages import FIGURES_DIR, Figures
from reid.report.run_parts import scores
from reid.report.runs import Run
from reid.report.seed_groups import group_runs

#: the question builders, in order
QUESTIONS: list[Callable[[ReportContext], Section]] = [
    model_questions.q1, model_questions.q2, model_questions.q3, model_questions.q4, model_questions.q5,
    data_questions.q6, model_questions.q7, run_questions.q8, visual_questions.q9, data_questions.q10,
    run_questions.q11,
]
_OWN_FIGURE = re.compile(r"^q\d\d_.*\.png$")


def write_assignment_report(runs: list[Run], out: Path, command: str, by_name: bool = False) -> list[Path]:
    """Render every question into ``out`` and return the Markdown files written (README first).

    Args:
        runs: the runs given (Q8 / Q11 by their declared roles, see :mod:`reid.report.assignment.roles`).
        out: the report folder (created; figures go to ``out/figures``).
        command: the regenerating command shown in the README.
        by_name: runs without a declared role take the role their spec name says (``q8`` / ``q11``).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    assigned, groups = assign_groups(runs, by_name)
    ctx = ReportContext(runs=runs, assigned=assigned, figures=Figures(out), groups=groups)
    sections = [build(ctx) for build in QUESTIONS]
    written = [out / "README.md"]
    (out / "README.md").write_text(readme(ctx, sections, command, by_name), encoding="utf-8")
    for section in sections:
        (out / section.filename).write_text(section.markdown(), encoding="utf-8")
        written.append(out / section.filename)
    remove_stale_figures(out / FIGURES_DIR, {Path(p).name for p in ctx.figures.written})
    return written


def remove_stale_figures(folder: Path, keep: set[str]) -> None:
    """Delete report figures (``qNN_*.png``) a previous report left that this one did not write."""
    if folder.is_dir():
        for path in sorted(folder.iterdir()):
            if _OWN_FIGURE.match(path.name) and path.name not in keep:
                path.unlink()


def ordered_runs(ctx: ReportContext) -> list[Run]:
    """The Q8 run (all its seeds, by seed), the Q11 run (likewise), then the others in the order given (so
    argument order does not matter for them)."""
    by_path = {r.path: r for r in ctx.runs}
    first: list[Run] = []
    for question, run in ctx.assigned.items():
        group = ctx.repeats(question)
        if group is not None:
            first += [by_path[s.path] for s in group.runs]
        elif run is not None:
            first.append(run)
    return first + [r for r in ctx.runs if all(r is not f for f in first)]


def used_for(ctx: ReportContext, run: Run) -> list[str]:
    """The questions ``run`` answers: ``Q8``, or ``Q8 (seed 1 of 3 seeds)`` for one seed of a repeated run."""
    used = []
    for question, assigned in ctx.assigned.items():
        group = ctx.repeats(question)
        if group is not None and any(s.path == run.path for s in group.runs):
            used.append(f"{question.upper()} (seed {run.spec.seed} of {len(group.runs)} seeds)")
        elif assigned is run:
            used.append(question.upper())
    return used


def runs_table(ctx: ReportContext, by_name: bool) -> str:
    """Every run given: path, spec name, which question it answers, epochs, final Rank-1 and mAP."""
    rows = []
    for run in ordered_runs(ctx):
        used = used_for(ctx, run)
        role = role_of(run, by_name)
        role_text = ", ".join(used) or (f"{role.upper()} (another run answers it)" if role else "comparison only")
        final = run.summary.final
        rows.append([f"`{run.path}`", f"`{run.name}`", role_text, count(run.summary.epochs),
                     pct(headline(final, rank1=True)), pct(headline(final, rank1=False))])
    return table(["run", "spec", "used for", "epochs", "final Rank-1", "final mAP"], rows, align="lllrrr")


def comparison(ctx: ReportContext) -> str:
    """All runs side by side: final Rank-k / mAP / mINP, epochs, wall time, throughput."""
    ranks = sorted({r for run in ctx.runs for r in run.spec.eval.ranks})
    headers = ["run", *[f"R{r}" for r in ranks], "mAP", "mINP", "epochs", "wall time", "img/s", "device"]
    rows = []
    for run in ordered_runs(ctx):
        s = run.summary
        rows.append([f"`{run.name}` (`{run.path}`)", *[pct(get(s.final) if s.final else None) for _, get in scores(ranks)],
                     count(s.epochs), seconds(s.wall_seconds), f"{s.mean_images_per_second:.1f}",
                     s.device.device_name])
    return table(headers, rows, align="l" + "r" * (len(headers) - 2) + "l")


def readme(ctx: ReportContext, sections: list[Section], command: str, by_name: bool) -> str:
    """The report's index: what each file answers, the runs used, the command that regenerates it."""
    index = [[f"[Q{s.number}]({s.filename})", s.title, s.answers, ", ".join(f"`{r}`" for r in s.runs) or "model code"]
             for s in sections]
    parts = [
        "# Assignment answers, regenerated from code and run directories",
        "Every number and figure in these files is computed by `reid report` from the model code and the run "
        "directories below — none is typed in. Regenerate (byte-identical Markdown for the same runs) with:",
        f"```\n{command}\n```",
        "## Questions",
        table(["file", "topic", "answers", "from"], index, align="llll"),
        "## Runs used",
        runs_table(ctx, by_name) if ctx.runs else "_No run directories were given._",
    ]
    for question, run in ctx.assigned.items():
        if run is None:
            parts.append(missing_run_line(question))
    repeated = {f"{q.upper()} `{g.label}`": g for q in ctx.assigned if (g := ctx.repeats(q)) is not None}
    others = [run.path for run in ctx.runs if role_of(run, by_name) is None]  # comparison-only runs
    repeated |= {f"{g.spec.name} `{g.label}`": g
                 for g in group_runs(others, skip_repeated_seeds=True) if len(g.runs) > 1}
    if repeated:
        parts += ["## Repeated with different seeds",
                  "Final metrics of the runs repeated with different seeds (specs differing only in `seed`): mean ± "
                  "sample standard deviation (n − 1) over the seeds; each seed's value is in the question's section "
                  "(Q8, Q11) or in the table of all runs below.",
                  seed_table(list(repeated.values()), list(repeated))]
    if len(ctx.runs) > 1:
        parts += ["## All runs side by side",
                  "Final metrics (last evaluated epoch), on each run's own validation set and protocol "
                  "(see its section for the dataset and protocol).",
                  comparison(ctx)]
    parts.append("Produce the assignment's runs with " + " and ".join(f"`{c}`" for c in RUN_COMMANDS.values()) + ".")
    return "\n\n".join(parts) + "\n"
