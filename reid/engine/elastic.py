"""Restarts of a ``torchrun`` job: every rank continues the run that the job was training.

``torchrun --max-restarts N`` starts all of a job's processes again, with the same command line, when one of
them fails (a rank killed by the OOM killer or ``kill -9``, a lost node, a collective that timed out);
``$TORCHELASTIC_RESTART_COUNT`` counts the restarts. Without help, the restarted ``reid run SPEC --out RUN``
would refuse RUN as "an unfinished run" (or, with ``--force``, wipe it). Instead, rank 0 writes the job's key
into ``RUN/.torchrun-job`` when a session starts training the run (:func:`record_job`), and a restarted process
whose job key matches continues it as ``--resume`` does — every rank from the last complete checkpoint — or,
when the run had finished before the failure, returns its summary (:func:`after_restart`). A run directory
that another job or a single process trained is never resumed this way.

The key (:func:`job_key`) is torchrun's rendezvous id: a fresh UUID for ``--standalone`` and for single-node
runs without ``--master-port``, the ``--rdzv-id`` a multi-node job names. A static rendezvous without one
(``--master-port`` given, id ``none``) is keyed by rank 0's host and ``torchrun`` process instead: there rank 0
stays on node 0, under the same ``torchrun`` process, for every restart.

Example::

    torchrun --nproc_per_node 4 --max-restarts 3 -m reid run specs/market1501.toml --out runs/m
"""

from __future__ import annotations

import os
import socket
from enum import Enum

from rich.console import Console

from reid.engine.checkpoint import atomic_write_text
from reid.engine.distributed import DistContext, gather_objects
from reid.engine.rundir import SPEC_FILE, RunDir
from reid.spec import RuntimeSpec, Spec, load_spec_text

JOB_FILE = ".torchrun-job"


class Restart(str, Enum):
    """What a process does with its run directory, seen from torchrun's restarts (:func:`after_restart`)."""

    none = "none"  # not a restart of the job that trained the run: as the command line says
    resume = "resume"  # a restart: continue the run from its last complete checkpoint
    finished = "finished"  # a restart after the run had finished: nothing left to train


def job_key() -> str | None:
    """This torchrun job's key, the same in every restart of the job (``None`` outside torchrun)."""
    run_id = os.environ.get("TORCHELASTIC_RUN_ID")
    if run_id is None:
        return None
    if run_id != "none":
        return f"rdzv {run_id}"
    return f"static {socket.gethostname()} torchrun pid {os.getppid()}"


def restart_count() -> int:
    """How often torchrun has restarted this job (0: its first attempt, or no torchrun)."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") or 0)


def record_job(run: RunDir) -> None:
    """Note in ``run`` that this torchrun job trains it from now on (rank 0, once the run is held and set up);
    outside torchrun, remove an earlier job's note (a restart of that job must not take the run back)."""
    path = run.path / JOB_FILE
    key = job_key()
    if key is None:
        path.unlink(missing_ok=True)
    else:
        atomic_write_text(path, key + "\n")


def after_restart(run: RunDir, ctx: DistContext, console: Console) -> Restart:
    """Whether this process is a torchrun restart of the job that was training ``run``, and what is left to do.

    Rank 0 decides from ``RUN/.torchrun-job`` (see the module's notes) and says so in one line; every rank
    gets its answer (a collective under torchrun: every rank calls it at the same point).
    """
    decision = _decide(run) if ctx.is_main else None
    decision = gather_objects(decision, ctx)[0]
    if ctx.is_main and decision is not Restart.none:
        console.print(f"torchrun restart {restart_count()} of this job: "
                      + (f"{run.path} is finished, nothing left to train" if decision is Restart.finished
                         else f"continuing {run.path} from its last complete checkpoint"), markup=False, soft_wrap=True)
    return decision


def _decide(run: RunDir) -> Restart:
    key = job_key()
    if key is None or restart_count() == 0:
        return Restart.none
    try:
        recorded = (run.path / JOB_FILE).read_text(encoding="utf-8").strip()
    except OSError:
        return Restart.none
    if recorded != key:
        return Restart.none
    return Restart.finished if run.is_finished() else Restart.resume


def session_runtime(spec: Spec | None, run: RunDir) -> RuntimeSpec:
    """The runtime settings a session joins the process group with (device, collective timeout): ``spec``'s,
    else those of the spec saved in ``run`` (``reid run --resume``), else the defaults (no saved spec yet)."""
    if spec is not None:
        return spec.runtime
    if not (run.path / SPEC_FILE).is_file():
        return RuntimeSpec()
    return load_spec_text(run.spec_text(), source=str(run.path / SPEC_FILE)).runtime
