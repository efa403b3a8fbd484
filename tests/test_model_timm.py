"""timm backbones (``arch = "timm:<name>"``): built without a classifier, reid pooling and heads, last stride 1
where timm can, one clear error where it cannot, weights from timm / files / runs, and a few training steps."""

import logging
import math

import pytest
import timm
import torch
from torch import nn

from reid.engine.experiment import run_experiment
from reid.engine.rundir import RunDir
from reid.errors import ReidError
from reid.model import build_model
from reid.model.timm_backbone import TimmBackbone
from reid.spec import HeadSpec, ModelSpec, load_spec_text
from tiny_specs import FP32_DETERMINISTIC, TINY_DATA

NO_HEAD = HeadSpec(type="none")


def timm_model(name: str, size=(3, 64, 64), head=NO_HEAD, classes=None, **model):
    return build_model(ModelSpec(arch=f"timm:{name}", **model), head, classes, size)


@pytest.mark.parametrize("last_stride, side", [(1, 4), (2, 2)])
def test_resnet10t_is_a_feature_extractor_with_reid_pooling_and_head(last_stride, side):
    model = timm_model("resnet10t", head=HeadSpec(type="bnneck"), classes=7, last_stride=last_stride, pooling="gem")
    backbone = model.backbone
    assert isinstance(backbone, TimmBackbone) and backbone.feature_size == (side, side)
    assert model.embedding_dim == backbone.body.num_features == 512
    assert not any(isinstance(m, nn.Linear) for m in backbone.modules())  # timm's classifier is gone
    out = model(torch.rand(2, 3, 64, 64))
    assert out["features"].shape == (2, 512) and out["logits"].shape == (2, 7)


def test_embedding_dim_is_read_from_the_model():
    model = timm_model("efficientnet_b0", size=(3, 64, 32))
    assert model.embedding_dim == 1280 and model.backbone.feature_size == (4, 2)  # output_stride 16
    assert model.eval().embed(torch.rand(1, 3, 64, 32)).shape == (1, 1280)


def test_last_stride_1_without_timm_support_is_one_clear_error():
    with pytest.raises(ReidError) as err:
        timm_model("mobilenetv3_small_050")
    assert "cannot use last stride 1" in str(err.value) and "model.last_stride = 2" in str(err.value)
    assert timm_model("mobilenetv3_small_050", last_stride=2).backbone.feature_size == (2, 2)


def test_model_without_a_final_strided_stage_logs_a_note_and_token_models_are_refused(caplog):
    with caplog.at_level(logging.WARNING), pytest.raises(ReidError, match="not a B×192×H×W feature map"):
        timm_model("vit_tiny_patch16_224", size=(3, 224, 224))
    assert "no final strided stage" in caplog.text


def test_unknown_timm_name_suggests_close_ones():
    with pytest.raises(ReidError, match="timm has no model 'resnet10q'.*timm:resnet10t"):
        timm_model("resnet10q")


def test_timm_pretrained_weights_come_from_timm_and_offline_is_one_clear_error(monkeypatch):
    create = timm.create_model

    def offline(name, pretrained=False, **kwargs):
        if pretrained:
            raise OSError("We couldn't connect to 'https://huggingface.co'")
        return create(name, **kwargs)

    monkeypatch.setattr(timm, "create_model", offline)
    with pytest.raises(ReidError) as err:
        timm_model("resnet10t", pretrained="imagenet")
    assert "could not fetch timm's pretrained weights for 'resnet10t'" in str(err.value)
    assert "huggingface" in str(err.value) and 'pretrained = "none"' in str(err.value)

    monkeypatch.setattr(timm, "create_model", lambda name, pretrained=False, **kw: create(name, **kw))  # "online"
    report = timm_model("resnet10t", pretrained="imagenet").pretrained_report
    assert report.source == "timm pretrained weights (timm/resnet10t.c3_in1k)" and report.discarded == ["fc"]
    assert report.loaded and all(k.startswith("body.") for k in report.loaded)


def test_a_file_with_timm_names_loads_into_the_body(tmp_path):
    torch.manual_seed(0)
    source = timm.create_model("resnet10t", num_classes=5)
    torch.save(source.state_dict(), tmp_path / "resnet10t.pth")
    model = timm_model("resnet10t", pretrained=str(tmp_path / "resnet10t.pth"))
    report = model.pretrained_report
    assert report.complete and report.discarded == ["body.fc.weight", "body.fc.bias"]
    assert torch.equal(model.backbone.body.conv1[0].weight, source.conv1[0].weight)


TIMM_RUN = 'name = "timm-tiny"\nseed = 1\n' + TINY_DATA + FP32_DETERMINISTIC + """threads = 2
[model]
arch = "timm:resnet10t"
[head]
type = "bnneck"
[loss]
label_smoothing = 0.1
triplet_weight = 1.0
[sampler]
type = "pk"
p = 4
k = 4
[augment]
erase = 0.0
[schedule]
epochs = 2
warmup_epochs = 0
max_iters_per_epoch = 3
[eval]
batch_size = 64
"""


def test_timm_backbone_trains_in_the_engine_and_fine_tunes_from_its_run(tmp_path, monkeypatch):
    monkeypatch.setenv("REID_CACHE", str(tmp_path / "cache"))
    spec = load_spec_text(TIMM_RUN)
    summary = run_experiment(spec, tmp_path / "run", plain=True)
    iters = [r for r in RunDir(tmp_path / "run").read_metrics() if r["kind"] == "iter"]
    assert summary.epochs == 2 and len(iters) == 6
    assert all(math.isfinite(r["loss"]) for r in iters)
    assert summary.parameters == sum(p.numel() for p in timm_model("resnet10t", head=HeadSpec(type="bnneck"), classes=10).parameters())

    best = tmp_path / "run" / "checkpoints" / "best.pt"
    trained = torch.load(best, weights_only=True)["model"]
    model = timm_model("resnet10t", head=HeadSpec(type="bnneck"), classes=3, pretrained=str(tmp_path / "run"))
    assert model.pretrained_report.source == str(best) and model.pretrained_report.complete and model.num_classes == 3
    assert torch.equal(model.backbone.body.conv1[0].weight, trained["backbone.body.conv1.0.weight"])
