"""The CUDA side of the runtime, checked on the CPU: fp16 loss scaling, native-bf16 detection, TF32,
pinned non-blocking copies (and none for batches already on the GPU), timer synchronisation."""

from __future__ import annotations

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

from reid.engine.runtime import Runtime, resolve_runtime
from reid.engine.trainer import Trainer
from reid.errors import ReidError
from reid.spec import RuntimeSpec


@pytest.fixture(autouse=True)
def _keep_tf32_flags():
    """resolve_runtime sets TF32 globally on (mocked) CUDA: restore the flags after each test."""
    saved = torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision
    yield
    torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision = saved


def _fake_cuda(monkeypatch, bf16: bool, emulated: bool = False) -> None:
    """A visible GPU; ``bf16``: native bf16 (Ampere+); ``emulated``: bf16 only through emulation (pre-Ampere)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported",
                        lambda including_emulation=True: bf16 or (emulated and including_emulation))


def test_auto_precision_ignores_emulated_bf16(monkeypatch):
    _fake_cuda(monkeypatch, bf16=False, emulated=True)  # e.g. a V100 or T4: bf16 runs, but emulated and slow
    rt = resolve_runtime(RuntimeSpec(device="auto", precision="auto"))
    assert rt.precision == "fp16" and rt.scaler is not None
    with pytest.raises(ReidError, match="bf16 is not supported"):
        resolve_runtime(RuntimeSpec(device="cuda", precision="bf16"))


@pytest.mark.parametrize("precision, bf16, mode", [("fp32", True, "ieee"), ("bf16", True, "tf32"),
                                                   ("fp16", False, "tf32"), ("auto", True, "tf32"),
                                                   ("auto", False, "tf32")])
def test_tf32_follows_the_precision_on_cuda(monkeypatch, precision, bf16, mode):
    _fake_cuda(monkeypatch, bf16=bf16)
    other = "tf32" if mode == "ieee" else "ieee"
    torch.backends.cuda.matmul.fp32_precision = torch.backends.cudnn.conv.fp32_precision = other
    resolve_runtime(RuntimeSpec(device="cuda", precision=precision))
    assert torch.backends.cuda.matmul.fp32_precision == mode and torch.backends.cudnn.conv.fp32_precision == mode


def test_fp16_on_cuda_comes_with_a_grad_scaler(monkeypatch):
    _fake_cuda(monkeypatch, bf16=False)
    rt = resolve_runtime(RuntimeSpec(device="auto", precision="auto"))
    assert rt.precision == "fp16" and isinstance(rt.scaler, torch.amp.GradScaler)
    assert resolve_runtime(RuntimeSpec(device="cuda", precision="fp16")).scaler is not None
    _fake_cuda(monkeypatch, bf16=True)
    assert resolve_runtime(RuntimeSpec(device="auto", precision="auto")).scaler is None  # bf16: no scaling
    assert resolve_runtime(RuntimeSpec(device="cuda", precision="fp32")).scaler is None


def test_cpu_runtimes_need_no_scaler(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for precision in ("auto", "fp32"):
        assert resolve_runtime(RuntimeSpec(device="cpu", precision=precision)).scaler is None


def _sgd_param(value: float) -> tuple[torch.nn.Parameter, torch.optim.Optimizer]:
    w = torch.nn.Parameter(torch.tensor([value]))
    return w, torch.optim.SGD([w], lr=0.1)


def test_backward_and_step_with_a_scaler_unscale_and_skip_overflowing_steps():
    rt = Runtime(torch.device("cpu"), None, False, scaler=torch.amp.GradScaler("cpu", init_scale=2.0**10))
    w, opt = _sgd_param(1.0)
    rt.backward((3.0 * w).sum())
    assert w.grad.item() * rt.gradient_unscale() == 3.0  # scaled gradient × 1/scale = the loss's own
    rt.step(opt)
    assert w.item() == pytest.approx(1.0 - 0.1 * 3.0)  # the gradient was unscaled before the step
    opt.zero_grad()
    rt.backward((1e38 * w).sum())  # finite loss, but the scaled gradient overflows
    rt.step(opt)
    assert w.item() == pytest.approx(0.7) and rt.scaler.get_scale() == 2.0**9  # step skipped, scale halved


def test_backward_and_step_without_a_scaler_are_plain_backward_then_step():
    w, opt = _sgd_param(2.0)
    rt = Runtime(torch.device("cpu"), None, False)
    rt.backward((w * w).sum())
    rt.step(opt)
    assert w.item() == pytest.approx(2.0 - 0.1 * 4.0) and rt.gradient_unscale() == 1.0


class _RecordingScaler:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def scale(self, loss):
        self.calls.append("scale")
        return loss * 8.0

    def step(self, optimizer):
        self.calls.append("step")
        for group in optimizer.param_groups:
            for p in group["params"]:
                p.grad /= 8.0
        optimizer.step()

    def update(self):
        self.calls.append("update")


def test_trainer_steps_through_the_runtimes_scaler():
    model = torch.nn.Linear(4, 3)
    scaler = _RecordingScaler()
    rt = Runtime(torch.device("cpu"), None, False, scaler=scaler)

    def criterion(outputs, pids):
        loss = torch.nn.functional.cross_entropy(outputs["logits"], pids)
        return loss, {"id": loss.detach()}

    class Wrap(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = model

        def forward(self, x, pids=None):
            return {"logits": self.net(x)}

    trainer = Trainer(Wrap(), criterion, torch.optim.SGD(model.parameters(), lr=0.1), schedule=None, loader=None,
                      runtime=rt, epochs=1)
    before = model.weight.detach().clone()
    out = trainer.run_step(torch.randn(5, 4), torch.tensor([0, 1, 2, 0, 1]))
    assert scaler.calls == ["scale", "step", "update"] and out.batch_size == 5
    assert not torch.equal(before, model.weight)


def test_to_device_pins_and_copies_non_blocking_on_cuda(monkeypatch):
    seen: dict = {}

    def fake_pin(self):
        seen["pinned"] = True
        return self

    def fake_to(self, *args, **kwargs):
        seen["to"] = (args, kwargs)
        return self

    monkeypatch.setattr(torch.Tensor, "is_pinned", lambda self: False)
    monkeypatch.setattr(torch.Tensor, "pin_memory", fake_pin)
    monkeypatch.setattr(torch.Tensor, "to", fake_to)
    rt = Runtime(torch.device("cuda", 0), torch.bfloat16, True)
    out = rt.to_device(torch.zeros(2, 3, 4, 5))
    assert seen["pinned"] and seen["to"] == ((torch.device("cuda", 0),), {"non_blocking": True})
    assert out.is_contiguous(memory_format=torch.channels_last)


def test_to_device_on_cpu_converts_the_layout_only_when_asked():
    x = torch.zeros(2, 3, 4, 5)
    assert Runtime(torch.device("cpu"), torch.bfloat16, True).to_device(x).is_contiguous(memory_format=torch.channels_last)
    assert Runtime(torch.device("cpu"), None, False).to_device(x) is x


def test_to_device_does_not_pin_a_batch_already_on_the_gpu(monkeypatch):
    def no_pin(self):
        raise AssertionError("pin_memory() on a GPU tensor")

    monkeypatch.setattr(torch.Tensor, "pin_memory", no_pin)
    rt = Runtime(torch.device("cuda", 0), torch.bfloat16, True)
    with FakeTensorMode():  # a stand-in CUDA tensor on a machine without a GPU
        out = rt.to_device(torch.zeros(2, 3, 4, 5, device="cuda:0"))
    assert out.device == torch.device("cuda", 0) and out.is_contiguous(memory_format=torch.channels_last)


def test_synchronize_waits_for_cuda_only(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: calls.append(device))
    Runtime(torch.device("cpu"), None, False).synchronize()
    assert calls == []
    Runtime(torch.device("cuda", 1), None, False).synchronize()
    assert calls == [torch.device("cuda", 1)]
