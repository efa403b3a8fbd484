"""Evaluation embeds in fp32 by default, whatever the run trains in; pooling and the BN neck stay fp32 under autocast."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from reid.api.loaded import LoadedModel
from reid.data import build_data
from reid.data.preprocess import Preprocess
from reid.engine.checkpoint import ModelCheckpoint
from reid.engine.evaluation import evaluate_model
from reid.engine.runtime import Runtime, bf16_supported, evaluation_runtime
from reid.errors import ReidError
from reid.evaluation import Evaluator
from reid.model import build_model
from reid.spec import EvalSpec, HeadSpec, ModelSpec, load_spec_text
from tiny_specs import TINY_DATA

CPU = torch.device("cpu")
BF16 = Runtime(CPU, torch.bfloat16, channels_last=False)  # what a bf16 ("auto" on a bf16 machine) run trains in
FP32 = Runtime(CPU, None, channels_last=False)


def _model(num_classes: int = 10) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model(ModelSpec(), HeadSpec(type="bnneck"), num_classes=num_classes, input_size=(3, 64, 64)).eval()
    with torch.no_grad():  # a BN neck with non-trivial statistics, as after training
        model.head.neck.running_mean.uniform_(-0.5, 0.5)
        model.head.neck.running_var.uniform_(0.5, 2.0)
    return model


def test_the_bnneck_and_pooling_run_in_fp32_under_autocast():
    model, seen = _model(), []
    model.head.register_forward_hook(lambda mod, inp, out: seen.append((inp[0].dtype, out[0].dtype)))
    x = torch.randn(4, 3, 64, 64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        emb = model.embed(x)
        fmap = model.backbone.feature_map(x)
    assert seen[0] == (torch.float32, torch.float32) and emb.dtype == torch.float32
    expected, _ = model.head(model.backbone.pool_map(fmap.float()))  # the same bf16 map, finished in fp32
    assert torch.equal(emb, expected)
    assert torch.equal(model.embed(x), model.head(model.backbone(x))[0])  # without autocast: unchanged


@pytest.fixture(scope="module")
def data():
    return build_data(load_spec_text('name = "p"\n' + TINY_DATA).data)


def _features_scored(monkeypatch, model, data, runtime, spec) -> torch.Tensor:
    seen = []
    real = Evaluator.process
    monkeypatch.setattr(Evaluator, "process", lambda self, features, pids, camids, split:
                        (split == "query" and seen.append(features)) or real(self, features, pids, camids, split))
    evaluate_model(model, data, runtime, spec, load_spec_text('name = "p"').augment)
    return seen[0]


def test_training_time_evaluation_embeds_in_fp32_by_default(monkeypatch, data):
    model = _model(data.num_classes)
    fp32 = _features_scored(monkeypatch, model, data, FP32, EvalSpec())
    assert torch.equal(_features_scored(monkeypatch, model, data, BF16, EvalSpec()), fp32)  # bf16 training, fp32 eval
    as_trained = _features_scored(monkeypatch, model, data, BF16, EvalSpec(precision="auto"))
    assert not torch.equal(as_trained, fp32)  # "auto": the run's bf16, as before


def test_evaluation_runtime_choices():
    assert evaluation_runtime(BF16, "fp32").dtype is None
    if bf16_supported(CPU):
        assert evaluation_runtime(FP32, "bf16").dtype is torch.bfloat16
    else:  # an AVX2 CPU (or the suite run with ONEDNN_MAX_CPU_ISA=AVX2): asking for bf16 is a clear error
        with pytest.raises(ReidError, match="eval.precision"):
            evaluation_runtime(FP32, "bf16")
    assert evaluation_runtime(BF16, "auto") is BF16
    gpu = Runtime(torch.device("cuda"), torch.bfloat16, channels_last=True)
    assert evaluation_runtime(gpu, "fp32").tf32 is False  # IEEE fp32 inside the forwards, even after bf16 training
    with pytest.raises(ReidError, match="eval.precision"):
        evaluation_runtime(FP32, "fp16")  # fp16 autocast is CUDA-only
    assert load_spec_text('name = "p"').eval.precision == "fp32"


@pytest.mark.skipif(not bf16_supported(CPU), reason="this CPU has no native bf16")
def test_a_loaded_bf16_run_embeds_in_fp32_unless_asked():
    spec = load_spec_text('name = "p"\n[data]\nheight = 64\nwidth = 64\n[head]\ntype = "bnneck"\n'
                          '[runtime]\nprecision = "bf16"\ndevice = "cpu"')
    model = _model()
    ckpt = ModelCheckpoint(Path("best.pt"), spec, 10, 512, Preprocess.from_spec(spec), model.state_dict(), 1, {}, None)
    assert LoadedModel(ckpt, device="cpu").runtime.precision == "fp32"
    assert LoadedModel(ckpt, device="cpu", precision="bf16").runtime.precision == "bf16"
    auto = spec.model_copy(update={"eval": spec.eval.model_copy(update={"precision": "auto"})})
    assert LoadedModel(ModelCheckpoint(Path("best.pt"), auto, 10, 512, Preprocess.from_spec(auto), model.state_dict(),
                                       1, {}, None), device="cpu").runtime.precision == "bf16"
