"""The margin classifiers (CosFace, ArcFace, circle) against their papers' formulas, written out element by element."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from reid.model import build_model
from reid.model.classifiers import CLASSIFIERS, build_classifier
from reid.spec import HeadSpec, ModelSpec


def _cosines(features: torch.Tensor, weight: torch.Tensor) -> list[list[float]]:
    """cos θ_ij between feature i and class row j, one dot product at a time in float64."""
    out = []
    for f in features.double():
        row = []
        for w in weight.double():
            row.append(float(f @ w / (f.norm() * w.norm())))
        out.append(row)
    return out


def _cosface(cos: float, target: bool, s: float, m: float) -> float:
    return s * (cos - m) if target else s * cos


def _arcface(cos: float, target: bool, s: float, m: float) -> float:
    if not target:
        return s * cos
    theta = math.acos(max(-1.0, min(1.0, cos)))
    return s * math.cos(theta + m) if theta + m <= math.pi else s * (cos - m * math.sin(m))


def _circle(cos: float, target: bool, s: float, m: float) -> float:
    if target:
        return s * max(0.0, 1 + m - cos) * (cos - (1 - m))
    return s * max(0.0, cos + m) * (cos - m)


DIRECT = {"cosface": _cosface, "arcface": _arcface, "circle": _circle}


@settings(max_examples=40, deadline=None)
@given(kind=st.sampled_from(sorted(DIRECT)), seed=st.integers(0, 2**31 - 1), batch=st.integers(1, 6),
       classes=st.integers(2, 7), dim=st.integers(2, 9), scale=st.floats(1.0, 64.0), margin=st.floats(0.0, 0.8))
def test_margin_logits_equal_the_direct_formula(kind, seed, batch, classes, dim, scale, margin):
    g = torch.Generator().manual_seed(seed)
    layer = build_classifier(HeadSpec(classifier=kind, scale=scale, margin=margin), dim, classes).double()
    with torch.no_grad():
        layer.weight.copy_(torch.randn(classes, dim, generator=g, dtype=torch.float64))
    features = torch.randn(batch, dim, generator=g, dtype=torch.float64)
    pids = torch.randint(0, classes, (batch,), generator=g)
    cos = _cosines(features, layer.weight.detach())
    want = torch.tensor([[DIRECT[kind](c, j == int(y), scale, margin) for j, c in enumerate(row)]
                         for row, y in zip(cos, pids)], dtype=torch.float64)
    torch.testing.assert_close(layer(features, pids), want, rtol=1e-9, atol=1e-7 * scale)
    plain = torch.tensor([[scale * c for c in row] for row in cos], dtype=torch.float64)
    torch.testing.assert_close(layer(features), plain, rtol=1e-9, atol=1e-9 * scale)  # no identities: no margin


def test_arcface_takes_the_published_fallback_past_pi():
    """A target at θ = 170° with m = 0.5 rad: θ + m > π, so the logit is s·(cos θ − m·sin m), not s·cos(θ + m)."""
    layer = build_classifier(HeadSpec(classifier="arcface", scale=1.0, margin=0.5), 2, 2).double()
    theta = math.radians(170)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64))
    logits = layer(torch.tensor([[math.cos(theta), math.sin(theta)]], dtype=torch.float64), torch.tensor([0]))
    assert float(logits[0, 0].detach()) == pytest.approx(math.cos(theta) - 0.5 * math.sin(0.5))


def test_circle_weights_carry_no_gradient():
    """Circle loss's α_p and α_n are constants for back-propagation (as in the paper and fast-reid)."""
    layer = build_classifier(HeadSpec(classifier="circle", scale=2.0, margin=0.25), 3, 1).double()
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64))
    x = torch.tensor([[0.6, 0.8, 0.0]], dtype=torch.float64, requires_grad=True)
    layer(x, torch.tensor([0]))[0, 0].backward()
    cos = 0.6  # d/dcos of s·α_p·(cos − (1 − m)) with α_p fixed = s·α_p; d cos/dx for unit x = w − cos·x
    alpha = 1 + 0.25 - cos
    torch.testing.assert_close(x.grad, 2.0 * alpha * (torch.tensor([[1.0, 0, 0]], dtype=torch.float64) - cos * x.detach()))


@pytest.mark.parametrize("kind", ["linear", "cosface", "arcface", "circle"])
@pytest.mark.parametrize("head", ["classifier", "bnneck"])
def test_every_classifier_fits_every_head_and_keeps_its_kind_when_replaced(kind, head):
    model = build_model(ModelSpec(layers=(1, 1, 1, 1)), HeadSpec(type=head, classifier=kind), 5, (3, 32, 32))
    out = model(torch.rand(2, 3, 32, 32), torch.tensor([0, 4]))
    assert out["logits"].shape == (2, 5) and sorted(model.state_dict()).count("head.classifier.weight") == 1
    model.replace_classifier(9)
    assert type(model.head.classifier) is type(CLASSIFIERS.get(kind)(HeadSpec(classifier=kind), 4, 2, False))
    assert model(torch.rand(2, 3, 32, 32))["logits"].shape == (2, 9)


def test_without_an_id_term_the_model_computes_no_logits_and_freezes_what_only_that_term_trains():
    model = build_model(ModelSpec(layers=(1, 1, 1, 1)), HeadSpec(type="bnneck"), 5, (3, 32, 32))
    model.train_without_classifier()
    assert model(torch.rand(2, 3, 32, 32))["logits"] is None
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen == {"head.neck.weight", "head.neck.bias", "head.classifier.weight"}
