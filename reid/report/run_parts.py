"""The parts of a run's page, shared by per-run pages and the assignment's Q8 / Q11: the loss in words,
final / best metrics, cost, per-epoch table, curve figures and what the curves show.

Example::

    run = load_run("runs/quickstart")
    print(final_table(run)); print(cost_table(run))
"""

from __future__ import annotations

from typing import Callable

from reid.engine.summary import EvaluatedEpoch
from reid.report.figures import accuracy_figure, loss_figure
from reid.report.markdown import metric_label
from reid.report.markdown import bullets, count, num, pct, seconds, table
from reid.report.pages import Figures
from reid.report.runs import Run
from reid.spec import Spec

#: a score of an evaluated epoch: its label and how to read it
Score = tuple[str, Callable[[EvaluatedEpoch], "float | None"]]


def scores(ranks: list[int] | tuple[int, ...]) -> list[Score]:
    """Rank-k for each of ``ranks``, then mAP and mINP (Rank-k is None past the end of an epoch's CMC: not
    evaluated that far).

    Example:
        >>> from reid.evaluation import EvalResult
        >>> epoch = EvaluatedEpoch(1, EvalResult(cmc=(0.5, 0.75), mAP=0.6, mINP=0.4, num_valid=4, num_skipped=0,
        ...                                      protocol="all", distance="euclidean", normalize=False, ranks=(1,)))
        >>> [(label, get(epoch)) for label, get in scores([1, 2, 5])]
        [('Rank-1', 0.5), ('Rank-2', 0.75), ('Rank-5', None), ('mAP', 0.6), ('mINP', 0.4)]
    """
    return ([(f"Rank-{k}", lambda m, k=k: m.result.rank(k) if k <= len(m.result.cmc) else None) for k in ranks]
            + [("mAP", lambda m: m.result.mAP), ("mINP", lambda m: m.result.mINP)])


def loss_name(spec: Spec) -> str:
    """The training loss in words, e.g. ``cross-entropy ID loss`` or ``batch-hard triplet loss (margin 0.3)``."""
    parts = []
    if spec.loss.id_weight > 0:
        smooth = f", label smoothing {spec.loss.label_smoothing:g}" if spec.loss.label_smoothing else ""
        weight = f"{spec.loss.id_weight:g} × " if spec.loss.id_weight != 1 else ""
        parts.append(f"{weight}cross-entropy ID loss{smooth}")
    if spec.loss.triplet_weight > 0:
        weight = f"{spec.loss.triplet_weight:g} × " if spec.loss.triplet_weight != 1 else ""
        mining = {"hard": "batch-hard", "all": "batch-all", "soft": "soft-margin batch-hard"}.get(
            spec.loss.mining, f"{spec.loss.mining}-mining")  # a user-registered rule is named as registered
        margin = "" if spec.loss.mining == "soft" else f", margin {spec.loss.margin:g}"
        parts.append(f"{weight}{mining} triplet loss ({spec.loss.triplet_distance}{margin})")
    parts += [f"{w:g} × {name} loss" for name, w in spec.loss.terms.items() if w > 0]
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
    """Final values of every logged metric (the headline) and those of the epoch the run's model-selection rule
    picked, followed by a line naming that rule (the run must have an evaluated epoch)."""
    final, best = run.summary.final, run.summary.best
    epochs = [final] if best is None else [final, best]
    rows = [[label, *(pct(get(m)) for m in epochs)] for label, get in scores(run.spec.eval.ranks)]
    rows.append(["validation loss", *(num(m.result.val_loss) for m in epochs)])
    header = ["metric", f"final (epoch {final.epoch})"] + ([] if best is None else [f"selected (epoch {best.epoch})"])
    return (table(header, rows, align="l" + "r" * len(epochs))
            + f"\n\nModel selection (what picked the checkpoint): {run.summary.selection}.")


def cost_table(run: Run) -> str:
    """Wall time, throughput, device and size, from the run's summary."""
    s = run.summary
    dev = s.device
    threads = dev.threads if dev.threads is not None else "–"
    return table(["", "value"], [
        ["epochs", count(s.epochs)],
        ["iterations", count(run.epochs[-1]["step"]) if run.epochs else "0"],
        ["wall time (training + evaluation, all sessions)", seconds(s.wall_seconds)],
        ["mean training throughput", f"{s.mean_images_per_second:.1f} images/s"],
        ["device", f"{dev.device_name} (`{dev.device}`), {dev.precision}"
                   f"{', channels_last' if dev.channels_last else ''}, {threads} threads"],
        ["parameters", count(s.parameters)],
    ], align="lr")


def epoch_table(run: Run) -> str:
    """One row per epoch: losses, metrics, learning rate, throughput (from ``metrics.jsonl``)."""
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
    first, last, best = ev[0], ev[-1], run.summary.best
    ranks = run.rank_keys
    ordered = all(r[a] <= r[b] for r in ev for a, b in zip(ranks, ranks[1:]))
    items = [
        f"Rank-1 went from {pct(first['rank1'])} (epoch {first['epoch']}) to {pct(last['rank1'])} (epoch "
        f"{last['epoch']})"
        + (f"; the selected epoch {best.epoch} has {pct(best.result.rank(1))}" if best is not None else "")
        + f". mAP: {pct(first['mAP'])} → {pct(last['mAP'])}.",
        f"Training loss (epoch mean): {num(ep[0]['train_loss'])} → {num(ep[-1]['train_loss'])}; validation loss: "
        f"{num(first['val_loss'])} → {num(last['val_loss'])}.",
        f"{' ≤ '.join(metric_label(k) for k in ranks)} at every epoch: "
        f"{'yes' if ordered else 'no'} — Rank-k counts a query as correct when a true match is anywhere in the top "
        "k, so it can only grow with k.",
    ]
    return bullets(items)


def curves(figures: Figures, run: Run, tag: str, label: str, title: str) -> list[str]:
    """The accuracy and loss figures of ``run`` (files ``<tag>_accuracy.png`` / ``<tag>_losses.png``), as links.

    ``title`` starts each figure's title, ``label`` each image's alt text.
    """
    return [
        figures.add(accuracy_figure(run.evaluated, run.rank_keys, f"{title}: validation accuracy per epoch"),
                    f"{tag}_accuracy", f"{label} accuracy per epoch"),
        figures.add(loss_figure(run.iters, run.epochs, f"{title}: losses", loss_name(run.spec),
                                "batch-hard triplet loss on validation embeddings", loss_unit(run.spec)),
                    f"{tag}_losses", f"{label} losses"),
    ]
