"""Training and evaluation batches: sampler → uint8 images → batched augmentation.

:class:`TrainLoader` is deterministic for a given (seed, epoch, rank): the sampler and
the augmentation generator are both seeded from them, and augmentation runs in the main
process in batch order, so streaming with DataLoader workers gives the same tensors as
the memory cache.

Example:
    >>> import tempfile
    >>> from reid.data.build import build_data
    >>> from reid.spec import DataSpec, SamplerSpec, AugmentSpec
    >>> data = build_data(DataSpec(identities=6, images_per_identity=4, train_ids=4, height=32, width=32),
    ...                   cache_dir=tempfile.mkdtemp())
    >>> loader = TrainLoader(data.train, SamplerSpec(type="pk", p=2, k=2), AugmentSpec(), seed=0)
    >>> loader.set_epoch(0)
    >>> x, y = next(iter(loader))
    >>> x.shape, y.shape, len(loader)
    (torch.Size([4, 3, 32, 32]), torch.Size([4]), 4)
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

from reid.data.imageset import ImageSet
from reid.data.sampler import PKSampler, RandomBatchSampler
from reid.data.transforms import augment_batch, normalize
from reid.spec import AugmentSpec, SamplerSpec


class TrainLoader:
    """Augmented training batches ``(float32 N×3×H×W normalised, long pids)`` for one rank.

    Args:
        imageset: the training :class:`ImageSet` (pids relabelled 0..C-1).
        sampler_spec: ``pk`` (P×K batches, see :mod:`reid.data.sampler` for the epoch) or ``random``.
        augment: the augmentation settings.
        seed: run seed; with the epoch and rank it fixes every batch and every augmentation.
        rank, world_size: this process and the number of processes (distributed training).
    """

    def __init__(
        self,
        imageset: ImageSet,
        sampler_spec: SamplerSpec,
        augment: AugmentSpec,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
    ):
        self.imageset, self.augment, self.seed, self.rank = imageset, augment, seed, rank
        if sampler_spec.type == "pk":
            self.sampler = PKSampler(imageset.pids.tolist(), sampler_spec.p, sampler_spec.k, seed, rank, world_size)
        else:
            self.sampler = RandomBatchSampler(len(imageset), sampler_spec.batch_size, seed, rank, world_size)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch (call before iterating; resuming at epoch e reproduces it exactly)."""
        self.epoch = epoch
        self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        """Batches per epoch (the same on every rank)."""
        return len(self.sampler)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        state = np.random.SeedSequence([self.seed, self.epoch, self.rank, 7]).generate_state(1, np.uint64)[0]
        g = torch.Generator().manual_seed(int(state))
        for images, idx in self.imageset.batches(self.sampler):
            yield augment_batch(images, self.augment, g), self.imageset.pids[idx]


def eval_batches(
    imageset: ImageSet, batch_size: int, augment: AugmentSpec, flip: bool = False, indices: torch.Tensor | None = None
) -> Iterator[torch.Tensor]:
    """Normalised float32 batches of ``imageset`` (or of ``indices`` only), in order, for feature extraction.

    With ``flip`` each yielded tensor holds 2·n rows: the n images followed by their
    left-right mirrors (split with ``x.chunk(2)`` and average the two embeddings);
    without it, just the n images.
    """
    order = torch.arange(len(imageset)) if indices is None else torch.as_tensor(indices, dtype=torch.long)
    chunks = [order[i : i + batch_size].tolist() for i in range(0, len(order), batch_size)]
    for images, _ in imageset.batches(chunks):
        x = normalize(images, augment)
        yield torch.cat([x, x.flip(-1)]) if flip else x
