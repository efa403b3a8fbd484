"""The trainer's named build steps and what they make easy: a custom step from outside the package, a registered
hook, the EMA of weights, gradient clipping and gradient accumulation — each checked against a direct computation."""

from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from reid.engine.build import RunBuilder
from reid.engine.checkpoint import load_checkpoint
from reid.engine.experiment import run_experiment
from reid.engine.optim import LRSchedule, build_optimizer
from reid.engine.runtime import Runtime
from reid.engine.trainer import Hook, Trainer, TrainingInterrupted
from reid.engine.training_hooks import GradientClipping, WeightAverage
from reid.registry import TRAINING_HOOKS
from reid.spec import OptimSpec, ScheduleSpec, load_spec_text
from interrupts import sigint_at_step
from tiny_specs import small_run

CPU = Runtime(torch.device("cpu"), None, False)


class Batches:
    """A loader of fixed batches (what :class:`Trainer` iterates)."""

    def __init__(self, batches):
        self.batches = batches

    def set_epoch(self, epoch: int) -> None:
        """Nothing to reshuffle."""

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        return iter(self.batches)


class Regression(torch.nn.Module):
    """A linear model in the trainer's calling convention (``model(images, pids) -> outputs``)."""

    def __init__(self, dim: int, seed: int):
        super().__init__()
        torch.manual_seed(seed)
        self.linear = torch.nn.Linear(dim, 1)

    def forward(self, x, pids):
        return {"features": self.linear(x)}


def squared_error(outputs, target):
    """Mean squared error of the prediction against ``target`` (the batch's "pids")."""
    loss = ((outputs["features"][:, 0] - target) ** 2).mean()
    return loss, {}


def batches(seed: int, n: int, size: int, dim: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(size, dim, generator=g), torch.randn(size, generator=g)) for _ in range(n)]


def trainer(model, data, lr: float = 0.1, **kwargs) -> Trainer:
    optimizer = build_optimizer(model, OptimSpec(name="momentum", lr=lr, momentum=0.0, weight_decay=0.0))
    schedule = LRSchedule(optimizer, ScheduleSpec(epochs=1, name="constant"), iters_per_epoch=len(data))
    return Trainer(model, squared_error, optimizer, schedule, Batches(data), CPU, epochs=1, **kwargs)


class Recorder(Hook):
    """The weights after every optimiser step."""

    def __init__(self):
        self.weights: list[dict[str, torch.Tensor]] = []

    def after_step(self, trainer: Trainer) -> None:
        if trainer.stepped:
            self.weights.append({k: v.detach().clone() for k, v in trainer.model.state_dict().items()})


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), steps=st.integers(1, 6), decay=st.floats(0.0, 0.999))
def test_the_weight_average_is_the_exponential_average_of_the_weights_after_each_step(seed, steps, decay):
    model = Regression(3, seed)
    start = {k: v.detach().clone() for k, v in model.state_dict().items()}
    average, seen = WeightAverage(model, decay), Recorder()
    trainer(model, batches(seed, steps, 4, 3), hooks=[seen, average]).train()
    for name, value in start.items():
        direct = value
        for weights in seen.weights:  # ema ← decay · ema + (1 − decay) · w, from the initial weights
            direct = decay * direct + (1 - decay) * weights[name]
        assert torch.allclose(average.evaluated_model.state_dict()[name], direct, atol=1e-6)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), max_norm=st.floats(0.01, 10.0))
def test_clipping_scales_the_gradient_to_the_norm_before_the_step(seed, max_norm):
    model, data = Regression(4, seed), batches(seed, 1, 8, 4)
    reference = copy.deepcopy(model)
    loss, _ = squared_error(reference(data[0][0], None), data[0][1])
    grads = torch.autograd.grad(loss, list(reference.parameters()))
    norm = torch.sqrt(sum((g ** 2).sum() for g in grads))
    factor = min(1.0, max_norm / (float(norm) + 1e-6))  # clip_grad_norm_'s rule
    expected = [p.detach() - 0.1 * factor * g for p, g in zip(reference.parameters(), grads)]
    clip = GradientClipping(None, max_norm)
    run = trainer(model, data, hooks=[clip])
    clip.optimizer = run.optimizer
    run.train()
    assert float(clip.last_norm) == pytest.approx(float(norm), rel=1e-5)
    for p, e in zip(model.parameters(), expected):
        assert torch.allclose(p.detach(), e, atol=1e-6)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), accumulate=st.integers(1, 4), cycles=st.integers(1, 3), extra=st.integers(0, 3))
