"""Q6 and Q10: questions about the dataset — classifier size and the number of triplets.

The dataset is the one the Q8 run used (else the Q11 run's, else the default spec's): its
counts come from the run's summary (``build_data(...).describe()`` at training time)
and the per-identity image counts from parsing the dataset again (``prepare_splits``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from reid.data import prepare_splits
from reid.data.describe import DatasetInfo, describe_splits, triplet_count
from reid.engine.checkpoint import load_checkpoint
from reid.report.markdown import count, table
from reid.report.assignment.section import ReportContext, Section
from reid.report.runs import Run, dataset_text, provenance
from reid.spec import DataSpec


#: the assignment's dataset (as ``specs/q8.toml``): 230 training identities of 10 images each
ASSIGNMENT_DATA = DataSpec(train_ids=230, images_per_identity=10)


@dataclass
class DatasetFacts:
    """A dataset as the data questions see it.

    Attributes:
        run: the run it came from (None: the default spec's dataset).
        spec: its ``[data]`` table.
        info: its :class:`DatasetInfo`.
        train_counts: images of each training identity (sorted by identity).
    """

    run: Run | None
    spec: DataSpec
    info: DatasetInfo
    train_counts: list[int]


def dataset_facts(ctx: ReportContext) -> DatasetFacts:
    """The dataset of the Q8 run, else of the Q11 run, else of the default spec."""
    run = ctx.assigned["q8"] or ctx.assigned["q11"]
    spec = run.spec.data if run is not None else ASSIGNMENT_DATA
    splits = prepare_splits(spec)
    per_id = Counter(s.pid for s in splits.train)
    info = run.summary.dataset if run is not None else describe_splits(splits)
    return DatasetFacts(run, spec, info, [per_id[pid] for pid in sorted(per_id)])


def source_block(facts: DatasetFacts) -> str:
    """Run / dataset / evaluation lines for a data answer."""
    if facts.run is not None:
        return provenance(facts.run)
    return "\n".join([
        "- **Run:** none given — the assignment's dataset (230 training identities × 10 images); "
        "produce the assignment's run with `reid run specs/q8.toml`",
        f"- **Dataset:** {dataset_text(facts.info, facts.spec)}",
        "- **Evaluation:** not involved (counts only)",
    ])


def classifier_outputs(run: Run) -> int | None:
    """Rows of the trained classifier in the run's checkpoint (None without a classifier)."""
    path = run.rundir.best_checkpoint if run.rundir.best_checkpoint.is_file() else run.rundir.last_checkpoint
    if not path.is_file():
        return None
    weight = load_checkpoint(path)["model"].get("head.classifier.weight")
    return None if weight is None else int(weight.shape[0])


def q6(ctx: ReportContext) -> Section:
    """Q6: the classifier's output size in training and in validation."""
    facts = dataset_facts(ctx)
    train_ids, val_ids = facts.info.num_classes, facts.info.validation_identities
    q8 = ctx.assigned["q8"]
    measured = classifier_outputs(q8) if q8 is not None else None
    lines = [
        source_block(facts),
        "**Question.** What is the output size of the last FC layer during training and during validation?",
        f"**Answer.** The FC layer has one output per identity it classifies: **{train_ids}** during training (the "
        f"training identities) and **{val_ids}** for validation (the held-out identities).",
        table(["stage", "identities", "images", "FC outputs"], [
            ["training", count(train_ids), count(facts.info.train.images), count(train_ids)],
            ["validation", count(val_ids), count(facts.info.validation_images), count(val_ids)],
        ], align="lrrr"),
    ]
    if measured is not None:
        lines.append(f"Measured: the trained classifier in `{q8.path}` has a weight matrix with **{measured}** rows "
                     f"(`head.classifier.weight`), one per training identity.")
    lines.append(
        "The validation identities are different people from the training ones, so the trained classifier cannot "
        f"name them: a classifier for validation would need {val_ids} new outputs. That is why re-ID is evaluated by "
        "ranking: the classifier is dropped and gallery images are ranked by the distance between embeddings, "
        "which works for identities never seen in training.")
    runs = [str(facts.run.path)] if facts.run is not None else []
    return Section(6, "Classifier output size", "the FC layer's output size in training and validation, from the dataset", "\n\n".join(lines), runs)


def q10(ctx: ReportContext) -> Section:
    """Q10: how many (anchor, positive, negative) triplets the training set holds."""
    facts = dataset_facts(ctx)
    counts = facts.train_counts
    total_images, ids = sum(counts), len(counts)
    triplets = triplet_count(counts)
    lines = [
        source_block(facts),
        "**Question.** How many possible triplets (anchor, positive, negative) are there in the training set?",
        f"**Answer.** **{count(triplets)}** triplets, counted from the real number of images of each of the "
        f"{count(ids)} training identities ({count(total_images)} images).",
        "An anchor and a positive are two different images of the same identity i (ordered: n_i·(n_i − 1) pairs), "
        "the negative is any image of another identity (N − n_i images), so",
        "`triplets = Σ_i n_i · (n_i − 1) · (N − n_i)`",
    ]
    histogram = sorted(Counter(counts).items())
    if len(histogram) == 1:
        n = histogram[0][0]
        lines.append(f"Every identity has n = {n} images, so this is {ids} × ({n}·{n - 1}) × ({ids - 1}·{n}) = "
                     f"{count(ids * n * (n - 1) * (ids - 1) * n)}.")
    else:
        lines.append(table(["images per identity", "identities", "triplets with such an anchor"],
                           [[n, k, count(k * n * (n - 1) * (total_images - n))] for n, k in histogram], align="rrr"))
    logged = facts.info.triplets
    lines.append(f"Check: the dataset description recorded {'in the run' if facts.run else 'for it'} "
                 f"(`describe()[\"triplets\"]`) says {count(logged)} {'✓' if logged == triplets else '✗'}.")
    a, n = ASSIGNMENT_DATA.train_ids, ASSIGNMENT_DATA.images_per_identity
    if (ids, set(counts)) != (a, {n}):
        lines.append(f"For the assignment's split ({a} identities × {n} images): {a} × ({n}·{n - 1}) × ({a - 1}·{n}) = "
                     f"{count(triplet_count([n] * a))}.")
    lines.append("Only a tiny share of them can be seen in training, which is why triplet training draws them inside "
                 "each P×K batch: every valid triplet of the batch (batch-all, `loss.mining = \"all\"`, what "
                 "`specs/q11.toml` uses) or only the farthest positive and nearest negative per anchor (batch-hard).")
    runs = [str(facts.run.path)] if facts.run is not None else []
    return Section(10, "Number of triplets", "the number of possible training triplets, from per-identity counts", "\n\n".join(lines), runs)
