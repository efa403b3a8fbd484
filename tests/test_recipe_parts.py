"""The published recipes' parts in the engine: center loss, parameter groups (weight decay as published, the
head's learning-rate multiplier), the backbone freeze, and each margin classifier training end to end."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from reid.engine.checkpoint import load_checkpoint
from reid.engine.experiment import run_experiment
from reid.engine.optim import LRSchedule, build_optimizer, parameter_groups
from reid.engine.rundir import RunDir
from reid.engine.trainer import Trainer, TrainingInterrupted
from reid.losses import build_loss, center_loss
from reid.model import build_model
from reid.errors import ReidError
from reid.spec import HeadSpec, LossSpec, ModelSpec, OptimSpec, ScheduleSpec, load_spec_text
from interrupts import sigint_at_step
from tiny_specs import small_run


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), batch=st.integers(1, 8), classes=st.integers(1, 5), dim=st.integers(1, 6))
def test_center_loss_equals_the_direct_formula_and_its_centres_take_bots_sgd_step(seed, batch, classes, dim):
    """mean_i ‖f_i − c_{y_i}‖², and after one step c_k ← c_k − lr·∂L/∂c_k of the *unweighted* loss (BoT)."""
    g = torch.Generator().manual_seed(seed)
    features = torch.randn(batch, dim, generator=g, dtype=torch.float64)
    pids = torch.randint(0, classes, (batch,), generator=g)
    criterion = build_loss(LossSpec(id_weight=0.0, center_weight=0.0005, center_lr=0.5), classes, dim).double()
    centers = criterion.terms["center"].centers.detach().clone()
    direct = sum(sum((features[i, d] - centers[pids[i], d]) ** 2 for d in range(dim)) for i in range(batch)) / batch
    assert float(center_loss(features, pids, centers)) == pytest.approx(float(direct), rel=1e-12)

    total, parts = criterion({"features": features, "logits": None}, pids)
    assert float(parts["center"]) == pytest.approx(float(direct), rel=1e-12)
    total.backward()  # 0.0005 × the loss
    criterion.step()
    for k in range(classes):
        members = features[pids == k]
        grad = -2 * (members - centers[k]).sum(0) / batch  # ∂L/∂c_k of the unweighted loss
        torch.testing.assert_close(criterion.terms["center"].centers[k].detach(), centers[k] - 0.5 * grad)
    assert criterion.terms["center"].centers.grad is None and criterion.optimized_parameters() == []


def test_parameter_groups_apply_weight_decay_as_the_recipe_publishes_it():
    model = build_model(ModelSpec(layers=(1, 1, 1, 1), pooling="gem"), HeadSpec(type="bnneck"), 7, (3, 32, 32))
    spec = OptimSpec(lr=0.01, weight_decay=5e-4, weight_decay_norm=1e-4, weight_decay_bias=2e-4, head_lr_mult=10.0)
    groups = {g["name"]: g for g in parameter_groups(model, spec)}
    named = dict(model.named_parameters())
    by_id = {id(p): n for n, p in named.items()}
    members = {name: {by_id[id(p)] for p in g["params"]} for name, g in groups.items()}
    norms = {f"{m}.{p}".lstrip(".") for m, module in model.named_modules() if isinstance(module, torch.nn.modules.batchnorm._BatchNorm)
             for p, param in module.named_parameters(recurse=False) if param.requires_grad}
    assert members["backbone.norm"] | members["head.norm"] == norms and len(members["backbone.norm"]) > 10
    assert "backbone.pool.p" in members["backbone.weight"]  # GeM's p decays as a weight, as in fast-reid
    assert members["head.norm"] == {"head.neck.weight"}  # the neck's frozen bias is left out
    assert members["head.weight"] == {"head.classifier.weight"}
    assert {n for m in members.values() for n in m} == {n for n, p in named.items() if p.requires_grad}
    assert [(groups[k]["lr"], groups[k]["weight_decay"]) for k in ("backbone.weight", "backbone.norm", "head.norm", "head.weight")] == [
        (0.01, 5e-4), (0.01, 1e-4), (0.1, 1e-4), (0.1, 5e-4)]
    with_bias = build_model(ModelSpec(layers=(1, 1, 1, 1)), HeadSpec(type="classifier"), 3, (3, 32, 32))
    (bias,) = [g for g in parameter_groups(with_bias, spec) if g["name"] == "head.bias"]
    assert bias["params"] == [with_bias.head.classifier.bias] and bias["weight_decay"] == 2e-4


def test_loss_parameters_join_the_optimiser_in_their_own_group(monkeypatch):
    from reid.losses import LossTerm
    from reid.registry import LOSSES

    class Temperature(LossTerm):
        def __init__(self, spec, num_classes, dim):
            super().__init__()
            self.t = torch.nn.Parameter(torch.ones(()))

        def forward(self, outputs, pids, gather=None):
            return (outputs["features"] * self.t).pow(2).mean()

    monkeypatch.setitem(LOSSES._loaded(), "temperature", Temperature)
    criterion = build_loss(LossSpec(terms={"temperature": 1.0}), 3, 4)
    optimizer = build_optimizer(torch.nn.Linear(2, 2), OptimSpec(lr=0.1, head_lr_mult=2.0), criterion)
    (loss_group,) = [g for g in optimizer.param_groups if g["name"] == "loss.weight"]
    assert loss_group["params"] == [criterion.terms["temperature"].t] and loss_group["lr"] == pytest.approx(0.2)


CENTER = small_run("center", seed=4, epochs=2) + "[loss]\ncenter_weight = 0.01\n[head]\ntype = \"bnneck\"\n"


def test_center_loss_trains_and_resumes_bit_identically(tmp_path, monkeypatch):
    reference = run_experiment(load_spec_text(CENTER), tmp_path / "ref", plain=True)
    sigint_at_step(monkeypatch, 6)  # mid-epoch 2
    with pytest.raises(TrainingInterrupted):
        run_experiment(load_spec_text(CENTER), tmp_path / "cut", plain=True)
    monkeypatch.undo()
    resumed = run_experiment(None, tmp_path / "cut", resume=True, plain=True)
    assert resumed.final.to_json() == reference.final.to_json()
    ref, cut = (load_checkpoint(tmp_path / d / "checkpoints/last.pt") for d in ("ref", "cut"))
    assert torch.equal(ref["criterion"]["terms.center.centers"], cut["criterion"]["terms.center.centers"])
    first = torch.randn(16, 512, generator=torch.Generator().manual_seed(4))  # the centres' N(0, 1) start, redrawn
    assert not torch.equal(ref["criterion"]["terms.center.centers"], first)
    losses = [r["loss_center"] for r in RunDir(tmp_path / "ref").read_metrics() if r["kind"] == "iter"]
    assert len(losses) == 6 and losses[-1] < losses[0]  # the centres and features move together


@pytest.mark.parametrize("kind", ["cosface", "arcface", "circle"])
def test_each_margin_classifier_trains_in_the_engine(tmp_path, kind):
    text = small_run(kind, seed=1, epochs=2) + f'[head]\ntype = "bnneck"\nclassifier = "{kind}"\nscale = 16.0\nmargin = 0.2\n'
    summary = run_experiment(load_spec_text(text), tmp_path / "run", plain=True)
    ids = [r["loss_id"] for r in RunDir(tmp_path / "run").read_metrics() if r["kind"] == "iter"]
    assert len(ids) == 6 and all(v == v and v < 1e4 for v in ids)
    assert sum(ids[-2:]) < sum(ids[:2])  # the margin loss goes down
    assert 0 <= summary.final.result.rank(1) <= 1


def test_a_frozen_backbone_keeps_its_weights_and_statistics_while_the_head_trains(tmp_path, monkeypatch):
    from reid.engine import hooks

    states = []  # the model's weights and buffers before training and at each epoch's checkpoint
    train, save = Trainer.train, hooks.save_checkpoint

    def snapshot(state: dict) -> None:
        states.append({k: v.clone() for k, v in state.items()})

    monkeypatch.setattr(Trainer, "train", lambda self: (snapshot(self.model.state_dict()), train(self))[1])
    monkeypatch.setattr(hooks, "save_checkpoint", lambda state, path: (
        snapshot(state["model"]) if "optimizer" in state else None, save(state, path))[1])
    text = small_run("frozen", seed=2, epochs=2).replace("[schedule]", "[optim]\nfreeze_backbone_epochs = 1\n[schedule]")
    run_experiment(load_spec_text(text), tmp_path / "run", plain=True)
    start, after_first, after_second = states
    backbone = [k for k in start if k.startswith("backbone.")]
    assert all(torch.equal(after_first[k], start[k]) for k in backbone)  # weights and BN statistics untouched
    assert not torch.equal(after_first["head.classifier.weight"], start["head.classifier.weight"])
    assert any(not torch.equal(after_second[k], start[k]) for k in backbone)  # it trains from epoch 2


@settings(max_examples=25, deadline=None)
@given(epochs=st.integers(4, 30), warmup=st.integers(0, 3), extra_delay=st.integers(0, 10), per_iter=st.booleans())
def test_a_delayed_cosine_holds_the_lr_after_warmup_then_decays_over_the_rest(epochs, warmup, extra_delay, per_iter):
    """fast-reid's DELAY_EPOCHS: linear warmup, the base lr held up to the delay, a cosine to min_lr at the end."""
    delay = min(warmup + extra_delay, epochs - 1)
    spec = ScheduleSpec(epochs=epochs, name="cosine", warmup_epochs=warmup, warmup_lr=0.01, min_lr=0.001,
                        cosine_delay_epochs=delay, per_iteration=per_iter)
    opt = build_optimizer(torch.nn.Linear(2, 2), OptimSpec(name="sgd", lr=1.0))
    iters = 5
    schedule = LRSchedule(opt, spec, iters_per_epoch=iters)

    def direct(t: float) -> float:  # t: epochs of training done
        if t < warmup:
            return 0.01 + (1.0 - 0.01) * t / warmup
        if t <= delay:
            return 1.0
        return 0.001 + (1.0 - 0.001) * (1 + math.cos(math.pi * (t - delay) / (epochs - delay))) / 2

    for epoch in range(epochs):
        for i in range(iters):
            schedule.after_iteration(epoch * iters + i)
            t = epoch + i / iters if per_iter else epoch
            assert schedule.lr == pytest.approx(direct(t), rel=1e-6, abs=1e-9), (epoch, i)
        schedule.after_epoch(epoch + 1)


def test_a_cosine_delay_is_checked_against_warmup_epochs_and_the_schedule():
    base = 'name = "d"\n[schedule]\nepochs = 10\nwarmup_epochs = 2\nname = "cosine"\n'
    assert load_spec_text(base + "cosine_delay_epochs = 5\n").schedule.cosine_delay_epochs == 5
    for bad, said in (("cosine_delay_epochs = 1\n", "between schedule.warmup_epochs"),
                      ("cosine_delay_epochs = 10\n", "between schedule.warmup_epochs")):
        with pytest.raises(ReidError, match=said):
            load_spec_text(base + bad)
    with pytest.raises(ReidError, match='set name = "cosine"'):
        load_spec_text(base.replace('"cosine"', '"multistep"') + "cosine_delay_epochs = 5\n")
