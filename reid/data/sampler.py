"""Batch samplers: identity-balanced P×K batches and plain random batches, sharded by rank.

Both are iterables of index lists, deterministic in (seed, epoch, rank): call
:meth:`set_epoch` before each epoch (as with ``DistributedSampler``). They are registered
in :data:`reid.registry.SAMPLERS` as ``pk`` and ``random`` (``sampler.type``); a sampler of
your own is a factory ``(pids, spec, seed, rank, world_size) -> sampler`` registered there,
returning any object with ``set_epoch``, ``__len__`` and ``__iter__`` over index lists.

**PK epoch** (:class:`PKSampler`). Identities are shuffled per epoch and dealt to the
ranks round-robin, so ranks hold disjoint identities. An epoch is ``passes`` passes over
each rank's identities, with ``passes = max(1, floor(mean images per identity / K))``
(so an epoch shows about as many images as the dataset holds: 2 passes for 10 images
and K=4). In each pass every identity is one of the P of exactly one batch, except that
the last batch of a pass is completed with identities from the start of that pass's
order (so at most P fill-ins per pass, one more than P-1 when this rank holds one
identity fewer than others; no identity appears more than twice in a pass). Every rank gets
``passes × ceil(ceil(num_ids / world_size) / P)`` batches. The K images of an identity
come from a per-epoch shuffle of its images, taken cyclically, so no image repeats
before all of that identity's images were used; an identity with fewer than K images is
therefore sampled with replacement (``PKSampler.short_identities`` counts them), and an
identity with a single image is an error when K ≥ 2 (it cannot give a positive pair).
There must be at least P × world_size identities.

**Random epoch** (:class:`RandomBatchSampler`). The indices are shuffled per epoch,
padded cyclically to a multiple of world_size and dealt round-robin to ranks; each rank
cuts its share into batches of ``batch_size`` and drops the last incomplete batch unless
it would be the only one.

Example:
    >>> s = PKSampler([0, 0, 1, 1, 2, 2, 3, 3], p=2, k=2, seed=0)
    >>> len(s), [len(b) for b in s]
    (2, [4, 4])
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Iterator, Sequence

import numpy as np

from reid.errors import ReidError
from reid.registry import SAMPLERS

if TYPE_CHECKING:
    from reid.spec import SamplerSpec


def _rng(seed: int, epoch: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, epoch, stream])


class PKSampler:
    """P identities × K images per batch (see the module docstring for the epoch definition).

    Args:
        pids: identity of each dataset index.
        p, k: identities per batch and images per identity.
        seed: base seed (same seed, epoch and rank → same batches).
        rank, world_size: this process and the number of processes.
    """

    def __init__(self, pids: Sequence[int], p: int, k: int, seed: int = 0, rank: int = 0, world_size: int = 1):
        if not 0 <= rank < world_size:
            raise ReidError(f"rank {rank} is outside 0..{world_size - 1}")
        self.p, self.k, self.seed, self.rank, self.world_size = p, k, seed, rank, world_size
        self.epoch = 0
        by_id: dict[int, list[int]] = defaultdict(list)
        for i, pid in enumerate(int(x) for x in pids):
            by_id[pid].append(i)
        self.identities = sorted(by_id)
        self.index = [by_id[pid] for pid in self.identities]
        n = len(self.identities)
        if n < p * world_size:
            raise ReidError(
                f"the PK sampler needs at least P × world_size = {p} × {world_size} = {p * world_size} training identities, found {n}",
                where="sampler.p",
                fix=f"set sampler.p to at most {max(1, n // world_size)} or use more identities",
            )
        singles = [pid for pid, idx in zip(self.identities, self.index) if len(idx) == 1]
        if k >= 2 and singles:
            raise ReidError(
                f"{len(singles)} training identit{'y has' if len(singles) == 1 else 'ies have'} a single image "
                f"(e.g. pid {singles[0]}), but PK batches need K = {k} images of each, including a positive pair",
                where="sampler.k",
                fix="remove identities with one image from the training set, or use sampler.type = \"random\"",
            )
        self.short_identities = sum(len(idx) < k for idx in self.index)
        mean_images = sum(len(idx) for idx in self.index) / n
        self.passes = max(1, int(mean_images // k))
        self.batches_per_pass = -(-(-(-n // world_size)) // p)

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose batches the next iteration yields."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.passes * self.batches_per_pass

    def __iter__(self) -> Iterator[list[int]]:
        deal = _rng(self.seed, self.epoch, 0).permutation(len(self.identities))
        mine = deal[self.rank :: self.world_size]  # identity positions owned by this rank
        img_rng = _rng(self.seed, self.epoch, 1)
        orders = {int(i): img_rng.permutation(self.index[i]) for i in range(len(self.identities))}
        used = defaultdict(int)
        order_rng = _rng(self.seed, self.epoch, 2 + self.rank)
        slots = self.batches_per_pass * self.p
        for _ in range(self.passes):
            order = mine[order_rng.permutation(len(mine))]
            filled = [int(order[s % len(order)]) for s in range(slots)]
            for b in range(self.batches_per_pass):
                batch = []
                for ident in filled[b * self.p : (b + 1) * self.p]:
                    imgs, start = orders[ident], used[ident]
                    batch.extend(int(imgs[(start + t) % len(imgs)]) for t in range(self.k))
                    used[ident] += self.k
                yield batch


class RandomBatchSampler:
    """Uniformly shuffled batches of ``batch_size`` indices, sharded by rank (see the module docstring).

    Example:
        >>> s = RandomBatchSampler(10, batch_size=3, seed=0, rank=1, world_size=2)
        >>> len(s), [len(b) for b in s]
        (1, [3])
    """

    def __init__(self, n: int, batch_size: int, seed: int = 0, rank: int = 0, world_size: int = 1):
        if not 0 <= rank < world_size:
            raise ReidError(f"rank {rank} is outside 0..{world_size - 1}")
        if n == 0:
            raise ReidError("no training images to sample from")
        self.n, self.batch_size, self.seed, self.rank, self.world_size = n, batch_size, seed, rank, world_size
        self.epoch = 0
        self.per_rank = -(-n // world_size)

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose batches the next iteration yields."""
        self.epoch = epoch

    def __len__(self) -> int:
        return max(1, self.per_rank // self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        perm = _rng(self.seed, self.epoch, 0).permutation(self.n)
        padded = np.resize(perm, self.per_rank * self.world_size)  # cyclic padding
        mine = padded[self.rank :: self.world_size]
        for b in range(len(self)):
            yield [int(i) for i in mine[b * self.batch_size : (b + 1) * self.batch_size]]


@SAMPLERS.register("pk")
def pk_sampler(pids: Sequence[int], spec: SamplerSpec, seed: int, rank: int, world_size: int) -> PKSampler:
    """``sampler.type = "pk"``: :class:`PKSampler` with ``sampler.p`` × ``sampler.k``."""
    return PKSampler(pids, spec.p, spec.k, seed, rank, world_size)


@SAMPLERS.register("random")
def random_sampler(pids: Sequence[int], spec: SamplerSpec, seed: int, rank: int, world_size: int) -> RandomBatchSampler:
    """``sampler.type = "random"``: :class:`RandomBatchSampler` with ``sampler.batch_size``."""
    return RandomBatchSampler(len(pids), spec.batch_size, seed, rank, world_size)
