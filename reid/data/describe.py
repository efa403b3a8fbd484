"""Counts that describe a dataset: identities, images and cameras per split, and the
assignment's Q6 (classifier size) and Q10 (number of possible triplets).

Example:
    >>> triplet_count([10] * 230)
    47403000
    >>> triplet_count([2, 3])
    18
"""

from __future__ import annotations

from collections import Counter
from typing import Sequence

from reid.data.formats import Sample, Splits


def triplet_count(images_per_identity: Sequence[int]) -> int:
    """Number of (anchor, positive, negative) triplets: Σ_i n_i·(n_i − 1)·(N − n_i).

    Anchor and positive are two different images of identity i (ordered), the negative
    is any image of another identity; N = Σ n_i. For 230 identities × 10 images:
    230 · (10·9) · (229·10) = 47,403,000.
    """
    total = sum(images_per_identity)
    return sum(n * (n - 1) * (total - n) for n in images_per_identity)


def split_counts(samples: Sequence[Sample]) -> dict:
    """Identities, images and cameras of one split, and min / max images per identity."""
    per_id = Counter(s.pid for s in samples)
    return {
        "identities": len(per_id),
        "images": len(samples),
        "cameras": len({s.camid for s in samples}),
        "min_images_per_identity": min(per_id.values(), default=0),
        "max_images_per_identity": max(per_id.values(), default=0),
    }


def protocol_hint(splits: Splits) -> str:
    """The evaluation protocol that fits: "all" for one set or one camera, else "market"."""
    if splits.same_set or len({s.camid for s in splits.query + splits.gallery}) < 2:
        return "all"
    return "market"


def describe_splits(splits: Splits) -> dict:
    """A plain dict describing the splits (what ``reid data info`` prints).

    Keys: name, root, train / query / gallery (:func:`split_counts`), validation_identities,
    num_classes (Q6: classifier outputs = training identities), triplets (Q10),
    same_set, protocol, skipped (reason → count).
    """
    val = splits.query if splits.same_set else splits.query + splits.gallery
    return {
        "name": splits.name,
        "root": str(splits.root),
        "train": split_counts(splits.train),
        "query": split_counts(splits.query),
        "gallery": split_counts(splits.gallery),
        "validation_identities": len({s.pid for s in val}),
        "num_classes": len({s.pid for s in splits.train}),
        "triplets": triplet_count(list(Counter(s.pid for s in splits.train).values())),
        "same_set": splits.same_set,
        "protocol": protocol_hint(splits),
        "skipped": dict(splits.skipped),
    }
