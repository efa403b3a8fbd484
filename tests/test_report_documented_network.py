"""The assignment's documented network: its table, the fixed-kernel pooling view, pooling as a convolution."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from reid.model import build_model
from reid.model.summary import layer_table
from reid.report.assignment.documented_network import (
    DOCUMENTED_INPUT,
    check_avgpool_as_conv,
    compare_with_documented,
    differences_from_documented,
    documented_layer_table,
    fixed_kernel_view,
    load_documented_table,
    pooling_geometry,
)
from reid.spec import HeadSpec, ModelSpec

NO_HEAD = HeadSpec(type="none")


@pytest.fixture(scope="module")
def documented_rows():
    return documented_layer_table(build_model(ModelSpec(), NO_HEAD, None, DOCUMENTED_INPUT))


def test_documented_table_ships_with_the_package():
    table = load_documented_table()
    assert len(table) == 72
    assert (table[0].layer, table[0].output_shape, table[0].params) == ("Conv2d-1", [-1, 64, 64, 64], 9408)
    assert (table[-1].layer, table[-1].output_shape, table[-1].params) == ("AvgPool2d-72", [-1, 512, 1, 1], 0)
    assert sum(r.params for r in table) == 11_176_512


def test_all_72_rows_match_the_documented_table(documented_rows):
    documented = load_documented_table()
    assert [(r.layer, r.output_shape, r.params) for r in documented_rows] == [
        (d.layer, d.output_shape, d.params) for d in documented
    ]
    assert compare_with_documented(documented_rows) == []


def test_the_view_shows_the_8x8_kernel_and_leaves_the_model_alone():
    model = build_model(ModelSpec(), NO_HEAD, None, DOCUMENTED_INPUT).eval()
    view = fixed_kernel_view(model)
    pool = view.backbone.pool
    assert type(pool) is nn.AvgPool2d and pool.kernel_size == (8, 8) and pool.stride == (1, 1)
    assert isinstance(model.backbone.pool, nn.AdaptiveAvgPool2d)
    assert view.state_dict().keys() == model.state_dict().keys()
    x = torch.randn(2, *DOCUMENTED_INPUT)
    with torch.no_grad():
        torch.testing.assert_close(view.embed(x), model.embed(x))  # float32 rounding of the two summation orders
    # the core table compared as it is differs in the pooling row's name only
    (mismatch,) = compare_with_documented(layer_table(model))
    assert (mismatch.row, mismatch.field, mismatch.expected, mismatch.got) == (72, "layer", "AvgPool2d-72", "AdaptiveAvgPool2d-72")


@pytest.mark.parametrize("pooling, kept", [("max", nn.MaxPool2d), ("gem", None)])
def test_the_view_of_other_poolings(pooling, kept):
    model = build_model(ModelSpec(pooling=pooling), NO_HEAD, None, (3, 256, 128))
    pool = fixed_kernel_view(model).backbone.pool
    if kept is None:
        assert type(pool) is type(model.backbone.pool)  # GeM has no fixed-kernel form
    else:
        assert type(pool) is kept and pool.kernel_size == (16, 8)


def test_q2_kernel_is_the_final_feature_map():
    model = build_model(ModelSpec(), NO_HEAD, None)
    geometry = pooling_geometry(model.backbone.feature_size)
    assert (geometry.kernel, geometry.stride, geometry.output_size) == ((8, 8), (1, 1), (1, 1))
    assert fixed_kernel_view(model).backbone.pool.kernel_size == geometry.kernel


def test_q2_follows_the_input_size():
    model = build_model(ModelSpec(last_stride=2), NO_HEAD, None, (3, 256, 128))
    assert pooling_geometry(model.backbone.feature_size).kernel == (8, 4) == fixed_kernel_view(model).backbone.pool.kernel_size


def test_altered_model_mismatches_name_rows():
    rows = documented_layer_table(build_model(ModelSpec(last_stride=2), NO_HEAD, None))
    mismatches = compare_with_documented(rows)
    first = mismatches[0]
    assert (first.row, first.layer, first.field) == (55, "Conv2d-55", "output_shape")
    assert (first.expected, first.got) == ("[-1, 512, 8, 8]", "[-1, 512, 4, 4]")
    shorter = compare_with_documented(documented_layer_table(build_model(ModelSpec(layers=(2, 2, 2, 1)), NO_HEAD, None)))
    assert shorter[0].row == 64 and shorter[-1].field == "row" and shorter[-1].got == "(none)"


def test_head_rows_are_not_compared():
    rows = documented_layer_table(build_model(ModelSpec(), HeadSpec(type="classifier"), 230))
    assert [r.layer for r in rows[71:]] == ["AvgPool2d-72", "Dropout-73", "Linear-74"]
    assert compare_with_documented(rows) == []


def test_differences_from_documented():
    assert differences_from_documented(ModelSpec(), (3, 128, 128)) == []
    assert differences_from_documented(ModelSpec(arch="resnet34", layers=(2, 2, 2, 2)), (3, 128, 128)) == []
    diffs = differences_from_documented(ModelSpec(arch="resnet34", pooling="gem"), (3, 256, 128))
    assert diffs == [
        "layers 3,4,6,3 (documented: 2,2,2,2)",
        "pooling gem (documented: avg)",
        "input 3x256x128 (documented: 3x128x128)",
    ]


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
