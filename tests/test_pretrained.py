"""Pretrained weights: torchvision state dicts map one to one, fc is discarded, bad files are ReidErrors."""

import pytest
import torch
import torchvision

from reid.errors import ReidError
from reid.model import build_model
from reid.model.pretrained import imagenet_weights_path, read_state_dict
from reid.spec import HeadSpec, ModelSpec

NO_HEAD = HeadSpec(type="none")


@pytest.fixture(scope="module")
def torchvision_state():
    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None).state_dict()


@pytest.fixture
def weights_file(tmp_path, torchvision_state):
    path = tmp_path / "resnet18.pth"
    torch.save(torchvision_state, path)
    return path


def assert_loaded_exactly(model, state, report):
    backbone = model.backbone.state_dict()
    assert report.loaded == list(backbone)  # every backbone tensor, buffers included
    assert report.missing == [] and report.shape_mismatches == [] and report.complete
    assert report.discarded == ["fc.weight", "fc.bias"]
    for key, value in backbone.items():
        assert torch.equal(value, state[key]), key


def test_torchvision_state_dict_loads_into_every_backbone_tensor(weights_file, torchvision_state):
    model = build_model(ModelSpec(pretrained=str(weights_file)), HeadSpec(type="classifier"), 5)
    assert_loaded_exactly(model, torchvision_state, model.pretrained_report)


def test_imagenet_reads_the_hub_cache_and_never_downloads(tmp_path, monkeypatch, torchvision_state):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    expected = tmp_path / "checkpoints" / "resnet18-f37072fd.pth"
    assert imagenet_weights_path("resnet18") == expected
    with pytest.raises(ReidError) as err:
        build_model(ModelSpec(pretrained="imagenet"), NO_HEAD, None)
    assert "resnet18-f37072fd.pth" in str(err.value) and str(expected.parent) in str(err.value)
    expected.parent.mkdir()
    torch.save(torchvision_state, expected)
    model = build_model(ModelSpec(pretrained="imagenet", last_stride=1), NO_HEAD, None)
    assert_loaded_exactly(model, torchvision_state, model.pretrained_report)


def test_wrapped_and_prefixed_state_dicts_are_unwrapped(tmp_path, torchvision_state):
    path = tmp_path / "ckpt.pt"
    torch.save({"state_dict": {"module." + k: v for k, v in torchvision_state.items()}, "epoch": 3}, path)
    assert set(read_state_dict(path)) == set(torchvision_state)


def test_shape_mismatches_and_missing_keys_are_reported(weights_file):
    model = build_model(ModelSpec(pretrained=str(weights_file), arch="resnet34"), NO_HEAD, None, (1, 64, 64))
    report = model.pretrained_report
    assert report.shape_mismatches == [("conv1.weight", (64, 3, 7, 7), (64, 1, 7, 7))]
    assert "layer1.2.conv1.weight" in report.missing and not report.complete
    assert all(not k.endswith("num_batches_tracked") for k in report.missing)


def test_none_loads_nothing():
    assert build_model(ModelSpec(pretrained="none"), NO_HEAD, None).pretrained_report is None


def test_missing_file_is_a_reid_error(tmp_path):
    with pytest.raises(ReidError, match="not found"):
        build_model(ModelSpec(pretrained=str(tmp_path / "nope.pth")), NO_HEAD, None)


@pytest.mark.parametrize("content", [b"this is not a checkpoint", b"PK\x03\x04broken zip"])
def test_corrupt_file_is_a_reid_error(tmp_path, content):
    path = tmp_path / "bad.pth"
    path.write_bytes(content)
    with pytest.raises(ReidError, match="cannot read weights"):
        build_model(ModelSpec(pretrained=str(path)), NO_HEAD, None)


def test_file_without_tensors_is_a_reid_error(tmp_path):
    path = tmp_path / "list.pth"
    torch.save([1, 2, 3], path)
    with pytest.raises(ReidError, match="state dict"):
        read_state_dict(path)


def test_reid_checkpoint_loads_backbone_and_discards_head(tmp_path):
    trained = build_model(ModelSpec(), HeadSpec(type="bnneck"), 4)
    path = tmp_path / "last.pt"
    torch.save({"model": trained.state_dict(), "epoch": 1}, path)
    model = build_model(ModelSpec(pretrained=str(path)), HeadSpec(type="classifier"), 9)
    report = model.pretrained_report
    assert report.complete and report.loaded == list(model.backbone.state_dict())
    assert report.discarded == [k for k in trained.state_dict() if k.startswith("head.")]
    assert torch.equal(model.backbone.conv1.weight, trained.backbone.conv1.weight)
