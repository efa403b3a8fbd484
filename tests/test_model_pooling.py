"""The core model's global pooling: adaptive (any map size), registered without arguments, weights unchanged."""

import hashlib

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from reid.model import build_model
from reid.model.pooling import GeM
from reid.model.summary import layer_table
from reid.registry import POOLINGS
from reid.spec import HeadSpec, ModelSpec

NO_HEAD = HeadSpec(type="none")


@pytest.mark.parametrize("kind, module", [("avg", nn.AdaptiveAvgPool2d), ("max", nn.AdaptiveMaxPool2d), ("gem", GeM)])
def test_poolings_are_registered_without_a_geometry(kind, module):
    assert type(POOLINGS.get(kind)()) is module


@settings(max_examples=25, deadline=None)
@given(kind=st.sampled_from(["avg", "max", "gem"]), h=st.integers(1, 12), w=st.integers(1, 12), seed=st.integers(0, 1000))
def test_global_pooling_pools_the_whole_map_whatever_its_size(kind, h, w, seed):
    pool = POOLINGS.get(kind)()
    x = torch.rand(2, 3, h, w, generator=torch.Generator().manual_seed(seed)) + 0.1
    direct = {"avg": lambda m: m.mean((2, 3)), "max": lambda m: m.amax((2, 3)),
              "gem": lambda m: m.pow(3).mean((2, 3)).pow(1 / 3)}[kind]
    with torch.no_grad():
        torch.testing.assert_close(pool(x).flatten(1), direct(x), rtol=1e-5, atol=1e-6)


def test_the_core_model_pools_adaptively_and_embeds_other_sizes():
    """Built for 128×128, the model embeds 256×128 too, and its own layer table names the adaptive pool."""
    model = build_model(ModelSpec(), NO_HEAD, None, (3, 128, 128)).eval()
    assert isinstance(model.backbone.pool, nn.AdaptiveAvgPool2d) and model.backbone.pool.output_size == 1
    rows = layer_table(model)
    assert (len(rows), rows[-1].layer, rows[-1].output_shape) == (72, "AdaptiveAvgPool2d-72", [-1, 512, 1, 1])
    with torch.no_grad():
        assert model.embed(torch.randn(2, 3, 256, 128)).shape == (2, 512)


@pytest.mark.parametrize("arch, layers, pooling", [("resnet18", (1, 1, 1, 1), "avg"), ("resnet18", (1, 1, 1, 1), "max"),
                                                   ("resnet18", (1, 1, 1, 1), "gem"), ("osnet_x1_0", None, "gem"),
                                                   ("timm:resnet10t", None, "avg")])
def test_a_model_built_for_one_size_embeds_another(arch, layers, pooling):
    model = build_model(ModelSpec(arch=arch, layers=layers, pooling=pooling), NO_HEAD, None, (3, 64, 32)).eval()
    with torch.no_grad():
        assert model.embed(torch.randn(2, 3, 128, 64)).shape == model.embed(torch.randn(2, 3, 64, 32)).shape == (2, 512)


def test_at_the_built_size_a_model_embeds_as_with_the_fixed_kernel():
    model = build_model(ModelSpec(layers=(1, 1, 1, 1)), NO_HEAD, None, (3, 64, 32)).eval()
    x = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        fixed = nn.AvgPool2d(model.backbone.feature_size, stride=1)(model.backbone.feature_map(x)).flatten(1)
        torch.testing.assert_close(model.embed(x), fixed, rtol=0, atol=1e-6)


# The state-dict keys (count, sha256 of the newline-joined keys) of models built while the global pool was a
# fixed-kernel AvgPool2d / MaxPool2d subclass with no parameters or buffers, as the adaptive pools have none:
# checkpoints written then load as they are.
KEYS_BEFORE = {"resnet18/avg": (126, "3ce7ff3a47ba6f81"), "resnet18/max": (126, "3ce7ff3a47ba6f81"),
               "resnet18/gem": (127, "ae9f7497323f859a"), "osnet_x1_0/avg": (564, "c3f6b534d82c4bdf"),
               "resnet50_ibn_a/avg": (350, "83375035ad7229d9")}


@pytest.mark.parametrize("arch, pooling", [k.split("/") for k in KEYS_BEFORE])
def test_state_dicts_keep_their_keys(arch, pooling):
    model = build_model(ModelSpec(arch=arch, pooling=pooling), HeadSpec(type="bnneck"), 10)
    keys = list(model.state_dict())
    assert (len(keys), hashlib.sha256("\n".join(keys).encode()).hexdigest()[:16]) == KEYS_BEFORE[f"{arch}/{pooling}"]
    if pooling != "gem":  # the fixed-kernel pool of before holds nothing either: strict loading works both ways
        fixed = build_model(ModelSpec(arch=arch, pooling=pooling), HeadSpec(type="bnneck"), 10)
        fixed.backbone.pool = (nn.AvgPool2d if pooling == "avg" else nn.MaxPool2d)(fixed.backbone.feature_size, stride=1)
        fixed.load_state_dict(model.state_dict())
        model.load_state_dict(fixed.state_dict())
