"""Q9's measurements: a run's checkpoint re-embedded on its validation set, ranked lists, and a 2-D PCA.

Everything is recomputed from the run directory with :func:`reid.load` (``checkpoints/best.pt``, else
``last.pt``; fp32): its validation split is decoded, features come from the same extraction the run's
evaluation used, ranked lists from :func:`reid.evaluation.top_k` under the run's protocol.

Example::

    from reid.engine.ranked_grid import choose_queries

    val = embed_validation(load_run("runs/q8"))
    lists = ranked_lists(val, choose_queries(val.query.pids, 6), top=10, spec=load_run("runs/q8").spec.eval)
    points, explained = pca_2d(val.query.features)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from reid.api import load
from reid.engine.evaluation import Features, extract_validation, score
from reid.evaluation import Evaluator, RankedList
from reid.evaluation import ranked_lists as rank_by_spec
from reid.report.runs import Run
from reid.spec import EvalSpec


@dataclass
class Validation:
    """A checkpoint's embeddings of a run's validation set.

    Attributes:
        query, gallery: features, pids, camids (``gallery is query`` for a leave-one-out set).
        query_images, gallery_images: uint8 N×3×H×W.
        same_set: leave-one-out validation.
        protocol: ``market`` or ``all``.
        checkpoint: the checkpoint file used (relative to the run).
        checkpoint_epoch: the epoch it was saved at, or None.
        metrics: the evaluation record of these features (what the run logged for that epoch).
    """

    query: Features
    gallery: Features
    query_images: torch.Tensor
    gallery_images: torch.Tensor
    same_set: bool
    protocol: str
    checkpoint: str
    checkpoint_epoch: int | None
    metrics: dict


def embed_validation(run: Run) -> Validation:
    """Load ``run``'s best (else last) checkpoint in fp32 and embed its validation set."""
    model = load(run.path, precision="fp32")
    spec = run.spec
    data = model.eval_data()
    query, gallery = extract_validation(model.model, data, model.runtime, spec.eval, model.preprocess.normalization())
    result = score(query, gallery, spec.eval, data.same_set, margin=spec.loss.margin)
    return Validation(
        query=query, gallery=gallery, query_images=data.query.all_images(),
        gallery_images=data.query.all_images() if data.same_set else data.gallery.all_images(),
        same_set=data.same_set, protocol=result.protocol,
        checkpoint=str(model.checkpoint.relative_to(run.rundir.path)), checkpoint_epoch=model.epoch,
        metrics=result.to_record(),
    )


def ranked_lists(val: Validation, queries: list[int], top: int, spec: EvalSpec) -> list[RankedList]:
    """The ``top`` nearest gallery entries of each query, ranked as the run's evaluation ranks them
    (:func:`reid.evaluation.ranked_lists`: distance, junk rule, re-ranking; ``RankedList.query`` is the
    query's index in ``val.query``)."""
    q, g = val.query, val.gallery
    return rank_by_spec(spec, q.features, g.features, top, queries=queries, q_pids=q.pids, g_pids=g.pids,
                        q_camids=q.camids, g_camids=g.camids, protocol=val.protocol, same_set=val.same_set)


def pca_2d(features: torch.Tensor) -> tuple[torch.Tensor, tuple[float, float]]:
    """Project ``features`` (N×D) on their first two principal components (SVD of the centred matrix).

    Signs are fixed (largest loading positive) so the picture is the same every time.
    Returns the N×2 points and the share of variance each component explains.
    """
    x = features.double() - features.double().mean(0, keepdim=True)
    _, s, vh = torch.linalg.svd(x, full_matrices=False)
    comps = vh[:2]
    signs = torch.sign(comps.gather(1, comps.abs().argmax(1, keepdim=True)))
    comps = comps * signs
    var = s.square()
    total = float(var.sum()) or 1.0
    explained = (float(var[0]) / total, float(var[1]) / total if len(var) > 1 else 0.0)
    return (x @ comps.T).float(), explained


@dataclass(frozen=True)
class CameraScore:
    """Rank-1 of the queries taken by one camera.

    Attributes:
        camera: the query camera.
        queries: queries from it.
        valid: those with a true match left in the gallery (the others are skipped).
        rank1: share of valid queries whose nearest gallery entry is a true match (None without a valid one).
    """

    camera: int
    queries: int
    valid: int
    rank1: float | None


def rank1_by_camera(val: Validation, spec: EvalSpec) -> list[CameraScore]:
    """Rank-1 per query camera, from each query's first true match under the run's evaluation
    (:meth:`reid.evaluation.Evaluator.first_match_ranks`: a query without a true match is told apart from a miss)."""
    evaluator = Evaluator(spec, same_set=val.same_set)
    evaluator.process(val.query.features, val.query.pids, val.query.camids, split="query")
    if not val.same_set:
        evaluator.process(val.gallery.features, val.gallery.pids, val.gallery.camids, split="gallery")
    first = evaluator.first_match_ranks()
    out = []
    for cam in sorted(set(val.query.camids.tolist())):
        mine = first[val.query.camids == cam]
        valid = mine[mine >= 0]
        out.append(CameraScore(cam, len(mine), len(valid), float((valid == 0).double().mean()) if len(valid) else None))
    return out
