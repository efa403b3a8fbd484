"""Run a plan on Slurm through submitit: one job per run, ``torchrun`` inside for multi-GPU runs.

Each job runs :class:`RunJob`, which starts its run (``reid run SPEC --out RUN …``) or, when the
run directory already holds a started run, resumes it (``reid run --resume RUN``). A multi-GPU run's ``torchrun``
restarts its processes when one of them dies (``SlurmResources.max_restarts``), and the restarted processes
continue the run from its last complete checkpoint within the same job (:mod:`reid.engine.elastic`). On preemption or
time-out Slurm signals the job's processes (SIGUSR2 ahead of time, as submitit asks, and SIGTERM);
``reid run`` then finishes its step, saves a resumable checkpoint and exits with code 144
(:class:`~reid.engine.trainer.TrainingPreempted`). submitit's handler in the job calls
:meth:`RunJob.checkpoint`, which passes the signal on to ``reid run`` if it did not get one and waits for
that save, then requeues the same callable; the requeued job resumes the run from the checkpoint. When
only ``reid run`` was signalled, :class:`RunJob` sees exit code 144 and asks submitit to requeue all the same. Submission folders and logs go to ``OUT/submitit/``, and ``OUT/submitit/jobs.json``
records which job trains which run: a sweep launched again while its jobs are still queued or running
(its submitter was killed, the login node rebooted) waits for those jobs instead of submitting copies.

Needs the ``sweep`` extra (``pip install 'reid[sweep]'``). Example::

    plan = build_plan("specs/q8.toml", Path("runs/lr"), expand([parse_axis("optim.lr=1e-3,3.5e-4")]), [0, 1, 2])
    outcomes = run_slurm(plan, SlurmResources(partition="gpu", gpus=2, cpus=16, minutes=240))
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import submitit

from reid.engine.checkpoint import atomic_write_text
from reid.engine.rundir import RunDir
from reid.engine.trainer import TrainingPreempted
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
        max_restarts: with more than one GPU, how often ``torchrun`` restarts the job's processes after one of
            them fails (a rank killed by the OOM killer, a collective that timed out); every restart continues the
            run from its last complete checkpoint (:mod:`reid.engine.elastic`).
        parallel: most jobs running at once (job-array parallelism; None: no limit).
    """

    partition: str | None = None
    gpus: int = 1
    cpus: int = 8
    minutes: int = 240
    max_timeouts: int = 3
    max_restarts: int = 2
    parallel: int | None = None


class RunJob(submitit.helpers.Checkpointable):
    """The callable one job runs: start or resume one run directory, then return its path.

    It holds no state of its own (the run directory is the state), so the requeued copy that
    :meth:`checkpoint` returns (this callable with the same arguments) resumes the run after a preemption.

    Attributes:
        save_timeout_s: how long :meth:`checkpoint` waits for ``reid run`` to save before requeueing anyway
            (Slurm's ``--signal=USR2@90`` gives 90 s before the end).
    """

    save_timeout_s: float = 80.0

    def __init__(self, start: list[str], resume: list[str], run_dir: str):
        self.start, self.resume, self.run_dir = start, resume, run_dir
        self._child: subprocess.Popen | None = None

    def __getstate__(self) -> dict:
        """Pickled without the running ``reid run`` process (submitit pickles the job to requeue it)."""
        return {k: v for k, v in self.__dict__.items() if k != "_child"}

    def __setstate__(self, state: dict) -> None:
        """Restore from :meth:`__getstate__` (no running process)."""
        self.__dict__.update(state, _child=None)

    def __call__(self) -> str:
        """Run (or resume) the run; raise if ``reid run`` fails; requeue the job if it was preempted."""
        run = RunDir(self.run_dir)
        if run.is_finished():
            return self.run_dir
        command = self.resume if (run.path / "spec.toml").is_file() else self.start
        self._child = subprocess.Popen(command)
        status = self._child.wait()
        if status == TrainingPreempted.exit_code and not run.is_finished():
            _ask_submitit_to_requeue()
        if status != 0 or not run.is_finished():
            raise RuntimeError(f"`{' '.join(command)}` exited with status {status}")
        return self.run_dir

    def checkpoint(self, *args, **kwargs) -> submitit.helpers.DelayedSubmission:
        """Called by submitit on the preemption / time-out signal, before it requeues the job: make sure
        ``reid run`` has saved (send it SIGUSR2 — a no-op when Slurm signalled it already — and wait for it to
        exit), then return this callable to run again."""
        child = self._child
        if child is not None and child.returncode is None:
            child.send_signal(signal.SIGUSR2)
            _wait_for_exit(child, self.save_timeout_s)  # if it does not end in time, the run resumes from an older save
        return super().checkpoint(*args, **kwargs)


