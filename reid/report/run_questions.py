"""Q8 and Q11: training curves and final numbers of the ID-loss and triplet-loss runs, and their comparison."""

from __future__ import annotations

from reid.report.figures import accuracy_figure, comparison_figure, loss_figure, metric_label
from reid.report.markdown import bullets, count, num, pct, seconds, table
from reid.report.runs import Run, missing_run_line, provenance
from reid.report.section import ReportContext, Section
from reid.spec import Spec


def loss_name(spec: Spec) -> str:
    """The training loss in words, e.g. ``cross-entropy ID loss`` or ``batch-hard triplet loss (margin 0.3)``."""
    parts = []
    if spec.loss.id_weight > 0:
        smooth = f", label smoothing {spec.loss.label_smoothing:g}" if spec.loss.label_smoothing else ""
        weight = f"{spec.loss.id_weight:g} × " if spec.loss.id_weight != 1 else ""
        parts.append(f"{weight}cross-entropy ID loss{smooth}")
    if spec.loss.triplet_weight > 0:
        weight = f"{spec.loss.triplet_weight:g} × " if spec.loss.triplet_weight != 1 else ""
        mining = {"hard": "batch-hard", "all": "batch-all", "soft": "soft-margin batch-hard"}[spec.loss.mining]
        margin = "" if spec.loss.mining == "soft" else f", margin {spec.loss.margin:g}"
        parts.append(f"{weight}{mining} triplet loss ({spec.loss.triplet_distance}{margin})")
    return " + ".join(parts)


def loss_unit(spec: Spec) -> str:
    """Axis unit of the training loss: nats (cross-entropy), embedding distance (triplet), or both."""
    if spec.loss.triplet_weight == 0:
        return "nats"
    return "embedding distance" if spec.loss.id_weight == 0 else "nats + embedding distance"


def val_loss_text(run: Run) -> str:
    """What the logged validation loss is."""
    return (f"batch-hard triplet loss (margin {run.spec.loss.margin:g}, euclidean) over all validation embeddings at "
            "once; the ID loss is undefined on validation because its identities are not classes of the classifier")


def final_table(run: Run) -> str:
    """Final and best values of every logged metric."""
    final, best = run.summary["final"], run.summary["best"]
    rows = [[metric_label(k), pct(final[k]), pct(best[k])] for k in run.rank_keys + ["mAP", "mINP"]]
    rows.append(["validation loss", num(final["val_loss"]), num(best["val_loss"])])
    return table(["metric", f"final (epoch {final['epoch']})", f"best Rank-1 (epoch {best['epoch']})"], rows, align="lrr")


def cost_table(run: Run) -> str:
    """Wall time, throughput, device and size, from ``summary.json``."""
    s = run.summary
    dev = s["device"]
    return table(["", "value"], [
        ["epochs", count(s["epochs"])],
        ["iterations", count(run.epochs[-1]["step"]) if run.epochs else "0"],
        ["wall time (training + evaluation, all sessions)", seconds(s["wall_seconds"])],
        ["mean training throughput", f"{s['mean_images_per_second']:.1f} images/s"],
        ["device", f"{dev['device_name']} (`{dev['device']}`), {dev['precision']}"
                   f"{', channels_last' if dev.get('channels_last') else ''}, {dev.get('threads', '–')} threads"],
        ["parameters", count(s["parameters"])],
    ], align="lr")


def epoch_table(run: Run) -> str:
    """One row per epoch: losses, metrics, learning rate, throughput."""
    keys = run.rank_keys + ["mAP", "mINP"]
    rows = []
    for r in run.epochs:
        rows.append([r["epoch"], num(r["train_loss"]), num(r.get("val_loss")),
                     *[pct(r.get(k)) for k in keys], f"{r['lr']:.2e}", f"{r['images_per_second']:.1f}"])
    return table(["epoch", "train loss", "val loss", *[metric_label(k) for k in keys], "lr", "img/s"], rows,
                 align="r" * (5 + len(keys)))


