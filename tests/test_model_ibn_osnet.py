"""IBN-a ResNet-50/101 and OSNet x1.0: shapes, parameter counts, IBN placement and arithmetic, one training step, inspect."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from reid.errors import ReidError
from reid.model import build_model
from reid.model.blocks import backbone_specs
from reid.model.builder import IBN
from reid.model.osnet import OSBlock
from reid.model.pretrained import imagenet_weights_path
from reid.spec import HeadSpec, ModelSpec

SIZE = (3, 64, 32)
NO_HEAD = HeadSpec(type="none")
#: Exact backbone parameter counts (no classifier): the README and `reid inspect` state them.
RESNET50_IBN_A = 23_508_032
RESNET101_IBN_A = 42_500_160
OSNET_X1_0 = 1_905_828
#: torchreid's osnet_x1_0 adds a 512→512 fc layer (Linear + BatchNorm1d) after pooling, then the classifier.
OSNET_FC = 512 * 512 + 512 + 2 * 512
IMAGENET_CLASSIFIER = 512 * 1000 + 1000


def backbone_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.backbone.parameters())


@pytest.mark.parametrize("arch, dim", [("resnet50_ibn_a", 2048), ("resnet101_ibn_a", 2048), ("osnet_x1_0", 512)])
def test_every_arch_builds_from_a_spec_and_embeds_at_64x32(arch, dim):
    model = build_model(ModelSpec(arch=arch), HeadSpec(type="bnneck"), num_classes=5, input_size=SIZE).eval()
    x = torch.randn(2, *SIZE)
    out = model(x)
    assert out["features"].shape == (2, dim) and out["logits"].shape == (2, 5)
    assert model.embed(x).shape == (2, dim) and model.embedding_dim == dim


def ibn_a_keys(arch: str) -> dict[str, tuple[int, ...]]:
    """torchvision's ResNet state dict (without fc) with every layer1–3 ``bn1`` split IBN-Net's way: IN on half, BN on the rest."""
    out = {}
    for key, value in getattr(torchvision.models, arch)().state_dict().items():
        stage = key.split(".")[0]
        if key.startswith("fc."):
            continue
        if stage in ("layer1", "layer2", "layer3") and key.split(".")[2] == "bn1":
            prefix, field = key.rsplit(".", 1)
            half = value.shape[0] // 2 if value.dim() else None
            if field in ("weight", "bias"):
                out[f"{prefix}.IN.{field}"] = (half,)
            out[f"{prefix}.BN.{field}"] = (value.shape[0] - half,) if value.dim() else ()
        else:
            out[key] = tuple(value.shape)
    return out


@pytest.mark.parametrize("arch, count", [("resnet50", RESNET50_IBN_A), ("resnet101", RESNET101_IBN_A)])
def test_ibn_a_keeps_torchvisions_count_and_uses_ibn_nets_parameter_names(arch, count):
    model = build_model(ModelSpec(arch=f"{arch}_ibn_a"), NO_HEAD, None, SIZE)
    reference = ibn_a_keys(arch)
    # IN(affine) on C/2 + BN on C/2 has as many weights and biases as BN on C: the count is torchvision's, without fc.
    assert backbone_params(model) == count == sum(
        p.numel() for k, p in getattr(torchvision.models, arch)().named_parameters() if not k.startswith("fc."))
    assert {k: tuple(v.shape) for k, v in model.backbone.state_dict().items()} == reference
    assert "layer1.0.bn1.IN.weight" in reference and "layer3.0.bn1.BN.running_mean" in reference


def test_ibn_layers_sit_in_stages_1_to_3_only_with_instance_norm_on_half_the_channels():
    backbone = build_model(ModelSpec(arch="resnet50_ibn_a"), NO_HEAD, None, SIZE).backbone
    for stage, width in zip(range(1, 5), (64, 128, 256, 512)):
        for block in getattr(backbone, f"layer{stage}"):
            if stage <= 3:
                assert isinstance(block.bn1, IBN) and block.bn1.half == width // 2
                assert block.bn1.IN.num_features == width // 2 and block.bn1.IN.affine
                assert block.bn1.BN.num_features == width - width // 2
            else:
                assert type(block.bn1) is nn.BatchNorm2d
    assert sum(isinstance(m, nn.InstanceNorm2d) for m in backbone.modules()) == 3 + 4 + 6
    assert [s.ibn for s in backbone_specs("resnet101_ibn_a")[2:6]] == [True, True, True, False]


def test_the_ibn_layer_is_instance_norm_on_the_first_half_next_to_batch_norm_on_the_rest():
    torch.manual_seed(0)
    ibn = IBN(6)
    for p in ibn.parameters():
        nn.init.normal_(p)
    x = torch.randn(4, 6, 5, 3) * 3 + 1
    in_w, in_b, bn_w, bn_b = ibn.IN.weight, ibn.IN.bias, ibn.BN.weight, ibn.BN.bias
    expected = torch.cat((F.instance_norm(x[:, :3], weight=in_w, bias=in_b),
                          F.batch_norm(x[:, 3:], None, None, bn_w, bn_b, training=True)), dim=1)
    torch.testing.assert_close(ibn.train()(x), expected)
    # eval: BN uses the running statistics it just updated, IN still the sample's own
    expected = torch.cat((F.instance_norm(x[:, :3], weight=in_w, bias=in_b),
                          F.batch_norm(x[:, 3:], ibn.BN.running_mean, ibn.BN.running_var, bn_w, bn_b, training=False)), dim=1)
    torch.testing.assert_close(ibn.eval()(x), expected)


def osnet_count_by_hand(channels=(64, 256, 384, 512), blocks=2) -> int:
    """OSNet x1.0 counted layer by layer from the paper / torchreid's description, independently of the module code."""
    conv_bn = lambda cin, cout, k=1: cin * cout * k * k + 2 * cout  # noqa: E731  conv (no bias) + BN
    lite = lambda c: c * c + 9 * c + 2 * c  # noqa: E731  1×1 conv, depthwise 3×3, BN

    def osblock(cin, cout):
        mid = cout // 4
        gate = mid * (mid // 16) + mid // 16 + (mid // 16) * mid + mid
        return conv_bn(cin, mid) + 10 * lite(mid) + gate + conv_bn(mid, cout) + (conv_bn(cin, cout) if cin != cout else 0)

    total = conv_bn(3, channels[0], 7)
    for i, (cin, cout) in enumerate(zip(channels[:-1], channels[1:])):
        total += osblock(cin, cout) + (blocks - 1) * osblock(cout, cout)
        total += conv_bn(cout, cout) if i < 2 else 0  # transitions after conv2 and conv3
    return total + conv_bn(channels[-1], channels[-1])  # conv5


def test_osnet_parameter_count_is_the_published_2_2_m():
    model = build_model(ModelSpec(arch="osnet_x1_0"), NO_HEAD, None, SIZE)
    assert backbone_params(model) == osnet_count_by_hand() == OSNET_X1_0
    # torchreid's model zoo counts without the classifier (its resnet50 row is 23.5 M): backbone + fc = 2.2 M
    assert OSNET_X1_0 + OSNET_FC == 2_169_508 and round((OSNET_X1_0 + OSNET_FC) / 1e6, 1) == 2.2
    # with the 1000-class ImageNet classifier on top of that fc layer
    assert OSNET_X1_0 + OSNET_FC + IMAGENET_CLASSIFIER == 2_682_508


def test_osnet_uses_torchreids_parameter_names_and_a_16x_smaller_map():
    backbone = build_model(ModelSpec(arch="osnet_x1_0"), NO_HEAD, None, (3, 256, 128)).backbone
    keys = backbone.state_dict()
    for key in ("conv1.conv.weight", "conv1.bn.running_var", "conv2.0.conv1.conv.weight", "conv2.0.conv2a.conv1.weight",
                "conv2.0.conv2a.conv2.weight", "conv2.0.conv2d.3.bn.weight", "conv2.0.gate.fc1.bias", "conv2.0.gate.fc2.weight",
                "conv2.0.conv3.bn.bias", "conv2.0.downsample.conv.weight", "conv2.2.0.conv.weight", "conv3.2.0.bn.weight",
                "conv4.1.conv3.conv.weight", "conv5.conv.weight", "conv5.bn.num_batches_tracked"):
        assert key in keys, key
    assert not any(k.startswith(("conv2.1.downsample", "conv4.1.downsample", "conv4.2")) for k in keys)
    assert keys["conv2.0.conv2a.conv2.weight"].shape == (64, 1, 3, 3)  # depthwise
    assert [type(b) for b in backbone.conv4] == [OSBlock, OSBlock] and backbone.feature_size == (16, 8)


def test_osnet_refuses_options_that_do_not_apply_and_imagenet_weights_are_not_offered():
    with pytest.raises(ReidError) as err:
        build_model(ModelSpec(arch="osnet_x1_0", last_stride=2), NO_HEAD, None, SIZE)
    assert err.value.where == "model.last_stride" and "1/16" in err.value.what
    with pytest.raises(ReidError) as err:
        build_model(ModelSpec(arch="osnet_x1_0", layers=(1, 1, 1, 1)), NO_HEAD, None, SIZE)
    assert err.value.where == "model.layers"
    with pytest.raises(ReidError) as err:
        build_model(ModelSpec(arch="osnet_x1_0"), NO_HEAD, None, (3, 8, 8))
    assert "too small" in err.value.what
    with pytest.raises(ReidError, match="not a block-spec ResNet"):
        backbone_specs("osnet_x1_0")
    with pytest.raises(ReidError) as err:
        imagenet_weights_path("osnet_x1_0")
    assert err.value.what == "ImageNet weights for osnet_x1_0 are not offered yet" and "model.pretrained" in err.value.fix
    with pytest.raises(ReidError, match="not offered yet"):
        build_model(ModelSpec(arch="osnet_x1_0", pretrained="imagenet"), NO_HEAD, None, SIZE)


@pytest.mark.parametrize("arch, watched", [("resnet50_ibn_a", "backbone.layer1.0.bn1.IN.weight"),
                                           ("osnet_x1_0", "backbone.conv2.0.conv2a.conv1.weight")])
def test_each_arch_trains_one_optimizer_step(arch, watched):
    torch.manual_seed(0)
    model = build_model(ModelSpec(arch=arch), HeadSpec(type="bnneck"), num_classes=3, input_size=SIZE).train()
    before = dict(model.named_parameters())[watched].detach().clone()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loss = F.cross_entropy(model(torch.randn(4, *SIZE))["logits"], torch.tensor([0, 1, 2, 0]))
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss) and not torch.equal(dict(model.named_parameters())[watched], before)


def test_inspect_prints_the_ibn_a_table_and_total(run_cli):
    code, out = run_cli("inspect", "--params", "--arch", "resnet50_ibn_a")
    assert code == 0, out
    assert "Total params: 23,508,032" in out and "InstanceNorm2d-6" in out and "[-1, 32, 32, 32]" in out
    assert "ibn layer1,layer2,layer3 (documented: none)" in out


def test_inspect_prints_the_osnet_table_and_total(run_cli):
    code, out = run_cli("inspect", "--params", "--arch", "osnet_x1_0", "--input", "3x256x128")
    assert code == 0, out
    assert "Total params: 1,905,828" in out and "Sigmoid-16" in out and "OSBlock-" in out
    assert "final feature map 16x8" in out and "[-1, 512, 16, 8]" in out