def _wait_for_exit(child: subprocess.Popen, timeout_s: float) -> None:
    """Wait up to ``timeout_s`` for ``child`` to end. Works inside a signal handler that interrupted
    ``child.wait()`` (whose lock makes a second ``wait`` or ``poll`` on the same thread never see the exit)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            pid, status = os.waitpid(child.pid, os.WNOHANG)
        except ChildProcessError:  # reaped already
            return
        if pid:
            child.returncode = os.waitstatus_to_exitcode(status)
            return
        time.sleep(0.05)


def _ask_submitit_to_requeue() -> None:
    """Send this job process submitit's preemption signal, whose handler (installed in every submitit job)
    calls :meth:`RunJob.checkpoint`, requeues the job and exits; without that handler, return."""
    sig = submitit.JobEnvironment._usr_sig()
    if not callable(signal.getsignal(sig)):
        return
    os.kill(os.getpid(), sig)
    time.sleep(5)  # the handler runs on this (main) thread as soon as the signal arrives, and exits


def job_for(plan: Plan, run: PlannedRun, resources: SlurmResources) -> RunJob:
    """The :class:`RunJob` of one planned run, with both its start and resume commands."""
    threads = max(1, resources.cpus // max(resources.gpus, 1))
    processes = max(resources.gpus, 1)
    start = run.command(plan.spec_path, threads, processes, resources.max_restarts)
    resume = [*start[:start.index("run")], "run", "--resume", str(run.path), "--plain"]
    return RunJob(start, resume, str(run.path))


JOBS_FILE = "jobs.json"
#: Slurm job states (first word of sacct's) in which a job will still run or is running
ACTIVE_STATES = frozenset({"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED", "REQUEUE_FED",
                           "REQUEUE_HOLD", "RESIZING", "SIGNALING", "STAGE_OUT"})


def submitted_jobs(plan: Plan) -> dict[str, str]:
    """``{run directory: Slurm job id}`` of every job this sweep has submitted (empty before the first)."""
    path = plan.out / "submitit" / JOBS_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def still_queued(plan: Plan, runs: list[PlannedRun],
                 job_of: Callable[[Path, str], submitit.Job] | None = None) -> dict[Path, submitit.Job]:
    """The jobs of an earlier submission that Slurm still holds (pending, running, requeued…), by run directory.

    A job whose state cannot be read (``UNKNOWN``: sacct unreachable, or the job long gone) does not count:
    its run is submitted again, and if the old job does run after all, the run directory's lock
    (:meth:`RunDir.lock`) stops the second copy before it writes anything.
    """
    known, job_of = submitted_jobs(plan), job_of or submitit.SlurmJob
    jobs = {run.path: job_of(plan.out / "submitit" / "%j", known[str(run.path)]) for run in runs if str(run.path) in known}
    return {path: job for path, job in jobs.items() if (job.state or "UNKNOWN").split()[0] in ACTIVE_STATES}


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
    """Submit one job per unfinished run (as one job array), wait for them, return every run's outcome.

    On Slurm, runs whose job from an earlier launch of this sweep is still queued or running are not
    submitted again: their jobs are waited for (:func:`still_queued`).
    """
    outcomes, todo = skip_finished(plan, report)
    jobs = still_queued(plan, todo) if cluster == "slurm" else {}
    fresh = [run for run in todo if run.path not in jobs]
    if fresh:
        executor = executor_for(plan, resources, cluster)
        with executor.batch():
            submitted = [executor.submit(job_for(plan, run, resources)) for run in fresh]
        jobs |= {run.path: job for run, job in zip(fresh, submitted)}
        atomic_write_text(plan.out / "submitit" / JOBS_FILE, json.dumps(
            submitted_jobs(plan) | {str(run.path): job.job_id for run, job in zip(fresh, submitted)}, indent=1) + "\n")
    for run in todo:
        job = jobs[run.path]
        try:
            job.result()
            outcomes[run.path] = Outcome(run, "done")
        except Exception as e:  # noqa: BLE001  (a failed job is reported, the others still count)
            outcomes[run.path] = Outcome(run, "failed", f"job {job.job_id}: {str(e).strip().splitlines()[-1]}; "
                                                   f"log {Path(job.paths.stderr)}")
        report(outcomes[run.path])
    return [outcomes[r.path] for r in plan.runs]
