"""The core layer table: torchsummary-style rows, totals and the first block's parameters."""

import pytest

from reid.model import build_model
from reid.model.summary import first_block, format_shape, layer_table, totals
from reid.spec import HeadSpec, ModelSpec

NO_HEAD = HeadSpec(type="none")


@pytest.fixture(scope="module")
def rows():
    return layer_table(build_model(ModelSpec(), NO_HEAD, None))


def test_the_core_table_names_the_adaptive_pool(rows):
    assert len(rows) == 72 and (rows[0].layer, rows[0].output_shape, rows[0].params) == ("Conv2d-1", [-1, 64, 64, 64], 9408)
    assert (rows[-1].layer, rows[-1].module, rows[-1].output_shape, rows[-1].params) == (
        "AdaptiveAvgPool2d-72", "backbone.pool", [-1, 512, 1, 1], 0)


def test_totals_of_the_documented_network():
    t = totals(build_model(ModelSpec(), NO_HEAD, None))
    assert (t.total, t.trainable, t.non_trainable, t.backbone, t.head) == (11_176_512, 11_176_512, 0, 11_176_512, 0)


def test_q4_first_residual_block(rows):
    block = first_block(rows)
    assert block.block == "ResBlock-12"
    assert [r.layer for r in block.rows] == [
        "Conv2d-5", "BatchNorm2d-6", "ReLU-7", "Conv2d-8", "BatchNorm2d-9", "Identity-10", "ReLU-11"
    ]
    assert block.params == 73_984 == 2 * (64 * 64 * 9) + 2 * 128


def test_projection_blocks_list_shortcut_after_second_bn(rows):
    names = [r.layer.split("-")[0] for r in rows[20:29]]
    assert names == ["Conv2d", "BatchNorm2d", "ReLU", "Conv2d", "BatchNorm2d", "Conv2d", "BatchNorm2d", "ReLU", "ResBlock"]


def test_head_rows_follow():
    rows = layer_table(build_model(ModelSpec(), HeadSpec(type="classifier"), 230))
    assert [r.layer for r in rows[72:]] == ["Dropout-73", "Linear-74"]
    assert rows[-1].params == 512 * 230 + 230 and rows[-1].part == "head"


def test_format_shape():
    assert format_shape([-1, 512, 1, 1]) == "[-1, 512, 1, 1]"
