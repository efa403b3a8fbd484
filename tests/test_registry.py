"""Registries drive the spec: a component registered from user code is accepted by a spec and trained on."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from PIL import Image

from reid.data.formats import Sample, Splits, query_gallery_split, require_root
from reid.data.split import split_identities
from reid.engine.experiment import run_experiment
from reid.errors import ReidError
from reid.registry import DATASETS, Registry
from reid.spec import DataSpec, load_spec_text

TINY_TRAINING = """
[model]
arch = "resnet18"
[sampler]
type = "pk"
p = 4
k = 2
[loss]
triplet_weight = 1.0
[schedule]
epochs = 1
max_iters_per_epoch = 2
[runtime]
precision = "fp32"
threads = 2
"""


def csv_list(spec: DataSpec, cache_dir: Path) -> Splits:
    """A format of one's own: ``root/labels.csv`` with ``file,person,camera`` rows, split by identity."""
    root = require_root(spec)
    with open(root / "labels.csv", newline="") as f:
        rows = [Sample(str(root / r["file"]), int(r["person"]), int(r["camera"])) for r in csv.DictReader(f)]
    train_pids, _ = split_identities([s.pid for s in rows], spec.train_ids, spec.train_fraction, spec.split_seed)
    train = [s for s in rows if s.pid in set(train_pids)]
    query, gallery = query_gallery_split([s for s in rows if s.pid not in set(train_pids)], spec.split_seed)
    return Splits("csv_list", root, train, query, gallery, own_split=False)


@pytest.fixture
def registered_csv_list(monkeypatch):
    """``csv_list`` registered as a user would (the decorator), for this test only."""
    monkeypatch.setattr(DATASETS, "_items", dict(DATASETS._loaded()))  # restored afterwards: other tests see the built-ins
    DATASETS.register("csv_list")(csv_list)


def write_images(root: Path, ids: int, per_id: int, folders: bool) -> list[tuple[str, int, int]]:
    """``ids`` identities × ``per_id`` small JPEGs (colour per identity, two cameras)."""
    rows = []
    for pid in range(ids):
        for j in range(per_id):
            name = f"person{pid:02d}/img{j}_c{j % 2}.jpg" if folders else f"{pid:02d}_{j}.jpg"
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (16, 32), (pid * 4 % 256, 255 - pid * 4 % 256, 40 * j % 256)).save(root / name)
            rows.append((name, pid, j % 2))
    return rows


def test_a_dataset_registered_in_a_test_is_accepted_by_a_spec_and_trained_on(tmp_path, monkeypatch, registered_csv_list):
    monkeypatch.setenv("REID_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "mine"
    root.mkdir()
    with open(root / "labels.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "person", "camera"])
        writer.writerows(write_images(root, ids=10, per_id=4, folders=False))
    spec = load_spec_text(f'name = "mine"\n[data]\ndataset = "csv_list"\nroot = "{root}"\nheight = 32\nwidth = 32\n'
                          + TINY_TRAINING)
    summary = run_experiment(spec, tmp_path / "run", plain=True)
    assert summary.dataset.name == "csv_list" and summary.dataset.num_classes == 8  # 0.8 of 10 identities
    assert (tmp_path / "run" / "checkpoints" / "last.pt").is_file()
    assert 'dataset = "csv_list"' in (tmp_path / "run" / "spec.toml").read_text()


def test_a_folder_of_62_identities_trains_with_no_split_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("REID_CACHE", str(tmp_path / "cache"))
    write_images(tmp_path / "people", ids=62, per_id=3, folders=True)
    spec = load_spec_text(f'name = "people"\n[data]\ndataset = "folder"\nroot = "{tmp_path / "people"}"\n'
                          'camera_regex = "_c(\\\\d)"\nheight = 32\nwidth = 32\n' + TINY_TRAINING)
    summary = run_experiment(spec, tmp_path / "run", plain=True)
    assert summary.dataset.num_classes == 50 and summary.dataset.validation_identities == 12


def test_the_registry_loads_its_built_ins_on_first_use_and_lists_them_when_a_name_is_unknown():
    shapes = Registry("shape", builtins="reid.model.pooling", home="my.SHAPES")  # any module: imported once, lazily
    shapes.register("circle")(lambda: "o")
    assert shapes.names() == ["circle"] and shapes.get("circle")() == "o"
    with pytest.raises(ReidError, match=r"unknown shape 'square': registered shapes are circle \(register your own with @my.SHAPES.register\)"):
        shapes.get("square")
    with pytest.raises(ValueError, match="registered twice"):
        shapes.register("circle")(lambda: "O")


def test_a_loss_term_registered_from_user_code_is_weighted_by_loss_terms(monkeypatch):
    import torch

    from reid.losses import build_loss
    from reid.registry import LOSSES

    monkeypatch.setattr(LOSSES, "_items", dict(LOSSES._loaded()))
    LOSSES.register("feature_norm")(lambda outputs, pids, spec, gather: outputs["features"].norm(dim=1).mean())
    spec = load_spec_text("[loss]\nid_weight = 0.0\nterms = {feature_norm = 0.5}\n[head]\ntype = \"none\"")
    total, parts = build_loss(spec.loss)({"features": torch.full((2, 4), 3.0), "logits": None}, torch.tensor([0, 1]))
    assert list(parts) == ["feature_norm"] and float(parts["feature_norm"]) == 6.0 and float(total) == 3.0
