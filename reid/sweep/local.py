"""Run a plan on this machine: each run a ``python -m reid run`` subprocess, up to N at a time.

With N runs at a time each gets ``runtime.threads = cores // N`` (at least 1), so the runs share the
cores instead of thrashing them. Finished runs are skipped, started ones resumed. Each run's output
goes to ``OUT/logs/<point>/seed-N.log``. Ctrl-C reaches the runs too: each saves a resumable
checkpoint, and the next ``reid sweep`` continues them.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from reid.sweep.plan import Plan, PlannedRun, RunState


@dataclass(frozen=True)
class Outcome:
    """What happened to one planned run: ``skipped`` (already finished), ``done`` or ``failed``."""

    run: PlannedRun
    status: str
    detail: str = ""


def skip_finished(plan: Plan, report: Callable[[Outcome], None]) -> tuple[dict[Path, Outcome], list[PlannedRun]]:
    """The ``skipped`` outcomes of ``plan``'s finished runs (each reported), and the runs still to do, in plan order."""
    outcomes: dict[Path, Outcome] = {}
    todo = []
    for run in plan.runs:
        if run.state is RunState.finished:
            outcomes[run.path] = Outcome(run, "skipped", "already finished")
            report(outcomes[run.path])
        else:
            todo.append(run)
    return outcomes, todo


def available_cores() -> int:
    """CPU cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def threads_per_run(parallel: int, cores: int | None = None) -> int:
    """Intra-op threads for each of ``parallel`` concurrent runs.

    Example:
        >>> threads_per_run(2, cores=8), threads_per_run(4, cores=2)
        (4, 1)
    """
    return max(1, (cores or available_cores()) // parallel)


def log_path(plan: Plan, run: PlannedRun) -> Path:
    """Where a run's output is written: ``OUT/logs/<point>/seed-N.log``."""
    return plan.out / "logs" / run.path.relative_to(plan.out).with_suffix(".log")


def run_local(plan: Plan, parallel: int = 1, report: Callable[[Outcome], None] = lambda o: None) -> list[Outcome]:
    """Run every unfinished run of ``plan``, ``parallel`` at a time; ``report`` is called as each ends.

    Returns the outcome of every planned run, in plan order. Raises :class:`KeyboardInterrupt` after
    the running subprocesses have stopped (they save resumable checkpoints on the same Ctrl-C).
    """
    threads = threads_per_run(parallel)
    outcomes, queue = skip_finished(plan, report)
    running: dict[subprocess.Popen, tuple[PlannedRun, Path]] = {}
    try:
        while queue or running:
            while queue and len(running) < parallel:
                run = queue.pop(0)
                log = log_path(plan, run)
                log.parent.mkdir(parents=True, exist_ok=True)
                with open(log, "a", encoding="utf-8") as f:
                    running[subprocess.Popen(run.command(plan.spec_path, threads), stdout=f,
                                             stderr=subprocess.STDOUT)] = (run, log)
            for proc in [p for p in running if p.poll() is not None]:
                run, log = running.pop(proc)
                ok = proc.returncode == 0 and run.state is RunState.finished
                outcomes[run.path] = Outcome(run, "done" if ok else "failed",
                                        "" if ok else f"exit status {proc.returncode}, log {log}")
                report(outcomes[run.path])
            time.sleep(0.2)
    except KeyboardInterrupt:
        for proc in running:  # they got the same SIGINT: let them save their checkpoints
            proc.wait()
        raise
    return [outcomes[r.path] for r in plan.runs]
