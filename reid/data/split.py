"""Identity-level train / validation splits and the validation query / gallery rules.

Used by datasets without a fixed split (``folder``, ``synthetic``):

- :func:`split_identities` puts whole identities into train or validation, by count
  (``train_ids``) or fraction (``train_fraction``, which wins when set), shuffled with
  ``split_seed``;
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
    pids: Sequence[int], train_ids: int | None, train_fraction: float | None, seed: int
) -> tuple[list[int], list[int]]:
    """Split identities into (train, validation), both sorted.

    ``train_fraction`` (rounded, at least 1) takes priority over ``train_ids``; at least one
    identity must be left for validation.
    """
    pids = sorted(set(pids))
    n = len(pids)
    if train_fraction is not None:
        n_train = max(1, round(train_fraction * n))
        asked = f"data.train_fraction={train_fraction}"
    elif train_ids is not None:
        n_train = train_ids
        asked = f"data.train_ids={train_ids}"
    else:
        raise ReidError("no identity split given", where="data", fix="set data.train_ids or data.train_fraction")
    if n_train >= n:
        raise ReidError(
            f"{asked} leaves no validation identities: the dataset has only {n} identities",
            where=asked,
            fix=f"use at most {n - 1} training identities (or set data.train_fraction, e.g. 0.8)",
        )
    order = np.random.default_rng(seed).permutation(n)
    train = sorted(pids[i] for i in order[:n_train])
    val = sorted(pids[i] for i in order[n_train:])
    return train, val


def per_camera_query(items: Sequence[tuple[Hashable, int]], seed: int) -> list[Hashable]:
    """Keys of the query images of one identity: one random image per camera.

    ``items`` are (key, camera) pairs of that identity's images; the others are gallery.
    """
    by_cam: dict[int, list[Hashable]] = defaultdict(list)
    for key, cam in items:
        by_cam[cam].append(key)
    rng = np.random.default_rng(seed)
    return [keys[int(rng.integers(len(keys)))] for _, keys in sorted(by_cam.items())]
