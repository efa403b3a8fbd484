"""The assignment report when Q8 / Q11 were repeated with different seeds (``reid run … --seeds 0,1,2``):
"Over seeds" tables equal to a hand computation over each seed's ``summary.json``, the Q8-vs-Q11 spread rule,
the README's "used for" column — and a single run's sections without any of it.

The run directories are written by hand (spec, ``metrics.jsonl``, ``summary.json``) with chosen final metrics,
so no training is needed; only Q8 and Q11 (and the README) are rendered.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

from reid.data.describe import DatasetInfo, SplitCounts
from reid.engine.rundir import RunDir
from reid.engine.summary import DeviceInfo, EvalSettings, EvaluatedEpoch, RunSummary, Versions
from reid.report.assignment import run_questions, writer
from reid.report.assignment.roles import assign_groups
from reid.report.assignment.run_questions import comparison_notes
from reid.report.markdown import pct
from reid.report.runs import expand_run_paths, load_run
from reid.report.seed_groups import group_runs
from reid.spec import load_spec_text

Q8_SPEC = 'name = "q8"\nseed = {seed}\nrole = "q8"\n[schedule]\nepochs = 2\nwarmup_epochs = 0\n'
Q11_SPEC = ('name = "q11"\nseed = {seed}\nrole = "q11"\n[schedule]\nepochs = 2\nwarmup_epochs = 0\n'
            '[head]\ntype = "none"\n[loss]\nid_weight = 0.0\ntriplet_weight = 1.0\n'
            '[sampler]\ntype = "pk"\np = 4\nk = 4\n')
KEYS = ("rank1", "rank5", "rank10", "mAP", "mINP")


def fake_run(path: Path, spec_text: str, final: dict[str, float]) -> Path:
    """A finished two-epoch run directory whose last epoch has the metrics ``final`` (epoch 1: 80 % of them)."""
    run = RunDir(path)
    run.create(load_spec_text(spec_text).to_toml())
    epochs, settings = [], EvalSettings("all", "euclidean", False, False, 10)
    for epoch, scale in ((1, 0.8), (2, 1.0)):
        for it in (1, 2):
            step = 2 * (epoch - 1) + it
            run.append_metrics({"kind": "iter", "epoch": epoch, "iter": it, "step": step, "loss": 3.0 - step / 4,
                                "lr": 1e-4})
        record = {"kind": "epoch", "epoch": epoch, "step": 2 * epoch, "train_loss": 3.0 - epoch / 2,
                  "val_loss": 1.5 - epoch / 4, "lr": 1e-4, "images_per_second": 100.0, "num_valid": 16,
                  "num_skipped": 0, **{k: scale * final[k] for k in KEYS}}
        run.append_metrics(record)
        epochs.append(EvaluatedEpoch.from_json(record, settings))
    counts = SplitCounts.of([])
    run.write_summary(RunSummary(
        name=load_spec_text(spec_text).name, run_dir=str(path), epochs=2, final=epochs[-1],
        best=max(epochs, key=lambda m: m.result.rank(1)), wall_seconds=12.5, last_session_seconds=12.5,
        mean_images_per_second=100.0, device=DeviceInfo("cpu", "test CPU", "fp32"),
        dataset=DatasetInfo("synthetic", "", counts, counts, counts, 4, 8, 0, True, "all"),
        evaluation=settings, parameters=1000, environment=Versions()))
    return path


def finals(rank1: list[float], mAP: list[float], offset: float = 0.0) -> list[dict[str, float]]:
    """One final-metrics dict per seed: the given Rank-1 and mAP, the other metrics derived from them."""
    return [{"rank1": r, "rank5": min(1.0, r + 0.1 + offset), "rank10": min(1.0, r + 0.17), "mAP": m,
             "mINP": m / 2 + offset} for r, m in zip(rank1, mAP)]


def seed_dirs(base: Path, spec: str, values: list[dict[str, float]]) -> list[Path]:
    """``base/seed-0`` … one run per entry of ``values``, as ``reid run SPEC --seeds 0,1,…`` lays them out."""
    return [fake_run(base / f"seed-{seed}", spec.format(seed=seed), v) for seed, v in enumerate(values)]


def write_q8_q11(paths: list[Path], out: Path, monkeypatch) -> dict[str, str]:
    """The assignment report of ``paths`` with only Q8 and Q11 rendered (the other questions need real runs)."""
    monkeypatch.setattr(writer, "QUESTIONS", [run_questions.q8, run_questions.q11])
    runs = [load_run(p) for p in expand_run_paths(paths)]
    files = writer.write_assignment_report(runs, out, "reid report runs/q8 runs/q11")
    return {p.name: p.read_text(encoding="utf-8") for p in files}


#: three seeds each, with values that are not round so the formatting is exercised
Q8_FINALS = finals([0.6012, 0.7031, 0.6544], [0.4105, 0.5007, 0.4466], 0.013)
Q11_FINALS = finals([0.8123, 0.8301, 0.8452], [0.4644, 0.4871, 0.5039], 0.021)


@pytest.fixture
def seeded(tmp_path) -> tuple[Path, Path]:
    """``q8/seed-{0,1,2}`` and ``q11/seed-{0,1,2}``."""
    seed_dirs(tmp_path / "q8", Q8_SPEC, Q8_FINALS)
    seed_dirs(tmp_path / "q11", Q11_SPEC, Q11_FINALS)
    return tmp_path / "q8", tmp_path / "q11"


def _by_hand(group_dir: Path, key: str) -> tuple[str, list[str]]:
    """mean ± sample std and each seed's value of ``key``, from the seeds' summary.json files."""
    values = [json.loads((group_dir / f"seed-{s}" / "summary.json").read_text())["final"][key] for s in range(3)]
    mean, std = statistics.fmean(values), statistics.stdev(values)
    return f"{100 * mean:.2f} ± {100 * std:.2f} %", [f"{100 * v:.2f} %" for v in values]


def test_over_seeds_tables_match_a_hand_computation(seeded, tmp_path, monkeypatch):
    files = write_q8_q11(list(seeded), tmp_path / "report", monkeypatch)
    labels = {"rank1": "Rank-1", "rank5": "Rank-5", "rank10": "Rank-10", "mAP": "mAP", "mINP": "mINP"}
    for group_dir, name in zip(seeded, ("q08.md", "q11.md")):
        text = files[name]
        assert "## Over seeds" in text and "| metric | mean ± std | seed 0 | seed 1 | seed 2 |" in text
        for key, label in labels.items():
            stats, values = _by_hand(group_dir, key)
            assert f"| {label} | {stats} | {' | '.join(values)} |" in text
        # the detailed part is the lowest seed's, and says so
        assert f"are those of seed 0 (`{group_dir / 'seed-0'}`)" in text
        assert f"**Run:** `{group_dir / 'seed-0'}`" in text
        assert text.index("## Over seeds") < text.index("## Final numbers") < text.index("## Per epoch")
    q11 = files["q11.md"]
    for key, label in (("rank1", "Rank-1"), ("mAP", "mAP")):  # the comparison uses the means ± std
        assert f"Final {label} over seeds: Q8 {_by_hand(seeded[0], key)[0]}, Q11 {_by_hand(seeded[1], key)[0]}" in q11
    assert f"| Q8 `{seeded[0]}` (ID loss) | 0, 1, 2 | {_by_hand(seeded[0], 'rank1')[0]} |" in q11
    assert "Rule: a difference of means counts as larger than the seed-to-seed spread when" in q11
    assert "| Rank-1 | " + pct(Q8_FINALS[0]["rank1"]) + " | " + pct(Q11_FINALS[0]["rank1"]) + " |" not in q11


def test_readme_marks_every_seed_used_and_regeneration_is_byte_identical(seeded, tmp_path, monkeypatch):
    out = tmp_path / "report"
    first = write_q8_q11(list(seeded), out, monkeypatch)
    readme = first["README.md"]
    for q, group_dir in zip(("Q8", "Q11"), seeded):
        for seed in range(3):
            assert f"| `{group_dir / f'seed-{seed}'}` | `{q.lower()}` | {q} (seed {seed} of 3 seeds) |" in readme
    assert "another run answers it" not in readme
    assert f"| Q8 `{seeded[0]}` | 0, 1, 2 | {_by_hand(seeded[0], 'rank1')[0]} |" in readme
    # argument order does not change a byte
    assert write_q8_q11([seeded[1] / "seed-2", *sorted(seeded[1].iterdir()), seeded[0]], out, monkeypatch) == first


@pytest.mark.parametrize(("q11_rank1", "q11_mAP", "rank1_larger", "mAP_larger"), [
    # Q8: Rank-1 65 ± 5 %, mAP 45 ± 5 %
    ([0.80, 0.82, 0.84], [0.46, 0.48, 0.50], True, False),   # Rank-1 82 ± 2 %: |Δ| 17 > 7; mAP 48 ± 2 %: 3 ≤ 7
    ([0.68, 0.70, 0.72], [0.55, 0.60, 0.65], False, True),   # Rank-1 70 ± 2 %: 5 ≤ 7; mAP 60 ± 5 %: 15 > 10
    ([0.50, 0.51, 0.52], [0.10, 0.40, 0.70], True, False),   # Rank-1 51 ± 1 %: 14 > 6 (Q8 higher); mAP 40 ± 30 %
])
def test_the_spread_sentence_flips_with_the_numbers(tmp_path, q11_rank1, q11_mAP, rank1_larger, mAP_larger):
    q8 = seed_dirs(tmp_path / "q8", Q8_SPEC, finals([0.60, 0.70, 0.65], [0.40, 0.50, 0.45]))
    q11 = seed_dirs(tmp_path / "q11", Q11_SPEC, finals(q11_rank1, q11_mAP))
    (g8,), (g11,) = group_runs(q8), group_runs(q11)
    notes = comparison_notes(load_run(q8[0]), load_run(q11[0]), (g8, g11)).splitlines()
    rank1, mAP = (next(n for n in notes if n.startswith(f"- Final {m} over seeds")) for m in ("Rank-1", "mAP"))
    for line, larger in ((rank1, rank1_larger), (mAP, mAP_larger)):
        verdict = "larger than" if larger else "within"
        assert line.endswith(f"— {verdict} the seed-to-seed spread.")
        assert (" > std Q8 + std Q11" in line) == larger and (" ≤ std Q8 + std Q11" in line) == (not larger)
    assert "Q8 65.00 ± 5.00 %" in rank1 and "Q8 45.00 ± 5.00 %" in mAP
    higher = "Q8" if statistics.fmean(q11_rank1) < 0.65 else "Q11"
    assert f"(higher mean: {higher})" in rank1
    assert any(n.startswith("- Rule: ") for n in notes)


def test_single_runs_have_no_over_seeds_part(tmp_path, monkeypatch):
    q8 = fake_run(tmp_path / "q8", Q8_SPEC.format(seed=0), Q8_FINALS[0])
    q11 = fake_run(tmp_path / "q11", Q11_SPEC.format(seed=0), Q11_FINALS[0])
    files = write_q8_q11([q8, q11], tmp_path / "report", monkeypatch)
    for name in ("q08.md", "q11.md", "README.md"):
        assert "Over seeds" not in files[name] and "seed-to-seed" not in files[name] and " ± " not in files[name]
        assert "Repeated with different seeds" not in files[name]
    q11_text = files["q11.md"]
    assert f"| Rank-1 | {pct(Q8_FINALS[0]['rank1'])} | {pct(Q11_FINALS[0]['rank1'])} |" in q11_text
    r8, r11 = pct(Q8_FINALS[0]["rank1"]), pct(Q11_FINALS[0]["rank1"])
    assert f"- Final Rank-1: Q8 {r8}, Q11 {r11} (higher: Q11)" in q11_text
    headings = [line for line in files["q08.md"].splitlines() if line.startswith("#")]
    assert headings == ["# Q8 — ID-loss model", "## Final numbers", "## Curves", "## Per epoch"]
    assert f"| `{q8}` | `q8` | Q8 |" in files["README.md"] and f"| `{q11}` | `q11` | Q11 |" in files["README.md"]
    assert files["q08.md"].count("(figures/q08_") == 2 and "seed 0" not in files["q08.md"]


def test_one_repeated_role_and_one_single_run(tmp_path, monkeypatch):
    seed_dirs(tmp_path / "q8", Q8_SPEC, Q8_FINALS)
    q11 = fake_run(tmp_path / "q11", Q11_SPEC.format(seed=0), Q11_FINALS[0])
    files = write_q8_q11([tmp_path / "q8", q11], tmp_path / "report", monkeypatch)
    assert "## Over seeds" in files["q08.md"] and "## Over seeds" not in files["q11.md"]
    assert "Q8 was repeated with seeds 0, 1, 2 but Q11 has one run" in files["q11.md"]
    assert f"| Rank-1 | {pct(Q8_FINALS[0]['rank1'])} | {pct(Q11_FINALS[0]['rank1'])} |" in files["q11.md"]


def test_a_run_repeating_a_seed_is_left_out_of_the_group(tmp_path):
    seed_dirs(tmp_path / "q8", Q8_SPEC, Q8_FINALS)
    again = fake_run(tmp_path / "q8-again", Q8_SPEC.format(seed=1), Q8_FINALS[2])
    runs = [load_run(p) for p in [again, *expand_run_paths([tmp_path / "q8"])]]
    assigned, groups = assign_groups(runs)
    assert groups["q8"].seeds == (0, 1, 2) and groups["q11"] is None and assigned["q11"] is None
    assert assigned["q8"].path == tmp_path / "q8" / "seed-0"  # the lowest seed is shown in detail
    assert again in [r.path for r in groups["q8"].runs]  # the first run given keeps its seed


def test_a_comparison_run_repeated_with_seeds_is_summarised_too(tmp_path, monkeypatch):
    q8 = fake_run(tmp_path / "q8", Q8_SPEC.format(seed=0), Q8_FINALS[0])
    strong_spec = 'name = "strong"\nseed = {seed}\n[schedule]\nepochs = 2\nwarmup_epochs = 0\n'
    seed_dirs(tmp_path / "strong", strong_spec, Q11_FINALS)
    single = fake_run(tmp_path / "single", 'name = "single"\n[schedule]\nepochs = 2\nwarmup_epochs = 0\n'
                      '[loss]\nlabel_smoothing = 0.1\n', Q8_FINALS[1])
    again = fake_run(tmp_path / "strong-again", strong_spec.format(seed=1), Q8_FINALS[2])  # repeats seed 1: left out
    readme = write_q8_q11([q8, tmp_path / "strong", single, again], tmp_path / "report", monkeypatch)["README.md"]
    rank1 = statistics.fmean(f["rank1"] for f in Q11_FINALS), statistics.stdev(f["rank1"] for f in Q11_FINALS)
    row = next(line for line in readme.splitlines() if line.startswith(f"| strong `{tmp_path / 'strong'}` |"))
    assert f"{100 * rank1[0]:.2f} ± {100 * rank1[1]:.2f} %" in row and "0, 1, 2" in row
    assert "## Repeated with different seeds" in readme and "| single `" not in readme and "| Q8 `" not in readme
