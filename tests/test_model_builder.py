"""The block-spec builder: shapes follow stride arithmetic, layouts, shortcuts, torchvision names and outputs
(ResNet-18 … 152, BasicBlock and Bottleneck)."""

import math

import pytest
import torch
import torchvision
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from torch import nn

from reid.errors import ReidError
from reid.model import build_model
from reid.model.blocks import StageSpec, backbone_specs, embedding_dim, final_feature_size
from reid.registry import ARCHS
from reid.model.builder import Bottleneck, ResBlock, build_backbone
from reid.model.pooling import GeM
from reid.model.pretrained import load_state_dict_into
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
    arch=st.sampled_from(["resnet18", "resnet50"]),
)
def test_block_output_shapes_follow_stride_arithmetic(h, w, layers, last_stride, arch):
    model = build_model(ModelSpec(arch=arch, layers=layers, last_stride=last_stride), NO_HEAD, None, (3, h, w))
    rows = layer_table(model, batch_size=1)
    stage_strides = [4, 8, 16, 16 * last_stride]
    expansion = 4 if arch == "resnet50" else 1
    stage_channels = [64 * expansion, 128 * expansion, 256 * expansion, 512 * expansion]
    blocks = [r for r in rows if r.layer.startswith(("ResBlock", "Bottleneck"))]
    assert len(blocks) == sum(layers)
    stage_of_block = [i for i, n in enumerate(layers) for _ in range(n)]
    for row, stage in zip(blocks, stage_of_block):
        s = stage_strides[stage]
        assert row.output_shape == [-1, stage_channels[stage], expected_map(h, s), expected_map(w, s)]
    assert model.backbone.feature_size == (expected_map(h, 16 * last_stride), expected_map(w, 16 * last_stride))
    assert rows[-1].output_shape == [-1, stage_channels[-1], 1, 1]
    assert model.eval()(torch.zeros(1, 3, h, w))["features"].shape == (1, stage_channels[-1])


def test_default_is_the_assignment_network():
    model = build_model(ModelSpec(), NO_HEAD, None)
    assert model.backbone.feature_size == (8, 8)
    assert model.embedding_dim == 512
    assert isinstance(model.backbone.pool, nn.AdaptiveAvgPool2d)  # global: any map size (the 8×8 kernel is the assignment's view)
    assert sum(p.numel() for p in model.parameters()) == 11_176_512


def test_resnet34_256x128_last_stride_2_builds_from_the_same_code():
    model = build_model(ModelSpec(arch="resnet34", last_stride=2), NO_HEAD, None, (3, 256, 128))
    assert [len(getattr(model.backbone, f"layer{i}")) for i in range(1, 5)] == [3, 4, 6, 3]
    assert model.backbone.feature_size == (8, 4)
    assert model(torch.zeros(2, 3, 256, 128))["features"].shape == (2, 512)
    leaves = (nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d, nn.Identity, nn.AdaptiveAvgPool2d)
    assert all(isinstance(m, leaves) for m in model.backbone.modules() if not list(m.children()))


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


@pytest.mark.parametrize("pooling, module", [("max", nn.AdaptiveMaxPool2d), ("gem", GeM)])
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


@pytest.fixture(scope="module")
def torchvision_resnet50():
    torch.manual_seed(0)
    net = torchvision.models.resnet50(weights=None)
    with torch.no_grad():  # non-trivial BN statistics, so eval-mode outputs depend on every buffer
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
    return net.eval()


def test_resnet50_has_torchvisions_names_shapes_and_parameter_count(torchvision_resnet50):
    backbone = build_backbone(backbone_specs("resnet50"))
    theirs = {k: tuple(v.shape) for k, v in torchvision_resnet50.state_dict().items() if not k.startswith("fc.")}
    assert {k: tuple(v.shape) for k, v in backbone.state_dict().items()} == theirs
    assert sum(p.numel() for p in backbone.parameters()) == 23_508_032  # torchvision's 25,557,032 minus fc's 2,049,000
    assert isinstance(backbone.layer1[0], Bottleneck) and backbone.embedding_dim == 2048


def test_resnet50_with_torchvision_weights_gives_torchvisions_features(torchvision_resnet50):
    model = build_model(ModelSpec(arch="resnet50", last_stride=2), NO_HEAD, None, (3, 64, 32)).eval()
    report = load_state_dict_into(model.backbone, torchvision_resnet50.state_dict(), "torchvision")
    assert report.complete and report.discarded == ["fc.weight", "fc.bias"]
    trunk = nn.Sequential(*list(torchvision_resnet50.children())[:-1], nn.Flatten())  # everything but fc
    x = torch.randn(2, 3, 64, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours, theirs = model(x)["features"], trunk(x)
    assert ours.shape == (2, 2048)
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-5)


def test_resnet50_last_stride_1_gives_a_16x8_map_at_256x128():
    model = build_model(ModelSpec(arch="resnet50", last_stride=1), NO_HEAD, None, (3, 256, 128)).eval()
    seen = {}

    def record(module, inputs, out) -> None:
        seen["layer4"] = tuple(out.shape)

    model.backbone.layer4.register_forward_hook(record)
    with torch.no_grad():
        features = model(torch.zeros(1, 3, 256, 128))["features"]
    assert seen["layer4"] == (1, 2048, 16, 8) and model.backbone.feature_size == (16, 8)
    assert features.shape == (1, 2048)
    assert model.backbone.layer4[0].conv2.stride == (1, 1) and model.backbone.layer4[0].downsample[0].stride == (1, 1)


@pytest.mark.parametrize("arch, blocks", [("resnet101", (3, 4, 23, 3)), ("resnet152", (3, 8, 36, 3))])
def test_deeper_resnets_are_data_too(arch, blocks):
    specs = backbone_specs(arch)
    stages = [s for s in specs if isinstance(s, StageSpec)]
    assert tuple(s.blocks for s in stages) == blocks and {s.block for s in stages} == {"bottleneck"}
    assert embedding_dim(specs) == 2048 and final_feature_size(specs, (256, 128)) == (16, 8)


def test_layers_override_counts_but_keep_the_block_kind():
    model = build_model(ModelSpec(arch="resnet50", layers=(1, 1, 1, 1)), NO_HEAD, None, (3, 32, 32))
    assert [type(getattr(model.backbone, f"layer{i}")[0]) for i in range(1, 5)] == [Bottleneck] * 4
    assert model(torch.zeros(2, 3, 32, 32))["features"].shape == (2, 2048)


def test_every_layout_is_an_arch_the_spec_accepts_and_unknown_archs_list_them():
    for name in ARCHS.names():
        assert ModelSpec(arch=name).arch == name
    with pytest.raises(ValidationError) as err:
        ModelSpec(arch="resnet99")
    assert all(name in str(err.value) for name in ARCHS.names()) and "timm:<name>" in str(err.value)


def test_a_layout_registered_from_user_code_is_an_arch_the_spec_accepts():
    from reid.model.blocks import Layout

    if "tiny-resnet" not in ARCHS:
        ARCHS.register("tiny-resnet")(lambda: Layout("basic", (1, 1, 1, 1)))
    model = build_model(ModelSpec(arch="tiny-resnet"), NO_HEAD, None, (3, 32, 32))
    assert len(model.backbone.layer1) == 1 and model(torch.zeros(1, 3, 32, 32))["features"].shape == (1, 512)
