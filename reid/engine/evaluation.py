"""Re-ID evaluation of a model: extract features, compute distances, rank (CMC, mAP, mINP).

The protocol follows the data: a validation set with separate query and gallery sets uses
the ``market`` rule (same identity *and* same camera gallery entries are ignored); a single
leave-one-out set (the assignment's 49 identities) uses ``all`` with the query itself removed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from reid.data.describe import protocol_hint
from reid.data.loaders import eval_batches
from reid.engine.distributed import DistContext, gather_rows, shard_indices
from reid.engine.runtime import Runtime
from reid.losses import triplet_loss
from reid.metrics import evaluate_features
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


def protocol_for(spec: EvalSpec, data) -> str:
    """The ranking protocol: the spec's choice, or what fits the data (``all`` for a leave-one-out
    set or a single camera, ``market`` otherwise; see :func:`reid.data.describe.protocol_hint`)."""
    return spec.protocol if spec.protocol != "auto" else protocol_hint(data.splits)


def score(query: Features, gallery: Features, spec: EvalSpec, same_set: bool, margin: float, protocol: str) -> dict:
    """Distances + CMC/mAP/mINP for extracted features, plus a validation triplet loss.

    The validation loss is the batch-hard triplet loss over all validation embeddings
    (margin ``margin``): ID loss is undefined there, because validation identities are not
    among the classifier's classes.
    """
    max_rank = min(spec.max_rank, len(gallery.pids) - int(same_set))  # a small gallery caps the CMC curve
    result = evaluate_features(query.features, gallery.features, query.pids, gallery.pids, query.camids,
                               gallery.camids, metric=spec.distance, normalize=spec.normalize, max_rank=max_rank,
                               protocol=protocol, same_set=same_set)
    cmc = [float(x) for x in result["cmc"]]
    metrics = {f"rank{r}": cmc[min(r, len(cmc)) - 1] for r in spec.ranks}
    pool = gallery if same_set else Features(torch.cat([query.features, gallery.features]),
                                             torch.cat([query.pids, gallery.pids]),
                                             torch.cat([query.camids, gallery.camids]))
    val_loss = float(triplet_loss(pool.features, pool.pids, margin=margin, mining="hard", distance="euclidean"))
    metrics.update(mAP=float(result["mAP"]), mINP=float(result["mINP"]), num_valid=int(result["num_valid"]),
                   num_skipped=int(result.get("num_skipped", 0)), cmc=cmc, val_loss=val_loss)
    return metrics


def extract_sharded(model: torch.nn.Module, imageset, runtime: Runtime, spec: EvalSpec, augment: AugmentSpec,
                    ctx: DistContext) -> Features:
    """:func:`extract_features` split over the ranks of ``ctx`` (ordered, padded shards), gathered on every rank.

    The result equals a single-process extraction: shards are contiguous, in rank order, and the
    padding is trimmed.
    """
    if not ctx.enabled:
        return extract_features(model, imageset, runtime, spec, augment)
    n = len(imageset)
    local = extract_features(model, imageset, runtime, spec, augment, indices=shard_indices(n, ctx))
    return Features(gather_rows(local.features, n, ctx), imageset.pids.clone(), imageset.camids.clone())


def evaluate_model(model: torch.nn.Module, data, runtime: Runtime, spec: EvalSpec, augment: AugmentSpec,
                   margin: float, ctx: DistContext = DistContext()) -> dict:
    """Evaluate ``model`` on ``data.query`` / ``data.gallery`` and return a flat metrics dict.

    Keys: ``rank{r}`` for each of ``spec.ranks``, ``mAP``, ``mINP``, ``cmc`` (list), ``num_valid``,
    ``num_skipped``, ``val_loss``. Under torchrun every rank extracts a shard and gets the same result.
    """
    query = extract_sharded(model, data.query, runtime, spec, augment, ctx)
    gallery = query if data.same_set else extract_sharded(model, data.gallery, runtime, spec, augment, ctx)
    return score(query, gallery, spec, data.same_set, margin, protocol_for(spec, data))
