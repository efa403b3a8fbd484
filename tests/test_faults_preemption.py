"""Preemption of a sweep's Slurm job, end to end with submitit's local executor standing in for Slurm: the job's
processes get the preemption signals mid-epoch, ``reid run`` saves at the next step and exits 144, submitit
requeues the job, and the requeued job resumes the run to the metrics of an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from fault_log import record
from reid.engine.experiment import run_experiment
from reid.engine.rundir import RunDir
from reid.spec import load_spec_text
from polling import wait_until
from tiny_specs import small_run

submitit = pytest.importorskip("submitit")

SPEC = small_run("preempted", seed=2, epochs=3, threads=1)


@pytest.fixture(scope="module")
def reference(module_tmp_path):
    return run_experiment(load_spec_text(SPEC), module_tmp_path / "run", plain=True)


def _descendants(pid: int) -> list[int]:
    children = [int(c) for c in subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()]
    return children + [d for c in children for d in _descendants(c)]


@pytest.mark.slow
@pytest.mark.parametrize("signalled", ["slurm", "reid-run-only"])
def test_a_preempted_job_is_requeued_and_resumes_to_the_same_metrics(tmp_path, reference, signalled):
    from reid.sweep.slurm import RunJob

    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC)
    out = tmp_path / "run"
    reid = [sys.executable, "-m", "reid", "run"]
    job_fn = RunJob([*reid, str(spec), "--out", str(out), "--plain"], [*reid, "--resume", str(out), "--plain"], str(out))
    executor = submitit.LocalExecutor(folder=tmp_path / "submitit")
    executor.update_parameters(timeout_min=20)
    job = executor.submit(job_fn)

    # mid-epoch 2, after epoch 1's checkpoint
    wait_until(lambda: any(r["kind"] == "iter" and r["epoch"] == 2 for r in RunDir(out).read_metrics()), "epoch 2")
    (task,) = _descendants(job._process.pid)[:1]  # the controller's child: the job's process, running RunJob
    reid_run = _descendants(task)
    assert reid_run, "reid run is not running"
    if signalled == "slurm":  # Slurm: --signal=USR2@90 to every process of the step, then SIGTERM at preemption
        for sig in (signal.SIGUSR2, signal.SIGTERM):
            for pid in [task, *reid_run]:
                os.kill(pid, sig)
    else:  # only reid run gets the notice: RunJob sees exit code 144 and asks submitit to requeue
        for pid in reid_run:
            os.kill(pid, signal.SIGTERM)
    assert job.result() == str(out)  # waits for the requeued job
    log = Path(job.paths.stdout).read_text() + Path(job.paths.stderr).read_text()
    assert "Requeued job" in log and "resuming" in log, log
    summary = json.loads((out / "summary.json").read_text())
    assert summary["final"] == reference.final.to_json()
    steps = [r["step"] for r in RunDir(out).read_metrics() if r["kind"] == "iter"]
    assert steps == sorted(set(steps))
    record(f"preemption-{signalled}", "Slurm preemption of a sweep job" if signalled == "slurm"
           else "preemption notice to `reid run` only",
           "SIGUSR2 + SIGTERM to the job's processes mid-epoch (submitit local executor)" if signalled == "slurm"
           else "SIGTERM to `reid run` mid-epoch (submitit local executor)",
           1, "saved at the next step, exit 144, requeued, resumed: final metrics identical")
