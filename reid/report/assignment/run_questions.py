"""Q8 and Q11: training curves and final numbers of the ID-loss and triplet-loss runs, and their comparison."""

from __future__ import annotations

from reid.report.assignment.roles import missing_run_line
from reid.report.assignment.section import ReportContext, Section
from reid.report.figures import comparison_figure
from reid.report.markdown import bullets, count, num, pct, seconds, table
from reid.report.run_parts import (cost_table, curves, epoch_table, final_table, loss_name, observations, scores,
                                   val_loss_text)
from reid.report.runs import Run, provenance


def run_answer(ctx: ReportContext, run: Run, question: str) -> list[str]:
    """Provenance, final numbers, figures and the per-epoch table of one run."""
    return [
        provenance(run),
        f"**Training loss:** {loss_name(run.spec)}; logged every {run.spec.runtime.log_every} iteration(s) and "
        f"averaged per epoch. **Validation loss:** {val_loss_text(run)}.",
        "## Final numbers",
        final_table(run),
        cost_table(run),
        "## Curves",
        *curves(ctx.figures, run, f"q{int(question[1:]):02d}", question.upper(), f"{question.upper()} ({run.name})"),
        observations(run),
        "## Per epoch",
        epoch_table(run),
    ]


def q8(ctx: ReportContext) -> Section:
    """Q8: the ID-loss model's curves and numbers."""
    run = ctx.assigned["q8"]
    question = ("**Question.** Train the ResNet-18 with the ID (cross-entropy) loss; plot Rank-1/5/10 per epoch, the "
                "training loss per iteration and per epoch, and the validation loss per epoch.")
    if run is None:
        return Section(8, "ID-loss model", "the ID-loss run: accuracy and loss curves, final numbers", "\n\n".join([question, missing_run_line("q8")]))
    body = [question, *run_answer(ctx, run, "q8")]
    return Section(8, "ID-loss model", "the ID-loss run: accuracy and loss curves, final numbers", "\n\n".join(body), [str(run.path)])


def comparison_table(runs: list[tuple[str, Run]]) -> str:
    """Final metrics, epochs, wall time and throughput of several runs, side by side (one column per run)."""
    ranks = sorted({k for _, r in runs for k in r.spec.eval.ranks})
    rows = [[label, *[pct(get(r.summary.final)) for _, r in runs]] for label, get in scores(ranks)]
    rows += [
        ["validation loss", *[num(r.summary.final.val_loss) for _, r in runs]],
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
    body = [question, *run_answer(ctx, run, "q11"), "## Comparison with the ID-loss model (Q8)"]
    if other is None:
        body.append(missing_run_line("q8"))
    else:
        body += [
            comparison_table([("Q8", other), ("Q11", run)]),
            ctx.figure(comparison_figure([(f"Q8 {other.name} (ID loss)", other.evaluated),
                                          (f"Q11 {run.name} (triplet loss)", run.evaluated)], ["rank1", "mAP"],
                                         "ID loss (Q8) vs triplet loss (Q11) on the validation set"),
                       "q11_vs_q8", "Q8 vs Q11 per epoch"),
            comparison_notes(other, run),
        ]
    runs = [str(run.path)] + ([str(other.path)] if other is not None else [])
    return Section(11, "Triplet-loss model", answers, "\n\n".join(body), runs)


def comparison_notes(id_run: Run, triplet_run: Run) -> str:
    """Which run ranks better, and whether the comparison is like for like."""
    a, b = id_run.summary.final, triplet_run.summary.final
    values = {"rank1": (a.rank(1), b.rank(1)), "mAP": (a.mAP, b.mAP)}
    better = {k: ("Q11" if y > x else "Q8" if x > y else "neither") for k, (x, y) in values.items()}
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
