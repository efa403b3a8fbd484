"""Checks that need a CUDA GPU (marked ``cuda``; skipped without one). benchmarks/gpu_check.sh runs them.

A training step on the GPU with no synchronising call, bf16 autocast and TF32 as the runtime says,
and a run that stops on a NaN and resumes on the GPU from its last good checkpoint.
"""

from __future__ import annotations

import pytest
import torch

from reid.engine.runtime import resolve_runtime
from reid.engine.trainer import NonFiniteLoss, Trainer
from reid.losses import build_loss
from reid.model import build_model
from reid.spec import HeadSpec, LossSpec, ModelSpec, RuntimeSpec, load_spec_text
from tiny_specs import TINY_DATA

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def _step_setup(precision: str):
    runtime = resolve_runtime(RuntimeSpec(device="cuda", precision=precision))
    model = build_model(ModelSpec(arch="resnet18"), HeadSpec(type="bnneck"), num_classes=4, input_size=(3, 64, 64))
    model = model.to(runtime.device)
    if runtime.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    trainer = Trainer(model, build_loss(LossSpec(triplet_weight=1.0)), optimizer, schedule=None, loader=None,
                      runtime=runtime, epochs=1)
    images = torch.randn(16, 3, 64, 64).pin_memory()
    pids = torch.arange(4).repeat_interleave(4).pin_memory()
    return trainer, images, pids


@pytest.mark.parametrize("precision", ["fp32", "auto"])
def test_a_training_step_on_cuda_changes_the_weights(precision):
    trainer, images, pids = _step_setup(precision)
    before = [p.detach().clone() for p in trainer.model.parameters()]
    out = trainer.run_step(images, pids)
    assert out.loss.device.type == "cuda" and all(v.device.type == "cuda" for v in out.parts.values())
    values = out.values()
    assert torch.isfinite(torch.tensor(list(values.values()))).all() and set(values) == {"loss", "id", "triplet"}
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.model.parameters()))


def test_a_training_step_makes_no_synchronising_call():
    trainer, images, pids = _step_setup("auto")
    trainer.run_step(images, pids)  # warm-up: lazy initialisation, cuDNN autotuning
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        trainer.run_step(images, pids)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    trainer.check_finite()


def test_bf16_autocast_and_tf32_follow_the_runtime():
    saved = torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision
    try:
        rt = resolve_runtime(RuntimeSpec(device="cuda", precision="auto"))
        assert rt.precision == ("bf16" if torch.cuda.is_bf16_supported(including_emulation=False) else "fp16")
        assert torch.backends.cuda.matmul.fp32_precision == "tf32"
        conv = torch.nn.Conv2d(3, 8, 3).to(rt.device)
        with rt.autocast():
            y = conv(torch.randn(2, 3, 16, 16, device=rt.device))
        assert y.dtype == rt.dtype
        resolve_runtime(RuntimeSpec(device="cuda", precision="fp32"))
        assert torch.backends.cuda.matmul.fp32_precision == "ieee" and torch.backends.cudnn.conv.fp32_precision == "ieee"
    finally:
        torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision = saved


CUDA_RUN = """
name = "tiny-cuda"
seed = 3
""" + TINY_DATA + """
[runtime]
device = "cuda"
log_every = 2
[sampler]
type = "random"
batch_size = 16
[schedule]
epochs = 3
warmup_epochs = 0
"""


def test_a_run_stopped_by_nan_resumes_on_cuda(tmp_path, monkeypatch):
    """The loss turns NaN in epoch 2: the epoch-1 checkpoint (saved from the GPU, CUDA RNG included) is
    kept, and ``--resume`` continues from it on the GPU to a finished run."""
    import reid.engine.experiment as experiment
    from reid.engine.experiment import run_experiment

    monkeypatch.setenv("REID_CACHE", str(tmp_path / "cache"))
    real_build_loss = experiment.build_loss

    def exploding(spec, *args, **kwargs):
        criterion, calls = real_build_loss(spec, *args, **kwargs), []

        def wrapped(outputs, pids):
            calls.append(1)
            loss, parts = criterion(outputs, pids)
            return (loss * float("nan"), parts) if len(calls) > 4 else (loss, parts)
        return wrapped

    with monkeypatch.context() as m:
        m.setattr(experiment, "build_loss", exploding)
        with pytest.raises(NonFiniteLoss, match="loss became nan at epoch 2"):
            run_experiment(load_spec_text(CUDA_RUN), tmp_path / "run", plain=True)
    summary = run_experiment(None, tmp_path / "run", resume=True, plain=True)
    assert summary.epochs == 3 and summary.device.device.startswith("cuda")
