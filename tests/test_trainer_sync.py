"""The training loop reads nothing back from the device except at read-back steps, and keeps the NaN guarantee.

Run on the CPU with a tiny linear model; the "no read-back" property is checked on the meta device,
where any ``float()`` / ``.item()`` / boolean-mask indexing of a device tensor fails.
"""

from __future__ import annotations

import json

import pytest
import torch

from reid.engine.hooks import MetricsHook
from reid.engine.rundir import RunDir
from reid.engine.runtime import Runtime
from reid.engine.trainer import Hook, NonFiniteLoss, Trainer
from reid.losses import build_loss
from reid.spec import LossSpec

CPU = Runtime(torch.device("cpu"), None, False)


class _Net(torch.nn.Module):
    def __init__(self, device: str = "cpu"):
        super().__init__()
        self.fc = torch.nn.Linear(4, 3, device=device)

    def forward(self, x, pids=None):
        return {"features": x, "logits": self.fc(x)}


class _Loader:
    """``steps`` batches of 6 images of 3 identities per epoch (fixed, seeded by epoch)."""

    def __init__(self, steps: int):
        self.steps, self.epoch = steps, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.steps

    def __iter__(self):
        g = torch.Generator().manual_seed(self.epoch)
        for _ in range(self.steps):
            yield torch.randn(6, 4, generator=g), torch.tensor([0, 0, 1, 1, 2, 2])


class _Schedule:
    lr = 0.1

    def after_iteration(self, step: int) -> None:
        pass

    def after_epoch(self, epoch: int) -> None:
        pass


class _Record(Hook):
    """Which steps were read-back steps, and which epoch-end / interrupt events happened."""

    def __init__(self):
        self.synced: list[int] = []
        self.events: list[str] = []

    def after_step(self, trainer):
        if trainer.synced:
            self.synced.append(trainer.state.global_step)

    def after_epoch(self, trainer):
        self.events.append(f"after_epoch {trainer.state.epoch}")

    def on_interrupt(self, trainer):
        self.events.append("on_interrupt")


def _trainer(steps: int, epochs: int, sync_every: int, criterion=None, hooks=(), **kw) -> Trainer:
    model = _Net()
    criterion = criterion or build_loss(LossSpec(triplet_weight=1.0))
    return Trainer(model, criterion, torch.optim.SGD(model.parameters(), lr=0.1), _Schedule(), _Loader(steps), CPU,
                   epochs, hooks=list(hooks), sync_every=sync_every, **kw)


def _nan_after(n: int):
    """A criterion whose loss becomes NaN from its ``n + 1``-th call on."""
    criterion, calls = build_loss(LossSpec(triplet_weight=1.0)), []

    def wrapped(outputs, pids):
        calls.append(1)
        loss, parts = criterion(outputs, pids)
        return (loss * float("nan"), parts) if len(calls) > n else (loss, parts)
    return wrapped


def test_a_step_reads_nothing_back():
    meta = Runtime(torch.device("meta"), None, False)
    model = _Net("meta")
    trainer = Trainer(model, build_loss(LossSpec(triplet_weight=1.0)), torch.optim.SGD(model.parameters(), lr=0.1),
                      _Schedule(), None, meta, epochs=1)
    out = trainer.run_step(torch.randn(6, 4), torch.tensor([0, 0, 1, 1, 2, 2]))
    assert out.loss.device.type == "meta" and set(out.parts) == {"id", "triplet"} and out.batch_size == 6


def test_read_back_steps_are_every_sync_every_and_each_epochs_first():
    record = _Record()
    _trainer(steps=5, epochs=2, sync_every=3, hooks=[record]).train()
    assert record.synced == [1, 3, 6, 9]  # global steps: epoch 1 is 1..5, epoch 2 is 6..10
    assert record.events == ["after_epoch 1", "after_epoch 2"]


def test_nan_between_read_backs_is_caught_before_the_epoch_ends(tmp_path):
    """The loss turns NaN at epoch 2, iteration 2 with no read-back step until the epoch's end:
    the error names that step and no ``after_epoch`` (evaluation, checkpoint) sees the bad state."""
    record = _Record()
    trainer = _trainer(steps=3, epochs=3, sync_every=100, criterion=_nan_after(4), hooks=[record])
    with pytest.raises(NonFiniteLoss, match=r"loss became nan at epoch 2, iteration 2; the last good checkpoint is kept"):
        trainer.train()
    assert record.events == ["after_epoch 1"]


def test_nan_before_an_interrupt_is_raised_instead_of_saving():
    class StopAt(Hook):
        def after_step(self, trainer):
            if trainer.state.global_step == 3:
                trainer._stop_requested = True  # what Ctrl-C does

    record = _Record()
    trainer = _trainer(steps=5, epochs=1, sync_every=100, criterion=_nan_after(1), hooks=[StopAt(), record])
    with pytest.raises(NonFiniteLoss, match="epoch 1, iteration 2"):
        trainer.train()
    assert "on_interrupt" not in record.events


