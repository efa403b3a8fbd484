"""The calibration section of the synthetic default (``benchmarks/calibrate_synthetic.py``): its table and its
verdict on each goal of issue 15, from seed groups with chosen final metrics (no training)."""

from __future__ import annotations

import statistics
from pathlib import Path

from reid.cli.bench import _suite
from reid.data.describe import DatasetInfo, SplitCounts
from reid.engine.rundir import RunDir
from reid.engine.summary import DeviceInfo, EvalSettings, EvaluatedEpoch, RunSummary, Versions
from reid.report.seed_groups import MetricStats, SeedGroup, SeedRun, group_runs
from reid.spec import Spec

_suite()  # puts the checkout's benchmarks/ package on the path
from benchmarks.calibrate_synthetic import HISTOGRAM_SPECS, cell, markers, section, trained_on, verdicts  # noqa: E402

INFO = {"cpu": "Test CPU", "physical_cores": 2, "gpu": None, "torch": "2.x"}


def group(name: str, rank1: list[float], mAP: list[float]) -> SeedGroup:
    """A seed group of ``len(rank1)`` runs with these final Rank-1 and mAP values (Rank-5 = Rank-1 + 0.1)."""
    finals = [{"rank1": r, "rank5": r + 0.1, "mAP": m} for r, m in zip(rank1, mAP)]
    runs = tuple(SeedRun(Path(f"runs/{name}/seed-{s}"), s, f) for s, f in enumerate(finals))
    metrics = tuple(MetricStats.of(k, [f[k] for f in finals]) for k in ("rank1", "rank5", "mAP"))
    return SeedGroup(f"runs/{name}", Spec(name=name), runs, metrics)


def histogram(loo: float, market: float) -> dict:
    return {(HISTOGRAM_SPECS[0][0], v): (loo + 0.1 * (3 - v), 0.05) for v in (1, 2, 3)} | {
        (HISTOGRAM_SPECS[1][0], v): (market, 0.03) for v in (1, 2, 3)}


def test_cells_are_mean_sample_std_and_every_seed_as_computed_by_hand():
    values = [0.6012, 0.7031, 0.6544]
    text = cell(MetricStats.of("rank1", values))
    assert text == (f"{100 * statistics.fmean(values):.1f} ± {100 * statistics.stdev(values):.1f} "
                    f"({', '.join(f'{100 * v:.1f}' for v in values)})")
    assert cell(MetricStats.of("rank1", [0.5])) == "50.0 (50.0)"


def test_verdicts_follow_the_goals():
    groups = {"q8": group("q8", [0.60, 0.62, 0.58], [0.5, 0.52, 0.48]),
              "q11": group("q11", [0.50, 0.56, 0.60], [0.4, 0.41, 0.42]),
              "strong-baseline": group("strong-baseline", [0.70, 0.72, 0.71], [0.51, 0.53, 0.49])}
    lines = verdicts(groups, histogram(loo=0.12, market=0.2), default=3)
    text = "\n".join(lines)
    assert "q8 Rank-1 in [0.55, 0.85]: met" in text
    assert "q11 Rank-1 in [0.55, 0.85]: missed" in text  # one seed (0.50) is outside
    assert f"({HISTOGRAM_SPECS[0][1]}): met (0.120)" in text and f"({HISTOGRAM_SPECS[1][1]}): missed (0.200)" in text
    # Rank-1: 71 vs 60, spread 1 + 2 → met; mAP: 51 vs 50, spread 2 + 2 → missed
    assert "(rank1: difference of means +11.0 points against std 2.0 + 1.0): met" in text
    assert "(mAP: difference of means +1.0 points against std 2.0 + 2.0): missed" in text


def test_section_lists_every_recipe_between_its_markers_and_says_what_is_missing():
    groups = {"q8": group("q8", [0.6, 0.7], [0.5, 0.6]), "q11": None, "strong-baseline": group("strong-baseline", [0.8], [0.7])}
    text = section(groups, histogram(loo=0.1, market=0.05), default=3, info=INFO, trained="Test GPU")
    assert text.startswith("<!-- calibrate_synthetic: begin") and text.endswith("<!-- calibrate_synthetic: end -->")
    assert "The runs trained on Test GPU: renderer version 3" in text
    assert f"| 2 (0, 1) | {Spec().schedule.epochs} | 65.0 ± 7.1 (60.0, 70.0) |" in text and "q11 — triplet loss (" not in text
    assert "| 3 (default) | 10.0 / 5.0 | 5.0 / 3.0 |" in text and "| 1 | 30.0 / 5.0 |" in text
    assert "q11 Rank-1 in [0.55, 0.85]: no runs yet." in text
    assert "needs two or more seeds of each" in text  # the strong baseline has one seed


def test_a_labelled_section_has_its_own_markers_and_carries_the_sweep_tables(tmp_path):
    sweep = tmp_path / "sweep-x"
    sweep.mkdir()
    (sweep / "sweep.md").write_text("# Sweep of `specs/x.toml`\n\n| a | seeds |\n| :-- | --: |\n| 1 | 3/3 |\n")
    groups = {"q8": group("q8", [0.6, 0.7], [0.5, 0.6]), "q11": None, "strong-baseline": None}
    text = section(groups, histogram(loo=0.1, market=0.05), default=3, info=INFO, trained="Test GPU", label="gpu",
                   sweeps=(sweep,))
    begin, end = markers("gpu")
    assert text.startswith(begin) and text.endswith(end) and markers()[0] not in text
    assert f"`{sweep}/sweep.md` (written by `reid sweep`):\n\n| a | seeds |\n| :-- | --: |\n| 1 | 3/3 |\n{end}" in text


def test_trained_on_names_each_device_the_runs_recorded(tmp_path):
    def finished(path, seed: int, device: DeviceInfo) -> None:
        run = RunDir(path)
        run.create(Spec(name="x", seed=seed).to_toml())
        settings = EvalSettings("all", "euclidean", False, False, 50)
        counts = SplitCounts.of([])
        metrics = EvaluatedEpoch.from_json({"epoch": 1, "rank1": 0.5, "mAP": 0.4, "mINP": 0.1}, settings)
        run.write_summary(RunSummary(
            name="x", run_dir=str(path), epochs=1, final=metrics, best=metrics, wall_seconds=1.0,
            last_session_seconds=1.0, mean_images_per_second=1.0, device=device,
            dataset=DatasetInfo("synthetic", "", counts, counts, counts, 0, 0, 0, True, "all"),
            evaluation=settings, parameters=1, environment=Versions(torch="2.11.0")))

    finished(tmp_path / "seed-0", 0, DeviceInfo("cuda:0", "NVIDIA H200", "bf16"))
    finished(tmp_path / "seed-1", 1, DeviceInfo("cuda:0", "NVIDIA H200", "bf16"))
    finished(tmp_path / "seed-2", 2, DeviceInfo("cpu", "AMD EPYC", "fp32"))
    assert trained_on(group_runs(sorted(tmp_path.glob("seed-*")))) == (
        "AMD EPYC (cpu, fp32), torch 2.11.0; NVIDIA H200 (cuda, bf16), torch 2.11.0")
