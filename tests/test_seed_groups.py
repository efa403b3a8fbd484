"""Seed groups: runs whose specs differ only in seed, and the mean ± sample std of their final metrics."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reid.data.describe import DatasetInfo, SplitCounts
from reid.engine.rundir import RunDir
from reid.engine.summary import DeviceInfo, EvalSettings, EvaluatedEpoch, RunSummary, Versions
from reid.errors import ReidError
from reid.report.seed_groups import MetricStats, finished_runs, group_runs
from reid.spec import load_spec_text


def fake_run(path: Path, spec_text: str, final: dict | None) -> Path:
    """A run directory as `reid run` leaves it: spec.toml and (when ``final`` is given) summary.json."""
    run = RunDir(path)
    run.create(load_spec_text(spec_text).to_toml())
    if final is not None:
        counts = SplitCounts.of([])
        settings = EvalSettings("all", "euclidean", False, False, 50)
        metrics = EvaluatedEpoch.from_json({"epoch": 2, **final}, settings)
        run.write_summary(RunSummary(
            name="fake", run_dir=str(path), epochs=2, final=metrics, best=metrics, wall_seconds=1.0,
            last_session_seconds=1.0, mean_images_per_second=1.0, device=DeviceInfo("cpu", "cpu", "fp32"),
            dataset=DatasetInfo("synthetic", "", counts, counts, counts, 0, 0, 0, True, "all"),
            evaluation=settings, parameters=1, environment=Versions()))
    return path


FINALS = [
    {"rank1": 0.60, "rank5": 0.80, "rank10": 0.90, "mAP": 0.40, "mINP": 0.10, "val_loss": 1.0},
    {"rank1": 0.70, "rank5": 0.85, "rank10": 0.95, "mAP": 0.50, "mINP": 0.20, "val_loss": 2.0},
    {"rank1": 0.65, "rank5": 0.75, "rank10": 0.91, "mAP": 0.45, "mINP": 0.12, "val_loss": 3.0},
]


def test_seed_group_matches_hand_computation(tmp_path):
    for seed, final in enumerate(FINALS):
        fake_run(tmp_path / "q8" / f"seed-{seed}", f'name = "q8"\nseed = {seed}', final)
    other = fake_run(tmp_path / "lr", 'name = "q8"\nseed = 0\n[optim]\nlr = 0.001', FINALS[0])

    groups = group_runs(finished_runs(tmp_path))
    assert [len(g.runs) for g in groups] == [1, 3]  # sorted paths: "lr" before "q8"
    single, group = groups
    assert single.label == str(other) and single.metric("rank1").std is None
    assert group.label == str(tmp_path / "q8") and group.seeds == (0, 1, 2)
    assert [m.name for m in group.metrics] == ["rank1", "rank5", "rank10", "mAP", "mINP"]

    # by hand: rank1 = 0.60, 0.70, 0.65 → mean 0.65, deviations −0.05, 0.05, 0 → var = 0.005 / 2 → std 0.05
    r1 = group.metric("rank1")
    assert r1.values == (0.60, 0.70, 0.65)
    assert r1.mean == pytest.approx(0.65) and r1.std == pytest.approx(0.05)
    # mINP = 0.10, 0.20, 0.12 → mean 0.14; squares 0.0016 + 0.0036 + 0.0004 = 0.0056 → std sqrt(0.0028)
    minp = group.metric("mINP")
    assert minp.mean == pytest.approx(0.14) and minp.std == pytest.approx(math.sqrt(0.0028))
    assert r1.format() == "65.00 ± 5.00 %"
    assert group.to_dict()["metrics"]["mAP"]["values"] == [0.40, 0.50, 0.45]
    with pytest.raises(ReidError, match="use one of rank1"):
        group.metric("val_loss")


def test_name_is_ignored_and_duplicate_seeds_are_refused(tmp_path):
    a = fake_run(tmp_path / "a", 'name = "a"\nseed = 3', FINALS[0])
    b = fake_run(tmp_path / "b", 'name = "b"\nseed = 4', FINALS[1])
    (group,) = group_runs([a, b])
    assert group.seeds == (3, 4) and group.label == str(tmp_path)
    c = fake_run(tmp_path / "c", 'name = "c"\nseed = 3', FINALS[2])
    with pytest.raises(ReidError, match="same seed 3"):
        group_runs([a, c])
    (kept,) = group_runs([c, b, a], skip_repeated_seeds=True)  # a report comparing a run with its rerun
    assert [r.path for r in kept.runs] == [c, b] and kept.metric("rank1").values == (FINALS[2]["rank1"], FINALS[1]["rank1"])


def test_unfinished_runs_are_not_found_and_are_refused(tmp_path):
    done = fake_run(tmp_path / "seed-0", "seed = 0", FINALS[0])
    todo = fake_run(tmp_path / "seed-1", "seed = 1", None)
    assert finished_runs(tmp_path) == [done]
    with pytest.raises(ReidError, match="not finished"):
        group_runs([done, todo])


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=2, max_size=6))
def test_std_is_the_sample_std(values):
    stats = MetricStats.of("mAP", values)
    mean = sum(values) / len(values)
    assert stats.mean == pytest.approx(mean, abs=1e-12)
    assert stats.std == pytest.approx(math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)), abs=1e-9)