def test_ranks_agree_only_at_read_back_steps_and_epoch_ends():
    """Under torchrun ``agree`` is a collective: every rank must call it at the same points."""
    calls: list[tuple[int, bool]] = []
    trainer = _trainer(steps=4, epochs=2, sync_every=2, agree=lambda flag: calls.append(flag) or flag)
    trainer.train()
    # per read-back step (global 1, 2, 4, 5, 6, 8): finiteness, then stop; per epoch end: finiteness, then stop
    assert len(calls) == 2 * 6 + 2 * 2 and not any(calls)


def test_a_stop_waits_for_the_next_read_back_step_under_torchrun():
    class StopAt(Hook):
        def after_step(self, trainer):
            if trainer.state.global_step == 2:
                trainer._stop_requested = True

    record = _Record()
    trainer = _trainer(steps=6, epochs=1, sync_every=4, hooks=[StopAt(), record], agree=lambda flag: flag)
    with pytest.raises(Exception, match="stopped by a signal"):
        trainer.train()
    assert trainer.state.global_step == 4 and record.events == ["on_interrupt"]
    alone = _trainer(steps=6, epochs=1, sync_every=4, hooks=[StopAt()])  # one process: stops at once
    with pytest.raises(Exception, match="stopped by a signal"):
        alone.train()
    assert alone.state.global_step == 2


def test_metrics_records_keep_their_shape(tmp_path):
    run = RunDir(tmp_path / "run")
    run.create("")
    losses: list[float] = []

    class Losses(Hook):
        def after_step(self, trainer):
            losses.append(float(trainer.step_output.loss))

    _trainer(steps=4, epochs=1, sync_every=2, hooks=[MetricsHook(run, 2), Losses()]).train()
    records = [json.loads(line) for line in run.metrics_path.read_text().splitlines()]
    iters = [r for r in records if r["kind"] == "iter"]
    assert [r["step"] for r in iters] == [1, 2, 4]
    assert all(isinstance(r[k], float) for r in iters for k in ("loss", "loss_id", "loss_triplet", "lr"))
    assert iters[1]["loss"] == pytest.approx(losses[1])
    epoch = records[-1]
    assert epoch["kind"] == "epoch" and epoch["train_loss"] == pytest.approx(sum(losses) / 4)
    assert set(epoch) == {"kind", "step", "epoch", "train_loss", "lr", "train_seconds", "images_per_second"}


def test_compiled_training_saves_plain_state_dict_keys(monkeypatch):
    """``runtime.compile`` wraps the model in ``torch.compile``; training goes through the wrapper and the
    checkpoint helpers see the plain model's keys (no ``_orig_mod.``). AOT-eager stands in for inductor,
    which would need a C++ build on the CPU."""
    from functools import partial

    from reid.engine.checkpoint import unwrap
    from reid.engine.distributed import DistContext
    from reid.engine.experiment import wrap_for_training
    from reid.spec import load_spec_text

    monkeypatch.setattr(torch, "compile", partial(torch.compile, backend="aot_eager"))
    spec = load_spec_text('name = "c"\n[runtime]\ncompile = true\n')
    plain = _Net()
    trainer = _trainer(steps=2, epochs=1, sync_every=1)
    trainer.model = wrap_for_training(plain, spec, DistContext(), CPU)
    trainer.optimizer = torch.optim.SGD(plain.parameters(), lr=0.1)
    before = plain.fc.weight.detach().clone()
    trainer.train()
    assert any(k.startswith("_orig_mod.") for k in trainer.model.state_dict())
    assert unwrap(trainer.model) is plain and not torch.equal(before, plain.fc.weight)
    fresh = _Net()
    fresh.load_state_dict(unwrap(trainer.model).state_dict())
    assert torch.equal(fresh.fc.weight, plain.fc.weight)


@pytest.mark.parametrize("schedule", [dict(name="cosine", per_iteration=True, min_lr=0.0),
                                      dict(name="multistep", milestones=[1], decay_rate=0.1)])
def test_logged_lr_is_the_lr_each_step_used(tmp_path, schedule):
    from reid.engine.optim import LRSchedule
    from reid.spec import ScheduleSpec

    run = RunDir(tmp_path / "run")
    run.create("")
    model, used = _Net(), []
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    criterion = build_loss(LossSpec(triplet_weight=1.0))

    def recording(outputs, pids):
        used.append(optimizer.param_groups[0]["lr"])
        return criterion(outputs, pids)

    lr_schedule = LRSchedule(optimizer, ScheduleSpec(epochs=2, **schedule), iters_per_epoch=3)
    Trainer(model, recording, optimizer, lr_schedule, _Loader(3), CPU, 2, hooks=[MetricsHook(run, 1)]).train()
    records = [json.loads(line) for line in run.metrics_path.read_text().splitlines()]
    assert len(set(used)) > 1  # the schedule changes the lr within these 6 steps
    assert [r["lr"] for r in records if r["kind"] == "iter"] == pytest.approx(used)
    assert [r["lr"] for r in records if r["kind"] == "epoch"] == pytest.approx([used[2], used[5]])  # each epoch's last
