"""The pooling window from the feature map, and average pooling as a convolution."""

from hypothesis import given, settings
from hypothesis import strategies as st

from reid.model import build_model
from reid.model.pooling import check_avgpool_as_conv, pooling_geometry
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
