"""The pooling window from the feature map, average pooling as a convolution, and pooling any map size."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from reid.model import build_model
from reid.model.pooling import POOLINGS, check_avgpool_as_conv, pooling_geometry
from reid.spec import HeadSpec, ModelSpec


def test_q2_kernel_is_the_final_feature_map():
    model = build_model(ModelSpec(), HeadSpec(type="none"), None)
    geometry = pooling_geometry(model.backbone.feature_size)
    assert (geometry.kernel, geometry.stride, geometry.output_size) == ((8, 8), (1, 1), (1, 1))
    assert model.backbone.pool.kernel_size == geometry.kernel


def test_q2_follows_the_input_size():
    model = build_model(ModelSpec(last_stride=2), HeadSpec(type="none"), None, (3, 256, 128))
    assert pooling_geometry(model.backbone.feature_size).kernel == (8, 4) == model.backbone.pool.kernel_size


@settings(max_examples=25, deadline=None)
@given(
    channels=st.integers(1, 16),
    kh=st.integers(1, 5),
    kw=st.integers(1, 5),
    extra_h=st.integers(0, 7),
    extra_w=st.integers(0, 7),
    global_pool=st.booleans(),
    seed=st.integers(0, 1000),
)
def test_q3_depthwise_conv_reproduces_avgpool(channels, kh, kw, extra_h, extra_w, global_pool, seed):
    h, w = kh + extra_h, kw + extra_w
    kernel = None if global_pool else (kh, kw)
    result = check_avgpool_as_conv(channels, h, w, kernel=kernel, seed=seed)
    k = (h, w) if global_pool else (kh, kw)
    assert result.kernel == k
    assert result.max_abs_diff <= 1e-6
    assert result.pool_params == 0
    assert result.conv_params == channels * k[0] * k[1]
    assert result.full_conv_params == channels * channels * k[0] * k[1]


def test_q3_for_the_assignment_network():
    result = check_avgpool_as_conv(512, 8, 8)
    assert result.max_abs_diff <= 1e-6 and (result.pool_params, result.conv_params) == (0, 32_768)


@settings(max_examples=25, deadline=None)
@given(kind=st.sampled_from(["avg", "max", "gem"]), built=st.tuples(st.integers(1, 9), st.integers(1, 9)),
       h=st.integers(1, 12), w=st.integers(1, 12), seed=st.integers(0, 1000))
def test_global_pooling_pools_the_whole_map_whatever_its_size(kind, built, h, w, seed):
    pool = POOLINGS.get(kind)(pooling_geometry(built))
    x = torch.rand(2, 3, h, w, generator=torch.Generator().manual_seed(seed)) + 0.1
    direct = {"avg": lambda m: m.mean((2, 3)), "max": lambda m: m.amax((2, 3)),
              "gem": lambda m: m.pow(3).mean((2, 3)).pow(1 / 3)}[kind]
    with torch.no_grad():
        torch.testing.assert_close(pool(x).flatten(1), direct(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind, fixed", [("avg", nn.AvgPool2d), ("max", nn.MaxPool2d)])
def test_at_the_built_size_the_pool_is_torchs_fixed_kernel_pool(kind, fixed):
    """The documented geometry stays (type, kernel, repr); the numbers are the fixed 8×8 kernel's."""
    geometry = pooling_geometry((8, 8))
    pool = POOLINGS.get(kind)(geometry)
    assert isinstance(pool, fixed) and type(pool).__name__ == fixed.__name__ and pool.kernel_size == (8, 8)
    x = torch.randn(4, 512, 8, 8, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(pool(x), fixed(geometry.kernel, stride=geometry.stride)(x), rtol=0, atol=1e-6)


@pytest.mark.parametrize("arch, layers, pooling", [("resnet18", (1, 1, 1, 1), "avg"), ("resnet18", (1, 1, 1, 1), "max"),
                                                   ("resnet18", (1, 1, 1, 1), "gem"), ("osnet_x1_0", None, "gem"),
                                                   ("timm:resnet10t", None, "avg")])
def test_a_model_built_for_one_size_embeds_another(arch, layers, pooling):
    model = build_model(ModelSpec(arch=arch, layers=layers, pooling=pooling), HeadSpec(type="none"), None, (3, 64, 32)).eval()
    with torch.no_grad():
        assert model.embed(torch.randn(2, 3, 128, 64)).shape == model.embed(torch.randn(2, 3, 64, 32)).shape == (2, 512)


def test_at_the_built_size_a_model_embeds_as_with_the_fixed_kernel():
    model = build_model(ModelSpec(layers=(1, 1, 1, 1)), HeadSpec(type="none"), None, (3, 64, 32)).eval()
    x = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        fixed = nn.AvgPool2d(model.backbone.feature_size, stride=1)(model.backbone.feature_map(x)).flatten(1)
        torch.testing.assert_close(model.embed(x), fixed, rtol=0, atol=1e-6)
