"""The runs a sweep (or ``reid run --seeds``) needs: where each lives, its overrides, its state, its command.

A run is *finished* when its directory holds ``summary.json``, *started* when it holds ``spec.toml``
(it is resumed with ``reid run --resume``), *pending* otherwise. Every planned spec is validated
before anything runs, and a started or finished run whose saved spec is not the planned one
(``runtime.threads`` aside) is refused: the output directory belongs to another sweep.

Example:
    >>> import tempfile
    >>> from reid.sweep.grid import expand, parse_axis
    >>> out = Path(tempfile.mkdtemp())
    >>> (out / "s.toml").write_text('name = "demo"\\n')
    14
    >>> plan = build_plan(out / "s.toml", out / "sweep", expand([parse_axis("optim.lr=1e-3,1e-2")]), [0, 1])
    >>> [str(r.path.relative_to(out)) for r in plan.runs][:2], plan.runs[0].overrides
    (['sweep/optim.lr=0.001/seed-0', 'sweep/optim.lr=0.001/seed-1'], ('optim.lr=1e-3', 'seed=0'))
    >>> {r.state for r in plan.runs}
    {<RunState.pending: 'pending'>}
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from reid.engine.rundir import SPEC_FILE, RunDir
from reid.errors import ReidError
from reid.spec import Spec, load_spec, load_spec_text
from reid.sweep.grid import GridPoint

#: the signals ``torchrun`` passes on to its processes: its defaults and SIGUSR2, Slurm's preemption notice
TORCHRUN_SIGNALS = "SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR2"


class RunState(str, Enum):
    """Where a planned run stands."""

    pending = "pending"
    started = "started"
    finished = "finished"


def seed_dir_name(seed: int) -> str:
    """The directory of one seed's run inside a grid point (or a ``reid run --seeds`` group).

    Example:
        >>> seed_dir_name(2)
        'seed-2'
    """
    return f"seed-{seed}"


@dataclass(frozen=True)
class PlannedRun:
    """One run of a plan.

    Attributes:
        path: its run directory.
        point: the grid point it belongs to.
        seed: its ``seed``.
        overrides: every ``--set`` it is started with (the user's, the point's, then ``seed=N``).
        spec: the resolved spec these overrides give.
    """

    path: Path
    point: GridPoint
    seed: int
    overrides: tuple[str, ...]
    spec: Spec

    @property
    def state(self) -> RunState:
        """Pending, started or finished, from the files in :attr:`path`."""
        run = RunDir(self.path)
        if run.is_finished():
            return RunState.finished
        return RunState.started if (self.path / SPEC_FILE).is_file() else RunState.pending

    def command(self, spec_path: Path, threads: int | None = None, processes: int = 1, restarts: int = 0) -> list[str]:
        """The command line that starts this run (pending) or resumes it (started).

        Args:
            spec_path: the sweep's spec file.
            threads: ``runtime.threads`` for a new run whose spec leaves it unset (None: all cores).
            processes: more than 1 runs it under ``torchrun`` with this many processes (one per GPU).
            restarts: under ``torchrun``, how often it restarts every process after one fails (a rank killed
                by the OOM killer); each restart continues the run from its last checkpoint (:mod:`reid.engine.elastic`).
                ``torchrun`` also handles Slurm's early preemption notice (SIGUSR2): it passes it on to every
                process, which saves and stops, instead of dying of it or restarting the processes that stopped.
        """
        launcher = [sys.executable, "-m", "reid"] if processes == 1 else [
            sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
            f"--max-restarts={restarts}", f"--signals-to-handle={TORCHRUN_SIGNALS}", "-m", "reid"]
        if self.state is RunState.started:  # the saved spec (its thread count included) is used again
            return launcher + ["run", "--resume", str(self.path), "--plain"]
        sets = list(self.overrides)
        if threads and self.spec.runtime.threads is None:
            sets.append(f"runtime.threads={threads}")
        return launcher + ["run", str(spec_path), "--out", str(self.path), "--plain"] + [
            arg for s in sets for arg in ("--set", s)]


@dataclass(frozen=True)
class Plan:
    """Every run of a sweep, grid point by grid point, seeds inside."""

    spec_path: Path
    out: Path
    points: tuple[GridPoint, ...]
    seeds: tuple[int, ...]
    runs: tuple[PlannedRun, ...]

    def runs_of(self, point: GridPoint) -> list[PlannedRun]:
        """The runs (one per seed) of ``point``."""
        return [r for r in self.runs if r.point == point]

    def counts(self) -> dict[RunState, int]:
        """How many runs are pending, started and finished."""
        states = [r.state for r in self.runs]
        return {s: states.count(s) for s in RunState}


def build_plan(spec_path: Path | str, out: Path | str, points: list[GridPoint], seeds: list[int],
               overrides: list[str] | None = None) -> Plan:
    """The runs for every grid point × seed, validated, checked against what ``out`` already holds.

    Raises:
        ReidError: a planned spec is invalid, or a run directory holds a run of another spec.
    """
    spec_path, out = Path(spec_path), Path(out)
    runs = []
    for point in points:
        for seed in seeds:
            sets = tuple(overrides or []) + tuple(point.overrides) + (f"seed={seed}",)
            spec = load_spec(spec_path, list(sets))
            run = PlannedRun(out / point.name / seed_dir_name(seed), point, seed, sets, spec)
            if run.state is not RunState.pending:
                check_saved_spec(run)
            runs.append(run)
    return Plan(spec_path, out, tuple(points), tuple(seeds), tuple(runs))


def check_saved_spec(run: PlannedRun) -> None:
    """Refuse a run directory whose saved spec is not the planned one (``runtime.threads`` may differ)."""
    saved = load_spec_text(RunDir(run.path).spec_text(), source=str(run.path / SPEC_FILE))
    ignore = {"runtime": {"threads"}}
    if saved.model_dump(exclude=ignore) != run.spec.model_dump(exclude=ignore):
        from reid.engine.experiment import changed_keys

        keys = [k for k in changed_keys(saved.model_dump(), run.spec.model_dump()) if k != "runtime.threads"]
        raise ReidError(f"this directory holds a run of another spec ({', '.join(keys)} differ)", where=str(run.path),
                        fix="choose another --out, or run the spec it was made with")
