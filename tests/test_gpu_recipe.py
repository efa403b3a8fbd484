"""The prepared whole-recipe GPU call (benchmarks/gpu_recipe.py) cannot rot: its CPU smoke runs the same sections."""

from __future__ import annotations

from pathlib import Path

from benchmarks.gpu_recipe import BEGIN, CALL, DEFAULT_SPEC, END, Watcher, main, run_recipe
from device_calls import rendered_twice

#: The recipe the call trains; the ResNet-50 strong baseline stands in until the BoT spec is in the repository.
SPEC = DEFAULT_SPEC if Path(DEFAULT_SPEC).is_file() else "specs/market1501-r50.toml"


def test_cpu_smoke_runs_data_plain_loop_and_the_recipe_section_by_section(tmp_path):
    snapshots = []
    r = run_recipe(SPEC, smoke=True, cache_dir=str(tmp_path / "cache"), work=tmp_path / "work",
                   log=lambda message: None, saved=lambda so_far: snapshots.append(set(so_far)))
    assert r["errors"] == {}
    assert [("data" in s, "plain" in s, "recipe" in s) for s in snapshots] == [
        (True, False, False), (True, True, False), (True, True, True)]  # a cut-off call keeps earlier sections
    assert 'data.synth_preset="market1501"' in r["sets"] and r["data"]["train_ids"] == 4  # the preset, shrunk
    rec = r["recipe"]
    assert rec["rc"] == 0 and not rec.get("stopped"), rec.get("tail")
    assert rec["epochs"] == rec["epochs_planned"] == 1
    assert rec["img_s"] > 0 and r["plain"]["img_s"] > 0 and rec["rank1"] is not None and rec["mAP"] > 0
    assert rec["busy"] is None and rec["train_window_s"] >= 0  # no GPU to sample, but the window was watched
    checks = {row[0]: row for row in CALL.rows(r)}
    assert any(c.startswith("`reid run` of") and row[3] == "yes" for c, row in checks.items())
    assert any(c.startswith("reid over the plain loop") for c in checks)


def test_a_past_call_is_rendered_between_its_markers(tmp_path, monkeypatch, capsys):
    numbers = {"device": "NVIDIA Test", "torch": "2.x", "date": "2026-01-02", "spec": "specs/x.toml", "errors": {},
               "wall_s": 500.0, "plain": {"img_s": 2000.0, "seconds": 60.0, "workers": 12, "batch": 64,
                                           "model": "torchvision resnet50"},
               "recipe": {"epochs_planned": 120, "epochs": 120, "rc": 0, "wall_s": 400.0, "images": 1443840,
                          "train_s": 360.0, "img_s": 4010.7, "busy": 0.9, "busy_run": 0.8, "rank1": 0.5, "mAP": 0.25}}
    text = rendered_twice(main, numbers, tmp_path, monkeypatch)
    assert text.startswith("# Benchmarks\n\nbefore\n") and text.count(BEGIN) == 1 and END in text
    assert "| reid training img/s (1,443,840 images in 120 epochs) | 4011 | ≥ 4000 | yes |" in text
    assert "| reid over the plain loop | ×2.01 | ≥ 2× | yes |" in text
    assert "| GPU busy share of the training wall time (NVML utilisation) | 90% (whole `reid run`: 80%) | ≥ 85% | yes |" in text
    assert "| Rank-1 / mAP (final evaluation, market protocol) | 0.500 / 0.250 |  |  |" in text
    assert "on 2026-01-02 on NVIDIA Test" in text and "| check | measured |" in capsys.readouterr().out


def test_the_busy_share_covers_training_from_the_first_step_to_the_last_epoch_less_its_evaluation(tmp_path):
    metrics = tmp_path / "metrics.jsonl"
    clock = iter([10.0, 20.0, 30.0, 40.0, 50.0])
    watcher = Watcher(metrics, period=1.0, read=lambda: 80.0, clock=lambda: next(clock))
    steps = ['{"kind": "iter", "step": 1}\n', '{"kind": "epoch", "epoch": 1, "eval_seconds": 0.0}\n',
             '{"kind": "epoch", "epoch": 2, "eval_seconds": 5.0}\n{"kind": "ep']  # a line being written waits
    watcher._poll()  # nothing written yet
    for text in steps:
        with open(metrics, "a") as f:
            f.write(text)
        watcher._poll()
    assert watcher.first_step == 20.0 and watcher.epochs == [(30.0, 0.0), (40.0, 5.0)]
    assert watcher.training_window() == (20.0, 35.0)
    assert watcher.busy_share(20.0, 35.0) == 0.8 and watcher.busy_share(60.0, 70.0) is None
