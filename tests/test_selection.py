"""Model selection: best.pt and summary.best are never chosen on a benchmark's query / gallery (test) split."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import reid
from reid.engine.checkpoint import read_model_checkpoint
from reid.engine.experiment import run_experiment
from reid.engine.hooks import CheckpointHook
from reid.engine.rundir import RunDir
from reid.engine.selection import resolve_selection
from reid.engine.summary import RunSummary
from reid.errors import ReidError
from reid.spec import load_spec_text


def _market_folder(root: Path) -> Path:
    """A tiny Market-1501 layout: 10 training identities × 4 crops, 6 test identities (query on camera 1,
    gallery on camera 2, plus two distractors), each identity a colour with per-image noise."""
    rng = np.random.default_rng(0)
    colours = rng.integers(30, 226, (40, 3))

    def crop(pid: int) -> Image.Image:
        base = np.broadcast_to(colours[pid], (32, 16, 3)).astype(np.int16)
        return Image.fromarray(np.clip(base + rng.integers(-40, 41, (32, 16, 3)), 0, 255).astype(np.uint8))

    for folder, pids, cams, per_cam in (("bounding_box_train", range(1, 11), (1, 2), 2),
                                        ("query", range(20, 26), (1,), 1), ("bounding_box_test", range(20, 26), (2,), 2)):
        (root / folder).mkdir(parents=True, exist_ok=True)
        for pid in pids:
            for cam in cams:
                for i in range(per_cam):
                    crop(pid).save(root / folder / f"{pid:04d}_c{cam}s1_{i:06d}_00.jpg")
    for i in range(2):
        crop(39).save(root / "bounding_box_test" / f"0000_c1s1_{i:06d}_00.jpg")
    return root


SPEC = """
name = "tiny-market"
seed = 0
[data]
dataset = "market1501"
root = "{root}"
height = 32
width = 16
[augment]
erase = 0.0
pad = 2
[model]
layers = [1, 1, 1, 1]
[head]
type = "bnneck"
[sampler]
type = "random"
batch_size = 8
[optim]
lr = 1e-3
[schedule]
epochs = 3
warmup_epochs = 0
max_iters_per_epoch = 2
[runtime]
precision = "fp32"
deterministic = true
threads = 1
[eval]
batch_size = 32
"""


@pytest.fixture(scope="module")
def market(tmp_path_factory) -> Path:
    return _market_folder(tmp_path_factory.mktemp("market") / "Market-1501")


def _run(market: Path, out: Path, extra: str = "") -> Path:
    run_experiment(load_spec_text(SPEC.replace("{root}", str(market)) + extra), out, plain=True)
    return out


def _epochs(run: Path) -> list[dict]:
    return [r for r in RunDir(run).read_metrics() if r["kind"] == "epoch"]


def test_by_default_a_market_run_selects_nothing_on_its_test_split(market, tmp_path):
    run = _run(market, tmp_path / "none")
    summary = RunSummary.from_json(json.loads((run / "summary.json").read_text()))
    assert not (run / "checkpoints" / "best.pt").exists()  # no checkpoint picked on query / gallery
    assert summary.best is None and summary.final.epoch == 3 and "final epoch" in summary.selection
    assert reid.load(run).checkpoint.name == "last.pt"  # reid.load / reid eval use the final weights


def test_select_on_val_picks_best_pt_on_a_split_of_the_training_identities(market, tmp_path):
    run = _run(market, tmp_path / "val", 'select_on = "val"\nval_ids = 3\n')  # into SPEC's [eval]
    epochs = _epochs(run)
    assert all("val_rank1" in r and "rank1" in r for r in epochs)  # both splits evaluated every epoch
    chosen = max(epochs, key=lambda r: r["val_rank1"])
    best = read_model_checkpoint(run / "checkpoints" / "best.pt")
    assert best.epoch == chosen["epoch"] and best.best["selected_on"].startswith("best Rank-1 on a validation split")
    assert best.num_classes == 10 - 3  # the validation identities were not trained on
    summary = RunSummary.from_json(json.loads((run / "summary.json").read_text()))
    assert summary.best.epoch == chosen["epoch"] and summary.best.result.rank(1) == chosen["rank1"]  # its test numbers
    assert summary.final.epoch == 3 and "3 training identities" in summary.selection


def test_selecting_on_a_benchmarks_test_split_is_refused():
    with pytest.raises(ReidError, match="test set"):
        resolve_selection("eval", own_split=True, dataset="market1501")
    assert resolve_selection("auto", own_split=False, dataset="synthetic") == "eval"  # held-out identities: a val set


class _Trainer:
    def __init__(self, records):
        self.records, self.state, self.epochs, self.model = records, type("S", (), {"epoch": 0})(), len(records), None


def test_the_checkpoint_hook_follows_the_selection_metric_not_test_rank1(tmp_path, monkeypatch):
    saved = []
    monkeypatch.setattr("reid.engine.hooks.save_checkpoint", lambda state, path: saved.append((path.name, state)))
    monkeypatch.setattr("reid.engine.hooks.model_checkpoint", lambda d, m, best: {"best": dict(best)})
    monkeypatch.setattr("reid.engine.hooks.training_checkpoint", lambda d, t, best, rng, evaluated: {"best": dict(best)})
    run = RunDir(tmp_path / "run")
    records = [{"epoch": 1, "rank1": 0.9, "val_rank1": 0.2}, {"epoch": 2, "rank1": 0.1, "val_rank1": 0.6},
               {"epoch": 3, "rank1": 0.95, "val_rank1": 0.5}]
    for key, expected in (("val_rank1", [2]), (None, [])):
        saved.clear()
        hook, trainer = CheckpointHook(run, 1, {}, select_key=key, selected_on="rule"), _Trainer(records)
        for r in records:
            trainer.state.epoch, trainer.epoch_record = r["epoch"], r
            hook.after_epoch(trainer)
        assert [s["best"]["epoch"] for name, s in saved if name == "best.pt"][-1:] == expected
