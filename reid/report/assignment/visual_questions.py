"""Q9: what a re-ID user looks at — ranked retrieval lists and the embedding space.

The seed's Q9 was a figure that did not survive, so this answer shows, for the Q8 (and Q11)
run's best checkpoint on its validation set: query + top-10 gallery grids with correct / wrong
matches framed green / red, and a 2-D PCA of the validation embeddings coloured by identity.
"""

from __future__ import annotations

import torch

from reid.engine.ranked_grid import choose_queries, retrieval_figure
from reid.report.figures import embedding_figure
from reid.report.markdown import metric_label
from reid.report.markdown import num, pct, table
from reid.report.retrieval import embed_validation, pca_2d, ranked_lists
from reid.report.assignment.roles import missing_run_line
from reid.report.assignment.section import ReportContext, Section
from reid.report.runs import Run, provenance

QUERIES = 6
TOP = 10


def run_visuals(ctx: ReportContext, run: Run, question: str) -> list[str]:
    """Re-embed ``run``'s validation set with its checkpoint; the grid, the PCA plot and a consistency check."""
    val = embed_validation(run)
    ev = run.spec.eval
    queries = choose_queries(val.query.pids, QUERIES)
    lists = ranked_lists(val, queries, TOP, ev)
    tag = f"q09_{question}"
    label = question.upper()
    hits = sum(r.correct[0] for r in lists if r.correct)
    feats, pids = val.query.features, val.query.pids
    if not val.same_set:
        feats, pids = torch.cat([feats, val.gallery.features]), torch.cat([pids, val.gallery.pids])
    points, explained = pca_2d(feats)
    logged = next((r for r in run.evaluated if r["epoch"] == val.checkpoint_epoch), None)
    keys = run.rank_keys + ["mAP", "mINP"]
    check_rows = [[metric_label(k), pct(val.metrics[k]), pct(logged[k]) if logged else "–"] for k in keys]
    check_rows.append(["validation loss", num(val.metrics["val_loss"]), num(logged["val_loss"]) if logged else "–"])
    return [
        f"## {label} run (`{run.path}`)",
        provenance(run),
        f"Weights: `{val.checkpoint}` (epoch {val.checkpoint_epoch}), re-embedded in fp32. "
        f"Queries: the first image of {len(queries)} identities spread evenly over the validation identities; "
        f"each row shows the top {TOP} of its gallery after the protocol's removals.",
        ctx.figure(retrieval_figure(lists, val.query, val.gallery, val.query_images, val.gallery_images,
                                    f"{label} ({run.name}): query and top-{TOP} gallery, "
                                    f"{'squared euclidean' if ev.distance == 'euclidean' else 'cosine'} distance"),
                   f"{tag}_retrieval", f"{label} ranked retrieval"),
        f"Rank-1 correct for {hits} of the {len(lists)} queries shown; true matches in the shown top-{TOP} lists: "
        f"{sum(sum(r.correct) for r in lists)} of {sum(len(r.correct) for r in lists)}.",
        ctx.figure(embedding_figure(points, pids, explained,
                                    f"{label} ({run.name}): validation embeddings, first two principal components"),
                   f"{tag}_embedding", f"{label} embedding PCA"),
        f"The two components explain {100 * explained[0]:.1f} % and {100 * explained[1]:.1f} % of the variance of "
        f"the {feats.shape[1]}-d embeddings of all {feats.shape[0]} validation images; identities that "
        "form tight, separate clusters are the ones retrieval gets right.",
        "Re-evaluating these features with the run's protocol gives (logged value of that epoch beside it):",
        table(["metric", "recomputed", "logged"], check_rows, align="lrr"),
    ]


def q9(ctx: ReportContext) -> Section:
    """Q9: ranked-retrieval grids and embedding plots for the Q8 and Q11 runs."""
    intro = ("**Question** (the seed's Q9 was a figure and is missing). What do the trained models retrieve? Shown as "
             "re-ID users inspect a model: ranked gallery lists for sample queries (green frame: same identity, red: "
             "another identity) and the layout of the validation embeddings.")
    body, runs = [intro], []
    for question in ("q8", "q11"):
        run = ctx.assigned[question]
        if run is None:
            body += [f"## {question.upper()} run", missing_run_line(question)]
        else:
            body += run_visuals(ctx, run, question)
            runs.append(str(run.path))
    return Section(9, "Ranked retrieval and embeddings", "ranked-retrieval grids and embedding plots of the trained models", "\n\n".join(body), runs)
