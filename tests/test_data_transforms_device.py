"""Device-side augmentation: the whole-batch (vectorised) path equals the per-image CPU path bit for bit.

The vectorised pad-crop and erasing are what runs on a GPU; here both paths run on CPU
tensors with the same generator, which must also be left in the same state.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from reid.data.transforms import augment_batch, pad_crop, random_erase, to_device
from reid.spec import AugmentSpec

shapes = st.tuples(st.integers(1, 6), st.integers(1, 3), st.integers(1, 12), st.integers(1, 12))


def images(shape, seed, dtype=torch.uint8):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, shape, generator=g, dtype=torch.uint8)
    return x if dtype is torch.uint8 else x.to(dtype).div_(255)


def run_both(fn, seed):
    """``fn(g, vectorised)`` with each path and a fresh generator of ``seed``: both outputs and the next draws."""
    out = []
    for vectorised in (False, True):
        g = torch.Generator().manual_seed(seed)
        out.append((fn(g, vectorised), torch.rand(4, generator=g)))
    return out


@settings(max_examples=60, deadline=None)
@given(shape=shapes, pad=st.integers(0, 15), seed=st.integers(0, 2**16))
def test_pad_crop_paths_are_bitwise_equal(shape, pad, seed):
    x = images(shape, seed)
    (a, next_a), (b, next_b) = run_both(lambda g, v: pad_crop(x, pad, g, vectorised=v), seed)
    assert a.dtype == b.dtype == torch.uint8 and torch.equal(a, b) and torch.equal(next_a, next_b)


@settings(max_examples=60, deadline=None)
@given(shape=shapes, p=st.sampled_from([0.0, 0.3, 0.5, 1.0]), seed=st.integers(0, 2**16),
       area=st.sampled_from([(0.02, 0.4), (0.5, 1.0), (0.0, 0.01)]))
def test_random_erase_paths_are_bitwise_equal(shape, p, seed, area):
    x = images(shape, seed, torch.float32)
    (a, next_a), (b, next_b) = run_both(lambda g, v: random_erase(x, p, g, area=area, vectorised=v), seed)
    assert torch.equal(a, b) and torch.equal(next_a, next_b)
    assert torch.equal(a.signbit(), b.signbit())  # the erased zeros are +0 on both paths


@settings(max_examples=40, deadline=None)
@given(shape=st.tuples(st.integers(1, 5), st.just(3), st.integers(2, 12), st.integers(2, 12)),
       flip=st.sampled_from([0.0, 0.5, 1.0]), pad=st.integers(0, 6), jitter=st.sampled_from([0.0, 0.3]),
       erase=st.sampled_from([0.0, 0.5, 1.0]), seed=st.integers(0, 2**16))
def test_augment_batch_paths_are_bitwise_equal(shape, flip, pad, jitter, erase, seed):
    x = images(shape, seed)
    spec = AugmentSpec(flip=flip, pad=pad, color_jitter=jitter, erase=erase)
    (a, next_a), (b, next_b) = run_both(lambda g, v: augment_batch(x, spec, g, vectorised=v), seed)
    assert a.dtype == torch.float32 and torch.equal(a, b) and torch.equal(next_a, next_b)


def padded_crop_reference(x, pad, seed):
    """The documented meaning: crop ``F.pad(x, [pad] * 4)`` at offsets drawn like :func:`pad_crop` draws them."""
    g = torch.Generator().manual_seed(seed)
    n, _, h, w = x.shape
    dy, dx = (torch.randint(0, 2 * pad + 1, (n,), generator=g).tolist() for _ in range(2))
    padded = torch.nn.functional.pad(x, [pad] * 4)
    return torch.stack([padded[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(n)])


@settings(max_examples=30, deadline=None)
@given(shape=shapes, pad=st.integers(0, 15), seed=st.integers(0, 2**16))
def test_pad_crop_is_a_crop_of_the_zero_padded_image(shape, pad, seed):
    x = images(shape, seed)
    expected = padded_crop_reference(x, pad, seed)
    assert torch.equal(pad_crop(x, pad, torch.Generator().manual_seed(seed)), expected)  # CPU default
    assert torch.equal(pad_crop(x, pad, torch.Generator().manual_seed(seed), vectorised=True), expected)


def test_to_device_is_a_no_op_on_the_same_device():
    t = torch.ones(3)
    assert to_device(t, torch.device("cpu")) is t


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_batches_equal_cpu_batches():
    x = images((16, 3, 32, 16), 0)
    spec = AugmentSpec(pad=4, erase=0.5)
    cpu = augment_batch(x, spec, torch.Generator().manual_seed(1))
    gpu = augment_batch(x.cuda(), spec, torch.Generator().manual_seed(1))
    assert gpu.is_cuda and torch.equal(gpu.cpu(), cpu)
    jitter = AugmentSpec(pad=4, erase=0.5, color_jitter=0.3)  # the per-image mean is a reduction: not bitwise
    torch.testing.assert_close(augment_batch(x.cuda(), jitter, torch.Generator().manual_seed(1)).cpu(),
                               augment_batch(x, jitter, torch.Generator().manual_seed(1)))
