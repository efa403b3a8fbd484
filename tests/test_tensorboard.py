"""TensorBoard by default: every run writes RUN/tb/ (scalars at metrics.jsonl's steps, the spec as text, and once
training ends the last evaluation's ranked-list grid and embedding projector); `runtime.tensorboard = false`
writes nothing there."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from PIL import Image

import reid.engine.tensorboard_hook as tb
from reid.cli import main
from reid.data import build_data
from reid.engine.evaluation import Evaluation, Features, score
from reid.engine.ranked_grid import CORRECT, DPI, WRONG, grid_inches
from reid.engine.rundir import RunDir
from reid.engine.tracking import tracking_hooks
from reid.spec import Spec, load_spec_text
from tiny_specs import FP32_DETERMINISTIC, TINY_DATA

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
from tensorboard.plugins.projector.projector_config_pb2 import ProjectorConfig  # noqa: E402
from google.protobuf import text_format  # noqa: E402

SPEC = 'name = "tb"\n' + TINY_DATA + FP32_DETERMINISTIC + """
[schedule]
epochs = 3
warmup_epochs = 0
max_iters_per_epoch = 2
"""


@pytest.fixture(scope="module")
def tb_run(module_tmp_path):
    """``(run directory, its tb/ read back)`` of one `reid run` of :data:`SPEC`."""
    tmp = module_tmp_path
    spec, out = tmp / "s.toml", tmp / "run"
    spec.write_text(SPEC, encoding="utf-8")
    main(["run", str(spec), "--out", str(out), "--plain"])
    acc = event_accumulator.EventAccumulator(str(out / "tb"))
    acc.Reload()
    return out, acc


def scalars(acc, tag: str) -> list[tuple[int, float]]:
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def tsv(path) -> list[list[str]]:
    return [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()]


def near(pixels: np.ndarray, colour: tuple[int, int, int]) -> int:
    """How many pixels lie within 12 levels of ``colour`` in every channel."""
    return int((np.abs(pixels.astype(int) - colour) <= 12).all(-1).sum())


def test_the_rank1_series_in_tensorboard_equals_metrics_jsonl(tb_run):
    out, acc = tb_run
    epochs = [r for r in RunDir(out).read_metrics() if r["kind"] == "epoch"]
    iters = [r for r in RunDir(out).read_metrics() if r["kind"] == "iter"]
    assert len(epochs) == 3
    assert scalars(acc, "eval/rank1") == [(r["step"], float(np.float32(r["rank1"]))) for r in epochs]
    assert scalars(acc, "eval/mAP") == [(r["step"], float(np.float32(r["mAP"]))) for r in epochs]
    assert [s for s, _ in scalars(acc, "train/loss")] == [r["step"] for r in iters]
    assert {"eval/mINP", "eval/rank5", "epoch/images_per_second", "epoch/lr", "train/lr"} <= set(acc.Tags()["scalars"])
    spec_text = acc.Tensors("spec/text_summary")[0].tensor_proto.string_val[0].decode()
    assert 'name = "tb"' in spec_text


def test_the_last_evaluation_is_drawn_as_a_ranked_grid_and_a_projector(tb_run):
    out, acc = tb_run
    last_step = [r for r in RunDir(out).read_metrics() if r["kind"] == "epoch"][-1]["step"]
    query = build_data(load_spec_text(SPEC).data).query  # leave-one-out: 6 identities × 6 images
    [grid] = acc.Images("eval/ranked_lists")
    width, height = grid_inches(6, tb.TOP + 1, 64, 64)  # a query and its top 10 in each of 6 rows
    assert (grid.step, grid.width, grid.height) == (last_step, int(width * DPI), int(height * DPI))
    pixels = np.asarray(Image.open(io.BytesIO(grid.encoded_image_string)).convert("RGB"))
    assert pixels.shape == (grid.height, grid.width, 3)
    assert near(pixels, CORRECT) > 0 and near(pixels, WRONG) > 0  # green and red frames

    config = text_format.Parse((out / "tb" / "projector_config.pbtxt").read_text(encoding="utf-8"), ProjectorConfig())
    [embedding] = config.embeddings
    assert embedding.tensor_name == f"embeddings:{last_step:05d}"
    vectors, metadata = tsv(out / "tb" / embedding.tensor_path), tsv(out / "tb" / embedding.metadata_path)
    assert len(vectors) == len(query) == 36 and len({len(v) for v in vectors}) == 1
    assert metadata[0] == ["pid", "camid", "split"]
    assert metadata[1:] == [[str(p), str(c), "leave-one-out"]
                            for p, c in zip(query.pids.tolist(), query.camids.tolist())]
    sprite = Image.open(out / "tb" / embedding.sprite.image_path)
    assert list(embedding.sprite.single_image_dim) == [tb.THUMBNAIL, tb.THUMBNAIL]
    assert sprite.size == (tb.THUMBNAIL * math.ceil(math.sqrt(36)),) * 2


def test_the_projector_keeps_whole_identities_query_first_under_its_cap(tmp_path, monkeypatch, capsys):
    from torch.utils.tensorboard import SummaryWriter

    spec = load_spec_text('name = "p"\n' + TINY_DATA.replace('"leave_one_out"', '"per_camera"'))
    data = build_data(spec.data)  # 6 identities: 2 query and 4 gallery images each
    torch.manual_seed(0)
    query, gallery = (Features(torch.randn(len(s), 8), s.pids, s.camids) for s in (data.query, data.gallery))
    evaluation = Evaluation(score(query, gallery, spec.eval, False), query, gallery, data.query, data.gallery, False)
    monkeypatch.setattr(tb, "PROJECTOR_POINTS", 20)  # room for 3 of the 6 identities
    for name in ("a", "b"):
        with SummaryWriter(tmp_path / name) as writer:
            tb.write_projector(writer, evaluation, spec.eval, step=7)
    rows = tsv(tmp_path / "a" / "00007" / "embeddings" / "metadata.tsv")[1:]
    capsys.readouterr()
    with SummaryWriter(tmp_path / "a") as writer:  # a resumed run draws its last step again: replaced, silently
        tb.write_projector(writer, evaluation, spec.eval, step=7)
    assert capsys.readouterr().out == ""
    assert tsv(tmp_path / "a" / "00007" / "embeddings" / "metadata.tsv")[1:] == rows
    assert rows == tsv(tmp_path / "b" / "00007" / "embeddings" / "metadata.tsv")[1:]  # deterministic
    shown = {int(r[0]) for r in rows}
    assert len(rows) == 18 and len(shown) == 3
    expected = [[str(p), str(c), split] for split, s in (("query", data.query), ("gallery", data.gallery))
                for p, c in zip(s.pids.tolist(), s.camids.tolist()) if p in shown]
    assert rows == expected
    image = tb.ranked_list_image(evaluation, spec.eval, "title")
    width, height = grid_inches(6, tb.TOP + 1, 64, 64)
    assert image.shape == (int(height * DPI), int(width * DPI), 3) and image.dtype == np.uint8


def test_tensorboard_can_be_turned_off():
    run = RunDir("unused")
    assert [type(h).__name__ for h in tracking_hooks(run, Spec())] == ["TensorBoardHook"]
    assert tracking_hooks(run, Spec(runtime={"tensorboard": False})) == []
