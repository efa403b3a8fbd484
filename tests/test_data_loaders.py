"""Batched augmentation and the training / evaluation loaders."""

from __future__ import annotations

import logging

import pytest
import torch

from reid.data import build_data
from reid.data.loaders import TrainLoader, eval_batches, fits_on_device
from reid.data.transforms import augment_batch, normalize, pad_crop, random_erase, random_flip
from reid.spec import AugmentSpec, DataSpec, SamplerSpec


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_augment_shapes_and_determinism():
    x = torch.randint(0, 256, (6, 3, 32, 16), dtype=torch.uint8)
    spec = AugmentSpec(color_jitter=0.3)
    a, b = augment_batch(x, spec, gen(1)), augment_batch(x, spec, gen(1))
    assert a.shape == (6, 3, 32, 16) and a.dtype == torch.float32 and torch.equal(a, b)
    assert not torch.equal(a, augment_batch(x, spec, gen(2)))
    plain = augment_batch(x, AugmentSpec(flip=0, pad=0, erase=0), gen(0))
    assert torch.allclose(plain, normalize(x, AugmentSpec()))


def test_individual_ops():
    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.uint8).view(2, 3, 4, 5)
    assert torch.equal(random_flip(x, 1.0, gen()), x.flip(-1)) and torch.equal(random_flip(x, 0.0, gen()), x)
    assert torch.equal(pad_crop(x, 0, gen()), x)
    cropped = pad_crop(x, 2, gen())
    assert cropped.shape == x.shape and ((cropped == 0) | torch.isin(cropped, x)).all()
    erased = random_erase(torch.ones(8, 3, 20, 20), 1.0, gen())
    frac = (erased == 0).float().mean(dim=(1, 2, 3))
    assert ((frac >= 0.01) & (frac <= 0.5)).all()
    assert torch.equal(random_erase(torch.ones(4, 3, 8, 8), 0.0, gen()), torch.ones(4, 3, 8, 8))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    spec = DataSpec(identities=12, images_per_identity=4, train_ids=8, height=32, width=32)
    with pytest.MonkeyPatch.context() as mp:
        cache = tmp_path_factory.mktemp("cache")
        mp.setenv("REID_CACHE", str(cache))  # the decoded-image cache too
        return build_data(spec, cache_dir=cache)


@pytest.mark.parametrize("sampler", [SamplerSpec(type="pk", p=4, k=2), SamplerSpec(type="random", batch_size=8)])
def test_train_loader_is_deterministic_per_seed_epoch_rank(data, sampler):
    def run(seed, epoch, rank=0, world=1):
        loader = TrainLoader(data.train, sampler, AugmentSpec(), seed=seed, rank=rank, world_size=world)
        loader.set_epoch(epoch)
        return list(loader)

    first = run(0, 1)
    assert len(first) == len(TrainLoader(data.train, sampler, AugmentSpec(), seed=0))
    x, y = first[0]
    assert x.shape == (8, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.long
    assert int(y.max()) < data.num_classes
    again = run(0, 1)
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, again))
    assert not torch.equal(run(0, 2)[0][0], x) and not torch.equal(run(1, 1)[0][0], x)
    r0, r1 = run(0, 1, 0, 2), run(0, 1, 1, 2)
    assert len(r0) == len(r1)


def test_eval_batches_in_order_with_flip_and_indices(data):
    batches = list(eval_batches(data.query, 5, AugmentSpec(), flip=True))
    halves = [b.chunk(2) for b in batches]
    images = torch.cat([x for x, _ in halves])
    assert images.shape[0] == len(data.query)
    assert torch.allclose(images, normalize(data.query.images, AugmentSpec()))
    assert all(torch.equal(m, x.flip(-1)) for x, m in halves)
    plain = torch.cat(list(eval_batches(data.query, 5, AugmentSpec())))
    assert torch.equal(plain, images)
    picked = torch.cat(list(eval_batches(data.query, 2, AugmentSpec(), indices=torch.tensor([3, 0, 5]))))
    assert torch.equal(picked, images[[3, 0, 5]])


def run_epoch(loader, epoch=1):
    loader.set_epoch(epoch)
    return list(loader)


def test_explicit_cpu_device_is_the_default_path(data):
    sampler = SamplerSpec(type="pk", p=4, k=2)
    default = run_epoch(TrainLoader(data.train, sampler, AugmentSpec(), seed=3))
    cpu = TrainLoader(data.train, sampler, AugmentSpec(), seed=3, device="cpu")
    assert cpu.device_images is None
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(default, run_epoch(cpu)))


def test_gathering_from_a_device_copy_gives_the_same_batches(data):
    """The GPU path indexes one resident uint8 tensor; run that code on a CPU copy and compare."""
    sampler, augment = SamplerSpec(type="random", batch_size=8), AugmentSpec(color_jitter=0.2)
    reference = run_epoch(TrainLoader(data.train, sampler, augment, seed=1))
    resident = TrainLoader(data.train, sampler, augment, seed=1)
    resident.device_images = data.train.images.clone()
    got = run_epoch(resident)
    assert len(got) == len(reference)
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(got, reference))


def test_fits_on_device_keeps_a_reserve():
    gib = 1024**3
    assert fits_on_device(gib, free=40 * gib, total=80 * gib)
    assert not fits_on_device(gib, free=20 * gib, total=80 * gib)  # 20 GiB free is exactly the reserve
    assert not fits_on_device(4 * gib, free=3 * gib, total=4 * gib)


def test_images_that_do_not_fit_on_the_gpu_stay_on_the_host_with_one_log_line(data, monkeypatch, caplog):
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (10**6, 8 * 1024**3))
    with caplog.at_level(logging.WARNING):
        loader = TrainLoader(data.train, SamplerSpec(type="pk", p=4, k=2), AugmentSpec(), seed=0, device="cuda")
    assert loader.device_images is None and loader.device == torch.device("cuda")
    assert len(caplog.records) == 1 and "do not fit" in caplog.text and "pinned" in caplog.text


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("room", [True, False])
def test_cuda_loader_yields_device_batches_equal_to_the_cpu_loader(data, monkeypatch, room):
    if not room:
        monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (0, 1))
    sampler, augment = SamplerSpec(type="pk", p=4, k=2), AugmentSpec(erase=0.5)
    cuda = TrainLoader(data.train, sampler, augment, seed=2, device="cuda")
    assert (cuda.device_images is not None) == room
    for (x, y), (cx, cy) in zip(run_epoch(cuda), run_epoch(TrainLoader(data.train, sampler, augment, seed=2))):
        assert x.is_cuda and y.is_cuda and torch.equal(x.cpu(), cx) and torch.equal(y.cpu(), cy)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_eval_batches_are_made_on_the_gpu_with_the_cpu_values(data):
    cpu = list(eval_batches(data.query, 5, AugmentSpec(), flip=True))
    cuda = list(eval_batches(data.query, 5, AugmentSpec(), flip=True, device="cuda"))
    assert len(cuda) == len(cpu) and all(g.is_cuda and torch.equal(g.cpu(), c) for g, c in zip(cuda, cpu))
