"""Re-ID evaluation of a model: extract features, compute distances, rank (CMC, mAP, mINP).

The protocol follows the data: a validation set with separate query and gallery sets uses
the ``market`` rule (same identity *and* same camera gallery entries are ignored); a single
leave-one-out set (the assignment's 49 identities) uses ``all`` with the query itself removed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from reid.data.loaders import eval_batches
from reid.engine.runtime import Runtime
from reid.losses import triplet_loss
from reid.metrics import compute_distance, evaluate
from reid.spec import AugmentSpec, EvalSpec


@dataclass
class Features:
    """Embeddings of an image set (float32, CPU) with their identities and cameras."""

    features: torch.Tensor
    pids: torch.Tensor
    camids: torch.Tensor


@torch.no_grad()
def extract_features(model: torch.nn.Module, imageset, runtime: Runtime, spec: EvalSpec,
                     augment: AugmentSpec, indices: torch.Tensor | None = None) -> Features:
    """Embed every image of ``imageset`` (or only ``indices``) in order with ``model.embed``.

    With ``spec.flip`` the embedding is the mean of the image's and its mirror's.
    """
    model.eval()
    chunks = []
    for images in eval_batches(imageset, spec.batch_size, augment, indices=indices):
        images = runtime.to_device(images)
        with runtime.autocast():
            feats = model.embed(images).float()
            if spec.flip:
                feats = (feats + model.embed(torch.flip(images, dims=[3])).float()) / 2
        chunks.append(feats.cpu())
    feats = torch.cat(chunks) if chunks else torch.empty(0, 0)
    sel = slice(None) if indices is None else indices
    return Features(feats, imageset.pids[sel].clone(), imageset.camids[sel].clone())


def protocol_for(spec: EvalSpec, same_set: bool) -> str:
    """The ranking protocol: the spec's choice, or ``all`` for a leave-one-out set and ``market`` otherwise."""
    if spec.protocol != "auto":
        return spec.protocol
    return "all" if same_set else "market"


def score(query: Features, gallery: Features, spec: EvalSpec, same_set: bool, margin: float) -> dict:
    """Distances + CMC/mAP/mINP for extracted features, plus a validation triplet loss.

    The validation loss is the batch-hard triplet loss over all validation embeddings
    (margin ``margin``): ID loss is undefined there, because validation identities are not
    among the classifier's classes.
    """
    distmat = compute_distance(query.features, gallery.features, metric=spec.distance, normalize=spec.normalize)
    result = evaluate(distmat, query.pids, gallery.pids, query.camids, gallery.camids,
                      max_rank=spec.max_rank, protocol=protocol_for(spec, same_set), same_set=same_set)
    cmc = [float(x) for x in result["cmc"]]
    metrics = {f"rank{r}": cmc[min(r, len(cmc)) - 1] for r in spec.ranks}
    pool = gallery if same_set else Features(torch.cat([query.features, gallery.features]),
                                             torch.cat([query.pids, gallery.pids]),
                                             torch.cat([query.camids, gallery.camids]))
    val_loss = float(triplet_loss(pool.features, pool.pids, margin=margin, mining="hard", distance="euclidean"))
    metrics.update(mAP=float(result["mAP"]), mINP=float(result["mINP"]), num_valid=int(result["num_valid"]),
                   num_skipped=int(result.get("num_skipped", 0)), cmc=cmc, val_loss=val_loss)
    return metrics


def evaluate_model(model: torch.nn.Module, data, runtime: Runtime, spec: EvalSpec, augment: AugmentSpec,
                   margin: float) -> dict:
    """Evaluate ``model`` on ``data.query`` / ``data.gallery`` and return a flat metrics dict.

    Keys: ``rank{r}`` for each of ``spec.ranks``, ``mAP``, ``mINP``, ``cmc`` (list), ``num_valid``,
    ``num_skipped``, ``val_loss``.
    """
    query = extract_features(model, data.query, runtime, spec, augment)
    gallery = query if data.same_set else extract_features(model, data.gallery, runtime, spec, augment)
    return score(query, gallery, spec, data.same_set, margin)