def observations(run: Run) -> str:
    """What the curves show, in numbers."""
    ev, ep = run.evaluated, run.epochs
    first, last, best = ev[0], ev[-1], run.summary["best"]
    ranks = run.rank_keys
    ordered = all(r[a] <= r[b] for r in ev for a, b in zip(ranks, ranks[1:]))
    items = [
        f"Rank-1 went from {pct(first['rank1'])} (epoch {first['epoch']}) to {pct(last['rank1'])} (epoch "
        f"{last['epoch']}); best {pct(best['rank1'])} at epoch {best['epoch']}. mAP: {pct(first['mAP'])} → "
        f"{pct(last['mAP'])}.",
        f"Training loss (epoch mean): {num(ep[0]['train_loss'])} → {num(ep[-1]['train_loss'])}; validation loss: "
        f"{num(first['val_loss'])} → {num(last['val_loss'])}.",
        f"{' ≤ '.join(metric_label(k) for k in ranks)} at every epoch: "
        f"{'yes' if ordered else 'no'} — Rank-k counts a query as correct when a true match is anywhere in the top "
        "k, so it can only grow with k.",
    ]
    return bullets(items)


def curves(ctx: ReportContext, run: Run, question: str) -> list[str]:
    """The accuracy and loss figures of ``run``, with captions."""
    tag = f"q{int(question[1:]):02d}"
    label = question.upper()
    return [
        ctx.figure(accuracy_figure(run.evaluated, run.rank_keys, f"{label} ({run.name}): validation accuracy per epoch"),
                   f"{tag}_accuracy", f"{label} accuracy per epoch"),
        ctx.figure(loss_figure(run.iters, run.epochs, f"{label} ({run.name}): losses", loss_name(run.spec),
                               "batch-hard triplet loss on validation embeddings", loss_unit(run.spec)),
                   f"{tag}_losses", f"{label} losses"),
    ]


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
        *curves(ctx, run, question),
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
    keys = sorted({k for _, r in runs for k in r.rank_keys}, key=lambda k: int(k[4:])) + ["mAP", "mINP"]
    rows = [[metric_label(k), *[pct(r.summary["final"].get(k)) for _, r in runs]] for k in keys]
    rows += [
        ["validation loss", *[num(r.summary["final"].get("val_loss")) for _, r in runs]],
        ["training loss", *[loss_name(r.spec) for _, r in runs]],
        ["epochs", *[count(r.summary["epochs"]) for _, r in runs]],
        ["wall time", *[seconds(r.summary["wall_seconds"]) for _, r in runs]],
        ["images/s (training)", *[f"{r.summary['mean_images_per_second']:.1f}" for _, r in runs]],
        ["device", *[r.summary["device"]["device_name"] for _, r in runs]],
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
    a, b = id_run.summary["final"], triplet_run.summary["final"]
    better = {k: ("Q11" if b[k] > a[k] else "Q8" if a[k] > b[k] else "neither") for k in ("rank1", "mAP")}
    notes = [f"Final Rank-1: Q8 {pct(a['rank1'])}, Q11 {pct(b['rank1'])} (higher: {better['rank1']}); "
             f"final mAP: Q8 {pct(a['mAP'])}, Q11 {pct(b['mAP'])} (higher: {better['mAP']})."]
    same_data = id_run.summary["dataset"] == triplet_run.summary["dataset"]
    same_eval = id_run.summary["evaluation"] == triplet_run.summary["evaluation"]
    notes.append(f"Same dataset: {'yes' if same_data else 'no'}; same evaluation protocol: {'yes' if same_eval else 'no'}"
                 f"; epochs: {id_run.summary['epochs']} vs {triplet_run.summary['epochs']}.")
    notes.append("The triplet loss trains the embedding that retrieval ranks by directly, while the ID loss trains it "
                 "only through a classifier over the training identities; the two losses' values are on different "
                 "scales and are not comparable, the validation loss (the same triplet loss for both) is.")
    return bullets(notes)
