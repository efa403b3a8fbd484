"""The published recipes as specs (specs/market1501-bot.toml, -bot-ibn.toml, -sbs.toml): each names its source and
published numbers, differs from its neighbour only where the recipes differ, and trains — two optimiser steps of the
whole recipe (its model, criterion, parameter groups, schedule, freezing) on a tiny synthetic set."""

from __future__ import annotations

import math
import signal
from pathlib import Path

import pytest
import torch

from reid.engine.checkpoint import load_checkpoint
from reid.engine.experiment import run_experiment
from reid.engine.rundir import RunDir
from reid.engine.trainer import Trainer, TrainingInterrupted
from reid.spec import load_spec

SPECS = Path(__file__).resolve().parents[1] / "specs"
RECIPES = ("market1501-bot", "market1501-bot-ibn", "market1501-sbs")
#: Only the data (and weights that need a download) change: 16 training identities for the P = 16 batches.
TINY = ["data.dataset=synthetic", "data.root=", "data.identities=20", "data.images_per_identity=4",
        "data.train_ids=16", "data.height=64", "data.width=32", "model.pretrained=none", "runtime.precision=fp32",
        "runtime.tensorboard=false", "runtime.threads=2", "runtime.log_every=1"]


def test_each_recipe_cites_its_source_and_published_numbers():
    texts = {name: (SPECS / f"{name}.toml").read_text(encoding="utf-8") for name in RECIPES}
    assert "softmax_triplet_with_center.yml" in texts["market1501-bot"] and "94.5 / mAP 85.9" in texts["market1501-bot"]
    assert "bagtricks_R50-ibn.yml" in texts["market1501-bot-ibn"] and "94.9 / mAP 87.6" in texts["market1501-bot-ibn"]
    assert "Base-SBS.yml" in texts["market1501-sbs"] and "95.4 / mAP 88.2" in texts["market1501-sbs"]
    assert all("MODEL_ZOO.md" in texts[name] for name in ("market1501-bot-ibn", "market1501-sbs"))
    assert all("--set data.root=" in text for text in texts.values())  # the one key a user changes


def test_the_recipes_set_what_their_configs_say():
    bot, ibn, sbs = (load_spec(SPECS / f"{name}.toml") for name in RECIPES)
    assert (bot.loss.center_weight, bot.loss.center_lr, bot.loss.label_smoothing, bot.loss.margin) == (5e-4, 0.5, 0.1, 0.3)
    assert (bot.optim.weight_decay, bot.optim.weight_decay_norm, bot.optim.weight_decay_bias) == (5e-4,) * 3
    assert (bot.schedule.name, bot.schedule.milestones, bot.schedule.epochs) == ("multistep", [40, 70], 120)
    differing = {(table, key) for table, values in bot.model_dump().items() if isinstance(values, dict)
                 for key, value in values.items() if value != ibn.model_dump()[table][key]}
    assert differing == {("model", "arch")} and ibn.model.arch == "resnet50_ibn_a"
    assert (sbs.model.pooling, sbs.head.classifier, sbs.head.scale, sbs.head.margin) == ("gem", "circle", 64.0, 0.35)
    assert (sbs.loss.mining, sbs.sampler.p, sbs.sampler.k, sbs.data.height) == ("soft", 4, 16, 384)
    assert (sbs.schedule.name, sbs.schedule.cosine_delay_epochs, sbs.optim.freeze_backbone_epochs) == ("cosine", 30, 5)


@pytest.mark.parametrize("name", RECIPES)
def test_each_recipe_builds_its_model_and_takes_two_steps(tmp_path, monkeypatch, name):
    spec = load_spec(SPECS / f"{name}.toml", overrides=TINY)
    original, seen = Trainer.run_step, []

    def run_step(self, images, pids):  # Ctrl-C after the second step: the trainer stops at the step boundary
        seen.append((self.optimizer.param_groups[0]["lr"], images.shape))
        out = original(self, images, pids)
        if len(seen) == 2:
            signal.raise_signal(signal.SIGINT)
        return out

    monkeypatch.setattr(Trainer, "run_step", run_step)
    with pytest.raises(TrainingInterrupted):
        run_experiment(spec, tmp_path / "run", plain=True)
    assert [shape for _, shape in seen] == [torch.Size([64, 3, 64, 32])] * 2  # P × K = 64 either way
    assert seen[0][0] == pytest.approx(spec.schedule.warmup_lr)  # warmup starts where the recipe says
    steps = [r for r in RunDir(tmp_path / "run").read_metrics() if r["kind"] == "iter"]
    assert [r["step"] for r in steps][-1] == 2 and all(math.isfinite(r["loss"]) for r in steps)
    checkpoint = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    weights = checkpoint["model"]
    if name == "market1501-bot-ibn":
        assert "backbone.layer1.0.bn1.IN.weight" in weights  # IBN-a
    if name.startswith("market1501-bot"):
        assert "loss_center" in steps[-1] and checkpoint["criterion"]["terms.center.centers"].shape == (16, 2048)
    if name == "market1501-sbs":
        assert weights["backbone.pool.p"].numel() == 1  # GeM's learnt exponent
        assert weights["head.classifier.weight"].shape == (16, 2048)
