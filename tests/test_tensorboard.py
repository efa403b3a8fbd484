"""TensorBoard by default: every run writes RUN/tb/ (scalars at metrics.jsonl's steps, the spec as text);
`runtime.tensorboard = false` writes nothing there."""

from __future__ import annotations

import numpy as np
import pytest

from reid.engine.rundir import RunDir
from reid.engine.tracking import tracking_hooks
from reid.spec import Spec
from tiny_specs import FP32_DETERMINISTIC, TINY_DATA

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")

SPEC = 'name = "tb"\n' + TINY_DATA + FP32_DETERMINISTIC + """
[schedule]
epochs = 3
warmup_epochs = 0
max_iters_per_epoch = 2
"""


def scalars(acc, tag: str) -> list[tuple[int, float]]:
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def test_the_rank1_series_in_tensorboard_equals_metrics_jsonl(tmp_path, cli):
    spec, out = tmp_path / "s.toml", tmp_path / "run"
    spec.write_text(SPEC, encoding="utf-8")
    assert cli("run", spec, "--out", out, "--plain")[0] == 0
    acc = event_accumulator.EventAccumulator(str(out / "tb"))
    acc.Reload()
    epochs = [r for r in RunDir(out).read_metrics() if r["kind"] == "epoch"]
    iters = [r for r in RunDir(out).read_metrics() if r["kind"] == "iter"]
    assert len(epochs) == 3
    assert scalars(acc, "eval/rank1") == [(r["step"], float(np.float32(r["rank1"]))) for r in epochs]
    assert scalars(acc, "eval/mAP") == [(r["step"], float(np.float32(r["mAP"]))) for r in epochs]
    assert [s for s, _ in scalars(acc, "train/loss")] == [r["step"] for r in iters]
    assert {"eval/mINP", "eval/rank5", "epoch/images_per_second", "epoch/lr", "train/lr"} <= set(acc.Tags()["scalars"])
    spec_text = acc.Tensors("spec/text_summary")[0].tensor_proto.string_val[0].decode()
    assert 'name = "tb"' in spec_text


def test_tensorboard_can_be_turned_off():
    run = RunDir("unused")
    assert [type(h).__name__ for h in tracking_hooks(run, Spec())] == ["TensorBoardHook"]
    assert tracking_hooks(run, Spec(runtime={"tensorboard": False})) == []
