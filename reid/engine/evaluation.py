"""Re-ID evaluation of a model: extract features (flip averaging included), then score them with the
one :class:`reid.evaluation.Evaluator` (protocol, distances, CMC, mAP, mINP).

The protocol follows the data unless ``eval.protocol`` says otherwise: a validation set with separate
query and gallery sets uses the ``market`` rule (same identity *and* same camera gallery entries are
ignored); a single leave-one-out set (the assignment's 49 identities) uses ``all`` with the query itself removed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from reid.data.imageset import ImageSet
from reid.data.loaders import eval_batches
from reid.engine.distributed import DistContext, gather_rows, shard_indices
from reid.engine.runtime import Runtime, evaluation_runtime
from reid.evaluation import EvalResult, Evaluator
from reid.losses import triplet_loss
from reid.spec import AugmentSpec, EvalSpec


@dataclass
class Features:
    """Embeddings of an image set (float32, CPU) with their identities and cameras."""

    features: torch.Tensor
    pids: torch.Tensor
    camids: torch.Tensor


@torch.no_grad()
def embed_batch(model: torch.nn.Module, images: torch.Tensor, runtime: Runtime, flip: bool) -> torch.Tensor:
    """Retrieval features (float32, on the device) of one normalised float batch; with ``flip`` the mean of
    the image's and its mirror's embedding. The one place flip averaging is done."""
    images = runtime.to_device(images)
    with runtime.autocast():
        feats = model.embed(images).float()
        if flip:
            feats = (feats + model.embed(torch.flip(images, dims=[3])).float()) / 2
    return feats


@torch.no_grad()
def extract_features(model: torch.nn.Module, imageset, runtime: Runtime, spec: EvalSpec,
                     augment: AugmentSpec, indices: torch.Tensor | None = None) -> Features:
    """Embed every image of ``imageset`` (or only ``indices``) in order with :func:`embed_batch`.

    Batches are made on the run's device (on a GPU the uint8 images go over and are normalised there) and the
    features come back to the CPU once, at the end, not batch by batch (each copy would wait for the GPU)."""
    model.eval()
    chunks = [embed_batch(model, images, runtime, spec.flip)
              for images in eval_batches(imageset, spec.batch_size, augment, indices=indices, device=runtime.device)]
    feats = torch.cat(chunks).cpu() if chunks else torch.empty(0, 0)
    sel = slice(None) if indices is None else indices
    return Features(feats, imageset.pids[sel].clone(), imageset.camids[sel].clone())


def validation_loss(query: Features, gallery: Features, same_set: bool, margin: float) -> float:
    """Batch-hard triplet loss over all validation embeddings (margin ``margin``).

    ID loss is undefined there, because validation identities are not among the classifier's classes.
    """
    pool = gallery if same_set else Features(torch.cat([query.features, gallery.features]),
                                             torch.cat([query.pids, gallery.pids]),
                                             torch.cat([query.camids, gallery.camids]))
    return float(triplet_loss(pool.features, pool.pids, margin=margin, mining="hard", distance="euclidean"))


def score(query: Features, gallery: Features, spec: EvalSpec, same_set: bool, margin: float | None = None) -> EvalResult:
    """Feed extracted features through an :class:`~reid.evaluation.Evaluator` and evaluate; with ``margin``
    the result carries the validation triplet loss too (:func:`validation_loss`: an N×N pass, so only on request)."""
    evaluator = Evaluator(spec, same_set=same_set)
    evaluator.process(query.features, query.pids, query.camids, split="query")
    if not same_set:
        evaluator.process(gallery.features, gallery.pids, gallery.camids, split="gallery")
    result = evaluator.evaluate()
    return result if margin is None else replace(result, val_loss=validation_loss(query, gallery, same_set, margin))


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


def extract_validation(model: torch.nn.Module, data, runtime: Runtime, spec: EvalSpec, augment: AugmentSpec,
                       ctx: DistContext = DistContext()) -> tuple[Features, Features]:
    """Features of ``data.query`` and ``data.gallery`` (the same object for a leave-one-out set), sharded over
    the ranks of ``ctx`` under torchrun."""
    query = extract_sharded(model, data.query, runtime, spec, augment, ctx)
    return query, query if data.same_set else extract_sharded(model, data.gallery, runtime, spec, augment, ctx)


@dataclass(frozen=True)
class Evaluation:
    """One evaluation with what it scored: the metrics, and the features and images behind them.

    Training's :class:`~reid.engine.hooks.EvalHook` holds it for the rest of its epoch (TensorBoard draws the
    last one's ranked lists and embedding projector); nothing stores it — metrics.jsonl, checkpoints and
    summaries keep :attr:`result` alone.

    Attributes:
        result: CMC, mAP, mINP … as :func:`evaluate_model` returns them.
        query, gallery: the features scored (``gallery is query`` for a leave-one-out set).
        query_images, gallery_images: the image sets they came from (the same object when ``same_set``).
        same_set: leave-one-out: query ``i`` is gallery ``i`` and is not its own match.
    """

    result: EvalResult
    query: Features
    gallery: Features
    query_images: ImageSet
    gallery_images: ImageSet
    same_set: bool


def evaluate_with_features(model: torch.nn.Module, data, runtime: Runtime, spec: EvalSpec, augment: AugmentSpec,
                           margin: float | None = None, ctx: DistContext = DistContext()) -> Evaluation:
    """:func:`evaluate_model`, keeping the features and image sets it scored (an :class:`Evaluation`)."""
    runtime = evaluation_runtime(runtime, spec.precision)
    query, gallery = extract_validation(model, data, runtime, spec, augment, ctx)
    return Evaluation(score(query, gallery, spec, data.same_set, margin), query, gallery, data.query, data.gallery,
                      data.same_set)


def evaluate_model(model: torch.nn.Module, data, runtime: Runtime, spec: EvalSpec, augment: AugmentSpec,
                   margin: float | None = None, ctx: DistContext = DistContext()) -> EvalResult:
    """Evaluate ``model`` on ``data.query`` / ``data.gallery`` (with the validation triplet loss when ``margin``
    is given). Under torchrun every rank extracts a shard and gets the same result.

    The features are embedded at ``spec.precision`` (:func:`~reid.engine.runtime.evaluation_runtime`: fp32
    by default, whatever ``runtime`` trains in; ``auto`` uses ``runtime`` as it is).
    """
    return evaluate_with_features(model, data, runtime, spec, augment, margin, ctx).result
