"""Training and evaluation batches: sampler → uint8 images → batched augmentation.

:class:`TrainLoader` is deterministic for a given (seed, epoch, rank): the sampler and
the augmentation generator are both seeded from them, and augmentation runs in the main
process in batch order, so streaming gives the same tensors as the memory cache.

On a GPU (``device="cuda"``) the training split's uint8 images are copied to the GPU once
(4× fewer bytes than float batches, and no copy per step); each batch is then gathered,
augmented and normalised there as a whole. Random numbers still come from the same CPU
generator, so the batches equal the CPU path's (bit for bit except the colour-jitter
mean, a reduction). When the images do not fit in free GPU memory (keeping
:data:`DEVICE_RESERVE` of it for the model), they stay in host memory and each batch
goes over from pinned memory, with one log line saying so.

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

import logging
from typing import Iterator

import numpy as np
import torch

from reid.data.imageset import ImageSet
from reid.data.transforms import augment_batch, normalize, to_device
from reid.registry import SAMPLERS
from reid.spec import AugmentSpec, SamplerSpec

log = logging.getLogger(__name__)

#: Share of the GPU's memory left free for the model, activations and optimiser when deciding
#: whether the decoded training images fit on it.
DEVICE_RESERVE = 0.25


def fits_on_device(nbytes: int, free: int, total: int) -> bool:
    """Whether ``nbytes`` fit in ``free`` GPU bytes while :data:`DEVICE_RESERVE` of ``total`` stays free.

    Example:
        >>> gib = 1024**3
        >>> fits_on_device(int(1.3 * gib), free=78 * gib, total=80 * gib), fits_on_device(3 * gib, 4 * gib, 8 * gib)
        (True, False)
    """
    return nbytes <= free - DEVICE_RESERVE * total


def images_to_device(imageset: ImageSet, device: torch.device, chunk: int = 4096) -> torch.Tensor:
    """All uint8 images of ``imageset`` in one tensor on ``device``, copied in chunks (bounded host memory)."""
    n = len(imageset)
    out = torch.empty((n, 3, imageset.height, imageset.width), dtype=torch.uint8, device=device)
    for images, idx in imageset.batches([range(i, min(i + chunk, n)) for i in range(0, n, chunk)]):
        out[int(idx[0]) : int(idx[-1]) + 1].copy_(images)
    return out


class TrainLoader:
    """Augmented training batches ``(float32 N×3×H×W normalised, long pids)`` for one rank.

    Args:
        imageset: the training :class:`ImageSet` (pids relabelled 0..C-1).
        sampler_spec: a name in :data:`reid.registry.SAMPLERS`: ``pk`` (P×K batches, see
            :mod:`reid.data.sampler` for the epoch), ``random``, or one of your own.
        augment: the augmentation settings.
        seed: run seed; with the epoch and rank it fixes every batch and every augmentation.
        rank, world_size: this process and the number of processes (distributed training).
        device: where batches are made and yielded (``"cpu"`` or ``"cuda[:i]"``; see the module docstring).
    """

    def __init__(
        self,
        imageset: ImageSet,
        sampler_spec: SamplerSpec,
        augment: AugmentSpec,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        device: str | torch.device = "cpu",
    ):
        self.imageset, self.augment, self.seed, self.rank = imageset, augment, seed, rank
        self.device = torch.device(device)
        #: the training images on the GPU (``None``: on the CPU, or they did not fit)
        self.device_images: torch.Tensor | None = None
        if self.device.type == "cuda":
            nbytes = len(imageset) * 3 * imageset.height * imageset.width
            free, total = torch.cuda.mem_get_info(self.device)
            if fits_on_device(nbytes, free, total):
                self.device_images = images_to_device(imageset, self.device)
            else:
                log.warning("reid: the %.2f GiB of decoded training images do not fit in the %.2f GiB free on %s"
                            " (%.0f%% kept for the model); they stay in host memory and batches are copied"
                            " from pinned memory", nbytes / 1024**3, free / 1024**3, self.device, DEVICE_RESERVE * 100)
        self.sampler = SAMPLERS.get(sampler_spec.type)(imageset.pids.tolist(), sampler_spec, seed, rank, world_size)
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
        pids = to_device(self.imageset.pids, self.device)
        for images, idx in self._uint8_batches():
            yield augment_batch(images, self.augment, g), pids[idx]

    def _uint8_batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """``(uint8 images, indices)`` of each batch of the sampler, both on ``self.device``."""
        if self.device_images is not None:
            for idx in self.sampler:
                idx = to_device(torch.as_tensor(idx, dtype=torch.long), self.device)
                yield self.device_images.index_select(0, idx), idx
            return
        for images, idx in self.imageset.batches(self.sampler):
            yield to_device(images, self.device), to_device(idx, self.device)


def eval_batches(
    imageset: ImageSet, batch_size: int, augment: AugmentSpec, flip: bool = False, indices: torch.Tensor | None = None,
    device: str | torch.device = "cpu",
) -> Iterator[torch.Tensor]:
    """Normalised float32 batches of ``imageset`` (or of ``indices`` only), in order, for feature extraction.

    With ``flip`` each yielded tensor holds 2·n rows: the n images followed by their
    left-right mirrors (split with ``x.chunk(2)`` and average the two embeddings);
    without it, just the n images. Batches are made on ``device``: on a GPU each uint8 batch goes
    over (non-blocking, from pinned memory: a quarter of the float batch's bytes) and is normalised
    there, with the same values as on the CPU.
    """
    device = torch.device(device)
    order = torch.arange(len(imageset)) if indices is None else torch.as_tensor(indices, dtype=torch.long)
    chunks = [order[i : i + batch_size].tolist() for i in range(0, len(order), batch_size)]
    for images, _ in imageset.batches(chunks):
        x = normalize(to_device(images, device), augment)
        yield torch.cat([x, x.flip(-1)]) if flip else x
