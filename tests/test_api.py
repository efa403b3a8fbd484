"""Using a trained model: reid.load / embed / evaluate / search and the eval, embed and search commands."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import reid
from reid.api import FeatureSet
from reid.data import build_data
from reid.engine.checkpoint import load_checkpoint, read_model_checkpoint
from reid.engine.evaluation import extract_features
from reid.engine.experiment import run_experiment
from reid.engine.rundir import RunDir
from reid.engine.runtime import resolve_runtime
from reid.model import build_model
from reid.spec import RuntimeSpec, load_spec_text
from tiny_specs import FP32_DETERMINISTIC, TINY_DATA

SPEC = """
name = "tiny-api"
seed = 1
""" + TINY_DATA.replace('query_rule = "leave_one_out"', 'query_rule = "per_camera"') + FP32_DETERMINISTIC + """
[augment]
erase = 0.0
[head]
type = "bnneck"
[loss]
triplet_weight = 1.0
[sampler]
type = "pk"
p = 4
k = 4
[optim]
lr = 1e-3
[schedule]
epochs = 3
warmup_epochs = 0
max_iters_per_epoch = 4
[eval]
batch_size = 16
"""


@pytest.fixture(scope="module")
def run_dir(module_tmp_path) -> Path:
    out = module_tmp_path / "run"
    run_experiment(load_spec_text(SPEC), out, plain=True)
    return out


@pytest.fixture(scope="module")
def data(run_dir):
    return build_data(load_spec_text(SPEC).data)


def test_load_and_embed_equal_the_training_evaluation_bitwise(run_dir, data):
    spec = load_spec_text(SPEC)
    model = build_model(spec.model, spec.head, num_classes=data.num_classes, input_size=(3, 64, 64))
    model.load_state_dict(load_checkpoint(run_dir / "checkpoints" / "last.pt")["model"])
    runtime = resolve_runtime(RuntimeSpec(precision="fp32"))
    expected = extract_features(model, data.query, runtime, spec.eval, spec.augment).features
    loaded = reid.load(run_dir, which="last")
    assert loaded.num_classes == data.num_classes and loaded.embedding_dim == 512
    assert torch.equal(loaded.embed(data.query.paths), expected)
    # in-memory forms of the same pixels embed to the same features
    first = Image.open(data.query.paths[0])
    as_array = np.array(first.convert("RGB"))
    as_tensor = torch.from_numpy(as_array).permute(2, 0, 1)
    assert torch.equal(loaded.embed([first, as_array, as_tensor]), expected[[0, 0, 0]])


def test_eval_reproduces_the_logged_metrics_exactly(run_dir, cli):
    epochs = [r for r in RunDir(run_dir).read_metrics() if r["kind"] == "epoch"]
    code, out, _ = cli("eval", run_dir, "--checkpoint", "last", "--format", "json", "-o", run_dir / "last.json")
    assert code == 0
    result = json.loads(out)["result"]
    last = epochs[-1]
    assert (result["cmc"][0], result["mAP"], result["mINP"], result["num_valid"]) == \
        (last["rank1"], last["mAP"], last["mINP"], last["num_valid"])
    assert result["val_loss"] is None  # the validation triplet loss is a training-time number (an N×N pass)
    best = read_model_checkpoint(run_dir / "checkpoints" / "best.pt")
    logged_best = next(r for r in epochs if r["epoch"] == best.epoch)
    result = reid.load(run_dir).evaluate()
    assert (result.rank(1), result.mAP, result.mINP) == (logged_best["rank1"], logged_best["mAP"], logged_best["mINP"])
    assert json.loads((run_dir / "last.json").read_text())["epoch"] == last["epoch"]


def test_cross_dataset_eval_on_a_folder_per_identity_dataset(run_dir, data, tmp_path, cli):
    root = tmp_path / "people"
    for path, pid, cam in zip(data.train.paths, data.train.pids.tolist(), data.train.camids.tolist()):
        folder = root / f"person{pid:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, folder / f"{Path(path).stem}_cam{cam}.png")
    code, out, _ = cli("eval", run_dir, "--data", root, "--set", r"data.camera_regex=_cam(\d+)\.", "--format", "json",
                        "-o", tmp_path / "cross.json")
    assert code == 0, out
    record = json.loads(out)
    ids, cams = data.num_classes, len(data.train.camids.unique())
    assert record["dataset"]["whole_dataset"] and record["dataset"]["name"] == "folder"
    assert record["dataset"]["queries"] == ids * cams  # one query per identity and camera, all identities
    assert record["dataset"]["queries"] + record["dataset"]["gallery"] == len(data.train)
    assert record["result"]["protocol"] == "market" and 0 < record["result"]["mAP"] <= 1


def test_eval_on_a_folder_reads_its_cameras_with_the_runs_camera_regex(run_dir, tmp_path):
    (tmp_path / "other" / "0001").mkdir(parents=True)
    Image.new("RGB", (8, 16)).save(tmp_path / "other" / "0001" / "0001_c1_01.jpg")
    model = reid.load(run_dir)
    assert model.evaluation_target(tmp_path / "other").data.camera_regex is None  # a synthetic run: no regex
    trained = model.spec.data.model_copy(update={"dataset": "folder", "root": "/x", "camera_regex": r"_c(\d+)_"})
    model.spec = model.spec.model_copy(update={"data": trained})  # as if trained on a folder named that way
    assert model.evaluation_target(tmp_path / "other").data.camera_regex == r"_c(\d+)_"
    assert model.evaluation_target(tmp_path / "other", [r"data.camera_regex=_(\d+)\."]).data.camera_regex == r"_(\d+)\."


def test_embed_writes_features_that_round_trip(run_dir, data, tmp_path, cli):
    folder = Path(data.query.paths[0]).parent
    out_file = tmp_path / "feats.safetensors"
    code, out, err = cli("embed", run_dir, folder, "-o", out_file, "--format", "json")
    assert code == 0, err
    assert json.loads(out)["images"] == len(list(folder.glob("*.jpg")))
    fs = FeatureSet.load(out_file, dim=512)
    assert fs.names == sorted(str(p) for p in folder.glob("*.jpg"))
    assert torch.equal(fs.features, reid.load(run_dir).embed(fs.names))
    labels = [tuple(map(int, Path(n).name.split("_c")[0:1])) for n in fs.names]
    assert fs.pids.tolist() == [pid for (pid,) in labels] and fs.labelled


def test_search_writes_a_grid_of_the_requested_size(run_dir, data, tmp_path, cli):
    from reid.cli.search import search_figure

    gallery = tmp_path / "gallery.safetensors"
    assert cli("embed", run_dir, *data.gallery.paths, "-o", gallery)[0] == 0
    png = tmp_path / "ranks.png"
    queries = data.query.paths[:3]
    code, out, _ = cli("search", run_dir, *[a for q in queries for a in ("--query", q)], "--gallery", gallery,
                        "--top", 4, "-o", png, "--format", "json")
    assert code == 0
    results = json.loads(out)["results"]
    assert [len(r["gallery"]) for r in results] == [4, 4, 4]
    with Image.open(png) as img:
        assert img.format == "PNG"
    model = reid.load(run_dir)
    found = model.search(queries, gallery, top_k=4)
    assert [r.gallery for r in found] == [r["gallery"] for r in results]
    reranked = reid.load(run_dir)
    reranked.spec.eval.rerank = True  # as a run with [eval] rerank = true: search ranks re-ranked distances
    from reid.evaluation.ranking import top_k_of_distances
    from reid.rerank import rerank_features

    q_feats, g_feats = reranked.embed(queries), FeatureSet.load(gallery).features
    expected = top_k_of_distances(rerank_features(q_feats, g_feats), 4, protocol="market", q_pids=data.query.pids[:3],
                                  g_pids=data.gallery.pids, q_camids=data.query.camids[:3], g_camids=data.gallery.camids)
    assert [r.ranked.gallery for r in reranked.search(queries, gallery, top_k=4)] == [r.gallery for r in expected]
    fig = search_figure(found, model, top=4)
    assert len(fig.axes) == 3 * 5  # rows × (query + top)
    q_pid, q_cam = data.query.pids[0].item(), data.query.camids[0].item()
    by_path = dict(zip(data.gallery.paths, zip(data.gallery.pids.tolist(), data.gallery.camids.tolist())))
    assert all(by_path[g] != (q_pid, q_cam) for g in found[0].gallery)  # the market junk rule holds


def test_old_checkpoints_load_from_their_run(run_dir, data, tmp_path):
    old = tmp_path / "old-run"
    shutil.copytree(run_dir, old)
    ckpt = load_checkpoint(old / "checkpoints" / "best.pt")
    torch.save({"model": ckpt["model"], "best": ckpt["best"]}, old / "checkpoints" / "best.pt")  # the pre-0.2 layout
    (old / "checkpoints" / "manifest.json").unlink()  # which had no checkpoint manifest either
    assert torch.equal(reid.load(old).embed(data.query.paths[:2]), reid.load(run_dir).embed(data.query.paths[:2]))
    lone = tmp_path / "lone.pt"
    shutil.copy(old / "checkpoints" / "best.pt", lone)
    with pytest.raises(reid.errors.ReidError, match="spec.toml"):
        reid.load(lone)


def _corrupt_run(run_dir: Path, tmp_path: Path) -> Path:
    bad = tmp_path / "corrupt"
    shutil.copytree(run_dir, bad)
    (bad / "checkpoints" / "best.pt").write_bytes(b"not a checkpoint")
    return bad


@pytest.mark.parametrize("case", ["not a run", "corrupt checkpoint", "not an image", "empty folder", "other dimension",
                                  "missing query"])
def test_bad_inputs_give_one_clear_error(case, run_dir, data, tmp_path, cli):
    empty = tmp_path / "empty"
    empty.mkdir()
    fake = tmp_path / "photo.jpg"
    fake.write_text("hello")
    other = FeatureSet(torch.zeros(2, 7), ["a.png", "b.png"], torch.tensor([-1, -1]), torch.tensor([-1, -1]))
    other_file = other.save(tmp_path / "other.safetensors")
    args, expected = {
        "not a run": (["eval", empty], "no checkpoint in this directory"),
        "corrupt checkpoint": (["eval", _corrupt_run(run_dir, tmp_path)], "unreadable"),
        "not an image": (["embed", run_dir, fake, "-o", tmp_path / "x.safetensors"], "not an image"),
        "empty folder": (["embed", run_dir, empty, "-o", tmp_path / "x.safetensors"], "no image files"),
        "other dimension": (["search", run_dir, "--query", data.query.paths[0], "--gallery", other_file], "dimension 7"),
        "missing query": (["search", run_dir, "--query", tmp_path / "nope.jpg", "--gallery", empty], "no such file"),
    }[case]
    code, out, err = cli(*args)
    assert code == 2
    assert err.startswith("error:") and expected in err and "Traceback" not in err + out
    assert len(err.strip().splitlines()) == 1


def test_a_gallery_embedded_by_other_weights_is_refused(run_dir, data, tmp_path, cli):
    """best.pt and last.pt embed into the same 512 dimensions, but their distances are not comparable."""
    best, last = reid.load(run_dir), reid.load(run_dir, which="last")
    assert best.weights_sha256 != last.weights_sha256
    gallery = tmp_path / "by-last.safetensors"
    last.embed_set(data.gallery.paths).save(gallery)
    assert FeatureSet.load(gallery).meta["weights_sha256"] == last.weights_sha256
    queries = data.query.paths[:2]
    assert len(last.search(queries, gallery, top_k=3)) == 2  # its own weights: fine
    with pytest.raises(reid.errors.ReidError, match="embedded by other weights") as err:
        best.search(queries, gallery, top_k=3)
    assert str(gallery) in str(err.value) and "last.pt" in str(err.value)
    with pytest.warns(UserWarning, match="ranking them anyway"):
        assert len(best.search(queries, gallery, top_k=3, allow_other_checkpoint=True)) == 2
    with pytest.raises(reid.errors.ReidError, match="other weights"):  # query features are checked the same way
        last.search(best.embed_set(queries), gallery, top_k=3)
    code, _, err_text = cli("search", run_dir, "--query", queries[0], "--gallery", gallery, "-o", tmp_path / "r.png")
    assert code == 2 and err_text.startswith("error:") and "--allow-other-checkpoint" in err_text
    code, _, _ = cli("search", run_dir, "--query", queries[0], "--gallery", gallery, "-o", tmp_path / "r.png",
                     "--allow-other-checkpoint")
    assert code == 0


def test_load_leaves_the_process_tf32_settings_alone(run_dir, monkeypatch):
    """On a GPU, reid.load used to switch TF32 process-wide; now it applies its setting inside its own forwards."""
    import dataclasses

    import reid.api.loaded as loaded_module

    real = loaded_module.resolve_runtime

    def on_a_fake_gpu(spec, *args, **kwargs):  # resolve as on CUDA, then run on the CPU
        with monkeypatch.context() as m:
            m.setattr(torch.cuda, "is_available", lambda: True)
            m.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
            runtime = real(spec.model_copy(update={"device": "cuda"}), *args, **kwargs)
        return dataclasses.replace(runtime, device=torch.device("cpu"))

    monkeypatch.setattr(loaded_module, "resolve_runtime", on_a_fake_gpu)
    flags = lambda: (torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision)  # noqa: E731
    saved = flags()
    try:
        torch.backends.cuda.matmul.fp32_precision = torch.backends.cudnn.conv.fp32_precision = "tf32"
        model = reid.load(run_dir, precision="fp32")
        assert flags() == ("tf32", "tf32")  # the caller's choice survives loading
        assert model.runtime.tf32 is False
        gpu = dataclasses.replace(model.runtime, device=torch.device("cuda"))
        with gpu.autocast():
            assert flags() == ("ieee", "ieee")  # fp32 evaluation is IEEE fp32 inside the model's forwards
        assert flags() == ("tf32", "tf32")
    finally:
        torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision = saved
