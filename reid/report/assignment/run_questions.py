"""Q8 and Q11: training curves and final numbers of the ID-loss and triplet-loss runs, and their comparison.

When a question's run was repeated with other seeds (``reid run specs/q8.toml --seeds 0,1,2``), its section adds
the final metrics of every seed and their mean ± std ("Over seeds"), shows the lowest seed's curves, and Q11
compares the two models' means against the seed-to-seed spread; a single run's section is as before.
"""

from __future__ import annotations

from reid.report.assignment.roles import missing_run_line
from reid.report.assignment.section import ReportContext, Section
from reid.report.comparison import seed_table, seed_values_table
from reid.report.figures import comparison_figure
from reid.report.markdown import bullets, count, metric_label, num, pct, seconds, table
from reid.report.run_parts import (cost_table, curves, epoch_table, final_table, loss_name, observations, scores,
                                   val_loss_text)
from reid.report.runs import Run, provenance
from reid.report.seed_groups import SeedGroup, beyond_spread


def run_answer(ctx: ReportContext, run: Run, question: str, group: SeedGroup | None = None) -> list[str]:
    """Provenance, final numbers, figures and the per-epoch table of one run.

    With ``group`` (``run`` and its repeats with other seeds, two or more runs) an "Over seeds" part
    (:func:`seeds_part`) follows the provenance, and the figures' titles name ``run``'s seed.
    """
    label, title = question.upper(), f"{question.upper()} ({run.name})"
    if group is not None:
        label, title = f"{label} seed {run.spec.seed}", f"{question.upper()} ({run.name}, seed {run.spec.seed})"
    return [
        provenance(run),
        f"**Training loss:** {loss_name(run.spec)}; logged every {run.spec.runtime.log_every} iteration(s) and "
        f"averaged per epoch. **Validation loss:** {val_loss_text(run)}.",
        *(seeds_part(group, run) if group is not None else []),
        "## Final numbers",
        final_table(run),
        cost_table(run),
        "## Curves",
        *curves(ctx.figures, run, f"q{int(question[1:]):02d}", label, title),
        observations(run),
        "## Per epoch",
        epoch_table(run),
    ]


def seeds_part(group: SeedGroup, run: Run) -> list[str]:
    """The "Over seeds" part: every seed's final metrics, their mean ± std, and which seed the rest shows."""
    return [
        "## Over seeds",
        f"This run was repeated with seeds {', '.join(map(str, group.seeds))} (`{group.label}`; the specs differ "
        "only in `seed`). Final metrics (last evaluated epoch) of each seed, and their mean ± sample standard "
        "deviation (n − 1):",
        seed_values_table(group),
        f"The final numbers, curves and per-epoch table below are those of seed {run.spec.seed} (`{run.path}`), "
        "the lowest seed.",
    ]


def used_paths(ctx: ReportContext, question: str) -> list[str]:
    """The paths of the runs ``question``'s numbers come from: its seed group's runs, else its run."""
    group = ctx.repeats(question)
    return [str(r.path) for r in group.runs] if group is not None else [str(ctx.assigned[question].path)]


def q8(ctx: ReportContext) -> Section:
    """Q8: the ID-loss model's curves and numbers."""
    run = ctx.assigned["q8"]
    question = ("**Question.** Train the ResNet-18 with the ID (cross-entropy) loss; plot Rank-1/5/10 per epoch, the "
                "training loss per iteration and per epoch, and the validation loss per epoch.")
    if run is None:
        return Section(8, "ID-loss model", "the ID-loss run: accuracy and loss curves, final numbers", "\n\n".join([question, missing_run_line("q8")]))
    body = [question, *run_answer(ctx, run, "q8", ctx.repeats("q8"))]
    return Section(8, "ID-loss model", "the ID-loss run: accuracy and loss curves, final numbers", "\n\n".join(body),
                   used_paths(ctx, "q8"))


def comparison_table(runs: list[tuple[str, Run]]) -> str:
    """Final metrics, epochs, wall time and throughput of several runs, side by side (one column per run)."""
    ranks = sorted({k for _, r in runs for k in r.spec.eval.ranks})
    rows = [[label, *[pct(get(r.summary.final)) for _, r in runs]] for label, get in scores(ranks)]
    rows += [
        ["validation loss", *[num(r.summary.final.result.val_loss) for _, r in runs]],
        ["training loss", *[loss_name(r.spec) for _, r in runs]],
        ["epochs", *[count(r.summary.epochs) for _, r in runs]],
        ["wall time", *[seconds(r.summary.wall_seconds) for _, r in runs]],
        ["images/s (training)", *[f"{r.summary.mean_images_per_second:.1f}" for _, r in runs]],
        ["device", *[r.summary.device.device_name for _, r in runs]],
    ]
    return table(["", *[f"{label} `{r.path}`" for label, r in runs]], rows, align="l" + "r" * len(runs))


def q11(ctx: ReportContext) -> Section:
    """Q11: the triplet-loss model's curves and numbers, compared with Q8."""
    run, other = ctx.assigned["q11"], ctx.assigned["q8"]
    question = ("**Question.** Train the same network with the triplet loss instead; plot the same curves and compare "
                "with the ID-loss model.")
    answers = "the triplet-loss run: curves, final numbers, comparison with Q8"
    if run is None:
        return Section(11, "Triplet-loss model", answers, "\n\n".join([question, missing_run_line("q11")]))
    body = [question, *run_answer(ctx, run, "q11", ctx.repeats("q11")), "## Comparison with the ID-loss model (Q8)"]
    if other is None:
        body.append(missing_run_line("q8"))
    else:
        body += comparison_part(ctx, other, run)
    runs = used_paths(ctx, "q11") + (used_paths(ctx, "q8") if other is not None else [])
    return Section(11, "Triplet-loss model", answers, "\n\n".join(body), runs)


