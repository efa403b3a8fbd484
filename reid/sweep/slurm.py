"""Run a plan on Slurm through submitit: one job per run, ``torchrun`` inside for multi-GPU runs.

Each job runs :class:`RunJob`, which starts its run (``reid run SPEC --out RUN …``) or, when the
run directory already holds a started run, resumes it (``reid run --resume RUN``). On preemption or
time-out submitit calls the job's ``checkpoint`` method (inherited from
:class:`submitit.helpers.Checkpointable`: requeue the same callable) while Slurm sends the training
process SIGTERM, on which ``reid run`` saves a resumable checkpoint; the requeued job then resumes
the run from it. Submission folders and logs go to ``OUT/submitit/``.

Needs the ``sweep`` extra (``pip install 'reid[sweep]'``). Example::

    plan = build_plan("specs/q8.toml", Path("runs/lr"), expand([parse_axis("optim.lr=1e-3,3.5e-4")]), [0, 1, 2])
    outcomes = run_slurm(plan, SlurmResources(partition="gpu", gpus=2, cpus=16, minutes=240))
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import submitit

from reid.engine.rundir import RunDir
from reid.sweep.local import Outcome, skip_finished
from reid.sweep.plan import Plan, PlannedRun


@dataclass(frozen=True)
class SlurmResources:
    """What each run's job asks for.

    Attributes:
        partition: the Slurm partition (None: the cluster's default).
        gpus: GPUs per run; more than one runs ``torchrun`` with one process per GPU.
        cpus: CPU cores per job (split evenly between the processes as ``runtime.threads``).
        minutes: time limit per job; a run that needs longer is requeued and resumed
            (up to ``max_timeouts`` times).
        max_timeouts: how often a timed-out job is requeued (submitit's ``slurm_max_num_timeout``).
        parallel: most jobs running at once (job-array parallelism; None: no limit).
    """

    partition: str | None = None
    gpus: int = 1
    cpus: int = 8
    minutes: int = 240
    max_timeouts: int = 3
    parallel: int | None = None


class RunJob(submitit.helpers.Checkpointable):
    """The callable one job runs: start or resume one run directory, then return its path.

    It holds no state of its own (the run directory is the state), so the inherited ``checkpoint``
    (requeue this callable with the same arguments) resumes the run after a preemption.
    """

    def __init__(self, start: list[str], resume: list[str], run_dir: str):
        self.start, self.resume, self.run_dir = start, resume, run_dir

    def __call__(self) -> str:
        """Run (or resume) the run; raise if ``reid run`` fails."""
        run = RunDir(self.run_dir)
        if run.is_finished():
            return self.run_dir
        command = self.resume if (run.path / "spec.toml").is_file() else self.start
        status = subprocess.run(command).returncode
        if status != 0 or not run.is_finished():
            raise RuntimeError(f"`{' '.join(command)}` exited with status {status}")
        return self.run_dir


def job_for(plan: Plan, run: PlannedRun, resources: SlurmResources) -> RunJob:
    """The :class:`RunJob` of one planned run, with both its start and resume commands."""
    threads = max(1, resources.cpus // max(resources.gpus, 1))
    processes = max(resources.gpus, 1)
    start = run.command(plan.spec_path, threads, processes)
    resume = [*start[:start.index("run")], "run", "--resume", str(run.path), "--plain"]
    return RunJob(start, resume, str(run.path))


def executor_for(plan: Plan, resources: SlurmResources, cluster: str = "slurm") -> submitit.AutoExecutor:
    """A submitit executor writing into ``OUT/submitit`` (``cluster="debug"`` runs jobs in this process)."""
    executor = submitit.AutoExecutor(folder=plan.out / "submitit" / "%j", cluster=cluster,
                                     slurm_max_num_timeout=resources.max_timeouts)
    params = dict(timeout_min=resources.minutes, nodes=1, tasks_per_node=1, cpus_per_task=resources.cpus,
                  gpus_per_node=resources.gpus, name=f"reid-{plan.spec_path.stem}")
    if resources.partition:
        params["slurm_partition"] = resources.partition
    if resources.parallel:
        params["slurm_array_parallelism"] = resources.parallel
    executor.update_parameters(**params)
    return executor


def run_slurm(plan: Plan, resources: SlurmResources, cluster: str = "slurm",
              report: Callable[[Outcome], None] = lambda o: None) -> list[Outcome]:
    """Submit one job per unfinished run (as one job array), wait for them, return every run's outcome."""
    outcomes, todo = skip_finished(plan, report)
    if todo:
        executor = executor_for(plan, resources, cluster)
        with executor.batch():
            jobs = [executor.submit(job_for(plan, run, resources)) for run in todo]
        for run, job in zip(todo, jobs):
            try:
                job.result()
                outcomes[run.path] = Outcome(run, "done")
            except Exception as e:  # noqa: BLE001  (a failed job is reported, the others still count)
                outcomes[run.path] = Outcome(run, "failed", f"job {job.job_id}: {str(e).strip().splitlines()[-1]}; "
                                                       f"log {Path(job.paths.stderr)}")
            report(outcomes[run.path])
    return [outcomes[r.path] for r in plan.runs]
