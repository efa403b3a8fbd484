"""Identity-level train / validation splits and the validation query / gallery rules.

Used by datasets without a fixed split (``folder``, ``synthetic``):

- :func:`split_identities` puts whole identities into train or validation, by count
  (``train_ids``, which wins when set) or fraction (``train_fraction``, 0.8 by default, so
  a folder of any size splits with no settings), shuffled with ``split_seed``;
- :func:`per_camera_query` picks, per identity, one image per camera as query (the rest
  are gallery); the ``leave_one_out`` rule needs no picking: the validation images form
  one set in which every image queries all the others.

Example:
    >>> split_identities([1, 2, 3, 4, 5], train_ids=3, train_fraction=None, seed=0)
    ([3, 4, 5], [1, 2])
    >>> sorted(per_camera_query([(0, 0), (1, 0), (2, 1)], seed=0))
    [1, 2]
"""

from __future__ import annotations

from collections import defaultdict
from typing import Hashable, Sequence

import numpy as np

from reid.errors import ReidError


def split_identities(
    pids: Sequence[int], train_ids: int | None, train_fraction: float | None, seed: int, ordered: bool = False
) -> tuple[list[int], list[int]]:
    """Split identities into (train, validation), both sorted.

    ``train_ids`` takes priority over ``train_fraction`` (rounded, at least 1, and at most
    ``n - 1`` so that a fraction always leaves a validation identity); a count must leave at
    least one identity for validation. Identities are drawn at random (``seed``), or with ``ordered`` the first
    ones in sorted order train (a dataset's published split by identity number).

    Example:
        >>> len(split_identities(range(62), train_ids=None, train_fraction=0.8, seed=0)[0])
        50
        >>> split_identities([7, 3, 5, 9], train_ids=3, train_fraction=None, seed=0, ordered=True)
        ([3, 5, 7], [9])
    """
    pids = sorted(set(pids))
    n = len(pids)
    n_train = training_identity_count(n, train_ids, train_fraction)
    asked = f"data.train_ids={train_ids}" if train_ids is not None else f"data.train_fraction={train_fraction}"
    if n_train >= n:
        raise ReidError(
            f"{asked} leaves no validation identities: the dataset has only {n} identities",
            where=asked,
            fix=f"use at most {n - 1} training identities (or remove data.train_ids: data.train_fraction, 0.8 by "
            "default, then splits any number of identities)",
        )
    order = np.arange(n) if ordered else np.random.default_rng(seed).permutation(n)
    train = sorted(pids[i] for i in order[:n_train])
    val = sorted(pids[i] for i in order[n_train:])
    return train, val


def training_identity_count(n: int, train_ids: int | None, train_fraction: float | None) -> int:
    """How many of ``n`` identities :func:`split_identities` puts into training (before checking that some are left).

    Example:
        >>> training_identity_count(279, 230, 0.8), training_identity_count(279, None, 0.8), training_identity_count(2, None, 0.9)
        (230, 223, 1)
    """
    if train_ids is not None:
        return train_ids
    if train_fraction is None:
        raise ReidError("no identity split given", where="data", fix="set data.train_ids or data.train_fraction")
    return min(max(1, round(train_fraction * n)), max(1, n - 1))


def per_camera_query(items: Sequence[tuple[Hashable, int]], seed: int) -> list[Hashable]:
    """Keys of the query images of one identity: one random image per camera.

    ``items`` are (key, camera) pairs of that identity's images; the others are gallery.
    """
    by_cam: dict[int, list[Hashable]] = defaultdict(list)
    for key, cam in items:
        by_cam[cam].append(key)
    rng = np.random.default_rng(seed)
    return [keys[int(rng.integers(len(keys)))] for _, keys in sorted(by_cam.items())]
