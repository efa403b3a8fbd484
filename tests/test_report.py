"""`reid report` on tiny real runs: the assignment report (ID loss, triplet loss) — every section present,
numbers equal to the run's files, figures written, byte-identical regeneration, missing-run lines —; a page
for an arbitrary run; mean ± std over seeds; one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reid.cli import main
from reid.data.describe import triplet_count
from reid.engine.experiment import run_experiment
from reid.engine.ranked_grid import choose_queries
from reid.engine.rundir import RunDir
from reid.errors import ReidError
from reid.report import write_report
from reid.report.markdown import count, num, pct
from reid.report.retrieval import pca_2d
from reid.report.assignment.documented_network import load_documented_table
from reid.report.assignment.roles import ROLES, assign_runs, role_of
from reid.report.runs import load_run
from reid.spec import load_spec_text

TINY = """
name = "{name}"
seed = 1
[data]
identities = 12
images_per_identity = 4
height = 32
width = 32
train_ids = 8
query_rule = "leave_one_out"
[augment]
erase = 0.0
[schedule]
epochs = 2
warmup_epochs = 0
[eval]
batch_size = 64
max_rank = 10
[runtime]
precision = "fp32"
threads = 2
log_every = 2
"""
ID_RUN = TINY.format(name="q8").replace("seed = 1\n", 'seed = 1\nrole = "q8"\n') + '[sampler]\ntype = "random"\nbatch_size = 8\n'
TRIPLET_RUN = TINY.format(name="q11").replace("seed = 1\n", 'seed = 1\nrole = "q11"\n') + ('[head]\ntype = "none"\n[loss]\nid_weight = 0.0\ntriplet_weight = 1.0\n'
                                          '[sampler]\ntype = "pk"\np = 4\nk = 4\n')


@pytest.fixture(scope="module")
def runs(module_tmp_path) -> dict[str, Path]:
    """One ID-loss and one triplet-loss run, trained once for the module."""
    base = module_tmp_path / "report-runs"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("REID_CACHE", str(base / "cache"))
        out = {}
        for name, text in (("q8", ID_RUN), ("q11", TRIPLET_RUN)):
            run_experiment(load_spec_text(text), base / name, plain=True)
            out[name] = base / name
        yield out


@pytest.fixture(scope="module")
def report(runs, module_tmp_path) -> Path:
    """The report of both runs."""
    out = module_tmp_path / "reports"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("REID_CACHE", str(runs["q8"].parent / "cache"))
        write_report([runs["q8"], runs["q11"]], out)
    return out


def _summary(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text())


def test_every_question_has_a_section_and_the_index_links_them(report):
    readme = (report / "README.md").read_text()
    for n in range(1, 12):
        text = (report / f"q{n:02d}.md").read_text()
        assert text.startswith(f"# Q{n} — ")
        assert f"[Q{n}](q{n:02d}.md)" in readme
    assert "reid report " in readme and "## Runs used" in readme and "## All runs side by side" in readme


def test_run_sections_state_run_dataset_and_protocol(report, runs):
    for name in ("q06", "q08", "q09", "q10", "q11"):
        text = (report / f"{name}.md").read_text()
        assert "**Run:**" in text and "**Dataset:**" in text and "**Evaluation:**" in text
        assert "protocol `all`" in text and "squared euclidean" in text and "AP = mean precision" in text
    for name in ("q01", "q02", "q03", "q04", "q05", "q07"):
        assert "**Source:** computed from the model code" in (report / f"{name}.md").read_text()


def test_q8_and_q11_numbers_match_the_run_files(report, runs):
    for q, file in (("q8", "q08.md"), ("q11", "q11.md")):
        text = (report / file).read_text()
        s = _summary(runs[q])
        for key in ("rank1", "rank5", "rank10", "mAP", "mINP"):
            assert pct(s["final"][key]) in text
        assert f"final (epoch {s['final']['epoch']})" in text
        assert s["device"]["device_name"] in text and f"{s['wall_seconds']:.1f} s" in text
        epochs = [r for r in RunDir(runs[q]).read_metrics() if r["kind"] == "epoch"]
        for r in epochs:
            assert f"| {r['epoch']} | {num(r['train_loss'])} | {num(r['val_loss'])} | {pct(r['rank1'])} |" in text
    q11 = (report / "q11.md").read_text()
    assert f"| Rank-1 | {pct(_summary(runs['q8'])['final']['rank1'])} | {pct(_summary(runs['q11'])['final']['rank1'])} |" in q11


def test_model_and_data_answers_are_computed(report, runs):
    q1 = (report / "q01.md").read_text()
    assert f"All {len(load_documented_table())} rows match" in q1 and "| 72 | AvgPool2d-72 | [-1, 512, 1, 1] | 0 | ✓ |" in q1
    assert "Total params | 11,176,512" in q1
    assert "Input 3×128×128 → Conv+BN+ReLU 64×64×64 → Max pooling 64×32×32 → ResBlock 64×32×32" in q1
    assert "Average pooling 512×1×1" in q1
    assert "Kernel size = **8 × 8**, stride = **1**" in (report / "q02.md").read_text()
    assert "| 0 | 32,768 | 16,777,216 |" in (report / "q03.md").read_text()
    assert "**73,984** trainable parameters" in (report / "q04.md").read_text()
    q5 = (report / "q05.md").read_text()
    assert "`fc.weight`, `fc.bias`" in q5 and ("not in the torch hub cache" in q5 or "Loaded torchvision's" in q5)
    dataset = _summary(runs["q8"])["dataset"]
    q6 = (report / "q06.md").read_text()
    assert f"**{dataset['num_classes']}** during training" in q6 and f"**{dataset['validation_identities']}** for validation" in q6
    assert "weight matrix with **8** rows" in q6
    q10 = (report / "q10.md").read_text()
    assert f"**{count(dataset['triplets'])}** triplets" in q10 and count(triplet_count([4] * 8)) in q10
    assert "230 × (10·9) × (229·10) = 47,403,000" in q10
    q7 = (report / "q07.md").read_text()
    assert "eval mode: two passes identical | yes" in q7 and "1/(1−p) = 2" in q7


def test_q9_recomputes_the_logged_metrics(report, runs):
    q9 = (report / "q09.md").read_text()
    best = _summary(runs["q8"])["best"]
    assert f"| Rank-1 | {pct(best['rank1'])} | {pct(best['rank1'])} |" in q9
    assert "checkpoints/best.pt" in q9


def test_figures_exist_and_are_linked(report):
    linked = []
    for md in sorted(report.glob("q*.md")):
        linked += [line.split("](")[1].rstrip(")") for line in md.read_text().splitlines() if line.startswith("![")]
    assert {"figures/q08_accuracy.png", "figures/q08_losses.png", "figures/q09_q8_retrieval.png",
            "figures/q09_q11_embedding.png", "figures/q11_vs_q8.png"} <= set(linked)
    for rel in linked:
        assert (report / rel).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_regeneration_is_byte_identical_and_a_missing_q11_run_says_how_to_make_it(report, runs, tmp_path, monkeypatch):
    monkeypatch.setenv("REID_CACHE", str(runs["q8"].parent / "cache"))
    first = {p.name: p.read_bytes() for p in report.glob("*.md")}
    write_report([runs["q8"], runs["q11"]], report)
    assert {p.name: p.read_bytes() for p in report.glob("*.md")} == first
    main(["report", str(runs["q8"]), "--out", str(tmp_path / "only-q8")])
    q11 = (tmp_path / "only-q8" / "q11.md").read_text()
    assert "`reid run specs/q11.toml`" in q11 and "Rank-1 |" not in q11
    assert "`reid run specs/q11.toml`" in (tmp_path / "only-q8" / "q09.md").read_text()
    assert not (tmp_path / "only-q8" / "figures" / "q11_accuracy.png").exists()


def test_run_roles_are_declared_in_the_spec_not_guessed(runs):
    q8, q11 = load_run(runs["q8"]), load_run(runs["q11"])
    assert role_of(q8) == "q8" and role_of(q11) == "q11"
    undeclared = q8.__class__(**{**q8.__dict__, "spec": q8.spec.model_copy(update={"role": None})})
    assert role_of(undeclared) is None and role_of(undeclared, by_name=True) == "q8"
    renamed = undeclared.__class__(**{**undeclared.__dict__, "spec": undeclared.spec.model_copy(update={"name": "a"})})
    assert role_of(renamed, by_name=True) is None  # an ID-loss-only spec is not taken for Q8 by its losses
    assert assign_runs([renamed, q11]) == {"q8": None, "q11": q11}


def test_a_role_the_assignment_does_not_define_is_a_clear_error(runs, tmp_path, cli):
    q8 = load_run(runs["q8"])
    typo = q8.__class__(**{**q8.__dict__, "spec": q8.spec.model_copy(update={"role": "q9"})})
    with pytest.raises(ReidError, match=r"role 'q9' is not a role the assignment defines \(known roles: q8, q11\)"):
        role_of(typo)
    spec = tmp_path / "typo.toml"
    spec.write_text(ID_RUN.replace('role = "q8"', 'role = "q9"'))
    code, out, err = cli("run", str(spec), "--out", str(tmp_path / "never"))  # fails before training
    assert code != 0 and "Traceback" not in err
    assert f"{spec}: role 'q9'" in err and "known roles: q8, q11" in err and ROLES == ("q8", "q11")
    assert not (tmp_path / "never").exists()


def test_helpers():
    import torch

    assert choose_queries(torch.tensor([3, 3, 5, 8, 8, 9]), 3) == [0, 3, 5]
    points, explained = pca_2d(torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 1.0], [2.0, 1.0]]))
    assert points.shape == (4, 2) and explained == pytest.approx((0.8, 0.2))


@pytest.mark.parametrize("make", [lambda p: p / "missing", lambda p: p])
def test_a_path_that_is_not_a_run_is_a_one_line_error(tmp_path, capsys, make):
    with pytest.raises(SystemExit) as exit_:
        main(["report", str(make(tmp_path)), "--out", str(tmp_path / "r")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "not a run directory" in err and len(err.splitlines()) == 1
    with pytest.raises(Exception, match="not a run directory"):
        load_run(make(tmp_path))


#: an arbitrary run: not named q8 / q11, no declared role, ID + triplet loss, evaluated every epoch
ANY_RUN = TINY.format(name="mine").replace("seed = 1\n", "seed = {seed}\n") + (
    '[head]\ntype = "bnneck"\n[loss]\ntriplet_weight = 1.0\n[sampler]\ntype = "pk"\np = 4\nk = 2\n')


@pytest.fixture(scope="module")
def seed_runs(module_tmp_path) -> list[Path]:
    """The arbitrary run trained with seeds 0 and 1 (``group/seed-0``, ``group/seed-1``)."""
    base = module_tmp_path / "seed-runs"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("REID_CACHE", str(base / "cache"))
        for seed in (0, 1):
            run_experiment(load_spec_text(ANY_RUN.replace("{seed}", str(seed))), base / "group" / f"seed-{seed}", plain=True)
    return [base / "group" / "seed-0", base / "group" / "seed-1"]


def test_a_page_for_an_arbitrary_run_has_its_figures_and_numbers(seed_runs, tmp_path, monkeypatch):
    monkeypatch.setenv("REID_CACHE", str(tmp_path / "cache"))
    run, out = seed_runs[0], tmp_path / "report"
    main(["report", str(run), "--out", str(out)])
    assert sorted(p.name for p in out.glob("*.md")) == ["README.md", "seed-0.md"]  # no Q files, no placeholders
    page = (out / "seed-0.md").read_text()
    s = _summary(run)
    for key in ("rank1", "rank5", "mAP", "mINP"):
        assert pct(s["final"][key]) in page and pct(s["best"][key]) in page
    assert f"final (epoch {s['final']['epoch']})" in page and f"selected (epoch {s['best']['epoch']})" in page
    assert "Model selection (what picked the checkpoint): best Rank-1 on the evaluated split (held-out" in page
    assert s["device"]["device_name"] in page and f"{s['wall_seconds']:.1f} s" in page
    assert f"{s['mean_images_per_second']:.1f} images/s" in page and f"{s['parameters']:,}" in page
    assert "| `head.type` | `\"classifier\"` | `\"bnneck\"` |" in page and "| `seed` |" not in page
    assert "**Dataset:** " in page and f"{s['dataset']['train']['identities']} identities" in page
    assert "### Rank-1 per query camera" in page and "| query camera |" in page
    for fig in ("seed-0_accuracy", "seed-0_losses", "seed-0_retrieval", "seed-0_embedding"):
        assert f"(figures/{fig}.png)" in page
        assert (out / "figures" / f"{fig}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "[`" in (out / "README.md").read_text() and f"{str(run)} --out {out}" in (out / "README.md").read_text()


def test_runs_differing_only_in_seed_give_mean_and_std(seed_runs, tmp_path, monkeypatch):
    import statistics

    monkeypatch.setenv("REID_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "report"
    write_report([seed_runs[0].parent], out)  # a folder holding the runs
    text = (out / "comparison.md").read_text()
    finals = [_summary(r)["final"] for r in seed_runs]
    for key in ("rank1", "mAP"):
        a, b = (f[key] for f in finals)
        mean, std = (a + b) / 2, abs(a - b) / 2 ** 0.5  # sample std of two values: |a − b| / √2
        assert std == pytest.approx(statistics.stdev([a, b]))
        assert f"{100 * mean:.2f} ± {100 * std:.2f} %" in text
    assert "| seeds |" in text and "0, 1" in text and "(figures/comparison_curves.png)" in text
    assert "| `mine` | 0 |" in text and "| `mine` | 1 |" in text
    assert sorted(p.name for p in out.glob("*.md")) == ["README.md", "comparison.md", "seed-0.md", "seed-1.md"]


def test_an_empty_folder_or_no_run_is_one_error_line(tmp_path, capsys):
    for args in (["report", str(tmp_path)], ["report"]):
        with pytest.raises(SystemExit) as exit_:
            main([*args, "--out", str(tmp_path / "r")])
        assert exit_.value.code == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and len(err.splitlines()) == 1
    assert not (tmp_path / "r").exists()