def test_accumulated_batches_step_as_one_batch_of_their_union(seed, accumulate, cycles, extra):
    """N batches of equal size accumulated = one step on their concatenation (the mean loss over all of it);
    a short last cycle at the epoch's end steps on what it has."""
    extra = min(extra, accumulate - 1)
    small = batches(seed, accumulate * cycles + extra, 3, 2)
    merged = [(torch.cat([x for x, _ in small[i:i + accumulate]]), torch.cat([y for _, y in small[i:i + accumulate]]))
              for i in range(0, len(small), accumulate)]
    a, b = Regression(2, seed), Regression(2, seed)
    steps_a, steps_b = Recorder(), Recorder()
    trainer(a, small, accumulate=accumulate, hooks=[steps_a]).train()
    trainer(b, merged, hooks=[steps_b]).train()
    assert len(steps_a.weights) == len(steps_b.weights) == len(merged)
    for wa, wb in zip(steps_a.weights, steps_b.weights):
        for k in wa:
            assert torch.allclose(wa[k], wb[k], atol=1e-5)


class HeadOnlyGroups(RunBuilder):
    """A parameter-group rule of a user's own: only the head's groups reach the optimiser."""

    def build_parameter_groups(self):
        self.start = {k: v.detach().clone() for k, v in self.model.named_parameters()}
        return [g for g in super().build_parameter_groups() if not g["name"].startswith("backbone.")]


def test_a_build_step_overridden_outside_the_package_trains_with_its_rule(tmp_path):
    built = []

    class Kept(HeadOnlyGroups):
        def build(self):
            super().build()
            built.append(self)

    run_experiment(load_spec_text(small_run("own-groups", seed=3, epochs=1)), tmp_path / "run", plain=True, builder=Kept)
    (builder,) = built
    assert [g["name"] for g in builder.optimizer.param_groups] == ["head.weight", "head.bias"]
    saved = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["model"]
    backbone = [k for k in builder.start if k.startswith("backbone.")]
    assert backbone and all(torch.equal(saved[k], builder.start[k]) for k in backbone)  # never stepped
    assert not torch.equal(saved["head.classifier.weight"], builder.start["head.classifier.weight"])


def test_a_hook_registered_outside_the_package_is_added_to_every_run(tmp_path, monkeypatch):
    TRAINING_HOOKS.names()  # the built-ins first
    counted = []

    class CountSteps(Hook):
        def before_train(self, trainer):
            self.per_epoch = trainer.steps_per_epoch

        def after_step(self, trainer):
            counted.append(trainer.state.global_step)

    hooks = []
    monkeypatch.setitem(TRAINING_HOOKS._items, "count_steps", lambda builder: hooks.append(CountSteps()) or hooks[-1])
    run_experiment(load_spec_text(small_run("counted", seed=1, epochs=2)), tmp_path / "run", plain=True)
    (hook,) = hooks
    assert hook.per_epoch >= 2 and counted == list(range(1, 2 * hook.per_epoch + 1))  # every step of 2 epochs


EMA = small_run("ema", seed=5, epochs=2).replace("[schedule]", "[optim]\nema_decay = 0.5\n[schedule]")


def test_ema_runs_evaluate_and_save_the_average_and_resume_it_exactly(tmp_path, monkeypatch):
    reference = run_experiment(load_spec_text(EMA), tmp_path / "ref", plain=True)
    ref = load_checkpoint(tmp_path / "ref" / "checkpoints" / "last.pt")
    assert set(ref["training_model"]) == set(ref["model"])
    assert any(v.is_floating_point() and not torch.equal(v, ref["training_model"][k]) for k, v in ref["model"].items())
    sigint_at_step(monkeypatch, 6)  # mid-epoch 2
    with pytest.raises(TrainingInterrupted):
        run_experiment(load_spec_text(EMA), tmp_path / "cut", plain=True)
    monkeypatch.undo()
    resumed = run_experiment(None, tmp_path / "cut", resume=True, plain=True)
    assert resumed.final.to_json() == reference.final.to_json()  # evaluated on the average, both times
    cut = load_checkpoint(tmp_path / "cut" / "checkpoints" / "last.pt")
    for part in ("model", "training_model"):
        assert all(torch.equal(cut[part][k], v) for k, v in ref[part].items())
