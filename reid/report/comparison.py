"""The page comparing runs: final metrics side by side, overlaid curves, and mean ± std over seeds for
runs whose specs differ only in ``seed`` (grouped by :func:`reid.report.seed_groups.group_runs`).

Example::

    runs = [load_run(p) for p in ("runs/a/seed-0", "runs/a/seed-1", "runs/b")]
    text = comparison_page(runs, Figures(Path("report")), {run.path: "a-seed-0.md" for run in runs})
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from reid.report.figures import comparison_figure
from reid.report.markdown import count, metric_label, pct, seconds, table
from reid.report.pages import Figures
from reid.report.run_parts import scores
from reid.report.runs import Run
from reid.report.seed_groups import SeedGroup, group_runs


def runs_table(runs: list[Run], pages: dict[Path, str]) -> str:
    """Every run: its page, spec name, seed, final Rank-k / mAP / mINP, epochs, wall time, throughput, device."""
    ranks = sorted({k for run in runs for k in run.spec.eval.ranks})
    cols = scores(ranks)
    rows = []
    for run in runs:
        s = run.summary
        rows.append([f"[`{run.path}`]({pages[run.path]})", f"`{run.name}`", run.spec.seed,
                     *[pct(get(s.final)) if s.final else "–" for _, get in cols], count(s.epochs),
                     seconds(s.wall_seconds), f"{s.mean_images_per_second:.1f}", s.device.device_name])
    headers = ["run", "spec", "seed", *[label for label, _ in cols], "epochs", "wall time", "img/s", "device"]
    return table(headers, rows, align="llr" + "r" * (len(cols) + 3) + "l")


def seed_table(groups: list[SeedGroup], labels: Sequence[str] | None = None) -> str:
    """One row per group of several seeds: its folder, seeds, and mean ± sample std of each final metric.

    ``labels`` (one per group) replace the folders in the first column.
    """
    names = [m.name for m in groups[0].metrics]
    labels = labels or [f"`{g.label}`" for g in groups]
    headers = ["group", "seeds", *[metric_label(n) for n in names]]
    rows = [[label, ", ".join(map(str, g.seeds)),
             *[next((m.format() for m in g.metrics if m.name == n), "–") for n in names]]
            for label, g in zip(labels, groups)]
    return table(headers, rows, align="ll" + "r" * len(names))


def seed_values_table(group: SeedGroup) -> str:
    """One row per final metric of ``group``: mean ± sample std, then each seed's value (columns ``seed N``)."""
    headers = ["metric", "mean ± std", *[f"seed {s}" for s in group.seeds]]
    rows = [[metric_label(m.name), m.format(), *[pct(v) for v in m.values]] for m in group.metrics]
    return table(headers, rows, align="l" + "r" * (len(headers) - 1))


def comparison_page(runs: list[Run], figures: Figures, pages: dict[Path, str]) -> str:
    """The comparison page of ``runs`` (two or more); ``pages`` maps each run's path to its page file."""
    parts = ["# Runs compared",
             "Final metrics (last evaluated epoch) on each run's own validation set and protocol; each run's page "
             "says which.",
             runs_table(runs, pages)]
    evaluated = [r for r in runs if r.evaluated]
    if evaluated:
        parts.append(figures.add(comparison_figure([(f"{r.name} ({r.path})", r.evaluated) for r in evaluated],
                                                   ["rank1", "mAP"], "validation Rank-1 and mAP per epoch"),
                                 "comparison_curves", "Rank-1 and mAP per epoch, all runs"))
    groups = [g for g in group_runs([r.path for r in runs], skip_repeated_seeds=True) if len(g.runs) > 1]
    if groups:
        parts += ["## Repeated with different seeds",
                  "Runs whose specs differ only in `seed`: mean ± sample standard deviation (n − 1) of the final "
                  "metrics over the seeds.",
                  seed_table(groups)]
    return "\n\n".join(parts) + "\n"
