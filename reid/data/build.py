"""From a :class:`~reid.spec.DataSpec` to train / query / gallery :class:`ImageSet` s.

:func:`prepare_splits` parses the dataset (no decoding) and applies the spec's rules:
``limit_ids`` (first N training identities) and ``query_rule`` (see :func:`merges_query_gallery`);
:func:`build_data` relabels training pids to 0..C-1.
:func:`build_data` then decodes (or prepares streaming of) every split.

Example:
    >>> from reid.spec import DataSpec
    >>> import tempfile
    >>> data = build_data(DataSpec(identities=6, images_per_identity=3, train_fraction=0.67, height=32, width=32),
    ...                   cache_dir=tempfile.mkdtemp())
    >>> data.num_classes, len(data.train), data.train.images.shape[1:]
    (4, 12, torch.Size([3, 32, 32]))
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

from reid.data.cache_dir import default_cache_dir
from reid.data.describe import DatasetInfo, describe_splits
from reid.data.formats import DATASETS, Sample, Splits
from reid.data.imageset import ImageSet, Progress, no_progress
from reid.errors import ReidError
from reid.spec import DataSpec

log = logging.getLogger(__name__)


def merges_query_gallery(query_rule: str, own_split: bool) -> bool:
    """Whether validation becomes one leave-one-out set (query = gallery).

    A dataset with its own query / gallery (``own_split``: Market-1501, DukeMTMC-reID,
    CUHK03-NP, MSMT17, most formats of your own) keeps it unless the spec asks for
    ``"leave_one_out_merged"`` by name: a spec written for the synthetic set (``leave_one_out``)
    cannot silently change a real benchmark's protocol. For datasets whose query / gallery
    the format made (``folder``, ``synthetic``), ``leave_one_out`` and ``leave_one_out_merged``
    both merge; ``auto`` and ``per_camera`` keep one query per identity and camera.

    Example:
        >>> merges_query_gallery("leave_one_out", own_split=True), merges_query_gallery("leave_one_out", own_split=False)
        (False, True)
        >>> merges_query_gallery("leave_one_out_merged", own_split=True), merges_query_gallery("auto", own_split=False)
        (True, False)
    """
    if own_split:
        return query_rule == "leave_one_out_merged"
    return query_rule in ("leave_one_out", "leave_one_out_merged")


def prepare_splits(spec: DataSpec, cache_dir: str | Path | None = None) -> Splits:
    """Parse the dataset ``spec`` names and apply ``limit_ids`` and ``query_rule`` (pids not yet relabelled).

    The query / gallery rule is :func:`merges_query_gallery`. When a dataset's own split is
    merged (distractors, pid 0, then become queries without a match, which evaluation skips and
    counts), or a ``leave_one_out`` spec meets a dataset that keeps its own split, a warning
    (logger ``reid.data.build``) names the protocol that applies.
    """
    splits = DATASETS.get(spec.dataset)(spec, Path(cache_dir) if cache_dir is not None else default_cache_dir())
    if spec.limit_ids is not None:
        keep = set(sorted({s.pid for s in splits.train})[: spec.limit_ids])
        splits = replace(splits, train=[s for s in splits.train if s.pid in keep])
    if splits.own_split and spec.query_rule == "leave_one_out":
        log.warning("reid: data.query_rule = \"leave_one_out\" applies to datasets without their own split; %s keeps "
                    "its own query / gallery (protocol market: same-camera matches of the same identity ignored). "
                    "To merge them into one leave-one-out set, set data.query_rule = \"leave_one_out_merged\"",
                    splits.name)
    if merges_query_gallery(spec.query_rule, splits.own_split):
        if splits.own_split:
            log.warning("reid: WARNING: data.query_rule = \"leave_one_out_merged\" merges %s's own query / gallery "
                        "split into one leave-one-out set: the protocol changes from market to all (same-camera "
                        "matches count), so scores are not comparable with the dataset's published protocol",
                        splits.name)
        merged = sorted(splits.query + splits.gallery, key=lambda s: (s.pid, s.path))
        splits = replace(splits, query=merged, gallery=merged, same_set=True)
    if not splits.train:
        raise ReidError("no training images", where=f"data.root={splits.root}", fix="check the dataset folder")
    if not splits.query or not splits.gallery:
        raise ReidError("no validation (query / gallery) images", where=f"data.root={splits.root}", fix="check the dataset folder and split settings")
    return splits


def relabel(samples: list[Sample]) -> tuple[list[int], dict[int, int]]:
    """Training labels 0..C-1 in sorted-pid order, and the pid → label map."""
    mapping = {pid: i for i, pid in enumerate(sorted({s.pid for s in samples}))}
    return [mapping[s.pid] for s in samples], mapping


@dataclass
class ReidData:
    """The data of one experiment.

    Attributes:
        name: dataset name.
        train, query, gallery: :class:`ImageSet` s (train pids relabelled 0..C-1).
        same_set: query and gallery are the same set (leave-one-out): each query must be
            excluded from its own gallery.
        num_classes: training identities (the classifier's output size).
        splits: the parsed samples (original pids) and skip counts (``splits.train`` without the validation
            identities when ``val`` is carved).
        val: a validation split carved from the training identities (model selection), or ``None``.
    """

    name: str
    train: ImageSet
    query: ImageSet
    gallery: ImageSet
    same_set: bool
    num_classes: int
    splits: Splits
    val: ValData | None = None

    def describe(self) -> DatasetInfo:
        """Counts per split, classifier size, triplet count, protocol hint, skipped and converted images."""
        sets = [self.train, self.query] if self.same_set else [self.train, self.query, self.gallery]
        return replace(describe_splits(self.splits), converted_images=sum(s.converted for s in sets),
                       cache=self.train.cache)


@dataclass
class ValData:
    """A validation split carved from training identities: query / gallery :class:`ImageSet` s (original pids)
    that :func:`reid.engine.evaluation.evaluate_model` takes like any evaluation data.

    Attributes:
        query, gallery: the images (``gallery is query`` when ``same_set``).
        same_set: leave-one-out (used when no identity has a second camera to give a gallery).
        identities: how many training identities were set aside.
    """

    query: ImageSet
    gallery: ImageSet
    same_set: bool
    identities: int


def carve_validation(train: list[Sample], val_ids: int | None, val_fraction: float,
                     seed: int) -> tuple[list[Sample], list[Sample], list[Sample], bool]:
    """Set whole training identities aside for validation: ``(train, val query, val gallery, same_set)``.

    ``val_ids`` identities (else ``val_fraction`` of them, at least one, leaving at least one for
    training), drawn with ``seed``; their images split one query per identity and camera, the rest
    gallery — or, when that leaves no gallery, one leave-one-out set.

    Example:
        >>> samples = [Sample(f"{p}_{i}.jpg", p, i % 2) for p in range(10) for i in range(4)]
        >>> train, q, g, same = carve_validation(samples, val_ids=2, val_fraction=0.1, seed=0)
        >>> len({s.pid for s in train}), len(q), len(g), same
        (8, 4, 4, False)

    Raises:
        ReidError: too few training identities to set any aside.
    """
    from reid.data.formats import query_gallery_split
    from reid.data.split import split_identities

    pids = sorted({s.pid for s in train})
    if len(pids) < 2 or (val_ids is not None and val_ids >= len(pids)):
        raise ReidError(f"cannot set {val_ids or 'a share of'} of {len(pids)} training identities aside for "
                        "validation", where="eval.val_ids" if val_ids is not None else "eval.val_fraction",
                        fix=f"use at most {max(len(pids) - 1, 0)} validation identities, or eval.select_on = \"none\"")
    n_val = val_ids if val_ids is not None else None
    kept, held = split_identities(pids, None if n_val is None else len(pids) - n_val,
                                  None if n_val is not None else 1 - val_fraction, seed)
    held_set = set(held)
    val = [s for s in train if s.pid in held_set]
    query, gallery = query_gallery_split(val, seed)
    if not query or not gallery:
        return [s for s in train if s.pid not in held_set], val, val, True
    return [s for s in train if s.pid not in held_set], query, gallery, False


def build_data(spec: DataSpec, cache_dir: str | Path | None = None, progress: Progress = no_progress,
               val: tuple[int | None, float] | None = None) -> ReidData:
    """Parse, split, relabel and load the dataset ``spec`` describes.

    Args:
        spec: the ``[data]`` table.
        cache_dir: where generated data (synthetic) is cached; default :func:`default_cache_dir`.
        progress: told how decoding advances, per split (:data:`reid.data.imageset.Progress`).
        val: ``(val_ids, val_fraction)``: carve a validation split from the training identities
            (:func:`carve_validation`, seeded by ``data.split_seed``); they are then not trained on.

    Raises:
        ReidError: missing or malformed dataset, bad images, impossible split.
    """
    splits = prepare_splits(spec, cache_dir)
    args = dict(height=spec.height, width=spec.width, cache=spec.cache, workers=spec.workers, cache_dir=cache_dir,
                progress=progress, cache_key=spec.cache_key)
    val_data = None
    if val is not None:
        kept, val_query, val_gallery, val_same = carve_validation(splits.train, *val, seed=spec.split_seed)
        splits = replace(splits, train=kept)
        vq = ImageSet(val_query, **args)
        val_data = ValData(vq, vq if val_same else ImageSet(val_gallery, **args), val_same,
                           len({s.pid for s in val_query}))
    labels, mapping = relabel(splits.train)
    train = ImageSet(splits.train, pids=labels, **args)
    query = ImageSet(splits.query, **args)
    gallery = query if splits.same_set else ImageSet(splits.gallery, **args)
    return ReidData(splits.name, train, query, gallery, splits.same_set, len(mapping), splits, val_data)


@dataclass
class EvalData:
    """The query / gallery images of an evaluation-only dataset (nothing of the training split is decoded).

    Attributes:
        name: dataset name.
        root: where it was read from.
        query, gallery: :class:`ImageSet` s (original pids; ``gallery is query`` when ``same_set``).
        same_set: leave-one-out: each query is excluded from its own gallery.
        whole_dataset: every identity of the dataset was evaluated (no training part was set aside).
    """

    name: str
    root: str
    query: ImageSet
    gallery: ImageSet
    same_set: bool
    whole_dataset: bool


def build_eval_data(spec: DataSpec, whole_dataset: bool = False, cache_dir: str | Path | None = None,
                    progress: Progress = no_progress) -> EvalData:
    """The validation part of the dataset ``spec`` describes, decoded at ``spec.height`` × ``spec.width``.

    With ``whole_dataset`` a folder-per-identity dataset is evaluated on *all* its identities (one query
    image per identity and camera, the rest gallery): what a model trained elsewhere is tested on.
    Datasets with a fixed split (Market-1501 …) always use their own query / gallery.

    ``progress`` is told how decoding advances (:data:`reid.data.imageset.Progress`).

    Raises:
        ReidError: missing or malformed dataset, bad images, nothing to evaluate.
    """
    args = dict(height=spec.height, width=spec.width, cache=spec.cache, workers=spec.workers, cache_dir=cache_dir,
                progress=progress, cache_key=spec.cache_key)
    if whole_dataset and spec.dataset == "folder":
        from reid.data.formats import query_gallery_split, require_root, scan_folder_identities

        root = require_root(spec)
        samples, _ = scan_folder_identities(root, spec.camera_regex)
        if merges_query_gallery(spec.query_rule, own_split=False):
            query_samples, gallery_samples, same_set = samples, samples, True
        else:
            query_samples, gallery_samples = query_gallery_split(samples, spec.split_seed)
            same_set = False
        if not query_samples or not gallery_samples:
            raise ReidError("nothing to evaluate: every identity has a single image per camera, so the gallery is "
                            "empty", where=str(root), fix="add images, or set data.query_rule = \"leave_one_out\"")
        name = "folder"
    else:
        splits = prepare_splits(spec, cache_dir)
        query_samples, gallery_samples, same_set, name, root = (splits.query, splits.gallery, splits.same_set,
                                                                splits.name, splits.root)
    query = ImageSet(query_samples, **args)
    gallery = query if same_set else ImageSet(gallery_samples, **args)
    return EvalData(name, str(root), query, gallery, same_set, whole_dataset and spec.dataset == "folder")
