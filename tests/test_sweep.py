"""`reid sweep`: grid expansion and naming, a 2×2 grid of tiny runs, resuming a killed sweep, the submitit launcher."""

from __future__ import annotations

import json
import shutil

import pytest

from reid.cli import main
from reid.engine.rundir import RunDir
from reid.errors import ReidError
from reid.report.sweep_table import sort_rows, sweep_rows
from reid.spec import load_spec_text
from reid.sweep.grid import expand, parse_axis, parse_seeds
from reid.sweep.plan import RunState, build_plan
from reid.sweep.slurm import JOBS_FILE, SlurmResources, run_slurm, still_queued, submitted_jobs
from tiny_specs import FP32_DETERMINISTIC, TINY_DATA

SPEC = 'name = "tiny-sweep"\n' + TINY_DATA + FP32_DETERMINISTIC + """tensorboard = false
[model]
layers = [1, 1, 1, 1]
[schedule]
epochs = 1
max_iters_per_epoch = 2
[eval]
batch_size = 16
"""
GRID = ["--grid", "optim.lr=1e-3,3e-3", "--grid", "head.dropout=0.1,0.2"]


@pytest.fixture()
def spec(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(SPEC, encoding="utf-8")
    return path


def test_grid_points_are_named_by_their_overrides():
    points = expand([parse_axis("optim.lr=1e-3,3.5e-4"), parse_axis('model.pooling="gem",avg')])
    assert [p.name for p in points] == ["optim.lr=0.001,model.pooling=gem", "optim.lr=0.001,model.pooling=avg",
                                        "optim.lr=0.00035,model.pooling=gem", "optim.lr=0.00035,model.pooling=avg"]
    assert points[0].overrides == ["optim.lr=1e-3", 'model.pooling="gem"']
    assert [p.name for p in expand([])] == [""]
    assert parse_seeds("3") == [0, 1, 2] and parse_seeds("5,7") == [5, 7]
    for bad in ("lr", "optim.lr=", "optim.lr=1e-3,0.001", "a b=1"):
        with pytest.raises(ReidError):
            parse_axis(bad)
    with pytest.raises(ReidError, match="same directory name"):
        expand([parse_axis('data.root="a/b","a_b"')])
    for bad in ("0", "x", "1,1", "-1"):
        with pytest.raises(ReidError):
            parse_seeds(bad)


def test_plan_validates_specs_and_refuses_a_directory_of_another_spec(spec, tmp_path):
    with pytest.raises(ReidError, match="optim.lr"):
        build_plan(spec, tmp_path / "out", expand([parse_axis("optim.lr=-1")]), [0])
    plan = build_plan(spec, tmp_path / "out", expand([parse_axis("optim.lr=1e-3")]), [0])
    RunDir(plan.runs[0].path).create(load_spec_text(SPEC, overrides=["optim.lr=0.5"]).to_toml())
    assert plan.runs[0].state is RunState.started
    with pytest.raises(ReidError, match=r"another spec \(optim.lr differ\)"):
        build_plan(spec, tmp_path / "out", expand([parse_axis("optim.lr=1e-3")]), [0])


def test_grid_sweep_completes_then_resumes_without_redoing_finished_runs(spec, tmp_path, capsys):
    out = tmp_path / "sweep"
    main(["sweep", str(spec), *GRID, "--out", str(out), "--parallel", "2", "--sort", "mAP", "--format", "json"])
    table = json.loads(capsys.readouterr().out)
    names = {"optim.lr=0.001,head.dropout=0.1", "optim.lr=0.001,head.dropout=0.2",
             "optim.lr=0.003,head.dropout=0.1", "optim.lr=0.003,head.dropout=0.2"}
    assert {r["path"].rsplit("/", 1)[-1] for r in table["rows"]} == names
    means = [r["metrics"]["mAP"]["mean"] for r in table["rows"]]
    assert means == sorted(means, reverse=True) and all(r["finished"] == 1 for r in table["rows"])
    runs = [RunDir(out / name / "seed-0") for name in sorted(names)]
    assert all(r.is_finished() for r in runs)
    assert load_spec_text(runs[-1].spec_text()).runtime.threads >= 1  # the launcher split the cores
    assert "| optim.lr | head.dropout | seeds | Rank-1 |" in (out / "sweep.md").read_text()

    # a killed sweep: one run lost its summary (interrupted at its end), one never started
    before = {r.path: r.metrics_path.read_bytes() for r in runs[:2]}
    runs[2].summary_path.unlink()
    shutil.rmtree(runs[3].path)
    main(["sweep", str(spec), *GRID, "--out", str(out), "--sort", "rank1", "-j", "2"])
    text = " ".join(capsys.readouterr().out.split())
    assert "2 finished, 1 to resume, 1 to start" in text
    assert all(r.is_finished() for r in runs)
    assert {r.path: r.metrics_path.read_bytes() for r in runs[:2]} == before  # not retrained
    assert "sorted by Rank-1" in (out / "sweep.md").read_text()
    with pytest.raises(ReidError, match="use one of rank1"):
        sort_rows(sweep_rows(build_plan(spec, out, expand([parse_axis(g) for g in GRID[1::2]]), [0])), "loss")


def test_submitit_launcher_runs_a_tiny_run_in_its_debug_executor(spec, tmp_path):
    plan = build_plan(spec, tmp_path / "slurm", expand([parse_axis("optim.lr=1e-3")]), [3])
    (outcome,) = run_slurm(plan, SlurmResources(gpus=0, cpus=2), cluster="debug")
    assert outcome.status == "done"
    run = RunDir(tmp_path / "slurm" / "optim.lr=0.001" / "seed-3")
    assert run.is_finished() and load_spec_text(run.spec_text()).seed == 3
    assert (tmp_path / "slurm" / "submitit").is_dir()
    assert list(submitted_jobs(plan)) == [str(run.path)]  # which job trained which run
    (again,) = run_slurm(plan, SlurmResources(gpus=0, cpus=2), cluster="debug")
    assert again.status == "skipped"


class FakeSlurmJob:
    """What submitit.SlurmJob(folder, job_id) gives back for a job submitted earlier: its sacct state; waiting
    for its result trains nothing (the test marks the run finished, as the real job would)."""

    states = {"11": "RUNNING", "12": "PENDING", "13": "CANCELLED by 0", "14": "UNKNOWN", "15": "COMPLETED"}
    waited: list[str] = []

    def __init__(self, folder, job_id):
        self.folder, self.job_id = folder, job_id
        self.state = self.states[job_id]

    def result(self):
        FakeSlurmJob.waited.append(self.job_id)


def test_a_relaunched_slurm_sweep_waits_for_jobs_still_queued_instead_of_submitting_copies(spec, tmp_path):
    plan = build_plan(spec, tmp_path / "sw", expand([parse_axis("optim.lr=1e-3,2e-3,3e-3,4e-3,5e-3,6e-3")]), [0])
    (plan.out / "submitit").mkdir(parents=True)
    (plan.out / "submitit" / JOBS_FILE).write_text(json.dumps(
        {str(run.path): job_id for run, job_id in zip(plan.runs, ["11", "12", "13", "14", "15"])}))
    held = still_queued(plan, plan.runs, job_of=FakeSlurmJob)
    assert set(held) == {plan.runs[0].path, plan.runs[1].path}  # running and pending; not cancelled, unknown,
    assert held[plan.runs[0].path].folder == plan.out / "submitit" / "%j"  # completed, or never submitted


def test_a_relaunch_whose_jobs_all_still_run_submits_nothing_and_waits_for_them(spec, tmp_path, monkeypatch):
    plan = build_plan(spec, tmp_path / "sw", expand([parse_axis("optim.lr=1e-3,2e-3")]), [0])
    (plan.out / "submitit").mkdir(parents=True)
    (plan.out / "submitit" / JOBS_FILE).write_text(json.dumps({str(plan.runs[0].path): "11", str(plan.runs[1].path): "12"}))
    monkeypatch.setattr("submitit.SlurmJob", FakeSlurmJob)
    monkeypatch.setattr("reid.sweep.slurm.executor_for", lambda *a, **k: pytest.fail("a running job was submitted again"))
    FakeSlurmJob.waited = []
    outcomes = run_slurm(plan, SlurmResources(gpus=0, cpus=2), cluster="slurm")
    assert [o.status for o in outcomes] == ["done", "done"] and FakeSlurmJob.waited == ["11", "12"]
