"""Re-ID evaluation of a model: extract features (flip averaging included), then score them with the
one :class:`reid.evaluation.Evaluator` (protocol, distances, CMC, mAP, mINP).

The protocol follows the data unless ``eval.protocol`` says otherwise: a validation set with separate
query and gallery sets uses the ``market`` rule (same identity *and* same camera gallery entries are
ignored); a single leave-one-out set (the assignment's 49 identities) uses ``all`` with the query itself removed.

Under torchrun each rank embeds a contiguous shard of the images into its own evaluator, which gathers them onto
rank 0, scores once there and broadcasts the result (:class:`~reid.engine.distributed.RankCollective`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from reid.data.imageset import ImageSet
from reid.data.loaders import eval_batches
from reid.engine.distributed import DistContext, RankCollective
from reid.engine.runtime import Runtime, evaluation_runtime
from reid.evaluation import EvalResult, Evaluator
from reid.spec import AugmentSpec, EvalSpec


@dataclass
class Features:
    """Embeddings of an image set (float32; CPU from :func:`extract_features`, the run's device from an
    :class:`Evaluation`) with their identities and cameras."""

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
def embed_images(model: torch.nn.Module, imageset, runtime: Runtime, spec: EvalSpec, augment: AugmentSpec,
                 indices: torch.Tensor | None = None) -> torch.Tensor:
    """The features (float32, on the run's device; 0×0 for no images) of every image of ``imageset`` (or only
    ``indices``), in order, with :func:`embed_batch`.

    Batches are made on the run's device (on a GPU the uint8 images go over and are normalised there)."""
    model.eval()
    chunks = [embed_batch(model, images, runtime, spec.flip)
              for images in eval_batches(imageset, spec.batch_size, augment, indices=indices, device=runtime.device)]
    return torch.cat(chunks) if chunks else torch.empty(0, 0, device=runtime.device)


def extract_features(model: torch.nn.Module, imageset, runtime: Runtime, spec: EvalSpec,
                     augment: AugmentSpec, indices: torch.Tensor | None = None) -> Features:
    """:func:`embed_images` as CPU :class:`Features`: they come back once, at the end, not batch by batch (each
    copy would wait for the GPU)."""
    sel = slice(None) if indices is None else indices
    return Features(embed_images(model, imageset, runtime, spec, augment, indices).cpu(), imageset.pids[sel].clone(),
                    imageset.camids[sel].clone())


def feed(evaluator: Evaluator, query: Features, gallery: Features) -> Evaluator:
    """``evaluator`` with ``query`` (and, unless it is leave-one-out, ``gallery``) processed into it."""
    evaluator.process(query.features, query.pids, query.camids, split="query")
    if not evaluator.same_set:
        evaluator.process(gallery.features, gallery.pids, gallery.camids, split="gallery")
    return evaluator


def score(query: Features, gallery: Features, spec: EvalSpec, same_set: bool, margin: float | None = None) -> EvalResult:
    """Feed extracted features through a one-process :class:`~reid.evaluation.Evaluator` and evaluate; with
    ``margin`` the result carries the validation triplet loss too (:func:`reid.evaluation.validation_loss`)."""
    return feed(Evaluator(spec, same_set=same_set, margin=margin), query, gallery).evaluate()


def extract_validation(model: torch.nn.Module, data, runtime: Runtime, spec: EvalSpec,
                       augment: AugmentSpec) -> tuple[Features, Features]:
    """Features of ``data.query`` and ``data.gallery`` (the same object for a leave-one-out set)."""
    query = extract_features(model, data.query, runtime, spec, augment)
    return query, query if data.same_set else extract_features(model, data.gallery, runtime, spec, augment)


def own_rows(n: int, ctx: DistContext) -> torch.Tensor:
    """This rank's contiguous block of ``range(n)``: blocks in rank order cover it once (sizes differ by one at
    most; a rank past ``n`` gets none).

    Example:
        >>> [own_rows(5, DistContext(rank=r, world_size=2)).tolist() for r in range(2)]
        [[0, 1, 2], [3, 4]]
    """
    return torch.arange(n).tensor_split(ctx.world_size)[ctx.rank]


@dataclass(frozen=True)
class Evaluation:
    """One evaluation with what it scored: the metrics, and the features and images behind them.

    Training's :class:`~reid.engine.hooks.EvalHook` holds it for the rest of its epoch (TensorBoard draws the
    last one's ranked lists and embedding projector); nothing stores it — metrics.jsonl, checkpoints and
    summaries keep :attr:`result` alone.

    Attributes:
        result: CMC, mAP, mINP … as :func:`evaluate_model` returns them (the same on every rank).
        query, gallery: the features scored, on the device they were embedded on (``gallery is query`` for a
            leave-one-out set); on the main rank only, ``None`` on the others (they are gathered there).
        query_images, gallery_images: the image sets they came from (the same object when ``same_set``).
        same_set: leave-one-out: query ``i`` is gallery ``i`` and is not its own match.
    """

    result: EvalResult
    query: Features | None
    gallery: Features | None
    query_images: ImageSet
    gallery_images: ImageSet
    same_set: bool


def evaluate_with_features(model: torch.nn.Module, data, runtime: Runtime, spec: EvalSpec, augment: AugmentSpec,
                           margin: float | None = None, ctx: DistContext = DistContext()) -> Evaluation:
    """:func:`evaluate_model`, keeping the features (on the main rank) and image sets it scored (an :class:`Evaluation`)."""
    runtime = evaluation_runtime(runtime, spec.precision)
    shards = [Features(embed_images(model, images, runtime, spec, augment, indices=rows), images.pids[rows],
                       images.camids[rows])
              for images in ([data.query] if data.same_set else [data.query, data.gallery])
              for rows in [own_rows(len(images), ctx)]]
    evaluator = feed(Evaluator(spec, same_set=data.same_set, margin=margin, collective=RankCollective(ctx)),
                     shards[0], shards[-1])
    result = evaluator.evaluate()
    query = gallery = None
    if ctx.is_main:
        query = Features(*evaluator.split_tensors("query"))
        gallery = query if data.same_set else Features(*evaluator.split_tensors("gallery"))
    return Evaluation(result, query, gallery, data.query, data.gallery, data.same_set)


def evaluate_model(model: torch.nn.Module, data, runtime: Runtime, spec: EvalSpec, augment: AugmentSpec,
                   margin: float | None = None, ctx: DistContext = DistContext()) -> EvalResult:
    """Evaluate ``model`` on ``data.query`` / ``data.gallery`` (with the validation triplet loss when ``margin``
    is given). Under torchrun every rank embeds a shard, rank 0 scores them all once and every rank gets its result.

    The features are embedded at ``spec.precision`` (:func:`~reid.engine.runtime.evaluation_runtime`: fp32
    by default, whatever ``runtime`` trains in; ``auto`` uses ``runtime`` as it is).
    """
    return evaluate_with_features(model, data, runtime, spec, augment, margin, ctx).result
