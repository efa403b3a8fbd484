"""One run's page: its spec against the defaults, dataset, final and best metrics, curves, a ranked-retrieval
grid, an embedding plot, Rank-1 per query camera, and wall time / throughput / device.

Example::

    figures = Figures(Path("report"))
    text = run_page(load_run("runs/quickstart"), figures, slug="quickstart")
"""

from __future__ import annotations

import json

import torch

from reid.engine.experiment import changed_keys
from reid.engine.ranked_grid import choose_queries, retrieval_figure
from reid.report.figures import embedding_figure
from reid.report.markdown import count, pct, table
from reid.report.pages import Figures
from reid.report.retrieval import embed_validation, pca_2d, rank1_by_camera, ranked_lists
from reid.report.run_parts import cost_table, curves, epoch_table, final_table, loss_name, observations
from reid.report.runs import Run, provenance
from reid.spec import Spec

QUERIES = 6
TOP = 10


def _lookup(tree: dict, dotted: str):
    for part in dotted.split("."):
        tree = tree[part]
    return tree


def spec_diff(spec: Spec) -> list[tuple[str, str, str]]:
    """``(key, default, this run)`` for every spec key that differs from ``Spec()``'s default (JSON values).

    Example:
        >>> spec_diff(Spec(seed=3))
        [('seed', '0', '3')]
    """
    default, mine = Spec().model_dump(mode="json"), spec.model_dump(mode="json")
    return [(key, json.dumps(_lookup(default, key)), json.dumps(_lookup(mine, key)))
            for key in changed_keys(default, mine) if key != "name"]


def retrieval_section(run: Run, figures: Figures, slug: str) -> list[str]:
    """The ranked-retrieval grid, the embedding plot and Rank-1 per query camera, from the run's checkpoint."""
    if not (run.rundir.best_checkpoint.is_file() or run.rundir.last_checkpoint.is_file()):
        return ["_No checkpoint in this run, so no retrieval grid or embedding plot._"]
    val = embed_validation(run)
    ev = run.spec.eval
    lists = ranked_lists(val, choose_queries(val.query.pids, QUERIES), TOP, ev)
    feats, pids = val.query.features, val.query.pids
    if not val.same_set:
        feats, pids = torch.cat([feats, val.gallery.features]), torch.cat([pids, val.gallery.pids])
    points, explained = pca_2d(feats)
    out = [
        f"Weights: `{val.checkpoint}` (epoch {val.checkpoint_epoch}), re-embedded in fp32; each row is a query and "
        f"the top {TOP} of its gallery after the protocol's removals (green: same identity, red: another).",
        figures.add(retrieval_figure(lists, val.query, val.gallery, val.query_images, val.gallery_images,
                                     f"{run.name}: query and top-{TOP} gallery"),
                    f"{slug}_retrieval", f"{run.name} ranked retrieval"),
        figures.add(embedding_figure(points, pids, explained, f"{run.name}: validation embeddings, first two "
                                     "principal components"), f"{slug}_embedding", f"{run.name} embedding PCA"),
        f"The two components explain {100 * explained[0]:.1f} % and {100 * explained[1]:.1f} % of the variance of "
        f"the {feats.shape[1]}-d embeddings of all {feats.shape[0]} validation images. Rank-1 of these weights: "
        f"{pct(val.metrics['rank1'])}.",
    ]
    cameras = rank1_by_camera(val, ev)
    if len(cameras) > 1:
        out += ["### Rank-1 per query camera",
                table(["query camera", "queries", "with a true match", "Rank-1"],
                      [[c.camera, count(c.queries), count(c.valid), pct(c.rank1)] for c in cameras], align="rrrr")]
    return out


def run_page(run: Run, figures: Figures, slug: str) -> str:
    """The Markdown page of ``run``; its figures are ``figures/<slug>_*.png``."""
    diff = spec_diff(run.spec)
    parts = [
        f"# Run `{run.name}`",
        provenance(run),
        f"**Training loss:** {loss_name(run.spec) or 'none'}.",
        "## Spec (what differs from the defaults)",
        table(["key", "default", "this run"], [[f"`{k}`", f"`{d}`", f"`{v}`"] for k, d, v in diff], align="lll")
        if diff else "Every key has its default value.",
        "## Cost",
        cost_table(run),
    ]
    if run.summary.final is None or not run.evaluated:
        parts += ["_This run logged no evaluation, so it has no metrics, curves or retrieval grid._"]
    else:
        parts += ["## Final and best metrics", final_table(run),
                  "## Curves", *curves(figures, run, slug, run.name, run.name), observations(run),
                  "## Ranked retrieval and embeddings", *retrieval_section(run, figures, slug)]
    parts += ["## Per epoch", epoch_table(run)]
    return "\n\n".join(parts) + "\n"
