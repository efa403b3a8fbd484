"""Layer table vs the documented assignment table, totals and the first block's parameters."""

import pytest

from reid.model import build_model
from reid.model.summary import (
    compare_with_documented,
    differences_from_documented,
    first_block,
    format_shape,
    layer_table,
    load_documented_table,
    totals,
)
from reid.spec import HeadSpec, ModelSpec

NO_HEAD = HeadSpec(type="none")


@pytest.fixture(scope="module")
def documented_rows():
    return layer_table(build_model(ModelSpec(), NO_HEAD, None))


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


def test_totals_of_the_documented_network():
    t = totals(build_model(ModelSpec(), NO_HEAD, None))
    assert (t.total, t.trainable, t.non_trainable, t.backbone, t.head) == (11_176_512, 11_176_512, 0, 11_176_512, 0)


def test_q4_first_residual_block(documented_rows):
    block = first_block(documented_rows)
    assert block.block == "ResBlock-12"
    assert [r.layer for r in block.rows] == [
        "Conv2d-5", "BatchNorm2d-6", "ReLU-7", "Conv2d-8", "BatchNorm2d-9", "Identity-10", "ReLU-11"
    ]
    assert block.params == 73_984 == 2 * (64 * 64 * 9) + 2 * 128


def test_projection_blocks_list_shortcut_after_second_bn(documented_rows):
    names = [r.layer.split("-")[0] for r in documented_rows[20:29]]
    assert names == ["Conv2d", "BatchNorm2d", "ReLU", "Conv2d", "BatchNorm2d", "Conv2d", "BatchNorm2d", "ReLU", "ResBlock"]


def test_altered_model_mismatches_name_rows():
    rows = layer_table(build_model(ModelSpec(last_stride=2), NO_HEAD, None))
    mismatches = compare_with_documented(rows)
    first = mismatches[0]
    assert (first.row, first.layer, first.field) == (55, "Conv2d-55", "output_shape")
    assert (first.expected, first.got) == ("[-1, 512, 8, 8]", "[-1, 512, 4, 4]")
    shorter = compare_with_documented(layer_table(build_model(ModelSpec(layers=(2, 2, 2, 1)), NO_HEAD, None)))
    assert shorter[0].row == 64 and shorter[-1].field == "row" and shorter[-1].got == "(none)"


def test_head_rows_follow_and_are_not_compared():
    rows = layer_table(build_model(ModelSpec(), HeadSpec(type="classifier"), 230))
    assert [r.layer for r in rows[72:]] == ["Dropout-73", "Linear-74"]
    assert rows[-1].params == 512 * 230 + 230 and rows[-1].part == "head"
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


def test_format_shape():
    assert format_shape([-1, 512, 1, 1]) == "[-1, 512, 1, 1]"