def comparison_part(ctx: ReportContext, id_run: Run, triplet_run: Run) -> list[str]:
    """Q8 against Q11: a table, the per-epoch figure and notes.

    When both were repeated with other seeds the table has their means ± std (:func:`seed_table`) and the notes
    weigh the difference of means against the seed-to-seed spread; the figure shows each one's lowest seed.
    When only one was repeated, its lowest seed is compared with the other's run, as for single runs.
    """
    groups = ctx.repeats("q8"), ctx.repeats("q11")
    names = [f"{q} seed {r.spec.seed}" if g is not None else q
             for q, r, g in zip(("Q8", "Q11"), (id_run, triplet_run), groups)]
    figure = ctx.figure(comparison_figure([(f"{names[0]} {id_run.name} (ID loss)", id_run.evaluated),
                                           (f"{names[1]} {triplet_run.name} (triplet loss)", triplet_run.evaluated)],
                                          ["rank1", "mAP"], "ID loss (Q8) vs triplet loss (Q11) on the validation set"),
                        "q11_vs_q8", "Q8 vs Q11 per epoch")
    if groups[0] is not None and groups[1] is not None:
        return [
            "Final metrics (last evaluated epoch) over seeds: mean ± sample standard deviation (n − 1). The figure "
            f"shows one seed of each: {names[0]} (`{id_run.path}`) and {names[1]} (`{triplet_run.path}`).",
            seed_table(list(groups), [f"Q8 `{groups[0].label}` (ID loss)", f"Q11 `{groups[1].label}` (triplet loss)"]),
            figure,
            comparison_notes(id_run, triplet_run, (groups[0], groups[1])),
        ]
    parts = []
    for q, run, group, other in (("Q8", id_run, groups[0], "Q11"), ("Q11", triplet_run, groups[1], "Q8")):
        if group is not None:
            parts.append(f"{q} was repeated with seeds {', '.join(map(str, group.seeds))} but {other} has one run, "
                         f"so there is no spread to compare; this comparison uses {q} seed {run.spec.seed} "
                         f"(`{run.path}`), and {q}'s mean ± std is under \"Over seeds\" in its section.")
    return [*parts, comparison_table([("Q8", id_run), ("Q11", triplet_run)]), figure,
            comparison_notes(id_run, triplet_run)]


def higher(q8_value: float, q11_value: float) -> str:
    """``"Q8"``, ``"Q11"`` or ``"neither"``: which model's value is higher."""
    return "Q11" if q11_value > q8_value else "Q8" if q8_value > q11_value else "neither"


def comparison_notes(id_run: Run, triplet_run: Run, groups: tuple[SeedGroup, SeedGroup] | None = None) -> str:
    """Which run ranks better, and whether the comparison is like for like.

    With ``groups`` (the Q8 and Q11 seed groups, two or more seeds each) the final Rank-1 and mAP are the
    groups' means ± std, checked against the seed-to-seed spread (:func:`spread_notes`).
    """
    if groups is not None:
        notes = spread_notes(*groups)
    else:
        a, b = id_run.summary.final.result, triplet_run.summary.final.result
        values = {"rank1": (a.rank(1), b.rank(1)), "mAP": (a.mAP, b.mAP)}
        better = {k: higher(x, y) for k, (x, y) in values.items()}
        notes = [f"Final Rank-1: Q8 {pct(a.rank(1))}, Q11 {pct(b.rank(1))} (higher: {better['rank1']}); "
                 f"final mAP: Q8 {pct(a.mAP)}, Q11 {pct(b.mAP)} (higher: {better['mAP']})."]
    same_data = id_run.summary.dataset == triplet_run.summary.dataset
    same_eval = id_run.summary.evaluation == triplet_run.summary.evaluation
    notes.append(f"Same dataset: {'yes' if same_data else 'no'}; same evaluation protocol: {'yes' if same_eval else 'no'}"
                 f"; epochs: {id_run.summary.epochs} vs {triplet_run.summary.epochs}.")
    notes.append("The triplet loss trains the embedding that retrieval ranks by directly, while the ID loss trains it "
                 "only through a classifier over the training identities; the two losses' values are on different "
                 "scales and are not comparable, the validation loss (the same triplet loss for both) is.")
    return bullets(notes)


def spread_notes(id_group: SeedGroup, triplet_group: SeedGroup) -> list[str]:
    """Mean final Rank-1 and mAP of the Q8 and Q11 seed groups, the higher one, and whether each difference of
    means is larger than the seed-to-seed spread (:func:`~reid.report.seed_groups.beyond_spread`), rule stated."""
    notes = []
    for name in ("rank1", "mAP"):
        a, b = id_group.metric(name), triplet_group.metric(name)
        larger = beyond_spread(a, b)
        notes.append(f"Final {metric_label(name)} over seeds: Q8 {a.format()}, Q11 {b.format()} (higher mean: "
                     f"{higher(a.mean, b.mean)}); |Δmean| = {100 * abs(b.mean - a.mean):.2f} points "
                     f"{'>' if larger else '≤'} std Q8 + std Q11 = {100 * (a.std + b.std):.2f} points — "
                     f"{'larger than' if larger else 'within'} the seed-to-seed spread.")
    notes.append(f"Rule: a difference of means counts as larger than the seed-to-seed spread when "
                 f"|mean Q11 − mean Q8| > std Q8 + std Q11, with sample standard deviations (n − 1) over each "
                 f"model's seeds (n = {len(id_group.runs)} and {len(triplet_group.runs)}). A rough screen, not a "
                 "significance test: with this few seeds a difference within the spread may still be real.")
    return notes
