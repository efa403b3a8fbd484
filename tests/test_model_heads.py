"""Heads and the ReidModel contract used by the training engine."""

import pytest
import torch

from reid.errors import ReidError
from reid.model import ReidModel, build_model
from reid.model.heads import HEADS
from reid.spec import HeadSpec, ModelSpec

SMALL = (3, 32, 32)


def make(head: str, num_classes: int | None = 7, **kw) -> ReidModel:
    return build_model(ModelSpec(layers=(1, 1, 1, 1)), HeadSpec(type=head, **kw), num_classes, SMALL)


def test_registry_names():
    assert HEADS.names() == ["bnneck", "classifier", "none"]


def test_none_head_gives_features_only():
    model = make("none", None)
    out = model(torch.rand(3, *SMALL))
    assert out["logits"] is None and out["features"].shape == (3, 512)
    model.eval()
    assert torch.equal(model.embed(torch.ones(2, *SMALL)), model(torch.ones(2, *SMALL))["features"])
    with pytest.raises(ReidError, match="no classifier"):
        model.replace_classifier(3)


def test_classifier_head_logits_and_dropout():
    model = make("classifier", 7, dropout=0.5, bias=False)
    out = model(torch.rand(4, *SMALL))
    assert out["logits"].shape == (4, 7) and model.head.classifier.bias is None
    model.eval()
    x = torch.rand(2, *SMALL)
    assert torch.equal(model.embed(x), model(x)["features"])  # retrieval uses the pooled embedding
    assert torch.equal(model(x)["logits"], model(x)["logits"])  # dropout off in eval
    model.replace_classifier(11)
    assert model(x)["logits"].shape == (2, 11) and model.num_classes == 11


def test_bnneck_head_is_the_strong_baseline_recipe():
    model = make("bnneck", 5)
    head = model.head
    assert head.neck.bias.requires_grad is False and head.classifier.bias is None
    out = model(torch.rand(4, *SMALL))
    assert out["logits"].shape == (4, 5)
    model.eval()
    x = torch.rand(2, *SMALL)
    features = model(x)["features"]
    assert torch.allclose(model.embed(x), head.neck(features))  # post-BN feature for retrieval
    assert not torch.allclose(model.embed(x), features)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert sum(p.numel() for p in model.parameters()) - trainable == 512


def test_bnneck_head_can_embed_with_the_features_before_the_neck():
    """``neck_feature = "before"`` (BoT's TEST.NECK_FEAT): retrieval gets the pooled features, while the classifier
    still sees the post-BN ones — the same logits as the default head with the same weights."""
    after, before = make("bnneck", 5), make("bnneck", 5, neck_feature="before")
    before.load_state_dict(after.state_dict())
    x = torch.rand(4, *SMALL)
    assert torch.equal(after(x)["logits"], before(x)["logits"])
    for model in (after, before):
        model.eval()
    features = before(x)["features"]
    assert torch.allclose(before.embed(x), features) and torch.allclose(after.embed(x), after.head.neck(features))


@pytest.mark.parametrize("head", ["classifier", "bnneck"])
def test_classifier_heads_need_classes(head):
    with pytest.raises(ReidError, match="classes"):
        make(head, None)
