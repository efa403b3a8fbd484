"""The Market-1501 specs: the strong baseline exactly as published on ResNet-50, and the same recipe on ResNet-18."""

from pathlib import Path

from reid.spec import load_spec

SPECS = Path(__file__).resolve().parents[1] / "specs"


def test_r50_spec_is_the_published_strong_baseline():
    s = load_spec(SPECS / "market1501-r50.toml")
    assert (s.model.arch, s.model.last_stride, s.model.pretrained, s.head.type) == ("resnet50", 1, "imagenet", "bnneck")
    assert (s.data.dataset, s.data.height, s.data.width) == ("market1501", 256, 128)
    assert (s.loss.id_weight, s.loss.label_smoothing, s.loss.triplet_weight, s.loss.margin, s.loss.mining) == (1.0, 0.1, 1.0, 0.3, "hard")
    assert (s.sampler.type, s.sampler.p, s.sampler.k) == ("pk", 16, 4)
    assert (s.optim.name, s.optim.lr, s.optim.weight_decay) == ("adam", 3.5e-4, 5e-4)
    sched = s.schedule
    assert (sched.epochs, sched.name, sched.milestones, sched.decay_rate, sched.warmup_epochs) == (120, "multistep", [40, 70], 0.1, 10)
    assert (s.augment.flip, s.augment.pad, s.augment.erase) == (0.5, 10, 0.5)
    assert (s.eval.distance, s.eval.flip, s.eval.protocol) == ("cosine", False, "market")
    comment = (SPECS / "market1501-r50.toml").read_text()
    assert "Rank-1 94.5 / mAP 85.9" in comment and "Rank-1 94.1 / mAP 85.7 without it" in comment


def test_r18_spec_is_the_same_recipe_with_the_smaller_backbone():
    r50, r18 = (load_spec(SPECS / name).model_dump() for name in ("market1501-r50.toml", "market1501.toml"))
    differing = {(table, key) for table, values in r50.items() if isinstance(values, dict)
                 for key in values if values[key] != r18[table][key]}
    assert differing == {("model", "arch")} and r18["model"]["arch"] == "resnet18"
