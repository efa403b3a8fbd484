"""TensorBoard event files for every run, under ``RUN/tb/`` (``tensorboard --logdir runs`` during and after training).

Scalars (x-axis: the global step, as ``metrics.jsonl``'s ``step``): ``train/loss`` and its parts and
``train/lr`` at the trainer's read-back steps (every ``runtime.log_every``), and per epoch
``epoch/train_loss``, ``epoch/lr``, ``epoch/images_per_second``, ``eval/rank{k}``, ``eval/mAP``,
``eval/mINP``, ``eval/val_loss``. The resolved spec is a text entry (``spec``). Events are flushed at
every epoch's end. A resumed run purges the events its previous session wrote after the step it
resumes from, so the curves hold each step once.

Once training ends, the last evaluation (the last epoch always evaluates) is drawn at its global step, once
per run — not at every evaluation, so tb/ holds one projector and the drawing is paid once (its cost beside
an evaluation's: BENCHMARKS.md, TensorBoard section): the image ``eval/ranked_lists``
(:func:`ranked_list_image`: :data:`QUERIES` queries, each with its top :data:`TOP` gallery images framed
green / red) and the embedding projector ``embeddings`` (:func:`write_projector`: at most
:data:`PROJECTOR_POINTS` query and gallery features with their pid, camid and split, and thumbnails).
A run stopped before its last epoch has neither until it is resumed to the end.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from reid.data.imageset import ImageSet
from reid.engine.evaluation import Evaluation
from reid.engine.hooks import EvalHook
from reid.engine.rundir import RunDir
from reid.engine.tracking import epoch_scalars, step_scalars
from reid.engine.trainer import ClosingHook, Trainer
from reid.errors import ReidError
from reid.evaluation import ranked_lists
from reid.spec import EvalSpec, Spec

TB_DIR = "tb"
QUERIES, TOP = 8, 10  # the ranked-list grid: queries (identities spread evenly), gallery images per query
PROJECTOR_POINTS, THUMBNAIL = 1000, 32  # the projector: most points, thumbnail side in pixels
SPLIT_HEADER = ["pid", "camid", "split"]  # the projector's metadata columns


class TensorBoardHook(ClosingHook):
    """Writes the run's scalars and spec to ``RUN/tb/`` with :class:`torch.utils.tensorboard.SummaryWriter`.

    The last evaluation comes from the trainer's :class:`~reid.engine.hooks.EvalHook` (found in
    ``trainer.hooks``; without one, nothing is drawn).

    Args:
        run: the run directory.
        spec: the resolved spec (written as text).
    """

    def __init__(self, run: RunDir, spec: Spec):
        self.run, self.spec = run, spec
        self.writer = None
        self.evaluations: EvalHook | None = None

    def before_train(self, trainer: Trainer) -> None:
        """Open the writer (purging a previous session's events after the resumed step) and write the spec."""
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ReidError("TensorBoard is not installed", where="runtime.tensorboard",
                            fix="pip install tensorboard, or set runtime.tensorboard = false") from None
        step = trainer.state.global_step
        self.writer = SummaryWriter(log_dir=str(self.run.path / TB_DIR), purge_step=step if step > 0 else None,
                                    flush_secs=60)
        self.writer.add_text("spec", "```toml\n" + self.spec.to_toml() + "```", global_step=step)
        self.evaluations = next((h for h in trainer.hooks if isinstance(h, EvalHook)), None)

    def after_step(self, trainer: Trainer) -> None:
        """Add the step's loss and lr at read-back steps (the loss is on the host already: no extra sync)."""
        if trainer.synced and self.writer is not None:
            for tag, value in step_scalars(trainer.step_output, trainer.schedule.lr).items():
                self.writer.add_scalar(tag, value, trainer.state.global_step)

    def after_epoch(self, trainer: Trainer) -> None:
        """Add the epoch's record (training and evaluation numbers), then flush to disk."""
        if self.writer is None:
            return
        for tag, value in epoch_scalars(trainer.epoch_record).items():
            self.writer.add_scalar(tag, value, trainer.state.global_step)
        self.writer.flush()

    def after_train(self, trainer: Trainer) -> None:
        """Draw the last evaluation (ranked-list grid, projector) at the final global step, then close."""
        evaluation = self.evaluations.evaluation if self.evaluations is not None else None
        if self.writer is not None and evaluation is not None:
            step = trainer.state.global_step
            title = f"{self.spec.name}, step {step}: query and top-{TOP} gallery"
            self.writer.add_image("eval/ranked_lists", ranked_list_image(evaluation, self.spec.eval, title), step,
                                  dataformats="HWC")
            write_projector(self.writer, evaluation, self.spec.eval, step)
        super().after_train(trainer)

    def close(self) -> None:
        """Flush and close the writer (safe to call twice)."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def pixels(images: ImageSet, indices: list[int]) -> torch.Tensor:
    """The uint8 N×3×H×W images ``indices`` of ``images``, in that order."""
    if not indices:
        return torch.empty((0, 3, images.height, images.width), dtype=torch.uint8)
    return next(images.batches([indices]))[0]


def ranked_list_image(evaluation: Evaluation, spec: EvalSpec, title: str) -> np.ndarray:
    """The ranked-list grid of ``evaluation`` (uint8 H×W×3): the first image of :data:`QUERIES` query identities
    spread evenly (:func:`~reid.engine.ranked_grid.choose_queries`), each followed by its top :data:`TOP`
    gallery images ranked as the evaluation ranks them under ``spec`` (protocol, distance, re-ranking)."""
    from reid.engine.ranked_grid import choose_queries, figure_pixels, retrieval_figure  # matplotlib: on use

    q, g = evaluation.query, evaluation.gallery
    queries = choose_queries(q.pids, QUERIES)
    lists = ranked_lists(spec, q.features, g.features, TOP, queries=queries, q_pids=q.pids, g_pids=g.pids,
                         q_camids=q.camids, g_camids=g.camids, protocol=evaluation.result.protocol,
                         same_set=evaluation.same_set)
    shown = sorted({i for r in lists for i in r.gallery})
    query_images = dict(zip(queries, pixels(evaluation.query_images, queries)))
    gallery_images = dict(zip(shown, pixels(evaluation.gallery_images, shown)))
    return figure_pixels(retrieval_figure(lists, q, g, query_images, gallery_images, title, columns=TOP + 1))


def projector_points(pids: torch.Tensor, cap: int, seed: int = 0) -> torch.Tensor:
    """Indices (ascending) of whole identities taken in a seeded random order while they fit under ``cap``
    points — identities larger than what is left are passed over — so the projector shows clusters, not one
    image of every identity.

    Example:
        >>> projector_points(torch.tensor([4, 4, 4, 7, 7, 9]), cap=5).tolist()
        [0, 1, 2, 5]
    """
    ids, counts = pids.unique(return_counts=True)
    taken, kept = [], 0
    for i in torch.randperm(len(ids), generator=torch.Generator().manual_seed(seed)).tolist():
        if kept + counts[i] <= cap:
            taken.append(int(ids[i]))
            kept += int(counts[i])
    return torch.isin(pids, torch.tensor(taken, dtype=pids.dtype)).nonzero().flatten()


def thumbnails(images: torch.Tensor, side: int) -> torch.Tensor:
    """uint8 N×3×H×W → float N×3×side×side in [0, 1]: each image scaled to fit, centred on black (the
    projector's sprite sheet wants square tiles)."""
    h, w = images.shape[2:]
    th, tw = max(1, round(h * side / max(h, w))), max(1, round(w * side / max(h, w)))
    out = torch.zeros((len(images), 3, side, side))
    if len(images):
        top, left = (side - th) // 2, (side - tw) // 2
        out[:, :, top:top + th, left:left + tw] = F.interpolate(images.float() / 255, size=(th, tw), mode="bilinear",
                                                                 antialias=True, align_corners=False).clamp(0, 1)
    return out


def write_projector(writer, evaluation: Evaluation, spec: EvalSpec, step: int) -> None:
    """Add ``evaluation``'s embeddings to ``writer``'s projector (tag ``embeddings``) at ``step``: at most
    :data:`PROJECTOR_POINTS` of the query and gallery images (:func:`projector_points`), query ones first,
    with metadata :data:`SPLIT_HEADER` (split ``query``, ``gallery`` or ``leave-one-out``) and
    :data:`THUMBNAIL`-pixel thumbnails; L2-normalised where the evaluation normalises (so the projector's
    euclidean neighbours are the evaluation's)."""
    if evaluation.same_set:
        sets = [("leave-one-out", evaluation.query, evaluation.query_images)]
    else:
        sets = [("query", evaluation.query, evaluation.query_images),
                ("gallery", evaluation.gallery, evaluation.gallery_images)]
    chosen = projector_points(torch.cat([f.pids for _, f, _ in sets]), PROJECTOR_POINTS)
    features, metadata, images, start = [], [], [], 0
    for split, feats, imageset in sets:
        index = chosen[(chosen >= start) & (chosen < start + len(feats.pids))] - start
        start += len(feats.pids)
        features.append(feats.features[index])
        metadata += [[pid, camid, split]
                     for pid, camid in zip(feats.pids[index].tolist(), feats.camids[index].tolist())]
        images.append(thumbnails(pixels(imageset, index.tolist()), THUMBNAIL))
    mat = torch.cat(features)
    if spec.normalize or spec.distance == "cosine":
        mat = F.normalize(mat, dim=1)
    # a resumed run draws the same step again: replace the earlier drawing (torch prints a warning otherwise)
    shutil.rmtree(Path(writer.get_logdir()) / f"{step:05d}" / "embeddings", ignore_errors=True)
    writer.add_embedding(mat, metadata=metadata, label_img=torch.cat(images), global_step=step, tag="embeddings",
                         metadata_header=SPLIT_HEADER)
