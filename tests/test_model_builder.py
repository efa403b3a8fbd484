"""The block-spec builder: shapes follow stride arithmetic, layouts, shortcuts, torchvision names."""

import math

import pytest
import torch
import torchvision
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from reid.errors import ReidError
from reid.model import build_model
from reid.model.blocks import StageSpec, backbone_specs, final_feature_size
from reid.model.builder import ResBlock, build_backbone
from reid.model.summary import layer_table
from reid.spec import HeadSpec, ModelSpec

NO_HEAD = HeadSpec(type="none")


def expected_map(size: int, total_stride: int) -> int:
    # Every conv / pool pads by kernel // 2, so each stride s maps n to ceil(n / s); the strides compose.
    return math.ceil(size / total_stride)


@settings(max_examples=12, deadline=None)
@given(
    h=st.integers(1, 80),
    w=st.integers(1, 80),
    layers=st.tuples(*[st.integers(1, 2)] * 4),
    last_stride=st.sampled_from([1, 2]),
)
def test_block_output_shapes_follow_stride_arithmetic(h, w, layers, last_stride):
    model = build_model(ModelSpec(layers=layers, last_stride=last_stride), NO_HEAD, None, (3, h, w))
    rows = layer_table(model, batch_size=1)
    stage_strides = [4, 8, 16, 16 * last_stride]
    stage_channels = [64, 128, 256, 512]
    blocks = [r for r in rows if r.layer.startswith("ResBlock")]
    assert len(blocks) == sum(layers)
    stage_of_block = [i for i, n in enumerate(layers) for _ in range(n)]
    for row, stage in zip(blocks, stage_of_block):
        s = stage_strides[stage]
        assert row.output_shape == [-1, stage_channels[stage], expected_map(h, s), expected_map(w, s)]
    assert model.backbone.feature_size == (expected_map(h, 16 * last_stride), expected_map(w, 16 * last_stride))
    assert rows[-1].output_shape == [-1, 512, 1, 1]
    assert model.eval()(torch.zeros(1, 3, h, w))["features"].shape == (1, 512)


def test_default_is_the_assignment_network():
    model = build_model(ModelSpec(), NO_HEAD, None)
    assert model.backbone.feature_size == (8, 8)
    assert model.embedding_dim == 512
    pool = model.backbone.pool
    assert isinstance(pool, nn.AvgPool2d) and pool.kernel_size == (8, 8)
    assert sum(p.numel() for p in model.parameters()) == 11_176_512


def test_resnet34_256x128_last_stride_2_builds_from_the_same_code():
    model = build_model(ModelSpec(arch="resnet34", last_stride=2), NO_HEAD, None, (3, 256, 128))
    assert [len(getattr(model.backbone, f"layer{i}")) for i in range(1, 5)] == [3, 4, 6, 3]
    assert model.backbone.feature_size == (8, 4)
    assert model.backbone.pool.kernel_size == (8, 4)
    assert model(torch.zeros(2, 3, 256, 128))["features"].shape == (2, 512)
    assert {type(m) for m in model.backbone.modules() if not list(m.children())} <= {
        nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d, nn.Identity, nn.AvgPool2d
    }


def test_layers_override_arch_and_stage_specs_carry_strides():
    specs = backbone_specs("resnet34", layers=(1, 1, 1, 1), last_stride=2)
    stages = [s for s in specs if isinstance(s, StageSpec)]
    assert [(s.channels, s.blocks, s.stride) for s in stages] == [(64, 1, 1), (128, 1, 2), (256, 1, 2), (512, 1, 2)]
    assert final_feature_size(specs, (256, 128)) == (8, 4)


def test_shortcut_is_identity_when_shapes_match_and_projection_otherwise():
    assert isinstance(ResBlock(64, 64, 1).downsample, nn.Identity)
    for block in (ResBlock(64, 128, 2), ResBlock(256, 512, 1)):
        conv, bn = block.downsample
        assert conv.kernel_size == (1, 1) and isinstance(bn, nn.BatchNorm2d)


def test_state_dict_names_match_torchvision_resnet18_without_fc():
    ours = build_backbone(backbone_specs("resnet18")).state_dict()
    theirs = torchvision.models.resnet18(weights=None).state_dict()
    expected = {k: tuple(v.shape) for k, v in theirs.items() if not k.startswith("fc.")}
    assert {k: tuple(v.shape) for k, v in ours.items()} == expected


@pytest.mark.parametrize("pooling, module", [("max", nn.MaxPool2d), ("gem", nn.Module)])
def test_other_global_poolings_give_the_embedding(pooling, module):
    model = build_model(ModelSpec(pooling=pooling), NO_HEAD, None, (3, 64, 32))
    assert isinstance(model.backbone.pool, module)
    assert model(torch.rand(2, 3, 64, 32))["features"].shape == (2, 512)


@pytest.mark.parametrize("size", [(3, 0, 5), (3, 128), (0, 128, 128)])
def test_bad_input_size_is_a_reid_error(size):
    with pytest.raises(ReidError, match="input size"):
        build_model(ModelSpec(), NO_HEAD, None, size)


def test_bad_layers_are_a_reid_error():
    with pytest.raises(ReidError, match="layers"):
        backbone_specs(layers=(2, 2, 0, 2))
