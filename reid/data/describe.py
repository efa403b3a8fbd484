"""Counts that describe a dataset: identities, images and cameras per split, the classifier's
output size (training identities) and the number of possible training triplets.

:class:`DatasetInfo` is the typed description (what ``reid data info`` prints and what a run's
``summary.json`` records under ``dataset``); this module owns its JSON form.

Example:
    >>> triplet_count([10] * 230)
    47403000
    >>> triplet_count([2, 3])
    18
    >>> SplitCounts.of([]).images
    0
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Sequence

from reid.data.formats import Sample, Splits
from reid.metrics import auto_protocol


def triplet_count(images_per_identity: Sequence[int]) -> int:
    """Number of (anchor, positive, negative) triplets: Σ_i n_i·(n_i − 1)·(N − n_i).

    Anchor and positive are two different images of identity i (ordered), the negative
    is any image of another identity; N = Σ n_i. For 230 identities × 10 images:
    230 · (10·9) · (229·10) = 47,403,000.
    """
    total = sum(images_per_identity)
    return sum(n * (n - 1) * (total - n) for n in images_per_identity)


@dataclass(frozen=True)
class SplitCounts:
    """Identities, images and cameras of one split, and min / max images per identity."""

    identities: int
    images: int
    cameras: int
    min_images_per_identity: int
    max_images_per_identity: int

    @classmethod
    def of(cls, samples: Sequence[Sample]) -> SplitCounts:
        """Count ``samples``."""
        per_id = Counter(s.pid for s in samples)
        return cls(identities=len(per_id), images=len(samples), cameras=len({s.camid for s in samples}),
                   min_images_per_identity=min(per_id.values(), default=0),
                   max_images_per_identity=max(per_id.values(), default=0))


@dataclass(frozen=True)
class DatasetInfo:
    """A dataset as a run used it.

    Attributes:
        name, root: the dataset's name and folder.
        train, query, gallery: :class:`SplitCounts` (``gallery`` repeats ``query`` for a leave-one-out set).
        validation_identities: identities of the validation set (query ∪ gallery).
        num_classes: training identities — the classifier's output size.
        triplets: possible (anchor, positive, negative) training triplets (:func:`triplet_count`).
        same_set: query and gallery are one leave-one-out set.
        protocol: the evaluation protocol that fits (``market`` or ``all``).
        skipped: images left out, reason → count.
        converted_images: images converted while decoding (None: not decoded, e.g. ``reid data info``).
        cache: the decoded-image cache mode used for training (None: not decoded).
    """

    name: str
    root: str
    train: SplitCounts
    query: SplitCounts
    gallery: SplitCounts
    validation_identities: int
    num_classes: int
    triplets: int
    same_set: bool
    protocol: str
    skipped: dict[str, int] = field(default_factory=dict)
    converted_images: int | None = None
    cache: str | None = None

    @property
    def validation_images(self) -> int:
        """Images of the validation set (query + gallery, counted once for a leave-one-out set)."""
        return self.query.images if self.same_set else self.query.images + self.gallery.images

    @property
    def cameras(self) -> int:
        """Cameras of the larger of the training and query splits."""
        return max(self.train.cameras, self.query.cameras)

    def to_json(self) -> dict[str, Any]:
        """The JSON form (``summary.json``'s ``dataset``); optional fields only when known."""
        out = asdict(self)
        for key in ("converted_images", "cache"):
            if out[key] is None:
                del out[key]
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DatasetInfo:
        """Inverse of :meth:`to_json` (unknown keys are ignored, so newer files stay readable).

        Example:
            >>> c = {"identities": 2, "images": 4, "cameras": 1, "min_images_per_identity": 2, "max_images_per_identity": 2}
            >>> info = DatasetInfo("x", "/d", SplitCounts(**c), SplitCounts(**c), SplitCounts(**c), 2, 2, 16, True, "all")
            >>> DatasetInfo.from_json(info.to_json()) == info
            True
        """
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        for split in ("train", "query", "gallery"):
            values[split] = SplitCounts(**values[split])
        values["skipped"] = dict(values.get("skipped", {}))
        return cls(**values)


def protocol_hint(splits: Splits) -> str:
    """The evaluation protocol that fits (:func:`reid.metrics.auto_protocol`): "all" for one set or one camera, else "market"."""
    return auto_protocol(splits.same_set, len({s.camid for s in splits.query + splits.gallery}))


def describe_splits(splits: Splits) -> DatasetInfo:
    """The :class:`DatasetInfo` of parsed splits (what ``reid data info`` prints)."""
    val = splits.query if splits.same_set else splits.query + splits.gallery
    return DatasetInfo(
        name=splits.name, root=str(splits.root),
        train=SplitCounts.of(splits.train), query=SplitCounts.of(splits.query), gallery=SplitCounts.of(splits.gallery),
        validation_identities=len({s.pid for s in val}),
        num_classes=len({s.pid for s in splits.train}),
        triplets=triplet_count(list(Counter(s.pid for s in splits.train).values())),
        same_set=splits.same_set, protocol=protocol_hint(splits), skipped=dict(splits.skipped),
    )
